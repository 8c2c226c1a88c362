//! The swarm task: one `select!` loop over swarm events, commands from the
//! node, reports from the ingest pipeline, sync work done, member list
//! changes and timers.
//!
//! Nothing here blocks or grows with the list: signature checks run in
//! `notify::ingest`, list verification in the membership owner, ranking the
//! members of a new list on the blocking pool, sync answers and comparisons
//! in the sync worker; the timers touch only the chosen peers and the
//! connections open. Gossip handling is in [`gossip`](super::gossip), the
//! sync client side in [`client`](super::client), peer bookkeeping in
//! [`peers`](super::peers).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use handbereik_keys::{MemberId, Purpose, time};
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, ListenError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, allow_block_list, connection_limits, ping};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::behaviour::{Behaviour, BehaviourEvent};
use super::client::Cursors;
use super::peers::Peers;
use super::sync::chains::Chains;
use super::sync::server::{Done, Job};
use super::topology::{Bounds, Candidate, Ranking};
use super::{Command, Ticket, peer_id_of};
use crate::membership::MembershipView;
use crate::metrics::Metrics;
use crate::notify::ingest::{IngestHandle, Update};
use crate::store::Published;

/// How often due dials are looked at.
const DIAL_EVERY: Duration = Duration::from_millis(250);
/// How often slow housekeeping runs: expired replacements, stale fetches.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(30);
/// Refused connections are logged at most this often (with a count).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

pub(super) struct Parts {
    pub swarm: Swarm<Behaviour>,
    pub network: String,
    pub own: MemberId,
    pub own_key: [u8; 32],
    pub membership: crate::membership::Membership,
    pub metrics: Arc<Metrics>,
    pub ingest: IngestHandle<Ticket>,
    pub listen: watch::Sender<Vec<Multiaddr>>,
    pub sync_interval: Duration,
    pub published: mpsc::Receiver<Published>,
    pub bounds: Bounds,
    pub sync_jobs: mpsc::Sender<Job>,
    pub sync_done: mpsc::Receiver<Done>,
    pub pages: mpsc::Sender<super::client::Page>,
    /// Takes other members' audit checkpoints.
    pub witness: crate::audit::witness::Witness,
    /// This node's newest signed audit checkpoint, to gossip.
    pub own_checkpoints: watch::Receiver<Option<Vec<u8>>>,
}

/// A gossip validation result decided outside the swarm task.
pub(super) type Verdict = (MessageId, PeerId, MessageAcceptance);

/// A new list's members, ranked for this node, made off the swarm task.
struct Prepared {
    view: Arc<MembershipView>,
    members: HashMap<PeerId, MemberId>,
    ranking: Arc<Ranking>,
    own_purposes: Vec<Purpose>,
}

/// Counts of refused connections since the last log line.
#[derive(Default)]
struct Refusals {
    since_log: HashMap<&'static str, u64>,
    last_log: Option<Instant>,
}

pub(super) struct Driver {
    pub(super) p: Parts,
    pub(super) view: Arc<MembershipView>,
    pub(super) peers: Peers,
    pub(super) subscribed: HashSet<Purpose>,
    /// Peers cut off from gossip under the current list.
    pub(super) cut_off: HashSet<PeerId>,
    pub(super) gossiped_list_version: u64,
    /// This node's own audit checkpoint, until some peer is subscribed to
    /// the audit topic to take it.
    pub(super) checkpoint_pending: Option<Vec<u8>>,
    /// Verdicts decided outside the swarm task: on member lists that came by
    /// gossip, as the owner gives them, and on audit checkpoints, as the
    /// witness gives them.
    pub(super) list_verdicts: futures::stream::FuturesUnordered<BoxFuture<'static, Verdict>>,
    pub(super) chains: Chains,
    pub(super) cursors: Cursors,
    /// Fetched pages waiting for room in the ingest pipeline's queue.
    pub(super) parked: std::collections::VecDeque<super::client::Parked>,
    preparing: Option<BoxFuture<'static, Option<Prepared>>>,
    refusals: Refusals,
}

