//! Property: the canonical encoding of a list is a function of its value, and
//! decoding then re-encoding gives back exactly the same bytes.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use handbereik_keys::{
    ActorRole, GovernanceSet, Member, MemberId, MemberList, NetworkProfile, Purpose, Revocation,
    Role, canonical,
};
use proptest::prelude::*;

fn member(
    n: u8,
    name: String,
    purposes: Vec<u8>,
    valid_until: Option<u64>,
    maintenance: bool,
    regions: Vec<u16>,
) -> Member {
    let mut purposes: Vec<Purpose> = purposes
        .into_iter()
        .map(|p| Purpose::parse(&format!("doel-{p}")).unwrap())
        .collect();
    purposes.sort();
    purposes.dedup();
    Member {
        member_id: oin(n),
        name,
        roles: vec![Role::Afnemer],
        purposes,
        node_key: node(n).public_key(),
        p2p_addresses: vec![format!("/dns4/node{n}.example.nl/tcp/4001")],
        grpc_endpoint: format!("node{n}.example.nl:7443"),
        valid_from: NOW,
        valid_until,
        maintenance,
        // Empty for some members: then the key is absent from the encoding.
        regions: regions
            .into_iter()
            .map(|r| format!("GM{r:04}"))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
    }
}

fn arb_list() -> impl Strategy<Value = MemberList> {
    let members = proptest::collection::btree_map(
        0u8..100,
        (
            "[A-Za-z ]{1,30}",
            proptest::collection::vec(0u8..20, 1..4),
            proptest::option::of(NOW + 1..NOW + 1000),
            any::<bool>(),
            proptest::collection::vec(0u16..400, 0..4),
        ),
        0..12,
    );
    (
        1u64..u64::MAX,
        0u64..NOW,
        1u64..1_000_000,
        members,
        1u32..=3,
        // Empty for some lists: then the profile is absent from the encoding.
        proptest::collection::btree_set(0u8..10, 0..4),
    )
        .prop_map(
            |(version, issued_at, validity, members, threshold, roles)| MemberList {
                network: "demo".into(),
                version,
                issued_at,
                expires_at: issued_at + validity,
                governance: GovernanceSet::new(
                    vec![
                        gov(1).public_key(),
                        gov(2).public_key(),
                        gov(3).public_key(),
                    ],
                    threshold,
                )
                .unwrap(),
                members: members
                    .into_iter()
                    .map(|(n, (name, p, until, m, r))| {
                        member(n, name.trim().to_string() + "x", p, until, m, r)
                    })
                    .collect(),
                revoked: vec![Revocation {
                    key: node(200).public_key(),
                    member_id: MemberId::parse("00000009999999999999").unwrap(),
                    revoked_at: 5,
                    reason: "test".into(),
                }],
                profile: NetworkProfile {
                    actor_roles: roles
                        .into_iter()
                        .map(|r| ActorRole::parse(&format!("rol-{r}")).unwrap())
                        .collect(),
                },
            },
        )
}

proptest! {
    #[test]
    fn encode_decode_encode_is_byte_identical(list in arb_list()) {
        prop_assert!(list.check().is_ok());
        let first = canonical::to_vec(&list, "member list").unwrap();
        let decoded: MemberList = canonical::from_slice(&first, "member list").unwrap();
        prop_assert_eq!(&decoded, &list);
        let second = canonical::to_vec(&decoded, "member list").unwrap();
        prop_assert_eq!(first, second);
    }

    #[test]
    fn any_single_byte_flip_is_refused_or_changes_the_value(list in arb_list(), index in any::<prop::sample::Index>(), bit in 0u8..8) {
        let bytes = canonical::to_vec(&list, "member list").unwrap();
        let mut flipped = bytes.clone();
        let i = index.index(flipped.len());
        flipped[i] ^= 1 << bit;
        // Either refused, or a different value: never the same value from other bytes.
        if let Ok(decoded) = canonical::from_slice::<MemberList>(&flipped, "member list") {
            prop_assert_ne!(decoded, list);
        }
    }
}
