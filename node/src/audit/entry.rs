//! One audit entry: its fields, its canonical encoding and its hash.
//!
//! An entry is canonical CBOR (one value, one byte string, as for signed
//! bodies), so that `audit verify` can recompute every hash from the stored
//! bytes alone. Its hash is SHA-256 over a domain prefix and those bytes, and
//! the next entry holds it in `prev`: changing any stored byte breaks the
//! chain at that entry. Calls `handbereik-keys` for the encoding.

use handbereik_keys::canonical;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The action of a network report's entries.
pub const REPORT_ACTION: &str = "report";

/// Domain separation of entry hashes.
const HASH_DOMAIN: &[u8] = b"handbereik/audit-entry/v1\0";

/// Which side of an inspection this node was on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Another member asked this node (this node is the source).
    Served,
    /// This node asked another member.
    Asked,
}

impl Direction {
    /// `served` or `asked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Served => "served",
            Direction::Asked => "asked",
        }
    }
}

/// What was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The policy allowed it (something may or may not have been held).
    Allowed,
    /// The policy or the member list refused it.
    Denied,
    /// Asking side: the source did not answer, or its answer failed checks.
    Unreachable,
}

impl Decision {
    /// `allowed`, `denied` or `unreachable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Denied => "denied",
            Decision::Unreachable => "unreachable",
        }
    }
}

/// The acting professional behind a request: who looked, in what role, for
/// whom. Opaque, pseudonymous ids of the asking member's back office; the
/// node never needs a name. Empty strings where none was given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The user's pseudonymous id.
    pub user: String,
    /// The role, from the network's role vocabulary (member list profile).
    pub role: String,
    /// The user on whose behalf they act, if any.
    pub on_behalf_of: String,
}

impl Actor {
    /// Whether nothing was given.
    pub fn is_empty(&self) -> bool {
        self.user.is_empty() && self.role.is_empty() && self.on_behalf_of.is_empty()
    }
}

/// What a caller logs; the log adds sequence, time and the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Served or asked.
    pub direction: Direction,
    /// The other member's id.
    pub peer: String,
    /// The purpose stated.
    pub purpose: String,
    /// The subject's pseudonym, hex.
    pub subject: String,
    /// `known` or `inspect`.
    pub action: String,
    /// Categories asked for.
    pub asked: Vec<String>,
    /// Categories given (with at least one record).
    pub given: Vec<String>,
    /// The decision.
    pub decision: Decision,
    /// The policies that made it.
    pub policies: Vec<String>,
    /// The request id both sides log.
    pub request_id: String,
    /// Who acted, in what role, for whom.
    pub actor: Actor,
    /// An emergency (break-glass) request: its stated reason.
    pub emergency: Option<String>,
    /// Served side: the asker's signed request as it arrived (empty when
    /// none was sent, or on the asking side).
    pub signed_request: Vec<u8>,
}

/// An entry as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Its place in the chain, from 1.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Served or asked.
    pub direction: Direction,
    /// The other member.
    pub peer: String,
    /// The purpose.
    pub purpose: String,
    /// The subject's pseudonym, hex.
    pub subject: String,
    /// `known` or `inspect`.
    pub action: String,
    /// Categories asked for.
    pub asked: Vec<String>,
    /// Categories given.
    pub given: Vec<String>,
    /// The decision.
    pub decision: Decision,
    /// The policies that made it.
    pub policies: Vec<String>,
    /// The request id.
    pub request_id: String,
    /// The hash of the previous entry (zeroes for the first).
    #[serde(with = "serde_bytes")]
    pub prev: [u8; 32],
    /// Who acted (user, role, on behalf of); left out when none was given,
    /// so entries written before it keep their bytes and hashes.
    #[serde(default, skip_serializing_if = "Actor::is_empty")]
    pub actor: Actor,
    /// The reason of an emergency (break-glass) request; left out otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency: Option<String>,
    /// Served side: the asking node's signed request (the proof of who asked
    /// in which role); left out when empty.
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
    pub signed_request: Vec<u8>,
}

impl AuditEntry {
    /// Makes the entry at `seq` after `prev`.
    pub fn new(record: Record, seq: u64, time_ms: u64, prev: [u8; 32]) -> Self {
        AuditEntry {
            seq,
            time_ms,
            direction: record.direction,
            peer: record.peer,
            purpose: record.purpose,
            subject: record.subject,
            action: record.action,
            asked: record.asked,
            given: record.given,
            decision: record.decision,
            policies: record.policies,
            request_id: record.request_id,
            prev,
            actor: record.actor,
            emergency: record.emergency,
            signed_request: record.signed_request,
        }
    }

    /// The canonical bytes.
    pub fn encode(&self) -> Result<Vec<u8>> {
        Ok(canonical::to_vec(self, "audit entry")?)
    }

    /// Decodes stored bytes, refusing any but the canonical form.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        canonical::from_slice(bytes, "audit entry").map_err(|_| {
            Error::Store(crate::store::StoreError::Damaged {
                what: "audit entry",
            })
        })
    }

    /// Whether the entry records a disclosure: served, allowed, and at least
    /// one category given (an allowed question about a subject the source
    /// does not hold gives nothing about it).
    pub fn is_disclosure(&self) -> bool {
        self.direction == Direction::Served && self.gave_something()
    }

    /// Whether the entry records what this node obtained: asked, allowed,
    /// and the source gave at least one category.
    pub fn is_obtained(&self) -> bool {
        self.direction == Direction::Asked && self.gave_something()
    }

    /// Allowed with something given, in a question about the subject's data
    /// (not a report on the audit log itself, which is logged too but is
    /// not a disclosure of the registration).
    fn gave_something(&self) -> bool {
        self.decision == Decision::Allowed && !self.given.is_empty() && self.action != REPORT_ACTION
    }

    /// Whether it was an emergency (break-glass) request.
    pub fn is_emergency(&self) -> bool {
        self.emergency.is_some()
    }
}

/// The hash of an entry's stored bytes.
pub fn hash(bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(HASH_DOMAIN);
    h.update(bytes);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn record(subject: &str) -> Record {
        Record {
            direction: Direction::Served,
            peer: "00000001001234567000".into(),
            purpose: "jeugdbescherming".into(),
            subject: subject.into(),
            action: "inspect".into(),
            asked: vec!["melding".into(), "plan".into()],
            given: vec!["melding".into()],
            decision: Decision::Allowed,
            policies: vec!["afnemer-melding".into()],
            request_id: "r1".into(),
            actor: Actor::default(),
            emergency: None,
            signed_request: Vec::new(),
        }
    }

    #[test]
    fn entries_round_trip_and_hash_every_byte() {
        let e = AuditEntry::new(record("ab"), 7, 1_700_000_000_000, [3; 32]);
        let bytes = e.encode().unwrap();
        assert_eq!(AuditEntry::decode(&bytes).unwrap(), e);
        let h = hash(&bytes);
        for i in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[i] ^= 1;
            assert_ne!(hash(&changed), h);
        }
    }
}
