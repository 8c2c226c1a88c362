//! Keys and trust for a handbereik network.
//!
//! This crate owns everything that decides whom a node trusts, and nothing
//! that does I/O over a network:
//!
//! - [`NodeKey`]: a node's (or a governance holder's) ed25519 key file,
//!   created with mode 0600 and refused when others can read it;
//! - [`MembershipRequest`]: what a partner asks governance to admit, signed by
//!   its node key as proof of possession;
//! - [`MemberList`]: the list governance signs, its canonical CBOR encoding
//!   ([`canonical`]) and the signed envelope ([`SignedEnvelope`]) with one
//!   domain-separation prefix per kind of object ([`Domain`]);
//! - [`verify_member_list`] and [`TrustState`]: k-of-n verification against an
//!   [`Anchor`], replay and expiry checks, governance key rotation;
//! - [`Draft`]: the governance workflow behind the `handbereik-keys` CLI.
//!
//! The wire formats are written down in `docs/formats.md`.

#![deny(missing_docs)]

mod bytes;
pub mod canonical;
pub mod cli_edge;
mod draft;
mod envelope;
mod error;
pub mod files;
mod ids;
mod member_list;
mod node_key;
mod parallel;
pub mod profile;
mod request;
pub mod text;
pub mod time;
mod verify;

pub use bytes::{PublicKey, SignatureBytes};
pub use draft::{Admission, DRAFT_FORMAT, Draft, SignOutcome};
pub use envelope::{Domain, Signature, SignedEnvelope, SingleSigned};
pub use error::{KeysError, Result};
pub use ids::{ActorRole, MemberId, Purpose, Role, is_name};
pub use member_list::{
    GovernanceSet, LIST_LIMIT, MAX_ACTOR_ROLES, MAX_GOVERNANCE_KEYS, Member, MemberList,
    NetworkProfile, Revocation, check_network,
};
pub use node_key::{NodeKey, parse_public_key_arg, write_public_key};
pub use request::{MembershipRequest, REQUEST_LIMIT};
pub use verify::{
    Anchor, CLOCK_SKEW_SECS, TrustState, VerifiedMemberList, verify_member_list, verify_signatures,
};
