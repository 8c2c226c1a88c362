//! The sync client on the swarm task: a cursor per peer into that peer's
//! change log, a few peers asked per round, fetch chains for what is
//! missing, and the member list when a peer holds a newer one.
//!
//! Each round (every `p2p.sync_interval_secs`) asks [`FANOUT`] connected
//! peers, in turn, what changed since its cursor with them; a new connection
//! is asked at once. The comparison with this node's marks runs in the sync
//! worker; fetched pages go to the ingest pipeline in order.
//!
//! Flow control: the next page of a chain is asked only once the page before
//! it was handed to the ingest pipeline. When the pipeline's queue is full a
//! page waits in a short queue here ([`MAX_PARKED`]) and goes in as soon as
//! there is room. A chain that ends short of its target (that queue full, a
//! page refused, busy or failed, no progress) rewinds this node's cursor with
//! the peer and asks it again in the next round, from the start of its log:
//! the cursor had already moved past the change that named the stream.

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

/// Fetched pages that wait for room in the ingest pipeline's queue.
pub const MAX_PARKED: usize = 8;

/// A fetched page waiting for room in the ingest pipeline's queue, with the
/// page request that continues its chain.
pub struct Parked {
    /// The peer that sent it.
    peer: PeerId,
    stream: StreamId,
    events: Vec<serde_bytes::ByteBuf>,
    next: Option<PageRequest>,
}

/// The ingest pipeline's page queue: what a page is sent as.
pub type Page = (handbereik_keys::Purpose, Vec<serde_bytes::ByteBuf>);

/// Where this node stands in each peer's change log.
#[derive(Debug, Default)]
pub struct Cursors {
    at: HashMap<PeerId, (u64, u64)>,
    /// Requests for changes in flight, to the peer asked.
    asking: HashMap<OutboundRequestId, PeerId>,
    /// Rotates which peers are asked each round.
    turn: usize,
    /// Peers whose cursor was rewound: asked in the next round.
    due: HashSet<PeerId>,
    /// Asks in flight when their peer's cursor was rewound: their answers
    /// must not set the cursor again (they start after the change that
    /// needs asking again).
    stale: HashSet<OutboundRequestId>,
}

impl Cursors {
    /// Starts over with `peer`: its next answer names every stream it
    /// holds, and it is asked in the next round.
    pub fn rewind(&mut self, peer: PeerId) {
        self.at.remove(&peer);
        self.due.insert(peer);
        for (id, asked) in &self.asking {
            if *asked == peer {
                self.stale.insert(*id);
            }
        }
    }

    /// The answer to `id` came or failed: whether it may set the cursor.
    fn settle(&mut self, id: OutboundRequestId) -> bool {
        self.asking.remove(&id);
        !self.stale.remove(&id)
    }

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
        for peer in std::mem::take(&mut self.cursors.due) {
            if connected.binary_search(&peer).is_ok() {
                self.ask_changes(peer);
            }
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
        for peer in self.chains.expire() {
            self.cursors.rewind(peer);
        }
    }

    /// A chain ended short of its target at `peer`: ask it again from the start.
    fn chain_ended(&mut self, peer: Option<PeerId>) {
        if let Some(peer) = peer {
            self.cursors.rewind(peer);
        }
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
                self.cursors.settle(request_id);
                let ended = self.chains.failed(request_id);
                self.chain_ended(ended);
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
                let fresh = self.cursors.settle(request_id);
                if list_version > self.view.version() {
                    self.p
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_request(&peer, SyncRequest::MemberList);
                }
                if fresh {
                    self.cursors.at.insert(peer, (epoch, next));
                } else {
                    // Rewound while this was asked: ask again from the start.
                    self.cursors.due.insert(peer);
                }
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
                self.take_page(Parked {
                    peer,
                    stream,
                    events,
                    next,
                });
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
                self.cursors.settle(request_id);
                let ended = self.chains.failed(request_id);
                self.chain_ended(ended);
                tracing::debug!(%peer, %reason, "sync request refused");
            }
            SyncResponse::Busy { retry_after_ms } => {
                self.cursors.settle(request_id);
                let ended = self.chains.failed(request_id);
                self.chain_ended(ended);
                tracing::debug!(%peer, retry_after_ms, "sync peer busy");
            }
        }
    }

    /// Hands a fetched page to the ingest pipeline and asks the chain's next
    /// page; parks it when the pipeline's queue is full (behind any page
    /// parked already, so pages go in in the order they came).
    fn take_page(&mut self, page: Parked) {
        use tokio::sync::mpsc::error::TrySendError;
        if !self.parked.is_empty() {
            self.park(page);
            return;
        }
        let Parked {
            peer,
            stream,
            events,
            next,
        } = page;
        match self.p.pages.try_send((stream.purpose.clone(), events)) {
            Ok(()) => {
                if let Some(next) = next {
                    self.request_page(next);
                }
            }
            Err(TrySendError::Full((_, events))) => self.park(Parked {
                peer,
                stream,
                events,
                next,
            }),
            // The pipeline is gone: the node is stopping.
            Err(TrySendError::Closed(_)) => {}
        }
    }

    fn park(&mut self, page: Parked) {
        if self.parked.len() < MAX_PARKED {
            self.parked.push_back(page);
        } else {
            // Too much waiting already: drop the page and end its chain; the
            // peer that sent it is asked again next round (whether or not
            // this was the chain's last page).
            self.chains.abandon(&page.stream);
            self.cursors.rewind(page.peer);
        }
    }

    /// Room in the pipeline's queue: the oldest parked page goes in, and its
    /// chain asks its next page.
    pub(super) fn unpark(&mut self, permit: tokio::sync::mpsc::Permit<'_, Page>) {
        let Some(page) = self.parked.pop_front() else {
            return;
        };
        permit.send((page.stream.purpose.clone(), page.events));
        if let Some(next) = page.next {
            self.request_page(next);
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
