//! The notification: a CloudEvent (NL GOV profile) signed by its source node.
//!
//! Owns the event's fields, their limits, how the node signs its own events
//! and how it checks those of others. Checking is a pure function of the
//! bytes and the member list, so it can run on any thread, in parallel, away
//! from the swarm task. Calls `handbereik-keys` for the envelope and the
//! canonical encoding, and `membership` for the view of the member list.

use handbereik_keys::{
    Domain, MemberId, NodeKey, Purpose, SignedEnvelope, SingleSigned, canonical,
};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::membership::MembershipView;
use handbereik_keys::text::excerpt;

/// The largest signed event accepted, in bytes.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// The largest `data` payload, in bytes: notifications are information-poor.
pub const MAX_DATA_BYTES: usize = 4 * 1024;
/// CloudEvents spec version.
pub const SPEC_VERSION: &str = "1.0";
/// The longest `dataref`.
pub const MAX_DATAREF: usize = 1024;
/// The longest subject pseudonym.
pub const MAX_SUBJECT: usize = 256;

/// A notification as signed by its source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notification {
    /// UUIDv7.
    pub id: String,
    /// `urn:nld:oin:<OIN>:systeem:handbereik`.
    pub source: String,
    /// Always "1.0".
    pub specversion: String,
    /// Reverse-DNS type, such as `nl.samenonderhandbereik.melding.ontvangen`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The subject pseudonym.
    pub subject: String,
    /// RFC 3339 UTC.
    pub time: String,
    /// Per-source, gap-free, from 1.
    pub sequence: u64,
    /// Where to inspect (may be empty).
    pub dataref: String,
    /// Media type of `data`.
    pub datacontenttype: String,
    /// Extension attribute: the purpose (doelbinding).
    pub purpose: Purpose,
    /// The small payload.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// What the back office gives to publish; the node adds the rest.
#[derive(Clone, Debug)]
pub struct Draft {
    /// Event type.
    pub event_type: String,
    /// Purpose.
    pub purpose: Purpose,
    /// Subject pseudonym.
    pub subject: String,
    /// Where to inspect.
    pub dataref: String,
    /// Media type of `data`.
    pub datacontenttype: String,
    /// Payload.
    pub data: Vec<u8>,
}

/// Why an event from another node was refused; also the metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// Larger than [`MAX_EVENT_BYTES`].
    Oversized,
    /// Not a signed event of this format.
    Malformed,
    /// Signed by a key that is not a current member's.
    UnknownSource,
    /// The signature does not verify, or the body names another source.
    BadSignature,
    /// The source is not admitted for the purpose, or it came on another purpose's topic.
    WrongPurpose,
    /// The member list expired: the node accepts nothing until a newer one arrives.
    ListExpired,
    /// Already stored.
    Duplicate,
}

impl Rejection {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::Oversized => "oversized",
            Rejection::Malformed => "malformed",
            Rejection::UnknownSource => "unknown_source",
            Rejection::BadSignature => "bad_signature",
            Rejection::WrongPurpose => "wrong_purpose",
            Rejection::ListExpired => "list_expired",
            Rejection::Duplicate => "duplicate",
        }
    }
}

/// An event that passed every check.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The source member.
    pub source: MemberId,
    /// Its sequence number.
    pub sequence: u64,
    /// Its purpose.
    pub purpose: Purpose,
}

/// The CloudEvents `source` of a member.
pub fn source_urn(member: &MemberId) -> String {
    format!("urn:nld:oin:{member}:systeem:handbereik")
}

/// Checks the fields the back office controls; says what is wrong without
/// repeating the value at length.
pub fn check_draft(draft: &Draft) -> Result<(), Error> {
    let bad = |message: String| Err(Error::InvalidRequest(message));
    if !type_ok(&draft.event_type) {
        return bad(format!(
            "type: {} is not a reverse-DNS type of 3 to 128 characters a-z, 0-9, '-' and '.', such as nl.samenonderhandbereik.melding.ontvangen",
            excerpt(&draft.event_type)
        ));
    }
    check_subject(&draft.subject)?;
    if draft.dataref.len() > MAX_DATAREF || draft.dataref.chars().any(char::is_control) {
        return bad(format!(
            "dataref: at most {MAX_DATAREF} characters, no control characters (got {} characters)",
            draft.dataref.chars().count()
        ));
    }
    if draft.datacontenttype.is_empty()
        || draft.datacontenttype.len() > 128
        || draft
            .datacontenttype
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
    {
        return bad(format!(
            "datacontenttype: {} is not a media type such as application/json (at most 128 characters, no spaces)",
            excerpt(&draft.datacontenttype)
        ));
    }
    if draft.data.len() > MAX_DATA_BYTES {
        return bad(format!(
            "data: {} bytes, more than {MAX_DATA_BYTES}; notifications are information-poor, put the content at the source and refer to it with dataref",
            draft.data.len()
        ));
    }
    Ok(())
}

