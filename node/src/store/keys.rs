//! Key layouts of the `notify` tree. One tree holds the events, the inbox and
//! the high-water marks, because a sled batch is atomic only within one tree:
//! an event, its inbox entry and the mark that covers it land together or not
//! at all.
//!
//! - `e` ‖ member id (20 ASCII digits) ‖ sequence (u64 BE) → signed event bytes
//! - `i` ‖ inbox position (u64 BE) → member id ‖ sequence
//! - `h` ‖ member id → contiguous high-water mark (u64 BE): every sequence up to it is stored

use handbereik_keys::MemberId;

pub(crate) const EVENT: u8 = b'e';
pub(crate) const INBOX: u8 = b'i';
pub(crate) const MARK: u8 = b'h';

pub(crate) fn event(source: &MemberId, seq: u64) -> [u8; 29] {
    let mut key = [0u8; 29];
    key[0] = EVENT;
    key[1..21].copy_from_slice(source.as_str().as_bytes());
    key[21..].copy_from_slice(&seq.to_be_bytes());
    key
}

pub(crate) fn inbox(position: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = INBOX;
    key[1..].copy_from_slice(&position.to_be_bytes());
    key
}

pub(crate) fn mark(source: &MemberId) -> [u8; 21] {
    let mut key = [0u8; 21];
    key[0] = MARK;
    key[1..].copy_from_slice(source.as_str().as_bytes());
    key
}

/// `member id ‖ sequence`, the value of an inbox entry.
pub(crate) fn event_ref(source: &MemberId, seq: u64) -> [u8; 28] {
    let mut value = [0u8; 28];
    value[..20].copy_from_slice(source.as_str().as_bytes());
    value[20..].copy_from_slice(&seq.to_be_bytes());
    value
}

pub(crate) fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
}

pub(crate) fn member_at(bytes: &[u8], at: usize) -> Option<MemberId> {
    let text = std::str::from_utf8(bytes.get(at..at + 20)?).ok()?;
    MemberId::parse(text).ok()
}

/// Parses an inbox value back into (source, sequence).
pub(crate) fn parse_event_ref(value: &[u8]) -> Option<(MemberId, u64)> {
    Some((member_at(value, 0)?, u64_at(value, 20)?))
}
