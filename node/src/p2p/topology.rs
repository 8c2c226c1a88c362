//! Which members this node connects to: a bounded, stable choice from the
//! signed member list.
//!
//! Every pair of members has a score, the SHA-256 of a domain prefix and the
//! two node keys in sorted order: both ends compute the same number, so a
//! pair that one side ranks high the other side ranks high too, and most
//! chosen connections are chosen by both (fewer connections in all, one per
//! pair). A node dials at most half its `max_peers`:
//!
//! 1. for every purpose it is admitted for, the best-scoring members
//!    admitted for that purpose, until it has `per_purpose` of them (enough
//!    for a gossipsub mesh of that purpose);
//! 2. then the best-scoring members of any purpose (the governance topic
//!    reaches everyone through them);
//! 3. and `long_links` members chosen by a hash that includes the list
//!    version, so they change with every list: random long links that keep
//!    the overlay's diameter small.
//!
//! Members that stayed unreachable are left out and the next best take their
//! place. The scores are computed once per list, off the swarm task
//! ([`Ranking::new`]); choosing from a ranking is a walk without hashing.
//! Pure: calls nothing.

use std::collections::HashSet;

use handbereik_keys::Purpose;
use libp2p::PeerId;
use sha2::{Digest, Sha256};

const SCORE_DOMAIN: &[u8] = b"handbereik/peer-choice/v1\0";
const LONG_LINK_DOMAIN: &[u8] = b"handbereik/long-link/v1\0";

/// How many peers to choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// The most connections the node keeps (dialled and accepted together).
    pub max_peers: usize,
    /// Peers wanted per admitted purpose.
    pub per_purpose: usize,
    /// Random long links, re-chosen with every list version.
    pub long_links: usize,
}

impl Bounds {
    /// How many members this node dials: half its connections, so that the
    /// other half is left for those who choose it.
    pub fn dial_target(&self) -> usize {
        (self.max_peers / 2).max(1)
    }
}

/// One member this node may connect to.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Its PeerId.
    pub peer: PeerId,
    /// Its node key, raw.
    pub key: [u8; 32],
    /// The purposes it is admitted for.
    pub purposes: Vec<Purpose>,
}

/// The candidates of one list, ranked for this node.
#[derive(Clone, Debug, Default)]
pub struct Ranking {
    /// Candidates, best score first.
    ranked: Vec<Candidate>,
    /// Indexes into `ranked`, in long-link order for this list version.
    long: Vec<usize>,
}

/// The pair score: the same for (a, b) and (b, a).
pub fn pair_score(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h = Sha256::new();
    h.update(SCORE_DOMAIN);
    h.update(lo);
    h.update(hi);
    h.finalize().into()
}

fn long_link_score(own: &[u8; 32], other: &[u8; 32], version: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(LONG_LINK_DOMAIN);
    h.update(own);
    h.update(other);
    h.update(version.to_be_bytes());
    h.finalize().into()
}

