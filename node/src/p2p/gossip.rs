//! Gossip on the swarm task: routing received messages (lists to the
//! membership owner, events to the ingest pipeline, audit checkpoints to the
//! witness through [`checkpoints`](super::checkpoints)), the verdicts that tell
//! gossipsub whether to forward and whom to penalise, this node's own events
//! in the order the store numbered them, and the subscriptions a peer may
//! have.

use std::collections::HashSet;

use handbereik_keys::Purpose;
use libp2p::PeerId;
use libp2p::gossipsub::{self, MessageAcceptance, MessageId};

use super::Ticket;
use super::behaviour::{self, TopicKind, parse_topic, topic_score_params};
use super::driver::Driver;
use crate::membership::{Offered, Origin};
use crate::notify::event::Rejection;
use crate::notify::ingest::{Item, Report};
use crate::store::{Outcome, Published};
use crate::types::StreamId;

impl Driver {
    /// Tells gossipsub whether to forward (and whether to penalise) a message.
    pub(super) fn judge(&mut self, id: &MessageId, peer: &PeerId, acceptance: MessageAcceptance) {
        self.p
            .swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, peer, acceptance);
    }

    pub(super) fn subscribe_governance(&mut self) {
        let topic = behaviour::governance_topic(&self.p.network);
        let gossip = &mut self.p.swarm.behaviour_mut().gossipsub;
        if let Err(e) = gossip.set_topic_params(topic.clone(), topic_score_params()) {
            tracing::warn!(error = %e, "cannot score the governance topic");
        }
        if let Err(e) = gossip.subscribe(&topic) {
            tracing::error!(error = %e, "cannot subscribe to the governance topic");
        }
    }

    /// Subscribes to the purposes this node is admitted for, and only those.
    pub(super) fn update_subscriptions(&mut self, purposes: HashSet<Purpose>) {
        let gossip = &mut self.p.swarm.behaviour_mut().gossipsub;
        for purpose in purposes.difference(&self.subscribed) {
            let topic = behaviour::purpose_topic(&self.p.network, purpose);
            if let Err(e) = gossip.set_topic_params(topic.clone(), topic_score_params()) {
                tracing::warn!(%purpose, error = %e, "cannot score the topic");
            }
            if let Err(e) = gossip.subscribe(&topic) {
                tracing::warn!(%purpose, error = %e, "cannot subscribe");
            }
        }
        for purpose in self.subscribed.difference(&purposes) {
            gossip.unsubscribe(&behaviour::purpose_topic(&self.p.network, purpose));
        }
        self.subscribed = purposes;
    }

    /// Gossips the list held once when it is newer than the last one this
    /// node gossiped, so a new list reaches the whole network in seconds.
    pub(super) fn regossip_list(&mut self) {
        let Some(list) = self.view.list() else { return };
        if list.list.version <= self.gossiped_list_version {
            return;
        }
        self.gossiped_list_version = list.list.version;
        let topic = behaviour::governance_topic(&self.p.network);
        // Fails harmlessly when the list came by gossip (already seen) or
        // no peer is connected yet (sync brings it to them).
        let _ = self
            .p
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic, list.signed_bytes.clone());
    }

    /// Gossips one of this node's own events, in the order the store numbered them.
    pub(super) fn gossip_own(&mut self, own: Published) {
        self.gossip_raw(own.stream.purpose, own.bytes);
    }

    pub(super) fn gossip_raw(&mut self, purpose: Purpose, bytes: Vec<u8>) {
        let topic = behaviour::purpose_topic(&self.p.network, &purpose);
        match self.p.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
            Ok(_) | Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {}
            Err(e) => {
                tracing::debug!(%purpose, error = %e, "gossip publish (sync will deliver)")
            }
        }
    }

    pub(super) fn on_report(&mut self, report: Report<Ticket>) {
        if let Ok((
            checked,
            Outcome::Stored {
                gap: Some((from, to)),
            },
        )) = &report.result
        {
            let stream = StreamId::new(checked.source.clone(), checked.purpose.clone());
            // Ask the peer that sent it; a sync page carries no peer, so any.
            let peer = match &report.ticket {
                Ticket::Gossip { peer, .. } => Some(*peer),
                Ticket::Sync => self.peers.connected().next().map(|(p, _)| *p),
            };
            if let Some(peer) = peer {
                self.fetch(stream, *from, *to, peer);
            }
        }
        // A gossip message was judged on its check's verdict already.
        if matches!(report.ticket, Ticket::Sync) && report.result.is_ok() {
            self.p.metrics.fetched_by_sync.inc();
        }
    }

    /// Tells gossipsub what the check said of a message: forward it at once
    /// (its node stores it alongside), ignore it, or penalise its sender.
    pub(super) fn on_verdict(&mut self, ticket: Ticket, verdict: Result<(), Rejection>) {
        let Ticket::Gossip { message_id, peer } = ticket else {
            return;
        };
        let acceptance = match verdict {
            Ok(()) => MessageAcceptance::Accept,
            Err(Rejection::Duplicate | Rejection::ListExpired) => MessageAcceptance::Ignore,
            Err(_) => MessageAcceptance::Reject,
        };
        self.judge(&message_id, &peer, acceptance);
    }

    pub(super) fn on_gossip(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => match parse_topic(&self.p.network, &message.topic) {
                Some(TopicKind::Governance) => {
                    // Into the owner's bounded queue: no task per message, and a
                    // full queue lets the message go without penalty.
                    let Some(verdict) = self.p.membership.try_offer(message.data, Origin::Gossip)
                    else {
                        self.judge(&message_id, &propagation_source, MessageAcceptance::Ignore);
                        return;
                    };
                    self.list_verdicts.push(Box::pin(async move {
                        let acceptance = match verdict.await {
                            Ok(Offered::Installed(_)) => MessageAcceptance::Accept,
                            Ok(Offered::Refused(reason, _)) if reason.is_forgery() => {
                                MessageAcceptance::Reject
                            }
                            _ => MessageAcceptance::Ignore,
                        };
                        (message_id, propagation_source, acceptance)
                    }));
                }
                Some(TopicKind::Audit) => {
                    self.on_checkpoint(message_id, propagation_source, message.data);
                }
                Some(TopicKind::Purpose(purpose)) => {
                    let item = Item {
                        bytes: message.data,
                        topic_purpose: Some(purpose),
                        early_verdict: true,
                        ticket: Ticket::Gossip {
                            message_id,
                            peer: propagation_source,
                        },
                    };
                    if let Err(item) = self.p.ingest.try_submit(item) {
                        // Full: let it go without penalty; sync brings it.
                        if let Ticket::Gossip { message_id, peer } = item.ticket {
                            self.judge(&message_id, &peer, MessageAcceptance::Ignore);
                        }
                    }
                }
                None => {
                    self.p.metrics.rejected(Rejection::WrongPurpose);
                    self.judge(&message_id, &propagation_source, MessageAcceptance::Reject);
                }
            },
            gossipsub::Event::Subscribed { peer_id, topic } => {
                let kind = parse_topic(&self.p.network, &topic);
                if kind == Some(TopicKind::Audit) {
                    // Someone to give a pending own checkpoint to.
                    self.publish_checkpoint();
                    return;
                }
                let Some(TopicKind::Purpose(purpose)) = kind else {
                    return;
                };
                let member = self.peers.member(&peer_id).cloned();
                let admitted = member
                    .as_ref()
                    .and_then(|m| self.view.member(m))
                    .is_some_and(|m| m.has_purpose(&purpose));
                if !admitted {
                    let member = member.map(|m| m.to_string()).unwrap_or_default();
                    tracing::warn!(
                        security = true,
                        %member,
                        peer = %peer_id,
                        %purpose,
                        "peer subscribed to a purpose it is not admitted for: cut off"
                    );
                    self.p.metrics.security_events.inc();
                    self.cut_off.insert(peer_id);
                    self.peers.cut_off(peer_id, std::time::Instant::now());
                    self.p
                        .swarm
                        .behaviour_mut()
                        .gossipsub
                        .blacklist_peer(&peer_id);
                    let _ = self.p.swarm.disconnect_peer_id(peer_id);
                }
            }
            _ => {}
        }
    }
}