impl Driver {
    pub(super) fn new(parts: Parts) -> Self {
        let bounds = parts.bounds;
        Driver {
            view: parts.membership.view(),
            p: parts,
            peers: Peers::new(bounds),
            subscribed: HashSet::new(),
            cut_off: HashSet::new(),
            gossiped_list_version: 0,
            checkpoint_pending: None,
            list_verdicts: futures::stream::FuturesUnordered::new(),
            chains: Chains::default(),
            cursors: Cursors::default(),
            parked: std::collections::VecDeque::new(),
            preparing: None,
            refusals: Refusals::default(),
        }
    }

    pub(super) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut reports: mpsc::Receiver<Update<Ticket>>,
        stop: CancellationToken,
    ) -> Result<(), crate::error::Error> {
        self.subscribe_governance();
        self.subscribe_audit();
        let mut own_checkpoints = self.p.own_checkpoints.clone();
        self.checkpoint_pending = own_checkpoints.borrow_and_update().clone();
        let mut views = self.p.membership.subscribe();
        self.prepare(self.p.membership.view());
        let mut sync_tick = tokio::time::interval(self.p.sync_interval);
        let mut dial_tick = tokio::time::interval(DIAL_EVERY);
        let mut gauge_tick = tokio::time::interval(Duration::from_secs(1));
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING_EVERY);
        for tick in [
            &mut sync_tick,
            &mut dial_tick,
            &mut gauge_tick,
            &mut housekeeping,
        ] {
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        // A second handle on the page queue, so that waiting for room in it
        // does not borrow the driver.
        let pages = self.p.pages.clone();
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                Ok(permit) = pages.reserve(), if !self.parked.is_empty() => self.unpark(permit),
                event = self.p.swarm.select_next_some() => self.on_swarm_event(event),
                Some(command) = commands.recv() => self.on_command(command),
                Some(update) = reports.recv() => match update {
                    Update::Checked(verdicts) => {
                        for (ticket, verdict) in verdicts {
                            self.on_verdict(ticket, verdict);
                        }
                    }
                    Update::Done(report) => self.on_report(report),
                },
                Some(done) = self.p.sync_done.recv() => self.on_sync_done(done),
                Some((id, peer, acceptance)) = self.list_verdicts.next(), if !self.list_verdicts.is_empty() => {
                    self.judge(&id, &peer, acceptance);
                }
                Some(own) = self.p.published.recv() => self.gossip_own(own),
                Some(prepared) = futures::future::OptionFuture::from(self.preparing.as_mut()), if self.preparing.is_some() => {
                    self.preparing = None;
                    if let Some(prepared) = prepared {
                        self.apply(prepared);
                    }
                }
                Ok(()) = own_checkpoints.changed() => {
                    let signed = own_checkpoints.borrow_and_update().clone();
                    self.own_checkpoint(signed);
                }
                Ok(()) = views.changed() => {
                    let view = views.borrow_and_update().clone();
                    self.prepare(view);
                }
                _ = sync_tick.tick() => self.sync_round(),
                _ = dial_tick.tick() => self.dial_due(),
                _ = gauge_tick.tick() => {
                    self.update_gauges();
                    self.publish_checkpoint();
                }
                _ = housekeeping.tick() => self.housekeeping(),
            }
        }
        // Close every connection politely; the swarm is dropped with this task.
        let peers: Vec<PeerId> = self.peers.connected().map(|(p, _)| *p).collect();
        for peer in peers {
            let _ = self.p.swarm.disconnect_peer_id(peer);
        }
        Ok(())
    }

    /// Ranks a new list's members for this node on the blocking pool: for a
    /// list of tens of thousands that is milliseconds of hashing, which the
    /// swarm task does not wait for.
    fn prepare(&mut self, view: Arc<MembershipView>) {
        let own = self.p.own.clone();
        let own_key = self.p.own_key;
        self.preparing = Some(Box::pin(async move {
            tokio::task::spawn_blocking(move || prepare(view, &own, &own_key))
                .await
                .ok()
        }));
    }

    /// Installs a prepared list: allow list, choice, subscriptions, re-gossip.
    fn apply(&mut self, prepared: Prepared) {
        let Prepared {
            view,
            members,
            ranking,
            own_purposes,
        } = prepared;
        let now = Instant::now();
        let change = self
            .peers
            .set_list(members, ranking, own_purposes.clone(), now);
        let behaviour = self.p.swarm.behaviour_mut();
        for (peer, member) in &change.disallow {
            // Closes its connections at once (allow_block_list).
            behaviour.allow.disallow_peer(*peer);
            behaviour.gossipsub.blacklist_peer(peer);
            tracing::info!(%member, %peer, "member removed from the list: connections closed");
        }
        for peer in &change.allow {
            behaviour.gossipsub.remove_blacklisted_peer(peer);
            behaviour.allow.allow_peer(*peer);
        }
        for peer in std::mem::take(&mut self.cut_off) {
            behaviour.gossipsub.remove_blacklisted_peer(&peer);
        }
        self.view = view;
        self.update_subscriptions(own_purposes.into_iter().collect());
        self.regossip_list();
        self.p
            .metrics
            .chosen_peers
            .set(i64::try_from(self.peers.chosen_count()).unwrap_or(i64::MAX));
        self.update_gauges();
    }

    pub(super) fn update_gauges(&self) {
        let now = time::now();
        let to_expiry = self.view.list().map_or(0, |l| {
            saturating_i64(l.list.expires_at).saturating_sub(saturating_i64(now))
        });
        let m = &self.p.metrics;
        m.member_list_seconds_to_expiry.set(to_expiry);
        m.peers_connected
            .set(saturating_i64(self.peers.connected().count() as u64));
        m.p2p_connections
            .set(saturating_i64(self.peers.connection_count() as u64));
    }

    fn dial_due(&mut self) {
        for (peer, member) in self.peers.due(Instant::now()) {
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
            if addresses.is_empty() {
                self.peers.dial_failed(&peer, Instant::now());
                continue;
            }
            if self.peers.first_dial(peer) {
                self.p.metrics.p2p_members_dialled.inc();
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

    fn housekeeping(&mut self) {
        let now = Instant::now();
        if self.peers.any_left_out_expired(now) {
            self.peers.rechoose(now);
        }
        for peer in self.chains.expire() {
            self.cursors.rewind(peer);
        }
        let connected: HashSet<PeerId> = self.peers.connected().map(|(p, _)| *p).collect();
        self.cursors
            .forget_all_but(&connected, 4 * self.p.bounds.max_peers);
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { purpose, bytes } => self.gossip_raw(purpose, bytes),
            Command::PublishCheckpoint { bytes } => {
                self.checkpoint_pending = Some(bytes);
                self.publish_checkpoint();
            }
            Command::Peers { reply } => {
                let _ = reply.send(
                    self.peers
                        .connected()
                        .map(|(p, m)| (*p, m.clone()))
                        .collect(),
                );
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
                connection_id,
                ..
            } => {
                let Some(member) = self.peers.member(&peer_id).cloned() else {
                    // The allow list should have refused it; refuse it here too.
                    self.refused("not_a_member");
                    let _ = self.p.swarm.disconnect_peer_id(peer_id);
                    return;
                };
                // The only connection to this peer (connection limits).
                self.peers.established(peer_id, connection_id);
                let _span = crate::trace::connection(member.as_str(), &peer_id).entered();
                tracing::info!("member connected");
                self.ask_changes(peer_id);
                self.update_gauges();
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                ..
            } => {
                if self.peers.closed(&peer_id, connection_id, Instant::now())
                    && let Some(member) = self.peers.member(&peer_id)
                {
                    let _span = crate::trace::connection(member.as_str(), &peer_id).entered();
                    tracing::info!("member disconnected");
                }
                self.update_gauges();
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => {
                if let DialError::Denied { cause } = &error
                    && cause
                        .downcast_ref::<connection_limits::Exceeded>()
                        .is_some()
                {
                    // Our own bound: not the peer's fault.
                    return;
                }
                if self.peers.dial_failed(&peer, Instant::now()) {
                    tracing::info!(%peer, "a chosen member stays unreachable; choosing another");
                }
                tracing::debug!(%peer, %error, "dial failed");
            }
            SwarmEvent::IncomingConnectionError {
                error: ListenError::Denied { cause },
                peer_id,
                ..
            } => {
                let reason = if cause
                    .downcast_ref::<allow_block_list::NotAllowed>()
                    .is_some()
                {
                    "not_a_member"
                } else if peer_id.is_some_and(|p| self.peers.is_connected(&p)) {
                    // Both ends dialled at once: the connection limits keep one.
                    "duplicate"
                } else if cause
                    .downcast_ref::<connection_limits::Exceeded>()
                    .is_some()
                {
                    "limit"
                } else {
                    "denied"
                };
                self.refused(reason);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossip(event),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync(event),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(failure),
            })) => {
                // Missed pings: the connection is dead (a partition, a frozen
                // peer); close it so counts and alerts are true.
                let member = self.peers.member(&peer).map_or("", |m| m.as_str());
                let _span = crate::trace::connection(member, &peer).entered();
                tracing::info!(%failure, "a connection stopped answering pings: closed");
                self.p.swarm.close_connection(connection);
            }
            _ => {}
        }
    }

    /// Counts a refused connection and logs refusals at a bounded rate.
    fn refused(&mut self, reason: &'static str) {
        self.p.metrics.p2p_connection_refused(reason);
        *self.refusals.since_log.entry(reason).or_default() += 1;
        let now = Instant::now();
        if self
            .refusals
            .last_log
            .is_none_or(|t| now.duration_since(t) >= REFUSAL_LOG_EVERY)
        {
            let counts: Vec<String> = self
                .refusals
                .since_log
                .drain()
                .map(|(r, n)| format!("{r}: {n}"))
                .collect();
            tracing::warn!(refused = %counts.join(", "), "p2p connections refused (peers that are not current members, or beyond the peer bound)");
            self.refusals.last_log = Some(now);
        }
    }
}

