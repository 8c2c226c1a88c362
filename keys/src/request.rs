//! The membership request: what a partner asks governance to admit.
//!
//! Owns the request type, its signing by the node key (proof of possession:
//! only the holder of the private key can make a request naming its public
//! key) and its verification. Calls `envelope`, `canonical` and `profile`.

use serde::{Deserialize, Serialize};

use crate::bytes::PublicKey;
use crate::canonical;
use crate::envelope::{Domain, SignedEnvelope};
use crate::error::{KeysError, Result};
use crate::ids::{MemberId, Purpose, Role, normalized};
use crate::node_key::NodeKey;
use crate::profile;

/// A request is a few hundred bytes; this bounds what is read from outside.
pub const REQUEST_LIMIT: usize = 64 * 1024;

/// What a partner asks to be admitted as.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipRequest {
    /// The partner's OIN.
    pub member_id: MemberId,
    /// The partner's name, as shown to other members.
    pub name: String,
    /// The roles asked for.
    pub roles: Vec<Role>,
    /// The purposes (doelbinding) asked for.
    pub purposes: Vec<Purpose>,
    /// libp2p multiaddresses at which the node can be reached.
    pub p2p_addresses: Vec<String>,
    /// `host:port` of the node's peer gRPC listener.
    pub grpc_endpoint: String,
    /// The node's ed25519 public key.
    pub node_key: PublicKey,
    /// When the request was made, seconds since the Unix epoch.
    pub created_at: u64,
}

impl MembershipRequest {
    /// Sorts the roles and purposes and checks every field.
    pub fn normalize_and_check(mut self) -> Result<Self> {
        self.roles = normalized(self.roles);
        self.purposes = normalized(self.purposes);
        self.check()?;
        Ok(self)
    }

    /// Checks every field of a request as it arrived (lists must be sorted,
    /// `created_at` at or before 9999-12-31T23:59:59Z).
    pub fn check(&self) -> Result<()> {
        profile::check(
            &self.name,
            &self.roles,
            &self.purposes,
            &self.p2p_addresses,
            &self.grpc_endpoint,
        )?;
        KeysError::check_time("created_at", self.created_at)
    }

    /// Signs the request with the node key it names; returns the envelope bytes.
    pub fn sign(&self, key: &NodeKey) -> Result<Vec<u8>> {
        if key.public_key() != self.node_key {
            return Err(KeysError::field(
                "node_key",
                "the request must be signed by the node key it names",
            ));
        }
        let body = canonical::to_vec(self, "membership request")?;
        SignedEnvelope::signed(Domain::MembershipRequest, body, key).encode()
    }

    /// Verifies a signed request: exactly one signature, checked over the
    /// bytes as they arrived, before the body is decoded; then the body must
    /// name that same key, and every field must pass.
    pub fn verify(bytes: &[u8]) -> Result<Self> {
        let envelope = SignedEnvelope::decode(bytes, "membership request", REQUEST_LIMIT)?;
        let [signature] = envelope.signatures.as_slice() else {
            return Err(KeysError::field(
                "signatures",
                format!(
                    "a membership request carries exactly one signature, this one has {}",
                    envelope.signatures.len()
                ),
            ));
        };
        // Checked before the body is decoded; the error is the envelope's own
        // "the signature by KEY on this membership request does not verify".
        envelope.check(Domain::MembershipRequest, signature)?;
        let request: MembershipRequest =
            canonical::from_slice(&envelope.body, "membership request")?;
        if signature.key != request.node_key {
            return Err(KeysError::RequestNotSelfSigned {
                key: request.node_key.to_hex(),
            });
        }
        request.check()?;
        Ok(request)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn request_for(key: &NodeKey, oin: &str) -> MembershipRequest {
        MembershipRequest {
            member_id: MemberId::parse(oin).unwrap(),
            name: "Gemeente Voorbeeld".into(),
            roles: vec![Role::Afnemer, Role::Bronhouder],
            purposes: vec![Purpose::parse("jeugdbescherming").unwrap()],
            p2p_addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            grpc_endpoint: "127.0.0.1:7443".into(),
            node_key: key.public_key(),
            created_at: 1_700_000_000,
        }
        .normalize_and_check()
        .unwrap()
    }

    #[test]
    fn signed_request_verifies() {
        let key = NodeKey::from_seed([7; 32]);
        let request = request_for(&key, "00000001234567890000");
        let bytes = request.sign(&key).unwrap();
        assert_eq!(MembershipRequest::verify(&bytes).unwrap(), request);
    }

    #[test]
    fn request_signed_by_another_key_is_refused() {
        let key = NodeKey::from_seed([7; 32]);
        let other = NodeKey::from_seed([8; 32]);
        let request = request_for(&key, "00000001234567890000");
        assert!(request.sign(&other).is_err());
        // Forge: the request names `key` but `other` signs it.
        let body = canonical::to_vec(&request, "membership request").unwrap();
        let forged = SignedEnvelope::signed(Domain::MembershipRequest, body, &other)
            .encode()
            .unwrap();
        let err = MembershipRequest::verify(&forged).unwrap_err();
        assert!(
            matches!(err, KeysError::RequestNotSelfSigned { .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains(&key.public_key().to_hex()),
            "{err}"
        );
    }

    #[test]
    fn tampered_request_is_refused() {
        let key = NodeKey::from_seed([7; 32]);
        let mut envelope = SignedEnvelope::decode(
            &request_for(&key, "00000001234567890000")
                .sign(&key)
                .unwrap(),
            "r",
            REQUEST_LIMIT,
        )
        .unwrap();
        let mut request: MembershipRequest = canonical::from_slice(&envelope.body, "r").unwrap();
        request.name = "Someone Else".into();
        envelope.body = canonical::to_vec(&request, "r").unwrap();
        let err = MembershipRequest::verify(&envelope.encode().unwrap()).unwrap_err();
        assert!(matches!(err, KeysError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn a_list_signature_is_not_a_request_signature() {
        let key = NodeKey::from_seed([7; 32]);
        let body = canonical::to_vec(&request_for(&key, "00000001234567890000"), "r").unwrap();
        let cross = SignedEnvelope::signed(Domain::MemberList, body, &key)
            .encode()
            .unwrap();
        assert!(MembershipRequest::verify(&cross).is_err());
    }

    #[test]
    fn garbage_and_truncation_are_refused() {
        let key = NodeKey::from_seed([7; 32]);
        let bytes = request_for(&key, "00000001234567890000")
            .sign(&key)
            .unwrap();
        assert!(matches!(
            MembershipRequest::verify(&bytes[..bytes.len() / 2]),
            Err(KeysError::Decode { .. })
        ));
        assert!(MembershipRequest::verify(b"-----BEGIN PRIVATE KEY-----").is_err());
    }
}
