//! The catch-up protocol's messages (`/handbereik/sync/2`, CBOR over libp2p
//! request-response) and the rules for comparing marks.
//!
//! Gossip keeps no history, so a node asks its peers now and then which
//! streams moved since it last asked that peer (a cursor into the peer's
//! change log, see `store::Store::changes_since`): the answer's size follows
//! what changed, not how many streams exist. It then fetches what it misses,
//! page by page, from any peer that has it (events are signed by their
//! source, so any member may relay them). A node answers only about streams
//! of purposes the asking member is admitted for: doelbinding holds for
//! catch-up as for gossip. The format is in docs/formats.md.

use handbereik_keys::{MemberId, Purpose};
use serde::{Deserialize, Serialize};

use crate::types::StreamId;

/// Most events in one page.
pub const PAGE_EVENTS: usize = 512;
/// About the most bytes of events in one page.
pub const PAGE_BYTES: usize = 4 * 1024 * 1024;
/// Most marks in one answer (about 60 KiB).
pub const PAGE_MARKS: usize = 1000;

/// One stream's mark on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Source member id.
    pub source: String,
    /// Purpose.
    pub purpose: String,
    /// Every sequence up to here is held.
    pub mark: u64,
}

/// A sync request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SyncRequest {
    /// "Which streams moved after change `since` of your log (`epoch`)?
    /// And this is my list version."
    Changes {
        /// The answerer's log epoch the cursor belongs to (0: none yet).
        epoch: u64,
        /// The last change number the asker has seen (0: from the start).
        since: u64,
        /// The asker's member list version.
        list_version: u64,
    },
    /// "Send me events `from..=to` of this stream."
    Fetch {
        /// Source member id.
        source: String,
        /// Purpose.
        purpose: String,
        /// First sequence wanted.
        from: u64,
        /// Last sequence wanted.
        to: u64,
    },
    /// "Send me your member list."
    MemberList,
}

/// A sync response.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SyncResponse {
    /// Streams that moved, with their marks now, and where to go on.
    Changes {
        /// The answerer's log epoch: if it is not the one asked about, the
        /// answer starts from the beginning of the log.
        epoch: u64,
        /// Marks of streams the asker may see.
        marks: Vec<Mark>,
        /// The cursor to send next time.
        next: u64,
        /// More changes follow: ask again from `next` at once.
        more: bool,
        /// The answerer's member list version.
        list_version: u64,
    },
    /// Signed events, contiguous from the `from` asked.
    Events {
        /// The events, in sequence order.
        events: Vec<serde_bytes::ByteBuf>,
    },
    /// The signed member list held (empty if none).
    MemberList {
        /// The signed list.
        bytes: serde_bytes::ByteBuf,
    },
    /// The request was refused (not a member, not admitted, malformed).
    Refused {
        /// Why.
        reason: String,
    },
    /// The asker asks more than its share; it may try again after this long.
    Busy {
        /// Milliseconds to wait.
        retry_after_ms: u32,
    },
}

/// Parses a mark from a peer into a stream; `None` if malformed.
pub fn parse_stream(source: &str, purpose: &str) -> Option<StreamId> {
    Some(StreamId::new(
        MemberId::parse(source).ok()?,
        Purpose::parse(purpose).ok()?,
    ))
}

/// Streams where `theirs` is ahead of `ours`: (stream, first missing, last
/// held by them). `ours` gives this node's mark of a stream.
pub fn behind(
    ours: impl Fn(&StreamId) -> u64,
    theirs: &[Mark],
    may_hold: impl Fn(&Purpose) -> bool,
) -> Vec<(StreamId, u64, u64)> {
    theirs
        .iter()
        .filter_map(|m| {
            let stream = parse_stream(&m.source, &m.purpose)?;
            if !may_hold(&stream.purpose) {
                return None;
            }
            let mine = ours(&stream);
            (m.mark > mine).then(|| (stream, mine.saturating_add(1), m.mark))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(source: &str, purpose: &str, mark: u64) -> Mark {
        Mark {
            source: source.into(),
            purpose: purpose.into(),
            mark,
        }
    }

    #[test]
    fn behind_names_missing_ranges_of_purposes_this_node_may_hold() {
        let a = "00000001001234567000";
        let theirs = [
            mark(a, "jeugd", 10),
            mark(a, "zorg", 5),
            mark("not a member id", "jeugd", 3),
            mark(a, "Not A Purpose", 3),
        ];
        let jeugd = Purpose::parse("jeugd").unwrap();
        let got = behind(|_| 4, &theirs, |p| *p == jeugd);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].1, got[0].2), (5, 10));
        assert!(
            behind(|_| 10, &theirs, |_| true).is_empty(),
            "nothing is behind a node that holds more"
        );
    }
}
