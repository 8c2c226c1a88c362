//! The signed envelope `{ body, signatures }` and its domain separation.
//!
//! Owns how any signed object travels: `body` is the canonical CBOR of the
//! object, and each signature covers `prefix || body`, where the prefix names
//! the kind of object, so that a signature made for one kind can never be
//! replayed as another. Receivers verify the exact bytes that arrived and
//! decode the body only afterwards. Calls `canonical` and `ed25519-dalek`.

use std::collections::BTreeSet;

use ed25519_dalek::Signature as DalekSignature;
use serde::{Deserialize, Serialize};

use crate::bytes::{PublicKey, SignatureBytes, byte_string};
use crate::canonical;
use crate::error::{KeysError, Result};
use crate::node_key::NodeKey;

/// The kinds of signed object; each has its own signing prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// The member list that governance signs.
    MemberList,
    /// A partner's request to be admitted, signed by its node key.
    MembershipRequest,
    /// A notification (CloudEvent) signed by its source node.
    Notification,
    /// An answer to an inspection, signed by the source node.
    InspectionResponse,
    /// A checkpoint of a node's audit chain head.
    AuditCheckpoint,
    /// A question to another member (Known, Inspect, Report), signed by the
    /// asking node with the acting professional in it.
    InspectionRequest,
    /// A member's answer to a citizen's report across the network.
    AuditReport,
    /// A witness's countersignature of another member's audit checkpoint.
    AuditWitness,
}

impl Domain {
    /// The prefix that every signature of this kind covers, NUL-terminated.
    pub fn prefix(self) -> &'static [u8] {
        match self {
            Domain::MemberList => b"handbereik/member-list/v1\0",
            Domain::MembershipRequest => b"handbereik/membership-request/v1\0",
            Domain::Notification => b"handbereik/notification/v1\0",
            Domain::InspectionResponse => b"handbereik/inspection-response/v1\0",
            Domain::AuditCheckpoint => b"handbereik/audit-checkpoint/v1\0",
            Domain::InspectionRequest => b"handbereik/inspection-request/v1\0",
            Domain::AuditReport => b"handbereik/audit-report/v1\0",
            Domain::AuditWitness => b"handbereik/audit-witness/v1\0",
        }
    }

    /// The name used in messages.
    pub fn what(self) -> &'static str {
        match self {
            Domain::MemberList => "member list",
            Domain::MembershipRequest => "membership request",
            Domain::Notification => "notification",
            Domain::InspectionResponse => "inspection response",
            Domain::AuditCheckpoint => "audit checkpoint",
            Domain::InspectionRequest => "inspection request",
            Domain::AuditReport => "audit report",
            Domain::AuditWitness => "audit witness",
        }
    }

    /// The message that is signed: the prefix followed by the body.
    pub fn message(self, body: &[u8]) -> Vec<u8> {
        let prefix = self.prefix();
        let mut message = Vec::with_capacity(prefix.len() + body.len());
        message.extend_from_slice(prefix);
        message.extend_from_slice(body);
        message
    }
}

/// From this body size on, signatures by distinct keys are checked in
/// parallel: hashing the body is then most of a check (about 12 ms for 7 MB).
const PARALLEL_BODY: usize = 256 * 1024;

/// One signature in an envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// The signing key.
    pub key: PublicKey,
    /// The ed25519 signature over `prefix || body`.
    pub sig: SignatureBytes,
}

/// A signed object as it travels and is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedEnvelope {
    /// The canonical CBOR of the object.
    #[serde(with = "byte_string")]
    pub body: Vec<u8>,
    /// Signatures over `prefix || body`.
    pub signatures: Vec<Signature>,
}

impl SignedEnvelope {
    /// An envelope with one signature by `key`.
    pub fn signed(domain: Domain, body: Vec<u8>, key: &NodeKey) -> Self {
        let sig = key.sign(domain, &body);
        SignedEnvelope {
            body,
            signatures: vec![Signature {
                key: key.public_key(),
                sig,
            }],
        }
    }

    /// The canonical encoding of the envelope.
    pub fn encode(&self) -> Result<Vec<u8>> {
        canonical::to_vec(self, "signed envelope")
    }

    /// Decodes an envelope, refusing more than `limit` bytes.
    pub fn decode(bytes: &[u8], what: &'static str, limit: usize) -> Result<Self> {
        within_limit(bytes, what, limit)?;
        canonical::from_slice(bytes, what)
    }

