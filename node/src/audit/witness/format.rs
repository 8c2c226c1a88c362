//! The witness's signed and stored forms: the countersignature, the held
//! record and the alarm record, and the check of a checkpoint that arrives
//! by gossip (formats.md §11.6–§11.8).
//!
//! Calls `handbereik-keys` (envelopes, canonical CBOR) and `membership`
//! (whose key a checkpoint may carry).

use handbereik_keys::{
    Domain, MemberId, NodeKey, PublicKey, SignedEnvelope, SingleSigned, canonical,
};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use super::rule::Head;
use crate::audit::Checkpoint;
use crate::membership::MembershipView;
use crate::store::StoreError;

/// Largest signed checkpoint accepted, by gossip or from a witness.
pub const MAX_CHECKPOINT_BYTES: usize = 4096;
/// Largest countersignature accepted from a witness.
pub const MAX_COUNTERSIGNATURE_BYTES: usize = 4096;

/// The signed body of a countersignature (domain `handbereik/audit-witness/v1`):
/// witness `witness` held member `member`'s checkpoint of `seq` entries with
/// head `hash`, whose signed bytes have SHA-256 `checkpoint`, at `time`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Countersignature {
    /// The witness: the member that countersigns.
    pub witness: String,
    /// The member whose checkpoint it is.
    pub member: String,
    /// The checkpoint's sequence number.
    pub seq: u64,
    /// The checkpoint's head hash.
    #[serde(with = "serde_bytes")]
    pub hash: [u8; 32],
    /// SHA-256 of the signed checkpoint's bytes, exactly as held.
    #[serde(with = "serde_bytes")]
    pub checkpoint: [u8; 32],
    /// When the witness countersigned (seconds).
    pub time: u64,
}

/// What a witness stores per member (`w` ‖ member): the latest checkpoint
/// accepted and its countersignature, both as signed bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldRecord {
    /// The member's signed checkpoint, as it arrived.
    pub checkpoint: ByteBuf,
    /// This node's countersignature of it.
    pub countersignature: ByteBuf,
}

/// An alarm as stored (`a` ‖ member ‖ slot): the held checkpoint and the
/// one that did not extend it, both signed by the member: together, proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmRecord {
    /// The checkpoint held when the other arrived.
    pub held: ByteBuf,
    /// The checkpoint that did not extend it.
    pub offered: ByteBuf,
    /// When the alarm was raised (seconds).
    pub time: u64,
}

/// Why a gossiped checkpoint was refused: it is not what a member signed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// More than [`MAX_CHECKPOINT_BYTES`].
    #[error("a checkpoint of {0} bytes is more than the {MAX_CHECKPOINT_BYTES} allowed")]
    Oversized(usize),
    /// Not an envelope with exactly one signature, or a body that does not
    /// decode strictly.
    #[error("not a signed checkpoint: {0}")]
    Malformed(String),
    /// The signer key is not the current key of an active member.
    #[error("signed by key {0}, which is not the node key of an active member in the list held")]
    UnknownSigner(String),
    /// The signature does not verify.
    #[error("the signature by member {0} does not verify")]
    BadSignature(MemberId),
    /// The body names another member than the signer's.
    #[error("signed by member {signer} but names member {named} as its own")]
    WrongMember {
        /// Whose key signed.
        signer: MemberId,
        /// Whom the body names (an excerpt).
        named: String,
    },
}

impl Invalid {
    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Invalid::Oversized(_) => "oversized",
            Invalid::Malformed(_) => "malformed",
            Invalid::UnknownSigner(_) => "unknown_signer",
            Invalid::BadSignature(_) => "bad_signature",
            Invalid::WrongMember { .. } => "wrong_member",
        }
    }
}

/// A checkpoint that passed every check of the receiver.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The member that signed it.
    pub member: MemberId,
    /// The key that signed it (recorded with it, inside the bytes).
    pub key: PublicKey,
    /// Its head.
    pub head: Head,
    /// The signed bytes, exactly as they arrived.
    pub bytes: Vec<u8>,
}

/// Decodes the envelope cheaply (no signature check): for the first look on
/// the swarm task. Size first, then exactly one signature.
pub fn peek(bytes: &[u8]) -> Result<SingleSigned, Invalid> {
    if bytes.len() > MAX_CHECKPOINT_BYTES {
        return Err(Invalid::Oversized(bytes.len()));
    }
    SingleSigned::decode(bytes, "audit checkpoint", MAX_CHECKPOINT_BYTES)
        .map_err(|e| Invalid::Malformed(e.to_string()))
}

