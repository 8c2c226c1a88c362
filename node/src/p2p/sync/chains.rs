//! Catch-up fetches: at most one chain of page requests per stream.
//!
//! Marks exchanges and gaps seen in gossip both ask for ranges; while a chain
//! for the stream is making progress, a new ask only extends the chain's
//! target. So a range is requested once, not once per exchange and per gap
//! (which, under a flood, multiplied the work by more than ten).
//!
//! A chain that ends before its target (a failed or refused page, no
//! progress for [`PATIENCE`], pages that could not be taken in) names the
//! peer it was fetching from: the caller rewinds its cursor with that peer,
//! so that the peer's next answer names the stream again. Without that, the
//! cursor has moved past the change and nothing would ever ask again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::request_response::OutboundRequestId;

use crate::types::StreamId as Stream;

/// A chain without progress for this long is dropped, so another peer can be asked.
pub const PATIENCE: Duration = Duration::from_secs(20);

struct Chain {
    peer: PeerId,
    next_from: u64,
    target: u64,
    last_progress: Instant,
}

/// The page request to send: (stream, peer, from, to).
pub type PageRequest = (Stream, PeerId, u64, u64);

#[derive(Default)]
pub struct Chains {
    chains: HashMap<Stream, Chain>,
    requests: HashMap<OutboundRequestId, Stream>,
}

impl Chains {
    /// Asks for `from..=to` of `stream` from `peer`. Returns the page request
    /// to send now, or `None` when a live chain already covers the stream.
    pub fn want(
        &mut self,
        stream: Stream,
        from: u64,
        to: u64,
        peer: PeerId,
    ) -> Option<PageRequest> {
        let now = Instant::now();
        if let Some(chain) = self.chains.get_mut(&stream)
            && now.duration_since(chain.last_progress) < PATIENCE
        {
            chain.target = chain.target.max(to);
            return None;
        }
        self.chains.insert(
            stream.clone(),
            Chain {
                peer,
                next_from: from,
                target: to,
                last_progress: now,
            },
        );
        Some((stream, peer, from, to))
    }

    /// Records the id of a sent page request.
    pub fn sent(&mut self, id: OutboundRequestId, stream: Stream) {
        self.requests.insert(id, stream);
    }

    /// A page of `count` events arrived; returns the stream it belongs to and
    /// the next page to request, if the chain goes on.
    pub fn arrived(
        &mut self,
        id: OutboundRequestId,
        count: u64,
    ) -> Option<(Stream, Option<PageRequest>)> {
        let stream = self.requests.remove(&id)?;
        let Some(chain) = self.chains.get_mut(&stream) else {
            return Some((stream, None));
        };
        chain.next_from += count;
        chain.last_progress = Instant::now();
        if count == 0 || chain.next_from > chain.target {
            self.chains.remove(&stream);
            return Some((stream, None));
        }
        let next = (stream.clone(), chain.peer, chain.next_from, chain.target);
        Some((stream, Some(next)))
    }

    /// A page request failed or was refused: the chain ends short of its
    /// target. Answers the peer it was fetching from (`None` if `id` was not
    /// a page request).
    pub fn failed(&mut self, id: OutboundRequestId) -> Option<PeerId> {
        let stream = self.requests.remove(&id)?;
        self.chains.remove(&stream).map(|c| c.peer)
    }

    /// Ends a chain whose pages could not be taken in; answers its peer.
    pub fn abandon(&mut self, stream: &Stream) -> Option<PeerId> {
        self.chains.remove(stream).map(|c| c.peer)
    }

    /// Drops chains that made no progress for a while; answers their peers.
    pub fn expire(&mut self) -> Vec<PeerId> {
        let now = Instant::now();
        let mut ended = Vec::new();
        self.chains.retain(|_, c| {
            let live = now.duration_since(c.last_progress) < PATIENCE;
            if !live {
                ended.push(c.peer);
            }
            live
        });
        let live = &self.chains;
        self.requests.retain(|_, s| live.contains_key(s));
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use handbereik_keys::{MemberId, Purpose};

    #[test]
    fn a_live_chain_absorbs_later_asks() {
        let stream = Stream {
            source: MemberId::parse("00000001001234567000").unwrap(),
            purpose: Purpose::parse("jeugd").unwrap(),
        };
        let peer = PeerId::random();
        let mut chains = Chains::default();
        assert!(chains.want(stream.clone(), 1, 1000, peer).is_some());
        assert!(
            chains.want(stream.clone(), 1, 1500, peer).is_none(),
            "the same range is not asked twice"
        );
        assert!(chains.want(stream.clone(), 600, 800, peer).is_none());
        assert_eq!(chains.chains[&stream].target, 1500);
    }

    #[test]
    fn a_chain_that_ends_short_names_its_peer_and_frees_the_stream() {
        let stream = Stream {
            source: MemberId::parse("00000001001234567000").unwrap(),
            purpose: Purpose::parse("jeugd").unwrap(),
        };
        let peer = PeerId::random();
        let mut chains = Chains::default();
        assert!(chains.want(stream.clone(), 1, 1000, peer).is_some());
        assert_eq!(chains.abandon(&stream), Some(peer));
        assert_eq!(chains.abandon(&stream), None, "ended once");
        assert!(
            chains.want(stream.clone(), 1, 1000, peer).is_some(),
            "an ended chain does not absorb the next ask"
        );
    }
}
