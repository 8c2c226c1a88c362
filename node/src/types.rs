//! Small domain values that several rooms name: a subject's pseudonym and the
//! id of one event stream.
//!
//! They live here, not in `store`, because they are words of the domain that
//! the store merely keeps; every room may use them. Calls `handbereik-keys`
//! for member ids and purposes.

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
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.source, self.purpose)
    }
}
