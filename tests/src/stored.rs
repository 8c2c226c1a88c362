//! What a stopped node durably kept, read straight from its data directory
//! the way `handbereik audit verify --offline` does: the fault tests compare
//! it with what the node acknowledged. And, for the witnessed-audit tests,
//! what an insider with the node key could do to a stopped node's audit log
//! (rewrite it and re-sign its checkpoints, or add a checkpoint).
//!
//! Calls the node's `store` (open, marks, ranges), `notify::event`
//! (decoding a stored event) and `audit` (entries, hashes, checkpoints);
//! the read helpers write nothing.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use handbereik_keys::{MemberId, Purpose};

/// One stream as a node stored it.
#[derive(Debug, Default)]
pub struct StoredStream {
    /// The contiguous high-water mark: every sequence up to here is stored.
    pub mark: u64,
    /// Sequence and id of every stored event from 1 to `mark`.
    pub events: Vec<(u64, String)>,
}

/// The stream of `source` for `purpose` in the store in `data_dir`, which
/// no node may have open.
pub async fn read_stream(data_dir: &Path, source: &str, purpose: &str) -> Result<StoredStream> {
    use handbereik_node::store::{Opened, Store};
    let stream =
        handbereik_node::types::StreamId::new(MemberId::parse(source)?, Purpose::parse(purpose)?);
    let Opened { store, writer, .. } = Store::open(data_dir, 8 << 20)?;
    let read = || -> Result<StoredStream> {
        let mark = store.mark(&stream)?;
        let mut events = Vec::new();
        let mut from = 1;
        while from <= mark {
            let page = store.events_from(&stream, from, mark, 1000, usize::MAX)?;
            if page.is_empty() {
                bail!("the store says it holds up to {mark} but gives nothing at {from}");
            }
            for bytes in page {
                let n = handbereik_node::notify::event::decode_stored(&bytes)
                    .with_context(|| format!("stored event {from} does not decode"))?;
                events.push((n.sequence, n.id));
                from += 1;
            }
        }
        Ok(StoredStream { mark, events })
    };
    let result = read();
    let _ = store.close().await;
    let _ = writer.join(Duration::from_secs(30)).await;
    drop(store);
    result
}

/// Rewrites the audit log of a stopped node the way an insider with the
/// node key would: entry `at` gets another request id, every later entry
/// gets its `prev` recomputed, the head record follows, and every signed
/// checkpoint is made again over the new hashes with the key in `key_file`.
/// The log then verifies on its own; only a copy kept elsewhere (a
/// witness's) shows the rewrite. Answers the new head: (entries, hash).
pub fn rewrite_audit(data_dir: &Path, key_file: &Path, at: u64) -> Result<(u64, [u8; 32])> {
    use handbereik_keys::{Domain, NodeKey, SignedEnvelope, canonical};
    use handbereik_node::audit::{AuditEntry, Checkpoint, hash};
    let key = NodeKey::load(key_file)?;
    let db = sled::open(data_dir)?;
    let tree = db.open_tree("audit")?;
    let mut prev = [0u8; 32];
    let mut hashes = std::collections::HashMap::new();
    let mut last = 0u64;
    let mut changed = false;
    for item in tree.scan_prefix([b'e']) {
        let (k, v) = item?;
        let seq = u64::from_be_bytes(k[1..9].try_into()?);
        let mut entry = AuditEntry::decode(&v)?;
        if seq == at {
            entry.request_id = format!("rewritten-{}", entry.request_id);
            changed = true;
        }
        entry.prev = prev;
        let bytes = entry.encode()?;
        prev = hash(&bytes);
        hashes.insert(seq, prev);
        tree.insert(&k, bytes)?;
        last = seq;
    }
    if !changed {
        bail!("the log has no entry {at} to rewrite (it ends at {last})");
    }
    let mut head = last.to_be_bytes().to_vec();
    head.extend_from_slice(&prev);
    tree.insert([b'h'], head)?;
    for item in tree.scan_prefix([b'c']) {
        let (k, v) = item?;
        let seq = u64::from_be_bytes(k[1..9].try_into()?);
        let old = SignedEnvelope::decode(&v, "audit checkpoint", 4096)?;
        let mut body: Checkpoint = canonical::from_slice(&old.body, "audit checkpoint")?;
        body.hash = *hashes.get(&seq).context("a checkpoint beyond the log")?;
        let body = canonical::to_vec(&body, "audit checkpoint")?;
        let signed = SignedEnvelope::signed(Domain::AuditCheckpoint, body, &key).encode()?;
        tree.insert(&k, signed)?;
    }
    db.flush()?;
    Ok((last, prev))
}

/// The signer key (hex) of every signed checkpoint of a stopped node's own
/// log, by sequence.
pub fn checkpoint_signers(data_dir: &Path) -> Result<Vec<(u64, String)>> {
    let db = sled::open(data_dir)?;
    let tree = db.open_tree("audit")?;
    let mut out = Vec::new();
    for item in tree.scan_prefix([b'c']) {
        let (k, v) = item?;
        let seq = u64::from_be_bytes(k[1..9].try_into()?);
        let env = handbereik_keys::SignedEnvelope::decode(&v, "audit checkpoint", 4096)?;
        let signer = env
            .signatures
            .first()
            .context("a checkpoint without signature")?;
        out.push((seq, signer.key.to_hex()));
    }
    Ok(out)
}

/// Puts a checkpoint of entry `seq` (with that entry's true hash) signed by
/// `key`, which need not be the node's, into a stopped node's log.
pub fn put_checkpoint(
    data_dir: &Path,
    member: &str,
    seq: u64,
    key: &handbereik_keys::NodeKey,
) -> Result<()> {
    use handbereik_keys::{Domain, SignedEnvelope, canonical};
    let db = sled::open(data_dir)?;
    let tree = db.open_tree("audit")?;
    let mut k = vec![b'e'];
    k.extend_from_slice(&seq.to_be_bytes());
    let entry = tree.get(&k)?.with_context(|| format!("no entry {seq}"))?;
    let body = canonical::to_vec(
        &handbereik_node::audit::Checkpoint {
            member: member.to_string(),
            seq,
            hash: handbereik_node::audit::hash(&entry),
            time: handbereik_keys::time::now(),
        },
        "audit checkpoint",
    )?;
    let signed = SignedEnvelope::signed(Domain::AuditCheckpoint, body, key).encode()?;
    k[0] = b'c';
    tree.insert(k, signed)?;
    db.flush()?;
    Ok(())
}
