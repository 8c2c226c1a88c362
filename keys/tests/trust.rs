//! The trust rules of DESIGN section 3, each with the bad input that breaks it.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use handbereik_keys::{
    Anchor, CLOCK_SKEW_SECS, Domain, Draft, GovernanceSet, KeysError, MemberList, Purpose,
    SignOutcome, Signature, SignedEnvelope, TrustState, canonical, verify_member_list,
};

fn anchor() -> Anchor {
    Anchor::new(
        [
            gov(1).public_key(),
            gov(2).public_key(),
            gov(3).public_key(),
        ],
        2,
    )
    .unwrap()
}

fn envelope(bytes: &[u8]) -> SignedEnvelope {
    SignedEnvelope::decode(bytes, "list", 1 << 20).unwrap()
}

#[test]
fn two_of_three_verifies() {
    let published = publish(first_draft(), &[1, 3]);
    let verified = verify_member_list(&published.signed_bytes, &anchor(), None, NOW).unwrap();
    assert_eq!(verified.list.members.len(), 2);
    assert_eq!(verified.signers.len(), 2);
}

#[test]
fn tampered_body_is_refused() {
    let published = publish(first_draft(), &[1, 2]);
    let mut env = envelope(&published.signed_bytes);
    let mut list: MemberList = canonical::from_slice(&env.body, "list").unwrap();
    list.members[0]
        .purposes
        .push(Purpose::parse("zzz-everything").unwrap());
    env.body = canonical::to_vec(&list, "list").unwrap();
    let err = verify_member_list(&env.encode().unwrap(), &anchor(), None, NOW).unwrap_err();
    assert!(
        matches!(
            err,
            KeysError::NotEnoughSignatures {
                valid: 0,
                required: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("altered"), "{err}");
}

#[test]
fn k_minus_one_signatures_are_refused() {
    let mut draft = first_draft();
    draft.sign(&gov(2)).unwrap();
    let err = draft.publish(NOW).unwrap_err();
    assert!(
        matches!(
            err,
            KeysError::NotEnoughSignatures {
                valid: 1,
                required: 2,
                ..
            }
        ),
        "{err}"
    );
    // Also when someone assembles the envelope by hand and skips `publish`.
    let env = SignedEnvelope {
        body: draft.body().unwrap(),
        signatures: draft.signatures.clone(),
    };
    let err = verify_member_list(&env.encode().unwrap(), &anchor(), None, NOW).unwrap_err();
    assert!(
        matches!(err, KeysError::NotEnoughSignatures { valid: 1, .. }),
        "{err}"
    );
}

#[test]
fn the_same_key_twice_counts_once() {
    let mut draft = first_draft();
    draft.sign(&gov(1)).unwrap();
    let sig = draft.signatures[0].clone();
    let env = SignedEnvelope {
        body: draft.body().unwrap(),
        signatures: vec![sig.clone(), sig],
    };
    let err = verify_member_list(&env.encode().unwrap(), &anchor(), None, NOW).unwrap_err();
    assert!(
        matches!(err, KeysError::NotEnoughSignatures { valid: 1, .. }),
        "{err}"
    );
}

#[test]
fn signatures_by_keys_outside_the_anchor_do_not_count() {
    let mut draft = first_draft();
    draft.sign(&gov(1)).unwrap();
    let body = draft.body().unwrap();
    let outsider = gov(9);
    let mut signatures = draft.signatures.clone();
    signatures.push(Signature {
        key: outsider.public_key(),
        sig: outsider.sign(Domain::MemberList, &body),
    });
    let env = SignedEnvelope { body, signatures };
    let err = verify_member_list(&env.encode().unwrap(), &anchor(), None, NOW).unwrap_err();
    assert!(
        matches!(err, KeysError::NotEnoughSignatures { valid: 1, .. }),
        "{err}"
    );
}

#[test]
fn a_signature_for_another_domain_does_not_count() {
    let draft = first_draft();
    let body = draft.body().unwrap();
    let signatures = [1u8, 2]
        .iter()
        .map(|n| Signature {
            key: gov(*n).public_key(),
            sig: gov(*n).sign(Domain::Notification, &body),
        })
        .collect();
    let env = SignedEnvelope { body, signatures };
    let err = verify_member_list(&env.encode().unwrap(), &anchor(), None, NOW).unwrap_err();
    assert!(
        matches!(err, KeysError::NotEnoughSignatures { valid: 0, .. }),
        "{err}"
    );
}

#[test]
fn older_or_equal_version_is_a_replay() {
    let v1 = publish(first_draft(), &[1, 2]);
    let v2 = publish(
        Draft::continue_from(&v1.list, 30 * DAY, NOW).unwrap(),
        &[1, 2],
    );
    assert_eq!(v2.list.version, 2);
    let err = verify_member_list(&v1.signed_bytes, &anchor(), Some(2), NOW).unwrap_err();
    assert!(
        matches!(err, KeysError::NotNewer { got: 1, held: 2 }),
        "{err}"
    );
    let err = verify_member_list(&v2.signed_bytes, &anchor(), Some(2), NOW).unwrap_err();
    assert!(
        matches!(err, KeysError::NotNewer { got: 2, held: 2 }),
        "{err}"
    );

    let mut state = TrustState::new("demo", anchor());
    state.accept(&v2.signed_bytes, NOW).unwrap();
    let err = state.accept(&v1.signed_bytes, NOW).unwrap_err();
    assert!(matches!(err, KeysError::NotNewer { .. }), "{err}");
    assert_eq!(state.current().unwrap().list.version, 2);
}

#[test]
fn expired_and_not_yet_valid_lists_are_refused() {
    let published = publish(first_draft(), &[1, 2]);
    let expires = published.list.expires_at;
    assert!(verify_member_list(&published.signed_bytes, &anchor(), None, expires - 1).is_ok());
    let err = verify_member_list(&published.signed_bytes, &anchor(), None, expires).unwrap_err();
    assert!(matches!(err, KeysError::Expired { .. }), "{err}");
    let early = NOW - CLOCK_SKEW_SECS - 1;
    let err = verify_member_list(&published.signed_bytes, &anchor(), None, early).unwrap_err();
    assert!(matches!(err, KeysError::NotYetValid { .. }), "{err}");
    assert!(
        verify_member_list(
            &published.signed_bytes,
            &anchor(),
            None,
            NOW - CLOCK_SKEW_SECS
        )
        .is_ok()
    );
}

#[test]
fn a_list_for_another_network_is_refused() {
    let published = publish(first_draft(), &[1, 2]);
    let mut state = TrustState::new("other-network", anchor());
    let err = state.accept(&published.signed_bytes, NOW).unwrap_err();
    assert!(matches!(err, KeysError::WrongNetwork { .. }), "{err}");
    assert!(state.current().is_none());
}

#[test]
fn governance_keys_rotate_through_the_next_key_set() {
    let v1 = publish(first_draft(), &[1, 2]);
    // v2 is signed by the current set and names keys 4, 5 for what follows.
    let mut draft = Draft::continue_from(&v1.list, 30 * DAY, NOW).unwrap();
    let next = GovernanceSet::new(vec![gov(4).public_key(), gov(5).public_key()], 2).unwrap();
    draft.set_next_governance(next, NOW).unwrap();
    let v2 = publish(draft, &[2, 3]);
    // v3 must be signed by 4 and 5; the old keys can no longer sign it.
    let draft = Draft::continue_from(&v2.list, 30 * DAY, NOW).unwrap();
    assert!(matches!(
        draft.clone().sign(&gov(1)),
        Err(KeysError::NotASigner { .. })
    ));
    let v3 = publish(draft, &[4, 5]);

    let mut state = TrustState::new("demo", anchor());
    state.accept(&v1.signed_bytes, NOW).unwrap();
    state.accept(&v2.signed_bytes, NOW).unwrap();
    assert!(state.anchor().keys().contains(&gov(4).public_key()));
    state.accept(&v3.signed_bytes, NOW).unwrap();
    assert_eq!(state.current().unwrap().list.version, 3);

    // A v4 forged with the old keys is refused by a node that followed the rotation.
    let mut forged = Draft::continue_from(&v3.list, 30 * DAY, NOW).unwrap();
    forged.signers = two_of_three();
    let forged = publish(forged, &[1, 2]);
    let err = state.accept(&forged.signed_bytes, NOW).unwrap_err();
    assert!(
        matches!(err, KeysError::NotEnoughSignatures { valid: 0, .. }),
        "{err}"
    );
}

#[test]
fn revocation_removes_the_member_and_stays() {
    let v1 = publish(first_draft(), &[1, 2]);
    let mut draft = Draft::continue_from(&v1.list, 30 * DAY, NOW).unwrap();
    let (revocation, _) = draft.revoke(&oin(1), "key lost", NOW).unwrap();
    assert_eq!(revocation.key, node(1).public_key());
    let v2 = publish(draft, &[1, 2]);
    assert!(v2.list.member(&oin(1)).is_none());
    assert!(v2.list.is_revoked(&node(1).public_key()));

    // The revoked key cannot come back under its own or another member id.
    let mut draft = Draft::continue_from(&v2.list, 30 * DAY, NOW).unwrap();
    let err = draft.admit(&request(1), None, None, NOW).unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");

    // A list that quietly drops the revocation is refused by a node that held v2.
    let mut draft = Draft::continue_from(&v2.list, 30 * DAY, NOW).unwrap();
    draft.list.revoked.clear();
    let v3 = publish(draft, &[1, 2]);
    let mut state = TrustState::new("demo", anchor());
    state.accept(&v2.signed_bytes, NOW).unwrap();
    let err = state.accept(&v3.signed_bytes, NOW).unwrap_err();
    assert!(
        err.to_string().contains("revoked key stays revoked"),
        "{err}"
    );

    let err = Draft::continue_from(&v2.list, 30 * DAY, NOW)
        .unwrap()
        .revoke(&oin(9), "x", NOW)
        .unwrap_err();
    assert!(matches!(err, KeysError::UnknownMember(_)), "{err}");
}

#[test]
fn admit_refuses_duplicates_forgeries_and_unrequested_purposes() {
    let mut draft = first_draft();
    let err = draft.admit(&request(1), None, None, NOW).unwrap_err();
    assert!(err.to_string().contains("already admitted"), "{err}");

    // Same key under a new member id.
    let key = node(1);
    let mut dup = handbereik_keys::MembershipRequest::verify(&request(1)).unwrap();
    dup.member_id = oin(7);
    let err = draft
        .admit(&dup.sign(&key).unwrap(), None, None, NOW)
        .unwrap_err();
    assert!(
        err.to_string().contains("already admitted for member"),
        "{err}"
    );

    // A request whose signature does not match its key.
    let mut env = envelope(&request(3));
    env.signatures[0].sig.0[0] ^= 0x80;
    let err = draft
        .admit(&env.encode().unwrap(), None, None, NOW)
        .unwrap_err();
    assert!(matches!(err, KeysError::BadSignature { .. }), "{err}");

    let err = draft
        .admit(
            &request(3),
            Some(vec![Purpose::parse("schuldhulp").unwrap()]),
            None,
            NOW,
        )
        .unwrap_err();
    assert!(err.to_string().contains("not requested"), "{err}");
    let (member, _) = draft
        .admit(
            &request(3),
            Some(vec![Purpose::parse("jeugdbescherming").unwrap()]),
            None,
            NOW,
        )
        .unwrap();
    assert_eq!(
        member.purposes,
        vec![Purpose::parse("jeugdbescherming").unwrap()]
    );
}

#[test]
fn signing_is_by_the_signers_only_and_idempotent() {
    let mut draft = first_draft();
    let err = draft.sign(&gov(9)).unwrap_err();
    assert!(matches!(err, KeysError::NotASigner { .. }), "{err}");
    assert_eq!(draft.sign(&gov(1)).unwrap(), SignOutcome::Added);
    assert_eq!(draft.sign(&gov(1)).unwrap(), SignOutcome::AlreadySigned);
    assert_eq!(draft.signatures.len(), 1);
}

#[test]
fn an_edit_after_signing_drops_the_signatures() {
    let mut draft = first_draft();
    draft.sign(&gov(1)).unwrap();
    draft.sign(&gov(2)).unwrap();
    let (_, dropped) = draft.admit(&request(3), None, None, NOW + 10).unwrap();
    assert_eq!(dropped, 2);
    assert!(matches!(
        draft.publish(NOW + 10),
        Err(KeysError::NotEnoughSignatures { valid: 0, .. })
    ));
}

#[test]
fn draft_files_round_trip_and_garbage_is_refused() {
    let mut draft = first_draft();
    draft.sign(&gov(1)).unwrap();
    let bytes = draft.encode().unwrap();
    assert_eq!(Draft::decode(&bytes).unwrap(), draft);
    assert!(Draft::decode(&bytes[..bytes.len() - 3]).is_err());
    assert!(Draft::decode(b"\x00\x01garbage").is_err());
    // A signed list is not a draft.
    assert!(Draft::decode(&publish(first_draft(), &[1, 2]).signed_bytes).is_err());
}

#[test]
fn truncated_and_garbage_lists_are_refused() {
    let bytes = publish(first_draft(), &[1, 2]).signed_bytes;
    for bad in [
        &bytes[..bytes.len() - 1],
        &bytes[..10],
        b"garbage".as_slice(),
        &[],
    ] {
        let err = verify_member_list(bad, &anchor(), None, NOW).unwrap_err();
        assert!(
            matches!(
                err,
                KeysError::Decode { .. } | KeysError::NotCanonical { .. }
            ),
            "{err}"
        );
    }
}

#[test]
fn a_weak_key_in_an_envelope_is_refused() {
    let bytes = publish(first_draft(), &[1, 2]).signed_bytes;
    // Replace the last signature's key with the identity point, byte for byte
    // (searching from the end: the body names the governance keys too).
    let key = *envelope(&bytes).signatures[1].key.as_bytes();
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let pos = bytes.windows(32).rposition(|w| w == key).unwrap();
    let mut weak = bytes.clone();
    weak[pos..pos + 32].copy_from_slice(&identity);
    let err = verify_member_list(&weak, &anchor(), None, NOW).unwrap_err();
    assert!(err.to_string().contains("weak"), "{err}");
    // Anchors refuse weak keys too.
    assert!(handbereik_keys::PublicKey::from_bytes(&identity).is_err());
}

#[test]
fn anchors_need_a_sane_threshold() {
    let keys = [gov(1).public_key(), gov(2).public_key()];
    assert!(Anchor::new(keys, 0).is_err());
    assert!(Anchor::new(keys, 3).is_err());
    assert!(Anchor::new([gov(1).public_key(), gov(1).public_key()], 1).is_err());
}

#[test]
fn lists_must_keep_their_arrays_sorted() {
    // Signed by the right keys, but with members in reverse order: one set must
    // have one encoding, so this is refused rather than normalised.
    let mut draft = first_draft();
    draft.list.members.reverse();
    let body = canonical::to_vec(&draft.list, "member list").unwrap();
    let signatures = [1u8, 2]
        .iter()
        .map(|n| Signature {
            key: gov(*n).public_key(),
            sig: gov(*n).sign(Domain::MemberList, &body),
        })
        .collect();
    let env = SignedEnvelope { body, signatures };
    let err = verify_member_list(&env.encode().unwrap(), &anchor(), None, NOW).unwrap_err();
    assert!(err.to_string().contains("sorted"), "{err}");
}

#[test]
fn a_missing_optional_field_is_not_canonical() {
    // A member without `valid_until` decodes (serde reads it as None) but is
    // not the canonical encoding, which always writes the key (as null).
    let list = first_draft().list;
    let mut value = ciborium::Value::serialized(&list).unwrap();
    if let ciborium::Value::Map(entries) = &mut value {
        for (k, v) in entries.iter_mut() {
            if k.as_text() == Some("members")
                && let ciborium::Value::Array(members) = v
                && let ciborium::Value::Map(fields) = &mut members[0]
            {
                fields.retain(|(k, _)| k.as_text() != Some("valid_until"));
            }
        }
    }
    let mut bytes = Vec::new();
    ciborium::ser::into_writer(&value, &mut bytes).unwrap();
    // Re-sort the map keys the canonical way by round-tripping through the
    // canonical encoder of the untyped value.
    let bytes = canonical::to_vec(
        &ciborium::de::from_reader::<ciborium::Value, _>(bytes.as_slice()).unwrap(),
        "v",
    )
    .unwrap();
    let err = canonical::from_slice::<MemberList>(&bytes, "member list").unwrap_err();
    assert!(matches!(err, KeysError::NotCanonical { .. }), "{err}");
}
