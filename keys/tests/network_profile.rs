//! The network profile: the actor-role vocabulary governance publishes in
//! the signed list, how a draft sets it, and the encodings refused.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use handbereik_keys::{
    ActorRole, Anchor, Domain, Draft, KeysError, MAX_ACTOR_ROLES, MemberList, Signature,
    SignedEnvelope, canonical, verify_member_list,
};

fn roles(names: &[&str]) -> Vec<ActorRole> {
    names.iter().map(|n| ActorRole::parse(n).unwrap()).collect()
}

fn signed_body(body: Vec<u8>) -> Vec<u8> {
    let signatures = [1u8, 2]
        .iter()
        .map(|n| Signature {
            key: gov(*n).public_key(),
            sig: gov(*n).sign(Domain::MemberList, &body),
        })
        .collect();
    SignedEnvelope { body, signatures }.encode().unwrap()
}

fn verify(bytes: &[u8]) -> handbereik_keys::Result<MemberList> {
    verify_member_list(bytes, &Anchor::from_governance(&two_of_three()), None, NOW).map(|v| v.list)
}

#[test]
fn a_draft_sets_the_vocabulary_and_the_next_version_keeps_it() {
    let mut draft = first_draft();
    draft.sign(&gov(1)).unwrap();
    let dropped = draft
        .set_actor_roles(
            roles(&["melder", "casusregisseur", "deelnemer", "melder"]),
            NOW,
        )
        .unwrap();
    assert_eq!(dropped, 1);
    let v1 = publish(draft, &[1, 2]);
    let list = verify(&v1.signed_bytes).unwrap();
    assert_eq!(
        list.profile.actor_roles,
        roles(&["casusregisseur", "deelnemer", "melder"])
    );
    assert!(list.has_actor_role("melder"));
    assert!(
        !list.has_actor_role("bronhouder"),
        "member roles are not actor roles"
    );
    assert!(!list.has_actor_role("Melder"));

    let next = Draft::continue_from(&v1.list, 30 * DAY, NOW).unwrap();
    assert_eq!(next.list.profile, v1.list.profile);
    let mut cleared = next.clone();
    cleared.set_actor_roles(Vec::new(), NOW).unwrap();
    let v2 = publish(cleared, &[2, 3]);
    assert!(!v2.list.has_actor_role("melder"));
    let body = canonical::to_vec(&v2.list, "member list").unwrap();
    assert!(!body.windows(7).any(|w| w == b"profile"));
}

#[test]
fn the_vocabulary_is_bounded() {
    let many: Vec<ActorRole> = (0..=MAX_ACTOR_ROLES)
        .map(|i| ActorRole::parse(&format!("rol-{i:03}")).unwrap())
        .collect();
    let mut draft = first_draft();
    let before = draft.clone();
    let err = draft.set_actor_roles(many.clone(), NOW).unwrap_err();
    assert!(err.to_string().contains("at most 64"), "{err}");
    assert_eq!(draft, before);
    draft
        .set_actor_roles(many[..MAX_ACTOR_ROLES].to_vec(), NOW)
        .unwrap();
    // Signed with too many anyway: every node refuses it.
    let mut list = draft.list.clone();
    list.profile.actor_roles = many;
    let err = verify(&signed_body(canonical::to_vec(&list, "l").unwrap())).unwrap_err();
    assert!(matches!(err, KeysError::InconsistentList(_)), "{err}");
    assert!(err.to_string().contains("profile: actor_roles"), "{err}");
}

#[test]
fn an_unsorted_vocabulary_is_refused() {
    let mut list = first_draft().list;
    list.profile.actor_roles = roles(&["melder", "deelnemer"]);
    let err = verify(&signed_body(canonical::to_vec(&list, "l").unwrap())).unwrap_err();
    assert!(err.to_string().contains("sorted"), "{err}");
}

/// The list as a CBOR tree with `profile` set to `value`.
fn with_profile(value: ciborium::Value) -> Vec<u8> {
    let list = first_draft().list;
    let mut tree = ciborium::Value::serialized(&list).unwrap();
    if let ciborium::Value::Map(entries) = &mut tree {
        entries.push(("profile".into(), value));
    }
    canonical::to_vec(&tree, "tree").unwrap()
}

#[test]
fn an_empty_profile_written_out_is_not_canonical() {
    use ciborium::Value;
    let empty_map = with_profile(Value::Map(Vec::new()));
    let empty_roles = with_profile(Value::Map(vec![(
        "actor_roles".into(),
        Value::Array(Vec::new()),
    )]));
    for bytes in [empty_map, empty_roles] {
        let err = canonical::from_slice::<MemberList>(&bytes, "member list").unwrap_err();
        assert!(matches!(err, KeysError::NotCanonical { .. }), "{err}");
    }
    // An unknown key or a bad name in the profile is refused too.
    let unknown = with_profile(Value::Map(vec![("colour".into(), Value::Text("x".into()))]));
    let err = canonical::from_slice::<MemberList>(&unknown, "member list").unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
    let bad = with_profile(Value::Map(vec![(
        "actor_roles".into(),
        Value::Array(vec![Value::Text("Melder".into())]),
    )]));
    let err = canonical::from_slice::<MemberList>(&bad, "member list").unwrap_err();
    assert!(err.to_string().contains("actor role"), "{err}");
    // The one accepted form decodes.
    let good = with_profile(Value::Map(vec![(
        "actor_roles".into(),
        Value::Array(vec![Value::Text("melder".into())]),
    )]));
    let list = canonical::from_slice::<MemberList>(&good, "member list").unwrap();
    assert!(list.has_actor_role("melder"));
}

/// A request for a reserved purpose (the node's own announcements, the audit
/// and governance topics) must not be admitted: a member admitted for
/// `handbereik-local` could publish into every node's local stream.
#[test]
fn a_reserved_purpose_is_refused_at_admission() {
    use handbereik_keys::{MembershipRequest, Purpose, Role};
    for reserved in Purpose::RESERVED {
        let key = node(9);
        let bytes = MembershipRequest {
            member_id: oin(9),
            name: "Partner 9".into(),
            roles: vec![Role::Afnemer],
            purposes: vec![
                Purpose::parse("jeugdbescherming").unwrap(),
                Purpose::parse(reserved).unwrap(),
            ],
            p2p_addresses: vec!["/ip4/127.0.0.1/tcp/4009".into()],
            grpc_endpoint: "127.0.0.1:7009".into(),
            node_key: key.public_key(),
            created_at: NOW - 60,
        }
        .normalize_and_check()
        .unwrap()
        .sign(&key)
        .unwrap();
        let mut draft = first_draft();
        let error = draft.admit(&bytes, None, None, NOW).unwrap_err();
        assert!(
            error.to_string().contains("reserved"),
            "{reserved}: {error}"
        );
        assert_eq!(draft.list.members.len(), 2, "nothing admitted");
        // Admitting only the ordinary purpose is fine.
        let chosen = vec![Purpose::parse("jeugdbescherming").unwrap()];
        draft.admit(&bytes, Some(chosen), None, NOW).unwrap();
        assert_eq!(draft.list.members.len(), 3);
    }
}
