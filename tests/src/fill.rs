//! Filling a stopped node's store directly, through the store's own writer
//! (the path gossip and sync take after their checks): for tests and the
//! benchmark that need a node holding many events of another member without
//! publishing them one by one. Events are signed as their source signs them.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail, ensure};
use handbereik_keys::{MemberId, NodeKey, Purpose, time};
use handbereik_node::notify::event::{self, Draft};
use handbereik_node::store::{Incoming, Store};
use handbereik_node::types::StreamId;

use crate::net::TestNode;

/// Events signed and stored per batch (bounds memory).
const BATCH: u64 = 20_000;

/// `n` events of `source` for `purpose`, numbered from `first`, signed as
/// the source signs its own.
pub fn signed_events(
    source: &TestNode,
    purpose: &Purpose,
    first: u64,
    n: u64,
) -> Result<Vec<Vec<u8>>> {
    signed_by(&source.key, &source.member_id, purpose, first, n)
}

/// Like [`signed_events`], for any member's key (one listed but not running).
pub fn signed_by(
    key: &NodeKey,
    member: &MemberId,
    purpose: &Purpose,
    first: u64,
    n: u64,
) -> Result<Vec<Vec<u8>>> {
    let now = time::rfc3339(time::now());
    (first..first.saturating_add(n))
        .map(|seq| {
            let draft = Draft {
                event_type: "nl.samenonderhandbereik.melding.ontvangen".into(),
                purpose: purpose.clone(),
                subject: format!("p-{seq:08x}"),
                dataref: format!("https://bron.example.nl/inzage/{seq}"),
                datacontenttype: "application/json".into(),
                data: br#"{"urgentie":"hoog","categorie":"zorgmelding"}"#.to_vec(),
            };
            Ok(event::sign_own(key, member, &draft, seq, now.clone())?)
        })
        .collect()
}

/// Opens the store in `data_dir` (its node stopped) and stores events
/// 1..=`n` of `source` for `purpose`, in batches; gives the open store back
/// to write more ([`add_events`]), to be closed with [`close`].
pub async fn store_events(
    data_dir: &Path,
    source: &TestNode,
    purpose: &Purpose,
    n: u64,
) -> Result<handbereik_node::store::Opened> {
    let opened = Store::open(data_dir, 64 << 20)?;
    add_events(&opened.store, &source.key, &source.member_id, purpose, n).await?;
    Ok(opened)
}

/// Stores events 1..=`n` of `member` (signed with `key`) for `purpose`.
pub async fn add_events(
    store: &Store,
    key: &NodeKey,
    member: &MemberId,
    purpose: &Purpose,
    n: u64,
) -> Result<()> {
    let stream = StreamId::new(member.clone(), purpose.clone());
    let mut first = 1;
    while first <= n {
        let count = BATCH.min(n - first + 1);
        let batch: Vec<Incoming> = signed_by(key, member, purpose, first, count)?
            .into_iter()
            .zip(first..)
            .map(|(bytes, seq)| Incoming {
                stream: stream.clone(),
                seq,
                bytes,
            })
            .collect();
        match tokio::time::timeout(Duration::from_secs(120), store.ingest(batch)).await {
            Ok(outcomes) => {
                ensure!(
                    outcomes?.len() as u64 == count,
                    "a batch was not stored whole"
                );
            }
            Err(_) => bail!("storing a batch of {count} events took over 120 s"),
        }
        first += count;
    }
    Ok(())
}

/// Flushes and closes a store opened by [`store_events`].
pub async fn close(opened: handbereik_node::store::Opened) -> Result<()> {
    opened.store.close().await?;
    ensure!(
        opened.writer.join(Duration::from_secs(60)).await,
        "the store's writer did not end within 60 s"
    );
    Ok(())
}
