//! Test support: signed member lists of a few members, each admitted for
//! `jeugd`, for the tests of any room that needs a list (the witness, the
//! ingest pipeline). Compiled only for tests.

use handbereik_keys::{
    Anchor, Domain, GovernanceSet, Member, MemberId, MemberList, NodeKey, Purpose, Role,
    SignedEnvelope, canonical, time,
};

use super::MembershipView;

/// Member `n`'s id.
pub(crate) fn member_id(n: u32) -> MemberId {
    MemberId::parse(&format!("0000000100{:010}", 1000 + n)).unwrap()
}

/// A list (network `test`, version 1, valid for an hour) of the members
/// `keys` name, signed by a fixed governance key; with its anchor.
pub(crate) fn signed_list(keys: &[(u32, &NodeKey)]) -> (Vec<u8>, Anchor) {
    let gov = NodeKey::from_seed([99; 32]);
    let now = time::now();
    let members = keys
        .iter()
        .map(|(n, key)| Member {
            member_id: member_id(*n),
            name: format!("partner {n}"),
            roles: vec![Role::Afnemer],
            purposes: vec![Purpose::parse("jeugd").unwrap()],
            node_key: key.public_key(),
            p2p_addresses: vec!["/ip4/127.0.0.1/tcp/1".into()],
            grpc_endpoint: "127.0.0.1:1".into(),
            valid_from: now - 60,
            valid_until: None,
            maintenance: false,
            regions: Vec::new(),
        })
        .collect();
    let list = MemberList {
        network: "test".into(),
        version: 1,
        issued_at: now,
        expires_at: now + 3600,
        governance: GovernanceSet::new(vec![gov.public_key()], 1).unwrap(),
        members,
        revoked: Vec::new(),
        profile: Default::default(),
    };
    let body = canonical::to_vec(&list, "member list").unwrap();
    let signed = SignedEnvelope::signed(Domain::MemberList, body, &gov)
        .encode()
        .unwrap();
    (signed, Anchor::new([gov.public_key()], 1).unwrap())
}

/// The view of [`signed_list`]'s list.
pub(crate) fn view(keys: &[(u32, &NodeKey)]) -> MembershipView {
    let (signed, anchor) = signed_list(keys);
    let verified =
        handbereik_keys::verify_member_list(&signed, &anchor, None, time::now()).unwrap();
    MembershipView::from_list(verified)
}
