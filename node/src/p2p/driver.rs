//! The swarm task: one `select!` loop over swarm events, commands from the
//! node, reports from the ingest pipeline, member list changes and timers.
//!
//! Nothing here blocks: signature checks run in `notify::ingest`, member list
//! verification in spawned tasks, and the store's reads are short range scans.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use handbereik_keys::{MemberId, Purpose, time};
use libp2p::gossipsub::{self, MessageAcceptance, MessageId};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::behaviour::{self, Behaviour, BehaviourEvent, TopicKind, parse_topic};
use super::fetch::Chains;
use super::sync::{self, SyncRequest, SyncResponse};
use super::{Command, Ticket, peer_id_of};
use crate::membership::{Membership, MembershipView, Offered, Origin};
use crate::metrics::Metrics;
use crate::notify::event::Rejection;
use crate::notify::ingest::{IngestHandle, Item, Report};
use crate::store::{Outcome, Published, Store};
use crate::supervisor::{Group, Supervisor};
use crate::types::StreamId as Stream;

/// The longest wait between two dials of an unreachable member.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The first wait after a failed dial.
const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// Pages of fetched events waiting to be handed to the ingest pipeline.
const PAGE_QUEUE: usize = 64;

pub(super) struct Parts {
    pub swarm: Swarm<Behaviour>,
    pub network: String,
    pub own: MemberId,
    pub membership: Membership,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub ingest: IngestHandle<Ticket>,
    pub listen: watch::Sender<Vec<Multiaddr>>,
    pub sync_interval: Duration,
    pub published: mpsc::Receiver<Published>,
    pub supervisor: Supervisor,
}

/// A gossip validation result decided outside the swarm task.
type Verdict = (MessageId, PeerId, MessageAcceptance);

struct Backoff {
    next: Instant,
    delay: Duration,
}

pub(super) struct Driver {
    p: Parts,
    view: Arc<MembershipView>,
    /// Current members' PeerIds (this node excluded).
    members: HashMap<PeerId, MemberId>,
    /// Members connected now.
    connected: HashMap<PeerId, MemberId>,
    dial: HashMap<PeerId, Backoff>,
    subscribed: HashSet<Purpose>,
    /// Catch-up fetches in progress.
    chains: Chains,
    /// Fetched pages, handed to the ingest pipeline in order by one task.
    pages: mpsc::Sender<(Purpose, Vec<serde_bytes::ByteBuf>)>,
    /// Peers cut off from gossip under the current list.
    cut_off: HashSet<PeerId>,
    gossiped_list_version: u64,
    /// Verdicts on member lists that came by gossip, as the owner gives them.
    list_verdicts: futures::stream::FuturesUnordered<futures::future::BoxFuture<'static, Verdict>>,
}

impl Driver {
    pub(super) fn new(parts: Parts) -> Self {
        let pages = spawn_page_feeder(&parts.supervisor, parts.ingest.clone());
        Driver {
            view: parts.membership.view(),
            p: parts,
            members: HashMap::new(),
            connected: HashMap::new(),
            dial: HashMap::new(),
            subscribed: HashSet::new(),
            chains: Chains::default(),
            pages,
            cut_off: HashSet::new(),
            gossiped_list_version: 0,
            list_verdicts: futures::stream::FuturesUnordered::new(),
        }
    }

