//! The sync client on the swarm task: a cursor per peer into that peer's
//! change log, a few peers asked per round, fetch chains for what is
//! missing, and the member list when a peer holds a newer one.
//!
//! Each round (every `p2p.sync_interval_secs`) asks [`FANOUT`] connected
//! peers, in turn, what changed since its cursor with them; a new connection
//! is asked at once. The comparison with this node's marks runs in the sync
//! worker; fetched pages go to the ingest pipeline in order.

use std::collections::{HashMap, HashSet};

use libp2p::PeerId;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};

use super::driver::Driver;
use super::sync::chains::PageRequest;
use super::sync::server::{Done, Job};
use super::sync::{SyncRequest, SyncResponse};
use crate::types::StreamId;

/// Peers asked per sync round.
pub const FANOUT: usize = 3;

/// Where this node stands in each peer's change log.
#[derive(Debug, Default)]
pub struct Cursors {
    at: HashMap<PeerId, (u64, u64)>,
    /// Requests for changes in flight, to the peer asked.
    asking: HashMap<OutboundRequestId, PeerId>,
    /// Rotates which peers are asked each round.
    turn: usize,
}

impl Cursors {
    /// Forgets peers not connected when more than `keep` are remembered.
    pub fn forget_all_but(&mut self, connected: &HashSet<PeerId>, keep: usize) {
        if self.at.len() > keep {
            self.at.retain(|p, _| connected.contains(p));
        }
    }
}

impl Driver {
    /// One round: ask the next few connected peers what changed.
    pub(super) fn sync_round(&mut self) {
        let mut connected: Vec<PeerId> = self.peers.connected().map(|(p, _)| *p).collect();
        connected.sort();
        if connected.is_empty() {
            return;
        }
        let start = self.cursors.turn % connected.len();
        self.cursors.turn = self.cursors.turn.wrapping_add(FANOUT);
        for peer in connected
            .iter()
            .cycle()
            .skip(start)
            .take(FANOUT.min(connected.len()))
        {
            self.ask_changes(*peer);
        }
        self.chains.expire();
    }

    /// Asks `peer` what changed since this node's cursor with it.
    pub(super) fn ask_changes(&mut self, peer: PeerId) {
        if self.cursors.asking.values().any(|p| *p == peer) {
            return;
        }
        let (epoch, since) = self.cursors.at.get(&peer).copied().unwrap_or((0, 0));
        let id = self.p.swarm.behaviour_mut().sync.send_request(
            &peer,
            SyncRequest::Changes {
                epoch,
                since,
                list_version: self.view.version(),
            },
        );
        self.cursors.asking.insert(id, peer);
    }

    pub(super) fn on_sync(&mut self, event: request_response::Event<SyncRequest, SyncResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.on_sync_request(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => self.on_sync_response(peer, request_id, response),
            },
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                self.cursors.asking.remove(&request_id);
                self.chains.failed(request_id);
                tracing::debug!(%error, "sync request failed");
            }
            _ => {}
        }
    }

    fn on_sync_request(
        &mut self,
        peer: PeerId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) {
        let Some(member) = self.peers.member(&peer).cloned() else {
            self.respond(
                channel,
                SyncResponse::Refused {
                    reason: "not a member".into(),
                },
            );
            return;
        };
        let job = Job::Answer {
            member,
            request,
            channel,
        };
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(Job::Answer { channel, .. })) =
            self.p.sync_jobs.try_send(job)
        {
            // The worker is behind: the asker tries again later.
            self.respond(
                channel,
                SyncResponse::Busy {
                    retry_after_ms: 1000,
                },
            );
        }
    }

    fn respond(&mut self, channel: ResponseChannel<SyncResponse>, response: SyncResponse) {
        let _ = self
            .p
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response);
    }

    fn on_sync_response(
        &mut self,
        peer: PeerId,
        request_id: OutboundRequestId,
        response: SyncResponse,
    ) {
        match response {
            SyncResponse::Changes {
                epoch,
                marks,
                next,
                more,
                list_version,
            } => {
                self.cursors.asking.remove(&request_id);
                if list_version > self.view.version() {
                    self.p
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_request(&peer, SyncRequest::MemberList);
                }
                self.cursors.at.insert(peer, (epoch, next));
                if !marks.is_empty() {
                    // Compared with this node's marks in the worker; full: the
                    // next round asks again (the cursor is kept only if so).
                    if self
                        .p
                        .sync_jobs
                        .try_send(Job::Compare { peer, marks })
                        .is_err()
                    {
                        self.cursors.at.remove(&peer);
                        return;
                    }
                }
                if more {
                    self.ask_changes(peer);
                }
            }
            SyncResponse::Events { events } => {
                let Some((stream, next)) = self.chains.arrived(request_id, events.len() as u64)
                else {
                    return;
                };
                if events.is_empty() {
                    return;
                }
                if self
                    .p
                    .pages
                    .try_send((stream.purpose.clone(), events))
                    .is_err()
                {
                    // The pipeline is behind: stop here; a later round resumes.
                    self.chains.abandon(&stream);
                    return;
                }
                if let Some(page) = next {
                    self.request_page(page);
                }
            }
            SyncResponse::MemberList { bytes } => {
                if !bytes.is_empty() {
                    // The owner logs a refusal; a full queue drops the offer.
                    let _ = self
                        .p
                        .membership
                        .try_offer(bytes.into_vec(), crate::membership::Origin::Sync);
                }
            }
            SyncResponse::Refused { reason } => {
                self.cursors.asking.remove(&request_id);
                self.chains.failed(request_id);
                tracing::debug!(%peer, %reason, "sync request refused");
            }
            SyncResponse::Busy { retry_after_ms } => {
                self.cursors.asking.remove(&request_id);
                self.chains.failed(request_id);
                tracing::debug!(%peer, retry_after_ms, "sync peer busy");
            }
        }
    }

    /// What the sync worker finished.
    pub(super) fn on_sync_done(&mut self, done: Done) {
        match done {
            Done::Answer(channel, response) => self.respond(channel, response),
            Done::Fetch(peer, ranges) => {
                for (stream, from, to) in ranges {
                    self.fetch(stream, from, to, peer);
                }
            }
        }
    }

    pub(super) fn fetch(&mut self, stream: StreamId, from: u64, to: u64, peer: PeerId) {
        if let Some(page) = self.chains.want(stream, from, to, peer) {
            self.request_page(page);
        }
    }

    fn request_page(&mut self, (stream, peer, from, to): PageRequest) {
        let request = SyncRequest::Fetch {
            source: stream.source.to_string(),
            purpose: stream.purpose.to_string(),
            from,
            to,
        };
        let id = self
            .p
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, request);
        self.chains.sent(id, stream);
    }
}