impl Ranking {
    /// Ranks `candidates` (this node itself excluded) for the node with key
    /// `own`, under list `version`. O(n log n) hashing and sorting: run it
    /// off the swarm task for large lists.
    pub fn new(own: &[u8; 32], version: u64, candidates: Vec<Candidate>) -> Self {
        let mut scored: Vec<([u8; 32], Candidate)> = candidates
            .into_iter()
            .filter(|c| &c.key != own)
            .map(|c| (pair_score(own, &c.key), c))
            .collect();
        scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.key.cmp(&b.1.key)));
        let ranked: Vec<Candidate> = scored.into_iter().map(|(_, c)| c).collect();
        let mut long: Vec<(usize, [u8; 32])> = ranked
            .iter()
            .enumerate()
            .map(|(i, c)| (i, long_link_score(own, &c.key, version)))
            .collect();
        long.sort_by_key(|l| std::cmp::Reverse(l.1));
        Ranking {
            ranked,
            long: long.into_iter().map(|(i, _)| i).collect(),
        }
    }

    /// How many candidates there are.
    pub fn len(&self) -> usize {
        self.ranked.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ranked.is_empty()
    }

    /// The members to dial, in priority order, leaving out `excluded`.
    pub fn choose(
        &self,
        own_purposes: &[Purpose],
        bounds: Bounds,
        excluded: &HashSet<PeerId>,
    ) -> Vec<PeerId> {
        let target = bounds.dial_target();
        let mut chosen: Vec<usize> = Vec::with_capacity(target);
        let mut taken: HashSet<usize> = HashSet::new();
        let usable = |i: &usize| !excluded.contains(&self.ranked[*i].peer);
        // 1. Enough peers for every purpose's mesh, within the bound: with
        // many purposes each gets an equal share (at least two).
        let share = if own_purposes.is_empty() {
            0
        } else {
            bounds.per_purpose.min((target / own_purposes.len()).max(2))
        };
        for purpose in own_purposes {
            let mut have = chosen
                .iter()
                .filter(|i| self.ranked[**i].purposes.contains(purpose))
                .count();
            for i in (0..self.ranked.len()).filter(usable) {
                if have >= share || chosen.len() >= bounds.max_peers {
                    break;
                }
                if !taken.contains(&i) && self.ranked[i].purposes.contains(purpose) {
                    taken.insert(i);
                    chosen.push(i);
                    have += 1;
                }
            }
        }
        // 2. The best of the rest, leaving room for the long links.
        let fill_to = target.saturating_sub(bounds.long_links);
        for i in (0..self.ranked.len()).filter(usable) {
            if chosen.len() >= fill_to {
                break;
            }
            if taken.insert(i) {
                chosen.push(i);
            }
        }
        // 3. Long links.
        let mut links = 0;
        for &i in self.long.iter().filter(|i| usable(i)) {
            if links >= bounds.long_links || chosen.len() >= target.max(fill_to) {
                break;
            }
            if taken.insert(i) {
                chosen.push(i);
                links += 1;
            }
        }
        chosen.into_iter().map(|i| self.ranked[i].peer).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, VecDeque};

    use super::*;

    fn key(n: u32) -> [u8; 32] {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&n.to_be_bytes());
        Sha256::digest(k).into()
    }

    fn peer(n: u32) -> PeerId {
        // Any distinct PeerId per member will do for the choice itself.
        let mut bytes = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
        bytes.extend_from_slice(&key(n));
        PeerId::from_bytes(&bytes).unwrap()
    }

    fn purpose(p: &str) -> Purpose {
        Purpose::parse(p).unwrap()
    }

    fn network(n: u32, purposes: impl Fn(u32) -> Vec<Purpose>) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate {
                peer: peer(i),
                key: key(i),
                purposes: purposes(i),
            })
            .collect()
    }

    const BOUNDS: Bounds = Bounds {
        max_peers: 8,
        per_purpose: 3,
        long_links: 1,
    };

    #[test]
    fn the_pair_score_is_symmetric() {
        assert_eq!(pair_score(&key(1), &key(2)), pair_score(&key(2), &key(1)));
        assert_ne!(pair_score(&key(1), &key(2)), pair_score(&key(1), &key(3)));
    }

    #[test]
    fn a_node_dials_at_most_half_its_bound_and_never_itself() {
        let all = network(200, |_| vec![purpose("jeugd")]);
        let ranking = Ranking::new(&key(7), 1, all);
        assert_eq!(ranking.len(), 199);
        let chosen = ranking.choose(&[purpose("jeugd")], BOUNDS, &HashSet::new());
        assert_eq!(chosen.len(), 4);
        assert!(!chosen.contains(&peer(7)));
        let unique: HashSet<_> = chosen.iter().collect();
        assert_eq!(unique.len(), chosen.len());
    }

    #[test]
    fn every_admitted_purpose_gets_peers_of_that_purpose() {
        // One in twenty members shares the rare purpose.
        let all = network(400, |i| {
            if i % 20 == 0 {
                vec![purpose("jeugd"), purpose("zeldzaam")]
            } else {
                vec![purpose("jeugd")]
            }
        });
        let own = [purpose("jeugd"), purpose("zeldzaam")];
        let ranking = Ranking::new(&key(0), 1, all.clone());
        let chosen = ranking.choose(&own, BOUNDS, &HashSet::new());
        let purposes: HashMap<PeerId, &Vec<Purpose>> =
            all.iter().map(|c| (c.peer, &c.purposes)).collect();
        let rare = chosen
            .iter()
            .filter(|p| purposes[*p].contains(&purpose("zeldzaam")))
            .count();
        assert!(
            rare >= 2,
            "the rare purpose has {rare} peers among {chosen:?}"
        );
    }

    #[test]
    fn unreachable_members_are_replaced_by_the_next_best() {
        let all = network(100, |_| vec![purpose("jeugd")]);
        let ranking = Ranking::new(&key(3), 1, all);
        let first = ranking.choose(&[purpose("jeugd")], BOUNDS, &HashSet::new());
        let excluded: HashSet<PeerId> = first.iter().take(2).copied().collect();
        let second = ranking.choose(&[purpose("jeugd")], BOUNDS, &excluded);
        assert_eq!(second.len(), first.len());
        assert!(second.iter().all(|p| !excluded.contains(p)));
        // Stable: the ones still reachable stay chosen.
        assert!(first[2..].iter().filter(|p| second.contains(p)).count() >= first.len() - 3);
    }

    #[test]
    fn choices_are_stable_across_list_versions_but_for_the_long_links() {
        let all = network(300, |_| vec![purpose("jeugd")]);
        let one = Ranking::new(&key(5), 1, all.clone()).choose(
            &[purpose("jeugd")],
            BOUNDS,
            &HashSet::new(),
        );
        let two =
            Ranking::new(&key(5), 2, all).choose(&[purpose("jeugd")], BOUNDS, &HashSet::new());
        let kept = one.iter().filter(|p| two.contains(p)).count();
        assert!(kept >= one.len() - BOUNDS.long_links, "{one:?} vs {two:?}");
    }

    /// The union of everyone's choices: connected, with a small diameter, and
    /// no node with more connections than its bound.
    #[test]
    fn the_overlay_is_connected_with_a_small_diameter() {
        const N: u32 = 1000;
        let bounds = Bounds {
            max_peers: 32,
            per_purpose: 8,
            long_links: 2,
        };
        let all = network(N, |_| vec![purpose("jeugd")]);
        let mut edges: HashMap<PeerId, HashSet<PeerId>> = HashMap::new();
        for i in 0..N {
            let chosen = Ranking::new(&key(i), 1, all.clone()).choose(
                &[purpose("jeugd")],
                bounds,
                &HashSet::new(),
            );
            for p in chosen {
                edges.entry(peer(i)).or_default().insert(p);
                edges.entry(p).or_default().insert(peer(i));
            }
        }
        let degrees: Vec<usize> = edges.values().map(HashSet::len).collect();
        let max = degrees.iter().max().copied().unwrap_or(0);
        let mean = degrees.iter().sum::<usize>() as f64 / f64::from(N);
        assert!(mean <= 32.0, "mean degree {mean}");
        // The hard bound is enforced by the connection limit; the choice
        // alone stays near it.
        assert!(max <= 64, "max degree {max}");
        // Breadth-first from one node reaches everyone in a few hops.
        let start = peer(0);
        let mut seen: HashMap<PeerId, usize> = HashMap::from([(start, 0)]);
        let mut queue = VecDeque::from([start]);
        while let Some(p) = queue.pop_front() {
            let d = seen[&p];
            for q in &edges[&p] {
                if !seen.contains_key(q) {
                    seen.insert(*q, d + 1);
                    queue.push_back(*q);
                }
            }
        }
        assert_eq!(seen.len(), N as usize, "the overlay is connected");
        let diameter = seen.values().max().copied().unwrap_or(0);
        assert!(diameter <= 5, "eccentricity {diameter}");
    }
}
