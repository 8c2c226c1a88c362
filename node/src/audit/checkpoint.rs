//! Signed checkpoints of the audit chain's head: every so often the node
//! signs (sequence, hash, time) with its key, so that rewriting the history
//! before a checkpoint needs the node key and cannot go unnoticed by anyone
//! who kept a copy. Calls `store` and `handbereik-keys`.

use std::sync::Arc;
use std::time::Duration;

use handbereik_keys::{Domain, MemberId, NodeKey, SignedEnvelope, canonical};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::store::Store;

/// The signed body of a checkpoint (domain `handbereik/audit-checkpoint/v1`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
/// sequence number signed, if any.
pub async fn checkpoint(store: &Store, key: &NodeKey, member: &MemberId) -> Result<Option<u64>> {
    let head = store.audit_head()?;
    if head.seq == 0 {
        return Ok(None);
    }
    if store
        .audit_checkpoints()?
        .last()
        .is_some_and(|(seq, _)| *seq == head.seq)
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
    store.put_audit_checkpoint(head.seq, signed).await?;
    Ok(Some(head.seq))
}

/// Checkpoints every `every`, and once more at shutdown.
pub async fn checkpoint_every(
    store: Store,
    key: Arc<NodeKey>,
    member: MemberId,
    every: Duration,
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
        if let Err(e) = checkpoint(&store, &key, &member).await {
            tracing::warn!(error = %e, "could not write an audit checkpoint");
        }
        if stop {
            return;
        }
    }
}
