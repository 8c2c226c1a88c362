//! Outside timestamps are bounded and outside values are never echoed at
//! length: each bound with the input that crosses it, signed by the right
//! keys, so that only the bound can refuse it.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use handbereik_keys::{
    Anchor, Domain, Draft, KeysError, MemberId, MemberList, MembershipRequest, Purpose, Role,
    SignedEnvelope, TrustState, canonical,
    time::{self, MAX_SECS},
    verify_member_list,
};

fn anchor() -> Anchor {
    Anchor::from_governance(&two_of_three())
}

/// `list` signed by governance keys 1 and 2, without any check on the way.
fn signed(list: &MemberList) -> Vec<u8> {
    let body = canonical::to_vec(list, "member list").unwrap();
    let mut envelope = SignedEnvelope::signed(Domain::MemberList, body.clone(), &gov(1));
    envelope.signatures.push(handbereik_keys::Signature {
        key: gov(2).public_key(),
        sig: gov(2).sign(Domain::MemberList, &body),
    });
    envelope.encode().unwrap()
}

fn refusal(list: &MemberList) -> String {
    let err = verify_member_list(&signed(list), &anchor(), None, NOW).unwrap_err();
    assert!(matches!(err, KeysError::InconsistentList(_)), "{err}");
    err.to_string()
}

#[test]
fn every_timestamp_of_a_list_is_bounded_and_named() {
    let base = first_draft().list;
    let mut list = base.clone();
    list.issued_at = u64::MAX;
    list.expires_at = u64::MAX;
    assert!(refusal(&list).contains("issued_at is past 9999-12-31T23:59:59Z"));

    let mut list = base.clone();
    list.expires_at = MAX_SECS + 1;
    assert!(refusal(&list).contains("expires_at is past"));

    let mut list = base.clone();
    list.members[1].valid_from = u64::MAX;
    let message = refusal(&list);
    assert!(
        message.contains(&format!("member {}: valid_from is past", oin(2))),
        "{message}"
    );

    let mut list = base.clone();
    list.members[0].valid_until = Some(u64::MAX);
    assert!(refusal(&list).contains("valid_until is past"));

    let mut list = base.clone();
    list.revoked.push(handbereik_keys::Revocation {
        key: node(9).public_key(),
        member_id: oin(9),
        revoked_at: u64::MAX,
        reason: "x".into(),
    });
    let message = refusal(&list);
    assert!(
        message.contains(&format!(
            "revocation of key {}: revoked_at is past",
            node(9).public_key()
        )),
        "{message}"
    );
}

#[test]
fn the_last_moment_is_accepted() {
    let mut list = first_draft().list;
    list.expires_at = MAX_SECS;
    list.members[0].valid_until = Some(MAX_SECS);
    let verified = verify_member_list(&signed(&list), &anchor(), None, NOW).unwrap();
    assert_eq!(verified.list.expires_at, MAX_SECS);
    // And a node whose clock reads the end of time sees it expired, no overflow.
    let err = verify_member_list(&signed(&list), &anchor(), None, u64::MAX).unwrap_err();
    assert!(err.to_string().contains("9999-12-31T23:59:59Z"), "{err}");
    let mut state = TrustState::new("demo", anchor());
    assert!(state.accept(&signed(&list), u64::MAX).is_err());
    assert!(state.current().is_none());
}

#[test]
fn a_request_from_the_far_future_is_refused() {
    let key = node(5);
    let mut request = MembershipRequest::verify(&request(5)).unwrap();
    request.created_at = u64::MAX;
    let err = request.clone().normalize_and_check().unwrap_err();
    assert!(matches!(err, KeysError::TimeOutOfRange(_)), "{err}");
    assert!(err.to_string().starts_with("created_at is past"), "{err}");
    // Signed by hand past the check: governance refuses it when it reads it.
    let body = canonical::to_vec(&request, "membership request").unwrap();
    let bytes = SignedEnvelope::signed(Domain::MembershipRequest, body, &key)
        .encode()
        .unwrap();
    let err = MembershipRequest::verify(&bytes).unwrap_err();
    assert!(err.to_string().contains("created_at"), "{err}");
    let mut draft = first_draft();
    assert!(draft.admit(&bytes, None, None, NOW).is_err());
    assert_eq!(draft.list.members.len(), 2);
}

