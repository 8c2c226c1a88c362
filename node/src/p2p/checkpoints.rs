//! The audit topic on the swarm task: this node's own signed checkpoints
//! out, other members' checkpoints in to the witness.
//!
//! Out: the newest checkpoint the audit module signed (a watch channel; the
//! newest stored one at start) is published once. Until some peer is
//! subscribed to the topic it stays pending and is tried again every
//! second, so a restart is seen within seconds of the first connection.
//! In: each message goes to [`Witness::try_offer`](crate::audit::witness::Witness::try_offer);
//! its verdict comes back through the driver's verdict queue, so the swarm
//! task never waits on a signature check or a disk write.

use libp2p::PeerId;
use libp2p::gossipsub::{self, MessageAcceptance, MessageId};

use super::behaviour::{self, topic_score_params};
use super::driver::Driver;
use crate::audit::witness::Acceptance;

/// The gossip verdict for a witness's acceptance.
fn verdict(acceptance: Acceptance) -> MessageAcceptance {
    match acceptance {
        Acceptance::Accept => MessageAcceptance::Accept,
        Acceptance::Reject => MessageAcceptance::Reject,
        Acceptance::Ignore => MessageAcceptance::Ignore,
    }
}

impl Driver {
    pub(super) fn subscribe_audit(&mut self) {
        let topic = behaviour::audit_topic(&self.p.network);
        let gossip = &mut self.p.swarm.behaviour_mut().gossipsub;
        if let Err(e) = gossip.set_topic_params(topic.clone(), topic_score_params()) {
            tracing::warn!(error = %e, "cannot score the audit topic");
        }
        if let Err(e) = gossip.subscribe(&topic) {
            tracing::error!(error = %e, "cannot subscribe to the audit topic");
        }
    }

    /// A new own checkpoint to publish (replacing one still pending).
    pub(super) fn own_checkpoint(&mut self, signed: Option<Vec<u8>>) {
        if signed.is_some() {
            self.checkpoint_pending = signed;
            self.publish_checkpoint();
        }
    }

    /// Publishes the pending own checkpoint if some peer is subscribed.
    pub(super) fn publish_checkpoint(&mut self) {
        let Some(bytes) = self.checkpoint_pending.clone() else {
            return;
        };
        let topic = behaviour::audit_topic(&self.p.network);
        match self.p.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
            // Published, or the same bytes were already (a restart within
            // the duplicate cache's time).
            Ok(_) | Err(gossipsub::PublishError::Duplicate) => {
                self.checkpoint_pending = None;
            }
            Err(
                gossipsub::PublishError::NoPeersSubscribedToTopic
                | gossipsub::PublishError::AllQueuesFull(_),
            ) => {}
            Err(e) => {
                tracing::warn!(error = %e, "the audit checkpoint cannot be gossiped; it stays in the store");
                self.checkpoint_pending = None;
            }
        }
    }

    /// A checkpoint that arrived on the audit topic.
    pub(super) fn on_checkpoint(&mut self, message_id: MessageId, peer: PeerId, data: Vec<u8>) {
        match self.p.witness.try_offer(data) {
            Err(acceptance) => self.judge(&message_id, &peer, verdict(acceptance)),
            Ok(pending) => self.list_verdicts.push(Box::pin(async move {
                // A worker that went away (shutdown) judged nothing.
                let acceptance = pending.await.unwrap_or(Acceptance::Ignore);
                (message_id, peer, verdict(acceptance))
            })),
        }
    }
}
