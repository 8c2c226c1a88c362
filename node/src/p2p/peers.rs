//! The peer manager: who may connect (the allow list), whom this node dials
//! (the bounded choice of [`topology`](super::topology)), when it dials
//! again, and which connections are open. One connection per pair is kept
//! by the swarm's connection limits (a second one to the same peer is
//! refused before any protocol sees it), not here.
//!
//! Only chosen members are dialled, each with its own backoff (with jitter,
//! so that never all at once); a chosen member that stays unreachable is
//! left out for a while and the next best takes its place. Idle work is
//! proportional to the chosen set, never to the size of the list. Pure
//! bookkeeping: the driver turns its answers into swarm calls.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use handbereik_keys::{MemberId, Purpose};
use libp2p::PeerId;
use libp2p::swarm::ConnectionId;
use sha2::{Digest, Sha256};

use super::topology::{Bounds, Ranking};

/// The first wait after a failed dial.
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two dials of a chosen member.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// After this many failed dials in a row a chosen member is replaced.
const REPLACE_AFTER: u32 = 4;
/// How long a replaced member stays out of the choice.
const LEFT_OUT_FOR: Duration = Duration::from_secs(600);

#[derive(Debug)]
struct Dial {
    next: Instant,
    delay: Duration,
    failures: u32,
}

/// The peer manager's state.
#[derive(Debug)]
pub struct Peers {
    bounds: Bounds,
    members: HashMap<PeerId, MemberId>,
    ranking: Arc<Ranking>,
    own_purposes: Vec<Purpose>,
    chosen: Vec<PeerId>,
    dial: HashMap<PeerId, Dial>,
    left_out: HashMap<PeerId, Instant>,
    /// Peers cut off for gossip outside their purposes, until the next list.
    cut_off: HashSet<PeerId>,
    /// The one connection to each connected peer (the swarm's connection
    /// limits refuse a second).
    connections: HashMap<PeerId, ConnectionId>,
    /// Every member dialled so far (for the metric; bounded by the list).
    dialled: HashSet<PeerId>,
}

/// How the allow list changes with a new list.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AllowChange {
    /// PeerIds to allow.
    pub allow: Vec<PeerId>,
    /// PeerIds to disallow (their connections close at once).
    pub disallow: Vec<(PeerId, MemberId)>,
}

impl Peers {
    /// No list yet: nobody allowed, nobody chosen.
    pub fn new(bounds: Bounds) -> Self {
        Peers {
            bounds,
            members: HashMap::new(),
            ranking: Arc::new(Ranking::default()),
            own_purposes: Vec::new(),
            chosen: Vec::new(),
            dial: HashMap::new(),
            left_out: HashMap::new(),
            cut_off: HashSet::new(),
            connections: HashMap::new(),
            dialled: HashSet::new(),
        }
    }

    /// Takes a new list: its members (this node excluded), this node's
    /// ranking of them and its own purposes. Answers the allow-list change;
    /// the choice is made again.
    pub fn set_list(
        &mut self,
        members: HashMap<PeerId, MemberId>,
        ranking: Arc<Ranking>,
        own_purposes: Vec<Purpose>,
        now: Instant,
    ) -> AllowChange {
        let mut change = AllowChange::default();
        for (peer, member) in &self.members {
            if !members.contains_key(peer) {
                change.disallow.push((*peer, member.clone()));
            }
        }
        for peer in members.keys() {
            if !self.members.contains_key(peer) {
                change.allow.push(*peer);
            }
        }
        self.members = members;
        self.ranking = ranking;
        self.own_purposes = own_purposes;
        self.left_out
            .retain(|peer, _| self.members.contains_key(peer));
        // A new list gives a cut-off peer its chance again.
        for peer in std::mem::take(&mut self.cut_off) {
            self.left_out.remove(&peer);
        }
        self.rechoose(now);
        change
    }

    /// Chooses again, leaving out members that stayed unreachable.
    pub fn rechoose(&mut self, now: Instant) {
        self.left_out.retain(|_, until| *until > now);
        let left_out: HashSet<PeerId> = self.left_out.keys().copied().collect();
        let chosen = self
            .ranking
            .choose(&self.own_purposes, self.bounds, &left_out);
        let keep: HashSet<PeerId> = chosen.iter().copied().collect();
        self.dial.retain(|peer, _| keep.contains(peer));
        for peer in &chosen {
            self.dial.entry(*peer).or_insert(Dial {
                next: now,
                delay: MIN_BACKOFF,
                failures: 0,
            });
        }
        self.chosen = chosen;
    }

    /// Leaves a peer out until the next list (it broke the gossip rules).
    pub fn cut_off(&mut self, peer: PeerId, now: Instant) {
        self.cut_off.insert(peer);
        self.left_out
            .insert(peer, now + Duration::from_secs(24 * 3600));
        self.rechoose(now);
    }

    /// Whether a replaced member's time out is over (then choose again).
    pub fn any_left_out_expired(&self, now: Instant) -> bool {
        self.left_out.values().any(|until| *until <= now)
    }

    /// The member behind a PeerId, if it is a current member.
    pub fn member(&self, peer: &PeerId) -> Option<&MemberId> {
        self.members.get(peer)
    }

    /// Records a dial; answers whether it is the first of that member.
    pub fn first_dial(&mut self, peer: PeerId) -> bool {
        self.dialled.insert(peer)
    }

