//! Fixtures the fuzz targets share: fixed keys, a fixed clock and a small
//! signed member list, so that a target can sign what the fuzzer gives it
//! (the `*_body` targets) and reach the decoder behind the signature.

use handbereik_keys::{
    Anchor, Domain, GovernanceSet, Member, MemberId, MemberList, NodeKey, Purpose, Role,
    SignedEnvelope, VerifiedMemberList, canonical, verify_member_list,
};
use handbereik_node::membership::MembershipView;

/// The fixed "now" of every target: 2027-01-15T08:00:00Z.
pub const NOW: u64 = 1_800_000_000;

/// The governance key that signs the fixture list.
pub fn governance_key() -> NodeKey {
    NodeKey::from_seed([1; 32])
}

/// The node key of the one member of the fixture list (also the key that
/// signs the fixture membership requests, questions and answers).
pub fn member_key() -> NodeKey {
    NodeKey::from_seed([2; 32])
}

/// The member of the fixture list.
pub const MEMBER_ID: &str = "00000001001000000001";

/// The anchor that trusts [`governance_key`], 1 of 1.
pub fn anchor() -> Anchor {
    #[allow(clippy::expect_used)]
    Anchor::new([governance_key().public_key()], 1).expect("one key, threshold 1")
}

/// The fixture member list, unsigned.
pub fn list() -> MemberList {
    #[allow(clippy::expect_used)]
    let member = Member {
        member_id: MemberId::parse(MEMBER_ID).expect("a valid OIN"),
        name: "partner 1".into(),
        roles: vec![Role::Afnemer, Role::Bronhouder],
        purposes: vec![Purpose::parse("jeugd").expect("a valid purpose")],
        node_key: member_key().public_key(),
        p2p_addresses: vec!["/ip4/127.0.0.1/tcp/1".into()],
        grpc_endpoint: "127.0.0.1:1".into(),
        valid_from: NOW - 3600,
        valid_until: None,
        maintenance: false,
        regions: Vec::new(),
    };
    #[allow(clippy::expect_used)]
    MemberList {
        network: "fuzz".into(),
        version: 1,
        issued_at: NOW - 60,
        expires_at: NOW + 365 * 86_400,
        governance: GovernanceSet::new(vec![governance_key().public_key()], 1)
            .expect("one key, threshold 1"),
        members: vec![member],
        revoked: Vec::new(),
        profile: Default::default(),
    }
}

/// `body` in an envelope signed by `key` under `domain`, encoded.
pub fn sign(domain: Domain, body: &[u8], key: &NodeKey) -> Vec<u8> {
    #[allow(clippy::expect_used)]
    SignedEnvelope::signed(domain, body.to_vec(), key)
        .encode()
        .expect("an envelope encodes")
}

/// The fixture list, signed by the governance key.
pub fn signed_list() -> Vec<u8> {
    #[allow(clippy::expect_used)]
    let body = canonical::to_vec(&list(), "member list").expect("the list encodes");
    sign(Domain::MemberList, &body, &governance_key())
}

/// The fixture list, verified.
pub fn verified_list() -> VerifiedMemberList {
    #[allow(clippy::expect_used)]
    verify_member_list(&signed_list(), &anchor(), None, NOW).expect("the fixture list verifies")
}

/// A membership view holding the fixture list.
pub fn view() -> MembershipView {
    MembershipView::from_list(verified_list())
}
