//! Small domain values that several rooms name: a subject's pseudonym and the
//! id of one event stream.
//!
//! They live here, not in `store` or `registry`, because they are words of
//! the domain that several rooms use (the store keeps them, `config`
//! validates category kinds); every room may use this module, and it uses
//! nothing of the node. Calls `handbereik-keys` for member ids and purposes.

use handbereik_keys::{MemberId, Purpose};

/// A subject's network pseudonym, raw (the keyed hash of a BSN; never the BSN).
pub type Pseudonym = [u8; 32];

/// One source's notifications for one purpose: sequence numbers are gap-free
/// per stream, so a member admitted for some purposes only sees no gaps.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    /// The source member.
    pub source: MemberId,
    /// The purpose.
    pub purpose: Purpose,
}

impl StreamId {
    /// The stream of `source` for `purpose`.
    pub fn new(source: MemberId, purpose: Purpose) -> Self {
        StreamId { source, purpose }
    }

    /// This node's local stream: what it announces to its own back office
    /// (an emergency disclosure, an audit alarm). Its events enter the node's
    /// own inbox, so a Subscribe sees them, and are never gossiped, synced or
    /// published by the back office.
    pub fn local(own: MemberId) -> Self {
        StreamId {
            source: own,
            purpose: Purpose::local(),
        }
    }

    /// Whether this is a local stream (of whichever node).
    pub fn is_local(&self) -> bool {
        self.purpose.is_local()
    }
}

/// Whether a category of the registration is that-information or substance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CategoryKind {
    /// dat-informatie: that the partner is involved, since when, who to contact.
    Dat,
    /// wat-informatie: the substance (a melding, a plan, an assessment).
    Wat,
}

impl CategoryKind {
    /// `dat` or `wat`.
    pub fn as_str(self) -> &'static str {
        match self {
            CategoryKind::Dat => "dat",
            CategoryKind::Wat => "wat",
        }
    }

    /// Parses `dat` or `wat`.
    pub fn parse(text: &str) -> Option<CategoryKind> {
        match text {
            "dat" => Some(CategoryKind::Dat),
            "wat" => Some(CategoryKind::Wat),
            _ => None,
        }
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.source, self.purpose)
    }
}