    pub(super) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut reports: mpsc::Receiver<Report<Ticket>>,
        shutdown: CancellationToken,
    ) -> Result<(), crate::error::Error> {
        let governance = behaviour::governance_topic(&self.p.network);
        if let Err(e) = self
            .p
            .swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&governance)
        {
            tracing::error!(error = %e, "cannot subscribe to the governance topic");
        }
        let mut views = self.p.membership.subscribe();
        let view = self.p.membership.view();
        self.apply_view(view);
        let mut sync_tick = tokio::time::interval(self.p.sync_interval);
        let mut dial_tick = tokio::time::interval(Duration::from_millis(250));
        let mut gauge_tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                event = self.p.swarm.select_next_some() => self.on_swarm_event(event),
                Some(command) = commands.recv() => self.on_command(command),
                Some(report) = reports.recv() => self.on_report(report),
                Some((id, peer, acceptance)) = self.list_verdicts.next(), if !self.list_verdicts.is_empty() => {
                    self.judge(&id, &peer, acceptance);
                }
                Some(own) = self.p.published.recv() => self.gossip_own(own),
                Ok(()) = views.changed() => {
                    let view = views.borrow_and_update().clone();
                    self.apply_view(view);
                }
                _ = sync_tick.tick() => self.exchange_marks_with_all(),
                _ = dial_tick.tick() => self.dial_due(),
                _ = gauge_tick.tick() => self.update_gauges(),
            }
        }
        // Close every connection politely; the swarm is dropped with this task.
        let peers: Vec<PeerId> = self.connected.keys().copied().collect();
        for peer in peers {
            let _ = self.p.swarm.disconnect_peer_id(peer);
        }
        Ok(())
    }

    /// Gossips one of this node's own events, in the order the store numbered them.
    fn gossip_own(&mut self, own: Published) {
        let topic = behaviour::purpose_topic(&self.p.network, &own.stream.purpose);
        match self
            .p
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic, own.bytes)
        {
            Ok(_) | Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {}
            Err(e) => {
                tracing::debug!(stream = %own.stream, error = %e, "gossip publish (sync will deliver)")
            }
        }
    }

    /// Tells gossipsub whether to forward (and whether to penalise) a message.
    fn judge(&mut self, id: &MessageId, peer: &PeerId, acceptance: MessageAcceptance) {
        self.p
            .swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, peer, acceptance);
    }

    fn update_gauges(&self) {
        let now = time::now();
        let to_expiry = self.view.list().map_or(0, |l| {
            saturating_i64(l.list.expires_at).saturating_sub(saturating_i64(now))
        });
        self.p.metrics.member_list_seconds_to_expiry.set(to_expiry);
        self.p
            .metrics
            .peers_connected
            .set(saturating_i64(self.connected.len() as u64));
    }

    /// Installs a new member list: allow list, dials, subscriptions, re-gossip.
    fn apply_view(&mut self, view: Arc<MembershipView>) {
        let now = time::now();
        let mut next: HashMap<PeerId, MemberId> = HashMap::new();
        for member in view.members() {
            let valid = now >= member.valid_from && member.valid_until.is_none_or(|u| now < u);
            if member.member_id == self.p.own || !valid {
                continue;
            }
            if let Some(peer) = peer_id_of(&member.node_key) {
                next.insert(peer, member.member_id.clone());
            }
        }
        let behaviour = self.p.swarm.behaviour_mut();
        for (peer, member) in &self.members {
            if !next.contains_key(peer) {
                // Closes its connections at once (allow_block_list).
                behaviour.allow.disallow_peer(*peer);
                behaviour.gossipsub.blacklist_peer(peer);
                self.dial.remove(peer);
                tracing::info!(%member, %peer, "member removed from the list: connections closed");
            }
        }
        for peer in next.keys() {
            if !self.members.contains_key(peer) {
                behaviour.gossipsub.remove_blacklisted_peer(peer);
                behaviour.allow.allow_peer(*peer);
                self.dial.insert(
                    *peer,
                    Backoff {
                        next: Instant::now(),
                        delay: MIN_BACKOFF,
                    },
                );
            }
        }
        self.members = next;
        for peer in std::mem::take(&mut self.cut_off) {
            behaviour.gossipsub.remove_blacklisted_peer(&peer);
        }

        let purposes: HashSet<Purpose> = view
            .member(&self.p.own)
            .map(|m| m.purposes.iter().cloned().collect())
            .unwrap_or_default();
        for purpose in purposes.difference(&self.subscribed) {
            if let Err(e) = behaviour
                .gossipsub
                .subscribe(&behaviour::purpose_topic(&self.p.network, purpose))
            {
                tracing::warn!(%purpose, error = %e, "cannot subscribe");
            }
        }
        for purpose in self.subscribed.difference(&purposes) {
            behaviour
                .gossipsub
                .unsubscribe(&behaviour::purpose_topic(&self.p.network, purpose));
        }
        self.subscribed = purposes;

        if let Some(list) = view.list()
            && list.list.version > self.gossiped_list_version
        {
            self.gossiped_list_version = list.list.version;
            let topic = behaviour::governance_topic(&self.p.network);
            // Fails harmlessly when the list came by gossip (already seen) or
            // no peer is connected yet (sync brings it to them).
            let _ = behaviour
                .gossipsub
                .publish(topic, list.signed_bytes.clone());
        }
        self.p
            .metrics
            .member_list_version
            .set(saturating_i64(view.version()));
        self.view = view;
        self.update_gauges();
    }

    fn dial_due(&mut self) {
        let now = Instant::now();
        let due: Vec<(PeerId, MemberId)> = self
            .members
            .iter()
            .filter(|(peer, _)| !self.connected.contains_key(peer) && !self.cut_off.contains(peer))
            .filter(|(peer, _)| self.dial.get(peer).is_none_or(|b| b.next <= now))
            .map(|(p, m)| (*p, m.clone()))
            .collect();
        for (peer, member) in due {
            let addresses: Vec<Multiaddr> = self
                .view
                .member(&member)
                .map(|m| {
                    m.p2p_addresses
                        .iter()
                        .filter_map(|a| a.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            let backoff = self.dial.entry(peer).or_insert(Backoff {
                next: now,
                delay: MIN_BACKOFF,
            });
            backoff.next = now + backoff.delay;
            backoff.delay = (backoff.delay * 2).min(MAX_BACKOFF);
            if addresses.is_empty() {
                continue;
            }
            let opts = DialOpts::peer_id(peer)
                .addresses(addresses)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.p.swarm.dial(opts) {
                tracing::debug!(%member, error = %e, "dial");
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { purpose, bytes } => {
                let topic = behaviour::purpose_topic(&self.p.network, &purpose);
                match self.p.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
                    Ok(_) | Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {}
                    Err(e) => {
                        tracing::debug!(%purpose, error = %e, "gossip publish (sync will deliver)")
                    }
                }
            }
            Command::Peers { reply } => {
                let _ = reply.send(
                    self.connected
                        .iter()
                        .map(|(p, m)| (*p, m.clone()))
                        .collect(),
                );
            }
        }
    }

    fn on_report(&mut self, report: Report<Ticket>) {
        if let Ok((
            checked,
            Outcome::Stored {
                gap: Some((from, to)),
            },
        )) = &report.result
        {
            let stream = Stream {
                source: checked.source.clone(),
                purpose: checked.purpose.clone(),
            };
            // Ask the peer that sent it; a sync page carries no peer, so any.
            let peer = match &report.ticket {
                Ticket::Gossip { peer, .. } => Some(*peer),
                Ticket::Sync => self.connected.keys().next().copied(),
            };
            if let Some(peer) = peer {
                self.fetch(stream, *from, *to, peer);
            }
        }
        match report.ticket {
            Ticket::Gossip { message_id, peer } => {
                let acceptance = match &report.result {
                    Ok(_) => MessageAcceptance::Accept,
                    Err(Rejection::Duplicate | Rejection::ListExpired) => MessageAcceptance::Ignore,
                    Err(_) => MessageAcceptance::Reject,
                };
                self.judge(&message_id, &peer, acceptance);
            }
            Ticket::Sync => {
                if report.result.is_ok() {
                    self.p.metrics.fetched_by_sync.inc();
                }
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "p2p listening");
                self.p.listen.send_modify(|a| a.push(address));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } => {
                let Some(member) = self.members.get(&peer_id).cloned() else {
                    // The allow list should have refused it; refuse it here too.
                    let _ = self.p.swarm.disconnect_peer_id(peer_id);
                    return;
                };
                if let Some(b) = self.dial.get_mut(&peer_id) {
                    b.delay = MIN_BACKOFF;
                }
                self.connected.insert(peer_id, member.clone());
                self.update_gauges();
                if num_established.get() == 1 {
                    tracing::info!(%member, peer = %peer_id, "member connected");
                    self.send_marks(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                if let Some(member) = self.connected.remove(&peer_id) {
                    tracing::info!(%member, peer = %peer_id, "member disconnected");
                }
                if let Some(b) = self.dial.get_mut(&peer_id) {
                    b.next = Instant::now() + b.delay;
                }
                self.update_gauges();
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossip(event),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync(event),
            _ => {}
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
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
                Some(TopicKind::Purpose(purpose)) => {
                    let item = Item {
                        bytes: message.data,
                        topic_purpose: Some(purpose),
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
                let Some(TopicKind::Purpose(purpose)) = parse_topic(&self.p.network, &topic) else {
                    return;
                };
                let admitted = self
                    .members
                    .get(&peer_id)
                    .and_then(|m| self.view.member(m))
                    .is_some_and(|m| m.has_purpose(&purpose));
                if !admitted {
                    let member = self
                        .members
                        .get(&peer_id)
                        .map(|m| m.to_string())
                        .unwrap_or_default();
                    tracing::warn!(
                        security = true,
                        %member,
                        peer = %peer_id,
                        %purpose,
                        "peer subscribed to a purpose it is not admitted for: cut off"
                    );
                    self.p.metrics.security_events.inc();
                    self.cut_off.insert(peer_id);
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

    fn send_marks(&mut self, peer: PeerId) {
        let asker = self.connected.get(&peer).cloned();
        let marks = match sync::marks_for(&self.p.store, &self.view, asker.as_ref()) {
            Ok(marks) => marks,
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "cannot read the marks to exchange");
                return;
            }
        };
        let request = SyncRequest::Marks {
            marks,
            list_version: self.view.version(),
        };
        self.p
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, request);
    }

    fn exchange_marks_with_all(&mut self) {
        let peers: Vec<PeerId> = self.connected.keys().copied().collect();
        for peer in peers {
            self.send_marks(peer);
        }
        self.chains.expire();
    }

    /// Compares a peer's marks with ours and fetches what we miss.
    fn on_marks(&mut self, peer: PeerId, marks: &[sync::Mark], list_version: u64) {
        if list_version > self.view.version() {
            self.p
                .swarm
                .behaviour_mut()
                .sync
                .send_request(&peer, SyncRequest::MemberList);
        }
        let Ok(ours) = self.p.store.marks() else {
            return;
        };
        let own = self.view.member(&self.p.own).cloned();
        let may_hold = |p: &Purpose| own.as_ref().is_some_and(|m| m.has_purpose(p));
        for (stream, from, to) in sync::behind(&ours, marks, may_hold) {
            self.fetch(stream, from, to, peer);
        }
    }

    fn fetch(&mut self, stream: Stream, from: u64, to: u64, peer: PeerId) {
        if let Some(page) = self.chains.want(stream, from, to, peer) {
            self.request_page(page);
        }
    }

    fn request_page(&mut self, (stream, peer, from, to): super::fetch::PageRequest) {
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

    fn on_sync(&mut self, event: request_response::Event<SyncRequest, SyncResponse>) {
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
        let Some(asker) = self.connected.get(&peer).cloned() else {
            let _ = self.p.swarm.behaviour_mut().sync.send_response(
                channel,
                SyncResponse::Refused {
                    reason: "not a member".into(),
                },
            );
            return;
        };
        let response = match request {
            SyncRequest::Marks {
                marks,
                list_version,
            } => {
                let answer = match sync::marks_for(&self.p.store, &self.view, Some(&asker)) {
                    Ok(marks) => SyncResponse::Marks {
                        marks,
                        list_version: self.view.version(),
                    },
                    Err(e) => SyncResponse::Refused {
                        reason: format!("the store cannot be read: {e}"),
                    },
                };
                if marks.len() <= sync::MAX_MARKS {
                    self.on_marks(peer, &marks, list_version);
                }
                answer
            }
            SyncRequest::Fetch {
                source,
                purpose,
                from,
                to,
            } => sync::answer_fetch(
                &self.p.store,
                &self.view,
                &asker,
                &source,
                &purpose,
                from,
                to,
            ),
            SyncRequest::MemberList => SyncResponse::MemberList {
                bytes: serde_bytes::ByteBuf::from(
                    self.view
                        .list()
                        .map(|l| l.signed_bytes.clone())
                        .unwrap_or_default(),
                ),
            },
        };
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
            SyncResponse::Marks {
                marks,
                list_version,
            } => {
                if marks.len() <= sync::MAX_MARKS {
                    self.on_marks(peer, &marks, list_version);
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
                    .pages
                    .try_send((stream.purpose.clone(), events))
                    .is_err()
                {
                    // The pipeline is behind: stop here; the next marks exchange resumes.
                    self.chains.abandon(&stream);
                    return;
                }
                if let Some(page) = next {
                    self.request_page(page);
                }
            }
            SyncResponse::MemberList { bytes } => {
                if bytes.is_empty() {
                    return;
                }
                // The owner logs a refusal; a full queue drops the offer.
                let _ = self.p.membership.try_offer(bytes.into_vec(), Origin::Sync);
            }
            SyncResponse::Refused { reason } => {
                self.chains.failed(request_id);
                tracing::debug!(%peer, %reason, "sync request refused");
            }
        }
    }
}

/// Starts the task that hands fetched pages to the ingest pipeline, one page
/// after another, so events of a stream go in in sequence order.
fn spawn_page_feeder(
    supervisor: &Supervisor,
    ingest: IngestHandle<Ticket>,
) -> mpsc::Sender<(Purpose, Vec<serde_bytes::ByteBuf>)> {
    let (tx, mut rx) = mpsc::channel::<(Purpose, Vec<serde_bytes::ByteBuf>)>(PAGE_QUEUE);
    supervisor.spawn_critical(Group::Workers, "sync page feeder", async move {
        while let Some((purpose, events)) = rx.recv().await {
            for bytes in events {
                let item = Item {
                    bytes: bytes.into_vec(),
                    topic_purpose: Some(purpose.clone()),
                    ticket: Ticket::Sync,
                };
                if !ingest.submit(item).await {
                    return Ok::<(), crate::error::Error>(());
                }
            }
        }
        Ok(())
    });
    tx
}

/// A gauge value: numbers from a signed list may be as large as u64 allows.
fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