/// Builds the member map (PeerIds without point decompression) and this
/// node's ranking of the list.
fn prepare(view: Arc<MembershipView>, own: &MemberId, own_key: &[u8; 32]) -> Prepared {
    let now = time::now();
    let mut members = HashMap::new();
    let mut candidates = Vec::new();
    let revoked =
        |key: &handbereik_keys::PublicKey| view.list().is_some_and(|l| l.list.is_revoked(key));
    for member in view.members() {
        let valid = now >= member.valid_from && member.valid_until.is_none_or(|u| now < u);
        if &member.member_id == own || !valid || revoked(&member.node_key) {
            continue;
        }
        let Some(peer) = peer_id_of(&member.node_key) else {
            continue;
        };
        members.insert(peer, member.member_id.clone());
        if !member.p2p_addresses.is_empty() {
            candidates.push(Candidate {
                peer,
                key: *member.node_key.as_bytes(),
                purposes: member.purposes.clone(),
            });
        }
    }
    let own_purposes = view
        .member(own)
        .map(|m| m.purposes.clone())
        .unwrap_or_default();
    let ranking = Arc::new(Ranking::new(own_key, view.version(), candidates));
    Prepared {
        view,
        members,
        ranking,
        own_purposes,
    }
}

/// A gauge value: numbers from a signed list may be as large as u64 allows.
pub(super) fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