fn type_ok(event_type: &str) -> bool {
    (3..=128).contains(&event_type.len())
        && event_type.contains('.')
        && !event_type.starts_with('.')
        && !event_type.ends_with('.')
        && event_type
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

fn subject_ok(subject: &str) -> bool {
    !subject.is_empty()
        && subject.len() <= MAX_SUBJECT
        && !subject.chars().any(|c| c.is_control() || c.is_whitespace())
        && !looks_like_bsn(subject)
}

fn check_subject(subject: &str) -> Result<(), Error> {
    if looks_like_bsn(subject) {
        return Err(Error::InvalidRequest(
            "subject: this looks like a BSN; a BSN never leaves the node, give the subject's pseudonym".into(),
        ));
    }
    if !subject_ok(subject) {
        return Err(Error::InvalidRequest(format!(
            "subject: a pseudonym of 1 to {MAX_SUBJECT} characters without spaces (got {} characters)",
            subject.chars().count()
        )));
    }
    Ok(())
}

/// Nine digits that pass the 11-test: refused as a subject, so that a BSN
/// handed in by mistake is never gossiped.
pub fn looks_like_bsn(text: &str) -> bool {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    if text.len() != 9 || digits.len() != 9 {
        return false;
    }
    let sum: i64 = digits[..8]
        .iter()
        .zip((2..=9).rev())
        .map(|(d, w)| i64::from(*d) * w)
        .sum::<i64>()
        - i64::from(digits[8]);
    sum % 11 == 0 && sum != 0
}

/// Builds and signs this node's event number `sequence`.
pub fn sign_own(
    key: &NodeKey,
    member: &MemberId,
    draft: &Draft,
    sequence: u64,
    time: String,
) -> Result<Vec<u8>, handbereik_keys::KeysError> {
    let notification = Notification {
        id: uuid::Uuid::now_v7().to_string(),
        source: source_urn(member),
        specversion: SPEC_VERSION.into(),
        event_type: draft.event_type.clone(),
        subject: draft.subject.clone(),
        time,
        sequence,
        dataref: draft.dataref.clone(),
        datacontenttype: draft.datacontenttype.clone(),
        purpose: draft.purpose.clone(),
        data: draft.data.clone(),
    };
    let body = canonical::to_vec(&notification, "notification")?;
    SignedEnvelope::signed(Domain::Notification, body, key).encode()
}

/// Decodes a stored event (already checked when it was stored).
pub fn decode_stored(bytes: &[u8]) -> Option<Notification> {
    let envelope = SingleSigned::decode(bytes, "notification", MAX_EVENT_BYTES).ok()?;
    canonical::from_slice(&envelope.body, "notification").ok()
}

/// Checks an event from another node against the member list at `now`.
/// `topic_purpose` is the purpose of the gossip topic it came on, if any;
/// `is_stored(source, purpose, sequence)` tells whether the node holds that
/// event already.
///
/// Every decision to accept rests on the verified signature. The body is read
/// once before the signature is checked, for one purpose only: to skip the
/// signature work for an event already stored (a duplicate is ignored, never
/// acted on; under a flood, gossip and catch-up bring most events twice).
pub fn check(
    bytes: &[u8],
    view: &MembershipView,
    topic_purpose: Option<&Purpose>,
    now: u64,
    is_stored: impl Fn(&MemberId, &Purpose, u64) -> bool,
) -> Result<Checked, Rejection> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(Rejection::Oversized);
    }
    if view.is_expired(now) {
        return Err(Rejection::ListExpired);
    }
    let envelope = SingleSigned::decode(bytes, "notification", MAX_EVENT_BYTES)
        .map_err(|_| Rejection::Malformed)?;
    let (member, key) = view
        .active_member_by_key(&envelope.key, now)
        .ok_or(Rejection::UnknownSource)?;
    let notification: Notification =
        canonical::from_slice(&envelope.body, "notification").map_err(|_| Rejection::Malformed)?;
    if is_stored(
        &member.member_id,
        &notification.purpose,
        notification.sequence,
    ) {
        return Err(Rejection::Duplicate);
    }
    envelope
        .verify(Domain::Notification, key)
        .map_err(|_| Rejection::BadSignature)?;
    if notification.source != source_urn(&member.member_id) {
        return Err(Rejection::BadSignature);
    }
    if !member.has_purpose(&notification.purpose)
        || topic_purpose.is_some_and(|p| p != &notification.purpose)
    {
        return Err(Rejection::WrongPurpose);
    }
    let fields_ok = notification.sequence > 0
        && notification.specversion == SPEC_VERSION
        && type_ok(&notification.event_type)
        && subject_ok(&notification.subject)
        && notification.data.len() <= MAX_DATA_BYTES;
    if !fields_ok {
        return Err(Rejection::Malformed);
    }
    Ok(Checked {
        source: member.member_id.clone(),
        sequence: notification.sequence,
        purpose: notification.purpose,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bsn_like_subjects_are_refused() {
        assert!(looks_like_bsn("111222333"));
        assert!(looks_like_bsn("123456782"));
        assert!(!looks_like_bsn("123456789"));
        assert!(!looks_like_bsn("pseudo-1"));
        let err = check_subject("111222333").unwrap_err().to_string();
        assert!(!err.contains("111222333"), "{err}");
        assert!(check_subject("p-7f3a9c").is_ok());
    }

    #[test]
    fn types_are_reverse_dns() {
        assert!(type_ok("nl.samenonderhandbereik.melding.ontvangen"));
        for bad in ["melding", ".a.b", "a.b.", "Nl.x", "a b.c"] {
            assert!(!type_ok(bad), "{bad}");
        }
    }
}