    /// Chosen members due for a dial now; each is scheduled for its next try.
    pub fn due(&mut self, now: Instant) -> Vec<(PeerId, MemberId)> {
        let mut due = Vec::new();
        for peer in &self.chosen {
            if self.connections.contains_key(peer) {
                continue;
            }
            let (Some(dial), Some(member)) = (self.dial.get_mut(peer), self.members.get(peer))
            else {
                continue;
            };
            if dial.next > now {
                continue;
            }
            dial.next = now + jittered(dial.delay, peer, dial.failures);
            dial.delay = (dial.delay * 2).min(MAX_BACKOFF);
            due.push((*peer, member.clone()));
        }
        due
    }

    /// A dial failed. Answers true when the member was replaced (the driver
    /// has nothing else to do: the choice is already made again).
    pub fn dial_failed(&mut self, peer: &PeerId, now: Instant) -> bool {
        let Some(dial) = self.dial.get_mut(peer) else {
            return false;
        };
        dial.failures += 1;
        if dial.failures < REPLACE_AFTER {
            return false;
        }
        self.left_out.insert(*peer, now + LEFT_OUT_FOR);
        self.rechoose(now);
        true
    }

    /// A connection was established.
    pub fn established(&mut self, peer: PeerId, id: ConnectionId) {
        if let Some(dial) = self.dial.get_mut(&peer) {
            dial.delay = MIN_BACKOFF;
            dial.failures = 0;
        }
        self.connections.insert(peer, id);
    }

    /// A connection closed. Answers whether it was the peer's last.
    pub fn closed(&mut self, peer: &PeerId, id: ConnectionId, now: Instant) -> bool {
        // Another id is a connection that was never recorded here.
        let last = self.connections.get(peer).is_none_or(|open| *open == id);
        if last {
            self.connections.remove(peer);
            if let Some(dial) = self.dial.get_mut(peer) {
                dial.next = now + jittered(dial.delay, peer, dial.failures);
            }
        }
        last
    }

    /// Members connected now.
    pub fn connected(&self) -> impl Iterator<Item = (&PeerId, &MemberId)> {
        self.connections
            .keys()
            .filter_map(|p| self.members.get(p).map(|m| (p, m)))
    }

    /// Whether a peer has a connection now.
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.connections.contains_key(peer)
    }

    /// Connections open now.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// How many members are chosen.
    pub fn chosen_count(&self) -> usize {
        self.chosen.len()
    }
}

/// `delay`, stretched by up to a half at a spread that differs per peer and
/// attempt, so that dials after an outage do not all come at once.
fn jittered(delay: Duration, peer: &PeerId, attempt: u32) -> Duration {
    let mut h = Sha256::new();
    h.update(peer.to_bytes());
    h.update(attempt.to_be_bytes());
    let spread = f64::from(h.finalize()[0]) / 255.0;
    delay.mul_f64(1.0 + spread / 2.0)
}

#[cfg(test)]
mod tests {
    use super::super::topology::Candidate;
    use super::*;

    fn peer(n: u8) -> PeerId {
        let mut bytes = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
        bytes.extend_from_slice(&[n; 32]);
        PeerId::from_bytes(&bytes).unwrap()
    }

    fn member(n: u8) -> MemberId {
        MemberId::parse(&format!("{:020}", 1000 + u32::from(n))).unwrap()
    }

    fn peers_of(n: u8) -> (Peers, Instant) {
        let bounds = Bounds {
            max_peers: 4,
            per_purpose: 2,
            long_links: 0,
        };
        let mut p = Peers::new(bounds);
        let jeugd = Purpose::parse("jeugd").unwrap();
        let candidates: Vec<Candidate> = (1..=n)
            .map(|i| Candidate {
                peer: peer(i),
                key: [i; 32],
                purposes: vec![jeugd.clone()],
            })
            .collect();
        let members = (1..=n).map(|i| (peer(i), member(i))).collect();
        let now = Instant::now();
        let change = p.set_list(
            members,
            Arc::new(Ranking::new(&[0; 32], 1, candidates)),
            vec![jeugd],
            now,
        );
        assert_eq!(change.allow.len(), usize::from(n));
        (p, now)
    }

    #[test]
    fn only_chosen_members_are_dialled_and_with_backoff() {
        let (mut p, now) = peers_of(50);
        let due = p.due(now);
        assert_eq!(due.len(), 2, "half of max_peers");
        assert!(p.due(now).is_empty(), "not again at once");
        assert!(p.due(now + Duration::from_millis(900)).is_empty());
        assert_eq!(p.due(now + Duration::from_secs(2)).len(), 2);
        // Backoff doubles: the third try is at least two seconds after the second.
        assert!(p.due(now + Duration::from_secs(3)).is_empty());
    }

    #[test]
    fn a_member_that_stays_unreachable_is_replaced() {
        let (mut p, now) = peers_of(50);
        let first: Vec<PeerId> = p.due(now).into_iter().map(|(peer, _)| peer).collect();
        let bad = first[0];
        for i in 0..REPLACE_AFTER {
            let replaced = p.dial_failed(&bad, now);
            assert_eq!(replaced, i + 1 == REPLACE_AFTER);
        }
        let later: Vec<PeerId> = p
            .due(now + Duration::from_secs(1000))
            .into_iter()
            .map(|(peer, _)| peer)
            .collect();
        assert!(!later.contains(&bad), "replaced: {later:?}");
        assert_eq!(p.chosen_count(), 2);
        assert!(p.any_left_out_expired(now + LEFT_OUT_FOR));
    }

    #[test]
    fn a_dropped_member_is_disallowed() {
        let (mut p, now) = peers_of(5);
        let change = p.set_list(
            (1..=4).map(|i| (peer(i), member(i))).collect(),
            Arc::new(Ranking::default()),
            vec![],
            now,
        );
        assert_eq!(change.disallow, vec![(peer(5), member(5))]);
        assert!(change.allow.is_empty());
    }
}