/// Every check of a gossiped checkpoint, in order: size, strict decoding,
/// exactly one signature, a signer key that is the current key of an
/// active (not revoked) member in `view`, the signature (`verify_strict`),
/// a body that decodes strictly and names that member. CPU work: call it
/// off the async workers.
pub fn check_offered(bytes: Vec<u8>, view: &MembershipView, now: u64) -> Result<Verified, Invalid> {
    let envelope = peek(&bytes)?;
    let unknown = || Invalid::UnknownSigner(hex::encode(envelope.key));
    let revoked = view
        .list()
        .is_some_and(|l| PublicKey::from_bytes(&envelope.key).is_ok_and(|k| l.list.is_revoked(&k)));
    if revoked {
        return Err(unknown());
    }
    let (member, verifying) = view
        .active_member_by_key(&envelope.key, now)
        .ok_or_else(unknown)?;
    let member_id = member.member_id.clone();
    let key = member.node_key;
    envelope
        .verify(Domain::AuditCheckpoint, verifying)
        .map_err(|_| Invalid::BadSignature(member_id.clone()))?;
    let body: Checkpoint = canonical::from_slice(&envelope.body, "audit checkpoint")
        .map_err(|e| Invalid::Malformed(e.to_string()))?;
    if body.member != member_id.as_str() {
        return Err(Invalid::WrongMember {
            signer: member_id,
            named: handbereik_keys::text::excerpt(&body.member),
        });
    }
    if body.seq == 0 {
        return Err(Invalid::Malformed(
            "a checkpoint of entry 0 (an empty log is never checkpointed)".into(),
        ));
    }
    Ok(Verified {
        member: member_id,
        key,
        head: Head {
            seq: body.seq,
            hash: body.hash,
        },
        bytes,
    })
}

/// Reads a checkpoint this node stored after checking it: its body and the
/// key recorded with it. No signature check (it was checked on arrival).
pub fn read_stored(bytes: &[u8]) -> Result<(Checkpoint, PublicKey), StoreError> {
    let damaged = || StoreError::Damaged {
        what: "witness record (a held checkpoint)",
    };
    let envelope = peek(bytes).map_err(|_| damaged())?;
    let key = PublicKey::from_bytes(&envelope.key).map_err(|_| damaged())?;
    let body = canonical::from_slice(&envelope.body, "audit checkpoint").map_err(|_| damaged())?;
    Ok((body, key))
}

/// SHA-256 of a signed checkpoint's bytes.
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Countersigns a checkpoint of `member` at `head` as `witness` with `key`.
pub fn countersign(
    key: &NodeKey,
    witness: &MemberId,
    member: &MemberId,
    head: Head,
    checkpoint: &[u8],
    now: u64,
) -> Result<Vec<u8>, handbereik_keys::KeysError> {
    let body = canonical::to_vec(
        &Countersignature {
            witness: witness.to_string(),
            member: member.to_string(),
            seq: head.seq,
            hash: head.hash,
            checkpoint: digest(checkpoint),
            time: now,
        },
        "audit countersignature",
    )?;
    SignedEnvelope::signed(Domain::AuditWitness, body, key).encode()
}

/// Encodes a record for the store.
pub fn encode<T: Serialize>(record: &T, what: &'static str) -> Result<Vec<u8>, StoreError> {
    canonical::to_vec(record, what).map_err(|e| StoreError::Build(Box::new(e)))
}

