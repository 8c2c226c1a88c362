//! The catch-up protocol: messages and the rules for answering them.
//!
//! Gossip keeps no history, so nodes compare per-stream high-water marks on
//! connect and periodically, and fetch what they miss, page by page, from any
//! peer that has it (events are signed by their source, so any member may
//! relay them). A node answers only about streams of purposes the asking
//! member is admitted for: doelbinding holds for catch-up as for gossip.

use std::collections::BTreeMap;

use handbereik_keys::{MemberId, Purpose};
use serde::{Deserialize, Serialize};

use crate::membership::MembershipView;
use crate::store::Store;
use crate::types::StreamId as Stream;

/// Most events in one page.
pub const PAGE_EVENTS: usize = 512;
/// About the most bytes of events in one page.
pub const PAGE_BYTES: usize = 4 * 1024 * 1024;
/// Most streams named in one set of marks.
pub const MAX_MARKS: usize = 20_000;

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
    /// "These are my marks and my list version; what are yours?"
    Marks {
        /// The asker's marks.
        marks: Vec<Mark>,
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
    /// The answerer's marks and list version.
    Marks {
        /// Marks of streams the asker may see.
        marks: Vec<Mark>,
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
}

/// The marks that `asker` may see.
pub fn marks_for(
    store: &Store,
    view: &MembershipView,
    asker: Option<&MemberId>,
) -> Result<Vec<Mark>, crate::store::StoreError> {
    let marks = store.marks()?;
    let admitted = |purpose: &Purpose| {
        asker
            .and_then(|a| view.member(a))
            .is_some_and(|m| m.has_purpose(purpose))
    };
    Ok(marks
        .into_iter()
        .filter(|(stream, _)| asker.is_none() || admitted(&stream.purpose))
        .take(MAX_MARKS)
        .map(|(stream, mark)| Mark {
            source: stream.source.to_string(),
            purpose: stream.purpose.to_string(),
            mark,
        })
        .collect())
}

/// Parses a mark from a peer into a stream; `None` if malformed.
pub fn parse_stream(source: &str, purpose: &str) -> Option<Stream> {
    Some(Stream {
        source: MemberId::parse(source).ok()?,
        purpose: Purpose::parse(purpose).ok()?,
    })
}

/// Answers a fetch from `asker`: only streams of its purposes, one page.
pub fn answer_fetch(
    store: &Store,
    view: &MembershipView,
    asker: &MemberId,
    source: &str,
    purpose: &str,
    from: u64,
    to: u64,
) -> SyncResponse {
    let Some(stream) = parse_stream(source, purpose) else {
        return SyncResponse::Refused {
            reason: "malformed stream".into(),
        };
    };
    if !view
        .member(asker)
        .is_some_and(|m| m.has_purpose(&stream.purpose))
    {
        return SyncResponse::Refused {
            reason: format!("not admitted for {}", stream.purpose),
        };
    }
    if from == 0 || to < from {
        return SyncResponse::Refused {
            reason: "empty range".into(),
        };
    }
    match store.events_from(&stream, from, to, PAGE_EVENTS, PAGE_BYTES) {
        Ok(events) => SyncResponse::Events {
            events: events.into_iter().map(serde_bytes::ByteBuf::from).collect(),
        },
        Err(e) => SyncResponse::Refused {
            reason: format!("the store cannot be read: {e}"),
        },
    }
}

/// Streams where `theirs` is ahead of `ours`: (stream, first missing, last held by them).
pub fn behind(
    ours: &BTreeMap<Stream, u64>,
    theirs: &[Mark],
    may_hold: impl Fn(&Purpose) -> bool,
) -> Vec<(Stream, u64, u64)> {
    theirs
        .iter()
        .filter_map(|m| {
            let stream = parse_stream(&m.source, &m.purpose)?;
            let mine = ours.get(&stream).copied().unwrap_or(0);
            (m.mark > mine && may_hold(&stream.purpose)).then_some((stream, mine + 1, m.mark))
        })
        .collect()
}
