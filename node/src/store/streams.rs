//! Per-stream sequence bookkeeping of the writer: what is stored, what is
//! missing, and which events may enter the inbox now.
//!
//! A stream's events go into the inbox in sequence order. An event that
//! arrives above a gap is stored at once (so it is durable and can be
//! relayed) but *held*: it enters the inbox when the gap before it is filled,
//! or, if the gap stays open longer than the configured time, it is passed
//! into the inbox with the gap noted, and the missing events enter late when
//! they come. Pure bookkeeping: the writer turns the answers into sled
//! writes. Calls nothing.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::types::StreamId;

/// Why an inbox entry is where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    /// In sequence order, right after its predecessor.
    InOrder,
    /// Delivered past a gap that could not be filled in time: sequences
    /// `from..=to` of the stream were missing when it entered the inbox.
    AfterGap {
        /// First missing sequence.
        from: u64,
        /// Last missing sequence.
        to: u64,
    },
    /// A missing event that arrived after the events above it were passed.
    Late,
}

/// One event to append to the inbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Release {
    /// Its sequence number.
    pub seq: u64,
    /// How it enters.
    pub note: Note,
}

/// What storing one incoming event means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Sequences still missing below this one, if any (ask a peer for them).
    pub gap: Option<(u64, u64)>,
    /// Events that enter the inbox now, in this order (maybe none: held).
    pub releases: Vec<Release>,
}

#[derive(Debug, Default)]
struct StreamState {
    /// Every sequence up to here is stored.
    mark: u64,
    /// Stored sequences above `mark`, with when they arrived. Those above
    /// `delivered` are held out of the inbox; those at or below it were
    /// passed into it after a gap.
    above: BTreeMap<u64, Instant>,
    /// Every stored sequence up to here has entered the inbox.
    delivered: u64,
}

/// The bookkeeping of every stream.
#[derive(Debug, Default)]
pub struct Streams {
    streams: HashMap<StreamId, StreamState>,
}

impl Streams {
    /// Restores a stream's state as loaded from disk: its mark, the stored
    /// sequences above it, and how far it was delivered. Held events count as
    /// arrived at `now`, so their gap timer starts again after a restart.
    pub fn restore(
        &mut self,
        stream: StreamId,
        mark: u64,
        above: impl IntoIterator<Item = u64>,
        delivered: u64,
        now: Instant,
    ) {
        let state = self.streams.entry(stream).or_default();
        state.mark = mark;
        state.above = above
            .into_iter()
            .filter(|s| *s > mark)
            .map(|s| (s, now))
            .collect();
        state.delivered = delivered.max(mark);
    }

    /// The contiguous high-water mark of `stream` (0: nothing stored).
    pub fn mark(&self, stream: &StreamId) -> u64 {
        self.streams.get(stream).map_or(0, |s| s.mark)
    }

    /// How far `stream` has entered the inbox.
    pub fn delivered(&self, stream: &StreamId) -> u64 {
        self.streams.get(stream).map_or(0, |s| s.delivered)
    }

    /// Whether `seq` of `stream` is stored.
    pub fn contains(&self, stream: &StreamId, seq: u64) -> bool {
        self.streams
            .get(stream)
            .is_some_and(|s| seq != 0 && (seq <= s.mark || s.above.contains_key(&seq)))
    }

    /// Records an incoming event; `None` when it is already stored (or 0).
    pub fn ingest(&mut self, stream: &StreamId, seq: u64, now: Instant) -> Option<Stored> {
        if seq == 0 || self.contains(stream, seq) {
            return None;
        }
        let state = self.streams.entry(stream.clone()).or_default();
        let gap = (seq > state.mark.saturating_add(1)).then(|| (state.mark + 1, seq - 1));
        state.above.insert(seq, now);
        let mut releases = Vec::new();
        if seq <= state.delivered {
            releases.push(Release {
                seq,
                note: Note::Late,
            });
        } else {
            release_in_order(state, &mut releases);
        }
        advance_mark(state);
        Some(Stored { gap, releases })
    }

    /// The number this node's own next event of `stream` gets: one more than
    /// anything stored in it.
    pub fn next_own(&self, stream: &StreamId) -> u64 {
        self.streams.get(stream).map_or(1, |state| {
            let last = state.above.keys().next_back().copied().unwrap_or(0);
            state.mark.max(last).saturating_add(1)
        })
    }

    /// Records this node's own event `seq` (from [`Streams::next_own`]).
    /// Own events never enter the inbox.
    pub fn append_own(&mut self, stream: &StreamId, seq: u64) {
        let state = self.streams.entry(stream.clone()).or_default();
        state.above.insert(seq, Instant::now());
        advance_mark(state);
        state.delivered = state.delivered.max(state.mark);
    }

    /// Passes every gap whose first held event has waited `timeout` or
    /// longer: the held run after it enters the inbox, the gap noted.
    pub fn pass_gaps(&mut self, now: Instant, timeout: Duration) -> Vec<(StreamId, Vec<Release>)> {
        let mut out = Vec::new();
        for (stream, state) in &mut self.streams {
            let Some((&first, &arrived)) = state
                .above
                .range(state.delivered.saturating_add(1)..)
                .next()
            else {
                continue;
            };
            if first <= state.delivered {
                continue;
            }
            if now.saturating_duration_since(arrived) < timeout {
                continue;
            }
            let mut releases = vec![Release {
                seq: first,
                note: Note::AfterGap {
                    from: state.delivered + 1,
                    to: first - 1,
                },
            }];
            state.delivered = first;
            release_in_order(state, &mut releases);
            out.push((stream.clone(), releases));
        }
        out
    }
}

