//! Publishing this node's own notifications.
//!
//! Owns the whole path of a publish: the node must hold a valid list and be
//! a current member admitted for the purpose; the back office's fields are
//! checked; the store numbers the event in its stream, this node signs it
//! with that number, and the store makes it durable. Only then is the
//! publish answered. Gossip gets the event from the store's feed, in the
//! order the store numbered it, so receivers see each stream in sequence.
//! Calls `membership`, `store` and [`event`](super::event).

use std::sync::Arc;

use handbereik_keys::{MemberId, NodeKey, time};

use super::event::{self, Draft, Notification};
use crate::error::{Error, Result};
use crate::membership::Membership;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::types::StreamId;

/// Publishes notifications as this node.
pub struct Publisher {
    own: MemberId,
    key: Arc<NodeKey>,
    membership: Membership,
    store: Store,
    metrics: Arc<Metrics>,
}

impl Publisher {
    /// As `own`, signing with `key`.
    pub fn new(
        own: MemberId,
        key: Arc<NodeKey>,
        membership: Membership,
        store: Store,
        metrics: Arc<Metrics>,
    ) -> Self {
        Publisher {
            own,
            key,
            membership,
            store,
            metrics,
        }
    }

    /// Checks, numbers, signs and durably stores one notification; answers
    /// it as stored. Gossip takes it from the store's feed.
    pub async fn publish(&self, draft: Draft) -> Result<Notification> {
        if draft.purpose.is_local() {
            return Err(Error::InvalidRequest(format!(
                "purpose: {} is reserved for this node's own announcements (emergencies, audit alarms); publish for a purpose the node is admitted for",
                draft.purpose
            )));
        }
        let view = self.membership.view();
        let now = time::now();
        if let Some(refusal) = view.refusal(now) {
            return Err(Error::NotAvailable(refusal));
        }
        if let Some(refusal) = view.own_refusal(&self.own, now) {
            return Err(Error::Denied(refusal));
        }
        let admitted = view
            .member(&self.own)
            .is_some_and(|m| m.has_purpose(&draft.purpose));
        if !admitted {
            return Err(Error::Denied(format!(
                "this node ({}) is not admitted for purpose {} in member list version {}",
                self.own,
                draft.purpose,
                view.version()
            )));
        }
        event::check_draft(&draft)?;
        let key = self.key.clone();
        let own = self.own.clone();
        let stream = StreamId::new(self.own.clone(), draft.purpose.clone());
        let stamp = time::rfc3339(now);
        let (_, bytes) = self
            .store
            .append_own(
                stream,
                Box::new(move |seq| {
                    event::sign_own(&key, &own, &draft, seq, stamp)
                        .map_err(|e| Box::new(e) as crate::store::BuildError)
                }),
            )
            .await?;
        self.metrics.published.inc();
        event::decode_stored(&bytes)
            .ok_or(Error::Internal("the node cannot read back its own event"))
    }
}