    /// Checks one signature with `verify_strict` (no malleable or small-order forms).
    pub fn check(&self, domain: Domain, signature: &Signature) -> Result<()> {
        verify_strict(
            domain,
            &self.body,
            &signature.key.verifying_key()?,
            &signature.sig,
        )
    }

    /// The distinct keys among `allowed` whose signatures verify, and how many
    /// signatures by keys in `allowed` did not verify.
    ///
    /// Signatures are taken in order; one by a key that verified already is
    /// skipped. The first signature by each allowed key is always checked, so
    /// over a large body (a list of thousands of members) those are checked
    /// at once over the cores: the same checks and the same answer, sooner.
    pub fn valid_signers(
        &self,
        domain: Domain,
        allowed: &BTreeSet<PublicKey>,
    ) -> (BTreeSet<PublicKey>, usize) {
        let mut seen = BTreeSet::new();
        let firsts: Vec<usize> = (0..self.signatures.len())
            .filter(|&i| {
                let key = self.signatures[i].key;
                allowed.contains(&key) && seen.insert(key)
            })
            .collect();
        let mut checked: Vec<Option<bool>> = vec![None; self.signatures.len()];
        if self.body.len() >= PARALLEL_BODY && firsts.len() > 1 {
            let results = crate::parallel::map_chunks(&firsts, 1, |chunk| {
                chunk
                    .iter()
                    .map(|&i| (i, self.check(domain, &self.signatures[i]).is_ok()))
                    .collect::<Vec<_>>()
            });
            for (i, ok) in results.into_iter().flatten() {
                checked[i] = Some(ok);
            }
        }
        let mut valid = BTreeSet::new();
        let mut invalid = 0;
        for (i, signature) in self.signatures.iter().enumerate() {
            if !allowed.contains(&signature.key) || valid.contains(&signature.key) {
                continue;
            }
            let ok = checked[i].unwrap_or_else(|| self.check(domain, signature).is_ok());
            if ok {
                valid.insert(signature.key);
            } else {
                invalid += 1;
            }
        }
        (valid, invalid)
    }

    /// Checks that `key` signed the body; returns the error of its signature
    /// if it did so badly, or a `BadSignature` if it did not sign at all.
    pub fn verify_signed_by(&self, domain: Domain, key: &PublicKey) -> Result<()> {
        let mut found = None;
        for signature in self.signatures.iter().filter(|s| &s.key == key) {
            match self.check(domain, signature) {
                Ok(()) => return Ok(()),
                Err(e) => found = Some(e),
            }
        }
        Err(found.unwrap_or(KeysError::BadSignature {
            what: domain.what(),
            key: key.to_hex(),
        }))
    }
}

