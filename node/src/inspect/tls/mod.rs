//! Mutual TLS between members on the peer API: the node's identity, the
//! verifiers and configurations, the accepting side and the dialing side.
//!
//! - [`identity`]: the self-signed certificate made from the node key, and the
//!   check of a peer's certificate;
//! - [`verify`]: who is on the other end (the ed25519 key in its certificate,
//!   never a CA), TLS 1.3 configurations for both sides;
//! - [`accept`]: the listener's accept loop, which keeps idle and slow
//!   strangers from holding the handshake slots that members need;
//! - [`dial`]: a channel to another member.
//!
//! Calls `handbereik-keys` for keys and ids, and an [`Admission`] given by the
//! caller for whether a key is a member right now; knows nothing of the
//! member list itself.

mod accept;
mod dial;
mod identity;
mod verify;

use std::fmt;

use handbereik_keys::{MemberId, PublicKey};

pub use accept::{AcceptLimits, OnRefused, PeerInfo, PeerStream, incoming};
pub use dial::channel;
pub use identity::{TlsIdentity, identity_of_certificate};
pub use verify::{client_config, server_config};

/// The only application protocol spoken on the peer listener.
const ALPN_H2: &[u8] = b"h2";

/// Who a peer is, as established at the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The ed25519 key in the peer's certificate.
    pub key: PublicKey,
    /// The member that key belongs to, as [`Admission`] said at the handshake.
    pub member_id: MemberId,
}

/// Decides, at each handshake, whether a key may connect and which member it is.
///
/// Implemented by the caller on top of the current member list (active, not in
/// maintenance, not revoked). `claimed` is the certificate's common name.
pub trait Admission: Send + Sync + fmt::Debug + 'static {
    /// The member `key` belongs to, or why it may not connect.
    fn admit(&self, key: &PublicKey, claimed: &str) -> std::result::Result<MemberId, String>;
}

#[cfg(test)]
mod tests;