/// Moves `delivered` over every held event that directly follows it.
fn release_in_order(state: &mut StreamState, releases: &mut Vec<Release>) {
    // Sequences come from outside: no step may overflow, even at u64::MAX.
    while let Some(next) = state.delivered.checked_add(1)
        && state.above.contains_key(&next)
    {
        state.delivered = next;
        releases.push(Release {
            seq: next,
            note: Note::InOrder,
        });
    }
}

/// Moves `mark` over every stored event that directly follows it.
fn advance_mark(state: &mut StreamState) {
    while let Some(next) = state.mark.checked_add(1)
        && state.above.remove(&next).is_some()
    {
        state.mark = next;
    }
    state.delivered = state.delivered.max(state.mark);
}

#[cfg(test)]
mod tests {
    use super::*;
    use handbereik_keys::{MemberId, Purpose};

    fn stream() -> StreamId {
        StreamId::new(
            MemberId::parse("00000001001234567000").unwrap(),
            Purpose::parse("jeugd").unwrap(),
        )
    }

    fn seqs(stored: &Stored) -> Vec<u64> {
        stored.releases.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn in_order_events_enter_at_once_and_duplicates_are_refused() {
        let mut s = Streams::default();
        let now = Instant::now();
        assert_eq!(seqs(&s.ingest(&stream(), 1, now).unwrap()), [1]);
        assert_eq!(seqs(&s.ingest(&stream(), 2, now).unwrap()), [2]);
        assert!(s.ingest(&stream(), 2, now).is_none());
        assert!(s.ingest(&stream(), 0, now).is_none());
        assert_eq!(s.mark(&stream()), 2);
    }

    #[test]
    fn an_event_above_a_gap_is_held_until_the_gap_fills() {
        let mut s = Streams::default();
        let now = Instant::now();
        s.ingest(&stream(), 1, now).unwrap();
        let held = s.ingest(&stream(), 4, now).unwrap();
        assert_eq!(held.gap, Some((2, 3)));
        assert!(held.releases.is_empty(), "held, not delivered");
        let held = s.ingest(&stream(), 3, now).unwrap();
        assert_eq!(held.gap, Some((2, 2)));
        assert!(held.releases.is_empty());
        let filled = s.ingest(&stream(), 2, now).unwrap();
        assert_eq!(seqs(&filled), [2, 3, 4], "in sequence order");
        assert_eq!(s.mark(&stream()), 4);
        assert_eq!(s.delivered(&stream()), 4);
    }

    #[test]
    fn a_gap_that_stays_open_is_passed_and_the_missing_event_comes_late() {
        let mut s = Streams::default();
        let start = Instant::now();
        s.ingest(&stream(), 1, start).unwrap();
        s.ingest(&stream(), 3, start).unwrap();
        s.ingest(&stream(), 4, start).unwrap();
        let timeout = Duration::from_secs(30);
        assert!(
            s.pass_gaps(start + Duration::from_secs(29), timeout)
                .is_empty()
        );
        let passed = s.pass_gaps(start + timeout, timeout);
        assert_eq!(passed.len(), 1);
        let releases = &passed[0].1;
        assert_eq!(
            releases[0],
            Release {
                seq: 3,
                note: Note::AfterGap { from: 2, to: 2 }
            }
        );
        assert_eq!(releases[1].seq, 4);
        assert_eq!(s.mark(&stream()), 1, "the mark still waits for 2");
        let late = s.ingest(&stream(), 2, start).unwrap();
        assert_eq!(
            late.releases,
            [Release {
                seq: 2,
                note: Note::Late
            }]
        );
        assert_eq!(s.mark(&stream()), 4);
        assert_eq!(seqs(&s.ingest(&stream(), 5, start).unwrap()), [5]);
        assert!(s.ingest(&stream(), 3, start).is_none(), "3 is stored");
    }

    #[test]
    fn the_largest_sequence_does_not_overflow() {
        let mut s = Streams::default();
        let start = Instant::now();
        let held = s.ingest(&stream(), u64::MAX, start).unwrap();
        assert_eq!(held.gap, Some((1, u64::MAX - 1)));
        let passed = s.pass_gaps(start + Duration::from_secs(60), Duration::from_secs(1));
        assert_eq!(passed[0].1[0].seq, u64::MAX);
        assert!(
            s.pass_gaps(start + Duration::from_secs(90), Duration::from_secs(1))
                .is_empty()
        );
        assert!(s.ingest(&stream(), u64::MAX, start).is_none());
    }

    #[test]
    fn own_events_are_numbered_after_everything_stored() {
        let mut s = Streams::default();
        for expected in 1..=2 {
            let seq = s.next_own(&stream());
            assert_eq!(seq, expected);
            s.append_own(&stream(), seq);
        }
        s.restore(stream(), 2, [5], 2, Instant::now());
        assert_eq!(s.next_own(&stream()), 6);
    }

    #[test]
    fn restore_keeps_what_was_delivered() {
        let mut s = Streams::default();
        let now = Instant::now();
        s.restore(stream(), 3, [5, 6], 6, now);
        assert!(s.contains(&stream(), 5));
        assert!(!s.contains(&stream(), 4));
        let late = s.ingest(&stream(), 4, now).unwrap();
        assert_eq!(late.releases[0].note, Note::Late);
        assert_eq!(seqs(&s.ingest(&stream(), 7, now).unwrap()), [7]);
    }
}
