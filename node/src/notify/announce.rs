//! Announcements on this node's local stream: what the node tells its own
//! back office at once, such as an emergency (break-glass) disclosure or an
//! audit alarm about another member, so that the privacy officer's
//! subscription sees it without polling the audit log.
//!
//! An announcement is a notification like any other (signed by this node,
//! numbered in its stream, durable before the call returns), on the stream
//! of the reserved purpose [`Purpose::LOCAL`](handbereik_keys::Purpose::LOCAL):
//! it enters this node's inbox, so `Subscribe` delivers it, and it is never
//! gossiped, synced or offered to another member. Calls `store` and
//! [`event`](super::event).

use std::sync::Arc;

use handbereik_keys::{MemberId, NodeKey, Purpose, time};
use serde::Serialize;

use super::event::{self, Draft};
use crate::error::Result;
use crate::store::Store;
use crate::types::StreamId;

/// The event type of an emergency (break-glass) inspection, served or asked.
pub const EMERGENCY: &str = "nl.handbereik.audit.emergency";
/// The event type of an audit alarm: a member's checkpoint does not extend
/// the one this node holds of it.
pub const AUDIT_ALARM: &str = "nl.handbereik.audit.alarm";

/// What an emergency announcement says (its `data`, JSON).
#[derive(Clone, Debug, Serialize)]
pub struct EmergencyNotice {
    /// `served` (another member asked this node) or `asked`.
    pub direction: &'static str,
    /// The other member.
    pub member_id: String,
    /// The purpose stated.
    pub purpose: String,
    /// `allowed` or `denied`.
    pub decision: &'static str,
    /// The categories given.
    pub categories_given: Vec<String>,
    /// The acting professional's role.
    pub role: String,
    /// The acting professional's pseudonymous id.
    pub user: String,
    /// On whose behalf, if anyone.
    pub on_behalf_of: String,
    /// The reason stated.
    pub reason: String,
    /// The request id both audit logs hold.
    pub request_id: String,
    /// This node's audit entry.
    pub audit_sequence: u64,
}

/// What an audit alarm says (its `data`, JSON).
#[derive(Clone, Debug, Serialize)]
pub struct AlarmNotice {
    /// The member whose checkpoint does not fit.
    pub member_id: String,
    /// The checkpoint held: entries and head hash (hex).
    pub held_entries: u64,
    /// The head hash held, hex.
    pub held_hash: String,
    /// The checkpoint that arrived.
    pub offered_entries: u64,
    /// Its head hash, hex.
    pub offered_hash: String,
    /// What does not fit, in words.
    pub problem: String,
}

/// Announces on this node's local stream. Cheap to clone.
#[derive(Clone)]
pub struct Announcer {
    own: MemberId,
    key: Arc<NodeKey>,
    store: Store,
}

impl Announcer {
    /// As `own`, signing with `key`.
    pub fn new(own: MemberId, key: Arc<NodeKey>, store: Store) -> Self {
        Announcer { own, key, store }
    }

    /// Announces an emergency inspection about `subject` (pseudonym, hex).
    pub async fn emergency(&self, subject: &str, notice: &EmergencyNotice) -> Result<u64> {
        self.announce(EMERGENCY, subject, notice).await
    }

    /// Announces an audit alarm about another member.
    pub async fn alarm(&self, notice: &AlarmNotice) -> Result<u64> {
        self.announce(AUDIT_ALARM, "", notice).await
    }

    /// Signs, numbers and stores one announcement; answers its inbox position.
    async fn announce(&self, kind: &str, subject: &str, data: &impl Serialize) -> Result<u64> {
        let draft = Draft {
            event_type: kind.to_string(),
            purpose: Purpose::local(),
            subject: subject.to_string(),
            dataref: String::new(),
            datacontenttype: "application/json".into(),
            data: serde_json::to_vec(data)
                .map_err(|_| crate::error::Error::Internal("an announcement does not encode"))?,
        };
        let key = self.key.clone();
        let own = self.own.clone();
        let stamp = time::rfc3339(time::now());
        let (position, _) = self
            .store
            .announce(
                StreamId::local(self.own.clone()),
                Box::new(move |seq| {
                    event::sign_own(&key, &own, &draft, seq, stamp)
                        .map_err(|e| Box::new(e) as crate::store::BuildError)
                }),
            )
            .await?;
        Ok(position)
    }
}
