//! Shared fixtures for the trust tests: deterministic keys, requests and lists.

#![allow(dead_code, clippy::unwrap_used)]

use handbereik_keys::{
    Draft, GovernanceSet, MemberId, MembershipRequest, NodeKey, Purpose, Role, VerifiedMemberList,
};

pub const NOW: u64 = 1_800_000_000;
pub const DAY: u64 = 24 * 3600;

pub fn gov(n: u8) -> NodeKey {
    let mut seed = [n; 32];
    seed[0] = 0x60;
    NodeKey::from_seed(seed)
}

pub fn node(n: u8) -> NodeKey {
    let mut seed = [n; 32];
    seed[0] = 0xa0;
    NodeKey::from_seed(seed)
}

pub fn oin(n: u8) -> MemberId {
    MemberId::parse(&format!("000000012345678{n:05}")).unwrap()
}

pub fn request(n: u8) -> Vec<u8> {
    let key = node(n);
    MembershipRequest {
        member_id: oin(n),
        name: format!("Partner {n}"),
        roles: vec![Role::Afnemer, Role::Bronhouder],
        purposes: vec![
            Purpose::parse("jeugdbescherming").unwrap(),
            Purpose::parse("huiselijk-geweld").unwrap(),
        ],
        p2p_addresses: vec![format!("/ip4/127.0.0.1/tcp/{}", 4000 + n as u16)],
        grpc_endpoint: format!("127.0.0.1:{}", 7000 + n as u16),
        node_key: key.public_key(),
        created_at: NOW - 60,
    }
    .normalize_and_check()
    .unwrap()
    .sign(&key)
    .unwrap()
}

/// Governance keys 1, 2, 3 with threshold 2.
pub fn two_of_three() -> GovernanceSet {
    GovernanceSet::new(
        vec![
            gov(1).public_key(),
            gov(2).public_key(),
            gov(3).public_key(),
        ],
        2,
    )
    .unwrap()
}

/// A first list with members 1 and 2, not yet signed.
pub fn first_draft() -> Draft {
    let mut draft = Draft::first("demo", two_of_three(), 30 * DAY, NOW).unwrap();
    draft.admit(&request(1), None, None, NOW).unwrap();
    draft.admit(&request(2), None, None, NOW).unwrap();
    draft
}

/// `draft` signed by the governance keys with these seeds, published.
pub fn publish(mut draft: Draft, signers: &[u8]) -> VerifiedMemberList {
    for n in signers {
        draft.sign(&gov(*n)).unwrap();
    }
    draft.publish(NOW).unwrap()
}
