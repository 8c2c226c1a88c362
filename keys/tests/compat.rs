//! Lists signed before the optional fields existed keep their bytes, and so
//! their signatures.
//!
//! `fixtures/member-list-v1-before-regions.cbor` was published with the code
//! of commit ffcd21d, before `Member::regions` and the network profile were
//! added: three partners admitted (one with an end date), one in maintenance,
//! one revoked, signed by governance keys 1 and 3 of the `common` fixtures.
//! Ed25519 signatures are deterministic, so today's code must publish the
//! very same bytes from the very same steps.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use handbereik_keys::{
    Anchor, KeysError, MemberList, SignedEnvelope, canonical, verify_member_list,
};

const BEFORE: &[u8] = include_bytes!("fixtures/member-list-v1-before-regions.cbor");

fn anchor() -> Anchor {
    Anchor::from_governance(&two_of_three())
}

#[test]
fn a_list_signed_before_regions_still_verifies() {
    let verified = verify_member_list(BEFORE, &anchor(), None, NOW).unwrap();
    let list = &verified.list;
    assert_eq!(list.version, 1);
    assert_eq!(list.members.len(), 2);
    assert!(list.members.iter().all(|m| m.regions.is_empty()));
    assert_eq!(list.revoked.len(), 1);
    assert!(list.members[1].maintenance);
    assert!(list.members[0].valid_until.is_some());
    // The body re-encodes to exactly the bytes that were signed.
    let envelope = SignedEnvelope::decode(BEFORE, "member list", 1 << 20).unwrap();
    assert_eq!(
        canonical::to_vec(list, "member list").unwrap(),
        envelope.body
    );
}

#[test]
fn todays_code_publishes_the_same_bytes() {
    let mut draft = handbereik_keys::Draft::first("demo", two_of_three(), 30 * DAY, NOW).unwrap();
    for n in 1..=3u8 {
        let until = (n == 2).then_some(NOW + 400 * DAY);
        draft.admit(&request(n), None, until, NOW).unwrap();
    }
    draft.set_maintenance(&oin(3), true, NOW).unwrap();
    draft.revoke(&oin(1), "key lost", NOW).unwrap();
    let published = publish(draft, &[1, 3]);
    assert_eq!(published.signed_bytes, BEFORE);
}

#[test]
fn an_empty_regions_array_is_not_the_canonical_form() {
    // Writing `regions: []` explicitly gives a second encoding of the same
    // list; only the one without the key is accepted.
    let list: MemberList = {
        let envelope = SignedEnvelope::decode(BEFORE, "member list", 1 << 20).unwrap();
        canonical::from_slice(&envelope.body, "member list").unwrap()
    };
    let mut tree = ciborium::Value::serialized(&list).unwrap();
    if let ciborium::Value::Map(entries) = &mut tree {
        for (k, v) in entries.iter_mut() {
            if k.as_text() == Some("members")
                && let ciborium::Value::Array(members) = v
                && let ciborium::Value::Map(fields) = &mut members[0]
            {
                fields.push(("regions".into(), ciborium::Value::Array(Vec::new())));
            }
        }
    }
    let bytes = canonical::to_vec(&tree, "tree").unwrap();
    let err = canonical::from_slice::<MemberList>(&bytes, "member list").unwrap_err();
    assert!(matches!(err, KeysError::NotCanonical { .. }), "{err}");

    // With a region in it, the key is written and the bytes differ.
    let mut with = list.clone();
    with.members[0].regions = vec!["GM0363".into()];
    let bytes = canonical::to_vec(&with, "member list").unwrap();
    assert!(bytes.windows(7).any(|w| w == b"regions"));
    let back: MemberList = canonical::from_slice(&bytes, "member list").unwrap();
    assert_eq!(back, with);
}