/// An envelope with exactly one signature whose key is kept as raw bytes: for
/// hot paths where the caller looks the key up among keys it already trusts
/// (and has decoded once), instead of decoding the point for every message.
/// Same bytes on the wire as [`SignedEnvelope`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SingleSigned {
    /// The canonical CBOR of the object.
    pub body: Vec<u8>,
    /// The signing key, as it arrived (not checked as a point).
    pub key: [u8; 32],
    /// The signature.
    pub sig: SignatureBytes,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvelope {
    #[serde(with = "byte_string")]
    body: Vec<u8>,
    signatures: Vec<RawSignature>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignature {
    #[serde(with = "byte_string")]
    key: Vec<u8>,
    sig: SignatureBytes,
}

impl SingleSigned {
    /// Decodes an envelope that must carry exactly one signature.
    pub fn decode(bytes: &[u8], what: &'static str, limit: usize) -> Result<Self> {
        within_limit(bytes, what, limit)?;
        let raw: RawEnvelope = canonical::from_slice(bytes, what)?;
        let [signature] = <[RawSignature; 1]>::try_from(raw.signatures).map_err(|s| {
            KeysError::field(
                "signatures",
                format!(
                    "a {what} carries exactly one signature, this one has {}",
                    s.len()
                ),
            )
        })?;
        let key: [u8; 32] =
            signature
                .key
                .as_slice()
                .try_into()
                .map_err(|_| KeysError::WrongLength {
                    what: "an ed25519 public key",
                    expected: 32,
                    found: signature.key.len(),
                })?;
        Ok(SingleSigned {
            body: raw.body,
            key,
            sig: signature.sig,
        })
    }

    /// Checks the signature with `verify_strict` against `key`, which the
    /// caller found for [`SingleSigned::key`] among the keys it trusts.
    pub fn verify(&self, domain: Domain, key: &ed25519_dalek::VerifyingKey) -> Result<()> {
        if key.as_bytes() != &self.key {
            return Err(KeysError::BadSignature {
                what: domain.what(),
                key: hex::encode(self.key),
            });
        }
        verify_strict(domain, &self.body, key, &self.sig)
    }
}

fn within_limit(bytes: &[u8], what: &'static str, limit: usize) -> Result<()> {
    if bytes.len() > limit {
        return Err(KeysError::TooLarge {
            what,
            size: bytes.len(),
            limit,
        });
    }
    Ok(())
}

/// `verify_strict` over `prefix || body`: no malleable or small-order forms.
fn verify_strict(
    domain: Domain,
    body: &[u8],
    key: &ed25519_dalek::VerifyingKey,
    sig: &SignatureBytes,
) -> Result<()> {
    key.verify_strict(&domain.message(body), &DalekSignature::from_bytes(&sig.0))
        .map_err(|_| KeysError::BadSignature {
            what: domain.what(),
            key: hex::encode(key.as_bytes()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> NodeKey {
        NodeKey::from_seed([n; 32])
    }

    #[test]
    fn signature_verifies_only_for_its_domain_and_body() {
        let env = SignedEnvelope::signed(Domain::MemberList, b"body".to_vec(), &key(1));
        let k = key(1).public_key();
        env.verify_signed_by(Domain::MemberList, &k).unwrap();
        assert!(env.verify_signed_by(Domain::Notification, &k).is_err());
        let mut tampered = env.clone();
        tampered.body[0] ^= 1;
        assert!(tampered.verify_signed_by(Domain::MemberList, &k).is_err());
        assert!(
            env.verify_signed_by(Domain::MemberList, &key(2).public_key())
                .is_err()
        );
    }

    #[test]
    fn prefixes_are_distinct_and_nul_terminated() {
        let all = [
            Domain::MemberList,
            Domain::MembershipRequest,
            Domain::Notification,
            Domain::InspectionResponse,
            Domain::AuditCheckpoint,
        ];
        let set: BTreeSet<_> = all.iter().map(|d| d.prefix()).collect();
        assert_eq!(set.len(), all.len());
        assert!(all.iter().all(|d| d.prefix().ends_with(b"/v1\0")));
    }

    #[test]
    fn same_key_twice_counts_once() {
        let mut env = SignedEnvelope::signed(Domain::MemberList, b"body".to_vec(), &key(1));
        env.signatures.push(env.signatures[0].clone());
        let allowed = BTreeSet::from([key(1).public_key(), key(2).public_key()]);
        let (valid, invalid) = env.valid_signers(Domain::MemberList, &allowed);
        assert_eq!(valid.len(), 1);
        assert_eq!(invalid, 0);
    }

    #[test]
    fn single_signed_reads_the_same_bytes() {
        let env = SignedEnvelope::signed(Domain::Notification, b"body".to_vec(), &key(1));
        let bytes = env.encode().unwrap();
        let single = SingleSigned::decode(&bytes, "n", 1 << 20).unwrap();
        assert_eq!(single.body, b"body");
        let vk = key(1).public_key().verifying_key().unwrap();
        single.verify(Domain::Notification, &vk).unwrap();
        assert!(single.verify(Domain::MemberList, &vk).is_err());
        let other = key(2).public_key().verifying_key().unwrap();
        assert!(single.verify(Domain::Notification, &other).is_err());
        let mut two = env.clone();
        two.signatures.push(two.signatures[0].clone());
        assert!(SingleSigned::decode(&two.encode().unwrap(), "n", 1 << 20).is_err());
    }

    #[test]
    fn encode_decode_round_trip_and_limit() {
        let env = SignedEnvelope::signed(Domain::MemberList, b"body".to_vec(), &key(1));
        let bytes = env.encode().unwrap();
        assert_eq!(SignedEnvelope::decode(&bytes, "x", 1 << 20).unwrap(), env);
        assert!(matches!(
            SignedEnvelope::decode(&bytes, "x", 10),
            Err(KeysError::TooLarge { .. })
        ));
    }
}