/// Decodes a stored record strictly.
pub fn decode<T: Serialize + serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, StoreError> {
    canonical::from_slice(bytes, what).map_err(|_| StoreError::Damaged { what })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    pub(crate) use crate::membership::test_lists::{member_id, view};
    use handbereik_keys::time;

    pub(crate) fn signed(key: &NodeKey, member: &MemberId, seq: u64, hash: u8) -> Vec<u8> {
        let body = canonical::to_vec(
            &Checkpoint {
                member: member.to_string(),
                seq,
                hash: [hash; 32],
                time: 1_700_000_000,
            },
            "audit checkpoint",
        )
        .unwrap();
        SignedEnvelope::signed(Domain::AuditCheckpoint, body, key)
            .encode()
            .unwrap()
    }

    #[test]
    fn a_members_checkpoint_passes_and_forgeries_do_not() {
        let a = NodeKey::from_seed([1; 32]);
        let b = NodeKey::from_seed([2; 32]);
        let stranger = NodeKey::from_seed([3; 32]);
        let view = view(&[(1, &a), (2, &b)]);
        let now = time::now();
        let ok = check_offered(signed(&a, &member_id(1), 7, 5), &view, now).unwrap();
        assert_eq!(ok.member, member_id(1));
        assert_eq!(ok.key, a.public_key());
        assert_eq!(
            ok.head,
            Head {
                seq: 7,
                hash: [5; 32]
            }
        );

        // Signed by a key that is no member's.
        let e = check_offered(signed(&stranger, &member_id(1), 7, 5), &view, now).unwrap_err();
        assert_eq!(e.label(), "unknown_signer");
        // Signed by another member's key, naming member 1.
        let e = check_offered(signed(&b, &member_id(1), 7, 5), &view, now).unwrap_err();
        assert_eq!(e.label(), "wrong_member");
        assert!(e.to_string().contains(member_id(2).as_str()), "{e}");
        // A signature that does not cover the body.
        let mut envelope: SignedEnvelope =
            canonical::from_slice(&signed(&a, &member_id(1), 7, 5), "x").unwrap();
        envelope.body = canonical::to_vec(
            &Checkpoint {
                member: member_id(1).to_string(),
                seq: 8,
                hash: [5; 32],
                time: 1_700_000_000,
            },
            "x",
        )
        .unwrap();
        let e = check_offered(envelope.encode().unwrap(), &view, now).unwrap_err();
        assert_eq!(e.label(), "bad_signature");
        // Two signatures.
        let mut two: SignedEnvelope =
            canonical::from_slice(&signed(&a, &member_id(1), 7, 5), "x").unwrap();
        two.signatures.push(two.signatures[0].clone());
        let e = check_offered(two.encode().unwrap(), &view, now).unwrap_err();
        assert_eq!(e.label(), "malformed");
        // Too large, and not CBOR at all.
        assert_eq!(
            check_offered(vec![0; MAX_CHECKPOINT_BYTES + 1], &view, now)
                .unwrap_err()
                .label(),
            "oversized"
        );
        assert_eq!(
            check_offered(b"not cbor".to_vec(), &view, now)
                .unwrap_err()
                .label(),
            "malformed"
        );
        // Signed in the wrong domain.
        let body = canonical::to_vec(
            &Checkpoint {
                member: member_id(1).to_string(),
                seq: 7,
                hash: [5; 32],
                time: 1,
            },
            "x",
        )
        .unwrap();
        let other = SignedEnvelope::signed(Domain::Notification, body, &a)
            .encode()
            .unwrap();
        assert_eq!(
            check_offered(other, &view, now).unwrap_err().label(),
            "bad_signature"
        );
    }

    #[test]
    fn a_countersignature_covers_the_checkpoint_bytes() {
        let w = NodeKey::from_seed([4; 32]);
        let a = NodeKey::from_seed([1; 32]);
        let checkpoint = signed(&a, &member_id(1), 3, 9);
        let head = Head {
            seq: 3,
            hash: [9; 32],
        };
        let bytes = countersign(&w, &member_id(4), &member_id(1), head, &checkpoint, 5).unwrap();
        let envelope = SignedEnvelope::decode(&bytes, "x", 4096).unwrap();
        envelope
            .verify_signed_by(Domain::AuditWitness, &w.public_key())
            .unwrap();
        let body: Countersignature = canonical::from_slice(&envelope.body, "x").unwrap();
        assert_eq!(body.checkpoint, digest(&checkpoint));
        assert_eq!((body.seq, body.hash, body.time), (3, [9; 32], 5));
        let (cp, key) = read_stored(&checkpoint).unwrap();
        assert_eq!((cp.seq, key), (3, a.public_key()));
    }

    #[test]
    fn what_a_witness_stores_per_member_stays_small() {
        // The figures formats.md gives (§11.7), for the largest values.
        let a = NodeKey::from_seed([1; 32]);
        let cp = signed(&a, &member_id(1), u64::MAX, 5);
        let head = Head {
            seq: u64::MAX,
            hash: [5; 32],
        };
        let cs = countersign(&a, &member_id(2), &member_id(1), head, &cp, u64::MAX).unwrap();
        let held = HeldRecord {
            checkpoint: ByteBuf::from(cp.clone()),
            countersignature: ByteBuf::from(cs.clone()),
        };
        let alarm = AlarmRecord {
            held: ByteBuf::from(cp.clone()),
            offered: ByteBuf::from(cp.clone()),
            time: u64::MAX,
        };
        assert!(cp.len() <= 224, "{}", cp.len());
        assert!(cs.len() <= 304, "{}", cs.len());
        assert!(encode(&held, "x").unwrap().len() <= 560);
        assert!(encode(&alarm, "x").unwrap().len() <= 480);
        assert_eq!(
            decode::<HeldRecord>(&encode(&held, "x").unwrap(), "x").unwrap(),
            held
        );
    }
}