#[test]
fn draft_dates_are_bounded() {
    // Starting a draft at the end of time: the expiry would pass the bound.
    let err = Draft::first("demo", two_of_three(), 3600, MAX_SECS).unwrap_err();
    assert!(err.to_string().contains("expires_at"), "{err}");
    let err = Draft::first("demo", two_of_three(), 3600, u64::MAX).unwrap_err();
    assert!(err.to_string().contains("issued_at"), "{err}");

    // Re-dating refuses and changes nothing.
    let mut draft = first_draft();
    draft.sign(&gov(1)).unwrap();
    let before = draft.clone();
    assert!(draft.redate(u64::MAX - 10).is_err());
    assert!(draft.set_maintenance(&oin(1), true, u64::MAX).is_err());
    assert_eq!(draft.list.issued_at, before.list.issued_at);
    assert_eq!(draft.signatures, before.signatures);

    // A membership end past the bound is named as the CLI names it.
    let err = first_draft()
        .admit(&request(3), None, Some(u64::MAX), NOW)
        .unwrap_err();
    assert!(err.to_string().starts_with("valid-until is past"), "{err}");

    // A draft file edited by hand: huge validity or dates are refused on reading.
    let mut edited = first_draft();
    edited.validity_secs = u64::MAX;
    let err = Draft::decode(&edited.encode().unwrap()).unwrap_err();
    assert!(err.to_string().contains("valid-for"), "{err}");
    let mut edited = first_draft();
    edited.list.members[0].valid_from = u64::MAX;
    let err = Draft::decode(&edited.encode().unwrap()).unwrap_err();
    assert!(err.to_string().contains("valid_from is past"), "{err}");
}

#[test]
fn formatting_a_huge_time_in_an_error_does_not_panic() {
    // issued_at far ahead but within the bound: the "in the future" message
    // formats it.
    let mut list = first_draft().list;
    list.issued_at = MAX_SECS - 1;
    list.expires_at = MAX_SECS;
    let err = verify_member_list(&signed(&list), &anchor(), None, NOW).unwrap_err();
    assert!(matches!(err, KeysError::NotYetValid { .. }), "{err}");
    assert!(err.to_string().contains("9999-12-31T23:59:58Z"), "{err}");
    assert_eq!(time::rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
}

/// The list body as a generic CBOR tree, so that a field can be given a value
/// of the wrong kind, then re-encoded canonically and signed.
fn tampered_member_field(name: &str, value: ciborium::Value) -> Vec<u8> {
    let list = first_draft().list;
    let mut tree = ciborium::Value::serialized(&list).unwrap();
    let ciborium::Value::Map(entries) = &mut tree else {
        unreachable!()
    };
    for (k, v) in entries.iter_mut() {
        if k.as_text() == Some("members")
            && let ciborium::Value::Array(members) = v
            && let ciborium::Value::Map(fields) = &mut members[0]
        {
            for (fk, fv) in fields.iter_mut() {
                if fk.as_text() == Some(name) {
                    *fv = value.clone();
                }
            }
        }
    }
    let body = canonical::to_vec(&tree, "tree").unwrap();
    let mut envelope = SignedEnvelope::signed(Domain::MemberList, body.clone(), &gov(1));
    envelope.signatures.push(handbereik_keys::Signature {
        key: gov(2).public_key(),
        sig: gov(2).sign(Domain::MemberList, &body),
    });
    envelope.encode().unwrap()
}

#[test]
fn decode_errors_never_repeat_an_outside_value_at_length() {
    // A megabyte of text where the key's bytes belong, with a BSN in it.
    let text = format!("bsn 111222333 {}", "x".repeat(1 << 20));
    let bytes = tampered_member_field("node_key", ciborium::Value::Text(text));
    let err = verify_member_list(&bytes, &anchor(), None, NOW).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, KeysError::Decode { .. }), "{message}");
    assert!(
        message.len() < 400,
        "{} bytes: {message:.400}",
        message.len()
    );
    assert!(!message.contains("111222333"), "{message}");

    // An endpoint of 10 KB is named, briefly.
    let long = format!("{}:7443", "h/".repeat(5000));
    let bytes = tampered_member_field("grpc_endpoint", ciborium::Value::Text(long));
    let message = verify_member_list(&bytes, &anchor(), None, NOW)
        .unwrap_err()
        .to_string();
    assert!(message.contains("grpc_endpoint"), "{message}");
    assert!(message.len() < 300, "{message}");
}

#[test]
fn parse_errors_show_excerpts() {
    let long = "9".repeat(100_000);
    for message in [
        MemberId::parse(&long).unwrap_err().to_string(),
        Purpose::parse(&"Q".repeat(100_000))
            .unwrap_err()
            .to_string(),
        "x".repeat(100_000).parse::<Role>().unwrap_err().to_string(),
        handbereik_keys::parse_public_key_arg(&format!("/no/such/{}", "k".repeat(100_000)))
            .unwrap_err()
            .to_string(),
        handbereik_keys::check_network(&"N".repeat(100_000))
            .unwrap_err()
            .to_string(),
    ] {
        assert!(message.len() < 300, "{message:.300}");
    }
    // A BSN typed where an OIN belongs is not repeated.
    let message = MemberId::parse("111222333").unwrap_err().to_string();
    assert!(!message.contains("111222333"), "{message}");
}

#[test]
fn a_network_mismatch_names_both_briefly() {
    let published = publish(first_draft(), &[1, 2]);
    let mut state = TrustState::new("n".repeat(10_000), anchor());
    let message = state
        .accept(&published.signed_bytes, NOW)
        .unwrap_err()
        .to_string();
    assert!(message.contains("\"demo\""), "{message}");
    assert!(message.len() < 200, "{message}");
}
