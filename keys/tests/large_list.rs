//! Lists of thousands of members take the parallel paths (members decoded
//! and checked over the cores, keys of the held list not checked again):
//! they must accept and refuse exactly what checking member by member does,
//! and report the same first refusal.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use handbereik_keys::{
    Anchor, Domain, KeysError, Member, MemberId, MemberList, NodeKey, Purpose, Role, Signature,
    SignedEnvelope, TrustState, canonical, verify_member_list,
};

/// Enough members for both parallel paths (2,048 and 4,096 from the start).
const MEMBERS: usize = 5_000;

fn key(i: usize) -> NodeKey {
    let mut seed = [0x42; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    NodeKey::from_seed(seed)
}

fn member(i: usize, key: &NodeKey) -> Member {
    Member {
        member_id: MemberId::parse(&format!("00000001{i:012}")).unwrap(),
        name: format!("Partner {i}"),
        roles: vec![Role::Afnemer, Role::Bronhouder],
        purposes: vec![Purpose::parse("jeugdbescherming").unwrap()],
        node_key: key.public_key(),
        p2p_addresses: vec![format!("/dns4/n{i}.example.nl/tcp/4001")],
        grpc_endpoint: format!("n{i}.example.nl:7443"),
        valid_from: NOW - 10,
        valid_until: None,
        maintenance: false,
        regions: if i.is_multiple_of(3) {
            vec!["GM0363".into()]
        } else {
            Vec::new()
        },
    }
}

fn large(version: u64, keys: &[NodeKey]) -> MemberList {
    MemberList {
        network: "demo".into(),
        version,
        issued_at: NOW,
        expires_at: NOW + DAY,
        governance: two_of_three(),
        members: keys.iter().enumerate().map(|(i, k)| member(i, k)).collect(),
        revoked: Vec::new(),
        profile: Default::default(),
    }
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

fn signed(list: &MemberList) -> Vec<u8> {
    signed_body(canonical::to_vec(list, "member list").unwrap())
}

fn anchor() -> Anchor {
    Anchor::from_governance(&two_of_three())
}

fn keys() -> Vec<NodeKey> {
    (0..MEMBERS).map(key).collect()
}

#[test]
fn a_large_list_verifies_with_and_without_a_list_held() {
    let keys = keys();
    let v1 = large(1, &keys);
    let mut v2 = large(2, &keys);
    // A new member at the end, with a key the held list does not have.
    let newcomer = key(MEMBERS);
    v2.members.push(member(MEMBERS, &newcomer));
    let fresh = verify_member_list(&signed(&v2), &anchor(), None, NOW).unwrap();
    assert_eq!(fresh.list, v2);
    let mut state = TrustState::new("demo", anchor());
    state.accept(&signed(&v1), NOW).unwrap();
    let next = state.check_next(&signed(&v2), NOW).unwrap();
    assert_eq!(next.list, v2);
    assert!(state.install(next));
    assert_eq!(state.current().unwrap().list.members.len(), MEMBERS + 1);
}

fn weak_key_bytes() -> [u8; 32] {
    let mut identity = [0u8; 32];
    identity[0] = 1;
    identity
}

#[test]
fn a_weak_key_deep_in_a_large_list_is_refused_with_or_without_a_list_held() {
    let keys = keys();
    let v1 = large(1, &keys);
    let good = signed(&large(2, &keys));
    // Put the identity point where member 3,000's key is, then sign that.
    let body = SignedEnvelope::decode(&good, "l", 1 << 26).unwrap().body;
    let target = *keys[3_000].public_key().as_bytes();
    let at = body.windows(32).position(|w| w == target).unwrap();
    let mut weak = body.clone();
    weak[at..at + 32].copy_from_slice(&weak_key_bytes());
    let weak = signed_body(weak);
    let err = verify_member_list(&weak, &anchor(), None, NOW).unwrap_err();
    assert!(err.to_string().contains("weak"), "{err}");
    let mut state = TrustState::new("demo", anchor());
    state.accept(&signed(&v1), NOW).unwrap();
    let err = state.check_next(&weak, NOW).unwrap_err();
    assert!(matches!(err, KeysError::Decode { .. }), "{err}");
    assert!(err.to_string().contains("weak"), "{err}");
}

#[test]
fn a_member_written_in_another_encoding_is_refused() {
    // Member 4,000 with `regions: []` written out: only the form without the
    // key is canonical.
    let list = large(1, &keys());
    let mut tree = ciborium::Value::serialized(&list).unwrap();
    if let ciborium::Value::Map(entries) = &mut tree {
        for (k, v) in entries.iter_mut() {
            if k.as_text() == Some("members")
                && let ciborium::Value::Array(members) = v
                && let ciborium::Value::Map(fields) = &mut members[4_000]
            {
                fields.push(("regions".into(), ciborium::Value::Array(Vec::new())));
            }
        }
    }
    let bytes = signed_body(canonical::to_vec(&tree, "tree").unwrap());
    let err = verify_member_list(&bytes, &anchor(), None, NOW).unwrap_err();
    assert!(matches!(err, KeysError::NotCanonical { .. }), "{err}");
}

/// What `MemberList::check` says, checking one member at a time: the first
/// member (in array order) with any problem, and its first problem.
fn first_problem_in_turn(list: &MemberList) -> Option<String> {
    let mut keys = std::collections::HashSet::new();
    let mut one = MemberList {
        members: Vec::new(),
        ..list.clone()
    };
    for m in &list.members {
        one.members = vec![m.clone()];
        if let Err(e) = one.check() {
            return Some(e.to_string());
        }
        if !keys.insert(m.node_key) {
            return Some(format!("key {} is used twice", m.node_key));
        }
    }
    None
}

#[test]
fn the_first_refusal_is_the_one_in_array_order() {
    let keys = keys();
    let base = large(1, &keys);
    type Case = Box<dyn Fn(&mut MemberList)>;
    let cases: Vec<Case> = vec![
        // A bad name late, a reused key later still: the name.
        Box::new(|l| {
            l.members[4_500].name = "bad\nname".into();
            l.members[4_600].node_key = l.members[10].node_key;
        }),
        // A reused key early, a bad name late: the key.
        Box::new(|l| {
            l.members[100].node_key = l.members[10].node_key;
            l.members[4_000].name = String::new();
        }),
        // Problems in two parallel chunks: the earlier chunk's.
        Box::new(|l| {
            l.members[4_999].regions = vec!["nope".into()];
            l.members[2_100].grpc_endpoint = "no port".into();
        }),
        // An end before the start, then a bad region.
        Box::new(|l| {
            l.members[3_000].valid_until = Some(NOW - 20);
            l.members[3_001].regions = vec!["GM1".into()];
        }),
        Box::new(|l| l.members[4_321].p2p_addresses = vec!["no-slash".into()]),
    ];
    for (n, case) in cases.iter().enumerate() {
        let mut list = base.clone();
        case(&mut list);
        let expected = first_problem_in_turn(&list).unwrap();
        let got = list.check().unwrap_err().to_string();
        assert!(
            got.contains(&expected),
            "case {n}: check says {got:?}, member by member {expected:?}"
        );
        assert!(verify_member_list(&signed(&list), &anchor(), None, NOW).is_err());
    }
    assert!(base.check().is_ok());
}
