//! Signed checkpoints of the audit chain's head: every so often the node
//! signs (sequence, hash, time) with its key, so that rewriting the history
//! before a checkpoint needs the node key and cannot go unnoticed by anyone
//! who kept a copy. Each new checkpoint goes to a watch channel that the
//! p2p layer gossips on the audit topic, where the other members witness it
//! ([`witness`](super::witness)). Calls `store` and `handbereik-keys`.

use std::sync::Arc;
use std::time::Duration;

use handbereik_keys::{
    Domain, MemberId, NodeKey, PublicKey, SignedEnvelope, SingleSigned, canonical,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::store::Store;

/// The signed body of a checkpoint (domain `handbereik/audit-checkpoint/v1`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The member whose log this is.
    pub member: String,
    /// The head's sequence number.
    pub seq: u64,
    /// The head's hash.
    #[serde(with = "serde_bytes")]
    pub hash: [u8; 32],
    /// Seconds since the Unix epoch.
    pub time: u64,
}

/// Signs the current head unless it is already checkpointed; answers the
/// sequence number signed and the signed bytes, if any.
pub async fn checkpoint(
    store: &Store,
    key: &NodeKey,
    member: &MemberId,
) -> Result<Option<(u64, Vec<u8>)>> {
    let head = store.audit_head()?;
    if head.seq == 0 {
        return Ok(None);
    }
    if store
        .audit_last_checkpoint()?
        .is_some_and(|(seq, _)| seq == head.seq)
    {
        return Ok(None);
    }
    let body = canonical::to_vec(
        &Checkpoint {
            member: member.to_string(),
            seq: head.seq,
            hash: head.hash,
            time: handbereik_keys::time::now(),
        },
        "audit checkpoint",
    )?;
    let signed = SignedEnvelope::signed(Domain::AuditCheckpoint, body, key).encode()?;
    store.put_audit_checkpoint(head.seq, signed.clone()).await?;
    Ok(Some((head.seq, signed)))
}

/// The newest signed checkpoint stored, to gossip once after start, if
/// `current` signed it: one signed by an earlier key (before a key rotation)
/// would be refused by every witness, whose list no longer names that key.
pub fn latest_checkpoint(store: &Store, current: &PublicKey) -> Result<Option<Vec<u8>>> {
    Ok(store.audit_last_checkpoint()?.and_then(|(_, signed)| {
        SingleSigned::decode(&signed, "audit checkpoint", 4096)
            .is_ok_and(|env| &env.key == current.as_bytes())
            .then_some(signed)
    }))
}

/// Checkpoints every `every`, and once more at shutdown; each new one is
/// put in `gossip` for the p2p layer to publish.
pub async fn checkpoint_every(
    store: Store,
    key: Arc<NodeKey>,
    member: MemberId,
    every: Duration,
    gossip: watch::Sender<Option<Vec<u8>>>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let stop = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = tick.tick() => false,
        };
        match checkpoint(&store, &key, &member).await {
            Ok(Some((_, signed))) => {
                gossip.send_replace(Some(signed));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not write an audit checkpoint"),
        }
        if stop {
            return;
        }
    }
}
