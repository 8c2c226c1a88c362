//! Key layouts of the `notify` tree. One tree holds the events, the inbox and
//! the high-water marks, because a sled batch is atomic only within one tree:
//! an event, its inbox entry and the mark that covers it land together or not
//! at all.
//!
//! A *stream* is one source's events for one purpose; sequences are gap-free
//! per stream, so a member admitted for some purposes only sees no gaps.
//! Its key form is `member id (20 ASCII digits) ‖ purpose ‖ 0x00`.
//!
//! - `e` ‖ stream ‖ sequence (u64 BE) → signed event bytes
//! - `i` ‖ inbox position (u64 BE) → stream ‖ sequence
//! - `h` ‖ stream → contiguous high-water mark (u64 BE): every sequence up to it is stored
//! - `d` ‖ stream → delivered mark (u64 BE): every stored sequence up to it has
//!   entered the inbox (events above a gap are held until it fills or times out)
//!
//! - `c` ‖ change number (u64 BE) → stream: the change log of marks; every
//!   time a stream's mark moves it gets the next change number (and loses its
//!   older entry), so "which streams moved since change n" is one range read
//! - `g` ‖ stream → its latest change number (u64 BE)
//!
//! An inbox value is `stream ‖ sequence`, followed by `0x01 ‖ from ‖ to` when
//! the event entered past a gap that could not be filled in time, or `0x02`
//! when it is a missing event that arrived after that.

use handbereik_keys::{MemberId, Purpose};

use super::streams::Note;
use crate::types::StreamId as Stream;

pub(crate) const EVENT: u8 = b'e';
pub(crate) const INBOX: u8 = b'i';
pub(crate) const MARK: u8 = b'h';
pub(crate) const DELIVERED: u8 = b'd';
pub(crate) const CHANGE: u8 = b'c';
pub(crate) const CHANGE_OF: u8 = b'g';

const NOTE_AFTER_GAP: u8 = 1;
const NOTE_LATE: u8 = 2;

pub(crate) fn stream(stream: &Stream) -> Vec<u8> {
    let mut key = Vec::with_capacity(20 + stream.purpose.as_str().len() + 1);
    key.extend_from_slice(stream.source.as_str().as_bytes());
    key.extend_from_slice(stream.purpose.as_str().as_bytes());
    key.push(0);
    key
}

pub(crate) fn event(s: &Stream, seq: u64) -> Vec<u8> {
    let mut key = vec![EVENT];
    key.extend_from_slice(&stream(s));
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

pub(crate) fn inbox(position: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = INBOX;
    key[1..].copy_from_slice(&position.to_be_bytes());
    key
}

pub(crate) fn mark(s: &Stream) -> Vec<u8> {
    let mut key = vec![MARK];
    key.extend_from_slice(&stream(s));
    key
}

pub(crate) fn delivered(s: &Stream) -> Vec<u8> {
    let mut key = vec![DELIVERED];
    key.extend_from_slice(&stream(s));
    key
}

pub(crate) fn change(number: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = CHANGE;
    key[1..].copy_from_slice(&number.to_be_bytes());
    key
}

pub(crate) fn change_of(s: &Stream) -> Vec<u8> {
    let mut key = vec![CHANGE_OF];
    key.extend_from_slice(&stream(s));
    key
}

/// An inbox entry's value: the event it names and how it entered.
pub(crate) fn inbox_value(s: &Stream, seq: u64, note: Note) -> Vec<u8> {
    let mut value = event_ref(s, seq);
    match note {
        Note::InOrder => {}
        Note::AfterGap { from, to } => {
            value.push(NOTE_AFTER_GAP);
            value.extend_from_slice(&from.to_be_bytes());
            value.extend_from_slice(&to.to_be_bytes());
        }
        Note::Late => value.push(NOTE_LATE),
    }
    value
}

/// Parses an inbox value back into (stream, sequence, note).
pub(crate) fn parse_inbox_value(value: &[u8]) -> Option<(Stream, u64, Note)> {
    let (stream, rest) = parse_stream(value)?;
    let seq = u64_at(rest, 0)?;
    let note = match rest.get(8..)? {
        [] => Note::InOrder,
        [NOTE_LATE] => Note::Late,
        [NOTE_AFTER_GAP, tail @ ..] if tail.len() == 16 => Note::AfterGap {
            from: u64_at(tail, 0)?,
            to: u64_at(tail, 8)?,
        },
        _ => return None,
    };
    Some((stream, seq, note))
}

/// `stream ‖ sequence`, the start of an inbox entry's value.
pub(crate) fn event_ref(s: &Stream, seq: u64) -> Vec<u8> {
    let mut value = stream(s);
    value.extend_from_slice(&seq.to_be_bytes());
    value
}

pub(crate) fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
}

/// Parses `stream ‖ rest`; returns the stream and the rest.
pub(crate) fn parse_stream(bytes: &[u8]) -> Option<(Stream, &[u8])> {
    let source = MemberId::parse(std::str::from_utf8(bytes.get(..20)?).ok()?).ok()?;
    let tail = bytes.get(20..)?;
    let end = tail.iter().position(|b| *b == 0)?;
    let purpose = Purpose::parse(std::str::from_utf8(&tail[..end]).ok()?).ok()?;
    Some((Stream { source, purpose }, &tail[end + 1..]))
}

/// Parses an inbox value back into (stream, sequence).
pub(crate) fn parse_event_ref(value: &[u8]) -> Option<(Stream, u64)> {
    let (stream, rest) = parse_stream(value)?;
    Some((stream, u64_at(rest, 0)?))
}

/// Parses an event key (after its prefix byte) into (stream, sequence).
pub(crate) fn parse_event_key(key: &[u8]) -> Option<(Stream, u64)> {
    parse_event_ref(key.get(1..)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let s = Stream {
            source: MemberId::parse("00000001001234567000").unwrap(),
            purpose: Purpose::parse("jeugd").unwrap(),
        };
        assert_eq!(parse_event_key(&event(&s, 7)), Some((s.clone(), 7)));
        assert_eq!(parse_event_ref(&event_ref(&s, 9)), Some((s.clone(), 9)));
        assert_eq!(
            parse_stream(&mark(&s)[1..]).map(|(s, _)| s),
            Some(s.clone())
        );
        for note in [Note::InOrder, Note::Late, Note::AfterGap { from: 2, to: 9 }] {
            assert_eq!(
                parse_inbox_value(&inbox_value(&s, 11, note)),
                Some((s.clone(), 11, note))
            );
        }
        let mut damaged = inbox_value(&s, 11, Note::Late);
        damaged.push(0);
        assert_eq!(parse_inbox_value(&damaged), None);
    }

    #[test]
    fn a_purpose_that_prefixes_another_does_not_overlap() {
        let a = Stream {
            source: MemberId::parse("00000001001234567000").unwrap(),
            purpose: Purpose::parse("jeugd").unwrap(),
        };
        let b = Stream {
            purpose: Purpose::parse("jeugd-b").unwrap(),
            ..a.clone()
        };
        assert!(!event(&b, 1).starts_with(&event(&a, 0)[..event(&a, 0).len() - 8]));
    }
}
