//! The asking side of witnessed audit, for `audit verify`: asks other
//! members (the connected ones first, then a random sample of the active
//! members, [`WITNESSES`] in all) for the countersigned copy of this node's
//! checkpoint they hold, all at once within one deadline, then has
//! `audit::witness` judge the copies against the local chain.
//!
//! Each call goes over mutual TLS with the witness's key pinned from the
//! member list. Calls `membership`, `audit` and [`tls`](super::tls).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use handbereik_keys::{Member, MemberId, PublicKey};
use handbereik_proto::v1 as pb;
use handbereik_proto::v1::witness_client::WitnessClient;
use sha2::{Digest, Sha256};

use super::tls::{self, TlsIdentity};
use crate::audit::witness::{Asked, Chain, HeldCopy, WitnessReport, judge_copies};
use crate::audit::{Audit, Report};
use crate::error::{Error, Result};
use crate::membership::Membership;

/// Witnesses asked by one verification.
pub const WITNESSES: usize = 16;
/// Of those, at most this many from the connected peers; the rest are
/// drawn at random from the list, so that a node's own choice of peers does
/// not decide who vouches for it.
pub const CONNECTED_WITNESSES: usize = 8;
/// The one deadline for all of them.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// Largest answer taken from a witness: a checkpoint, a countersignature
/// and a few conflicting checkpoints.
const ANSWER_LIMIT: usize = 64 * 1024;

/// Asks witnesses. Cheap to share behind an `Arc`.
pub struct WitnessAsker {
    own: MemberId,
    public_key: PublicKey,
    identity: Arc<TlsIdentity>,
    membership: Membership,
    audit: Audit,
    connect_timeout: Duration,
}

impl WitnessAsker {
    /// As `own` (whose current key is `public_key`), presenting `identity`.
    pub fn new(
        own: MemberId,
        public_key: PublicKey,
        identity: Arc<TlsIdentity>,
        membership: Membership,
        audit: Audit,
        connect_timeout: Duration,
    ) -> Self {
        WitnessAsker {
            own,
            public_key,
            identity,
            membership,
            audit,
            connect_timeout,
        }
    }

    /// Asks the witnesses and judges their copies against the chain that
    /// `local` verified. `connected` are the members connected now.
    pub async fn check(&self, local: &Report, connected: &[MemberId]) -> Result<WitnessReport> {
        let chosen = self.choose(connected)?;
        let until = tokio::time::Instant::now() + DEADLINE;
        let asked: Vec<Asked> = futures::stream::iter(chosen)
            .map(|member| self.ask_until(member, until))
            .buffer_unordered(WITNESSES)
            .collect()
            .await;
        let history = self.audit.key_history(&self.public_key)?;
        let chain = LocalChain {
            audit: self.audit.clone(),
            entries: local.entries,
        };
        let own = self.own.clone();
        tokio::task::spawn_blocking(move || judge_copies(&own, &history, &chain, asked))
            .await
            .map_err(|source| Error::TaskPanicked {
                what: "judging the witnesses' copies",
                source,
            })
    }

    /// Up to [`CONNECTED_WITNESSES`] connected members, then random active
    /// members, [`WITNESSES`] in all, never this node, none in maintenance.
    fn choose(&self, connected: &[MemberId]) -> Result<Vec<Member>> {
        let view = self.membership.view();
        let now = handbereik_keys::time::now();
        if view.is_expired(now) {
            return Ok(Vec::new());
        }
        let usable = |m: &&Member| {
            m.member_id != self.own
                && m.is_active(now)
                && !view.list().is_some_and(|l| l.list.is_revoked(&m.node_key))
        };
        let mut chosen: Vec<Member> = connected
            .iter()
            .filter_map(|id| view.member(id))
            .filter(usable)
            .take(CONNECTED_WITNESSES)
            .cloned()
            .collect();
        let mut nonce = [0u8; 32];
        getrandom::fill(&mut nonce).map_err(|_| Error::Internal("no randomness"))?;
        let mut rest: Vec<(&Member, [u8; 32])> = view
            .members()
            .iter()
            .filter(usable)
            .filter(|m| !chosen.iter().any(|c| c.member_id == m.member_id))
            .map(|m| {
                let rank: [u8; 32] = Sha256::new()
                    .chain_update(nonce)
                    .chain_update(m.node_key.as_bytes())
                    .finalize()
                    .into();
                (m, rank)
            })
            .collect();
        rest.sort_by_key(|a| a.1);
        let room = WITNESSES.saturating_sub(chosen.len());
        chosen.extend(rest.into_iter().take(room).map(|(m, _)| m.clone()));
        Ok(chosen)
    }

    async fn ask_until(&self, member: Member, until: tokio::time::Instant) -> Asked {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let answer = match tokio::time::timeout(left, self.ask(&member)).await {
            Err(_) => Err(format!("no answer within {} ms", DEADLINE.as_millis())),
            Ok(answer) => answer,
        };
        Asked {
            witness: member.member_id,
            key: member.node_key,
            answer,
        }
    }

    async fn ask(&self, member: &Member) -> std::result::Result<Option<HeldCopy>, String> {
        let config =
            tls::client_config(&self.identity, member.node_key).map_err(|e| e.to_string())?;
        let channel = tls::channel(&member.grpc_endpoint, config, self.connect_timeout)
            .map_err(|e| e.to_string())?;
        let mut client = WitnessClient::new(channel).max_decoding_message_size(ANSWER_LIMIT);
        let reply = client
            .held(pb::HeldRequest {})
            .await
            .map_err(|status| {
                format!(
                    "{:?}: {}",
                    status.code(),
                    handbereik_keys::text::redact(status.message())
                )
            })?
            .into_inner();
        if reply.checkpoint.is_empty() {
            return Ok(None);
        }
        Ok(Some(HeldCopy {
            checkpoint: reply.checkpoint,
            countersignature: reply.countersignature,
            conflicting: reply.conflicting.into_iter().take(8).collect(),
        }))
    }
}

/// The local chain through the audit log: entries verified, hashes read
/// from the stored bytes.
struct LocalChain {
    audit: Audit,
    entries: u64,
}

impl Chain for LocalChain {
    fn entries(&self) -> u64 {
        self.entries
    }

    fn hash_at(&self, seq: u64) -> Option<[u8; 32]> {
        if seq == 0 || seq > self.entries {
            return None;
        }
        self.audit.entry_hash(seq).ok().flatten()
    }
}
