//! The body behind a member list's signatures: the input is signed with the
//! anchor's key, so the list decoder and its consistency checks see it.
#![no_main]
use handbereik_fuzz::{NOW, anchor, governance_key, sign};
use handbereik_keys::{Domain, NodeKey};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static ANCHOR: LazyLock<handbereik_keys::Anchor> = LazyLock::new(anchor);
static KEY: LazyLock<NodeKey> = LazyLock::new(governance_key);

fuzz_target!(|data: &[u8]| {
    let signed = sign(Domain::MemberList, data, &KEY);
    if let Ok(verified) = handbereik_keys::verify_member_list(&signed, &ANCHOR, None, NOW) {
        // What a node does next with a list it accepted.
        let view = handbereik_node::membership::MembershipView::from_list(verified);
        for m in view.members() {
            let _ = view.active_member_by_key(&m.node_key.as_bytes(), NOW);
        }
        let _ = view.refusal(NOW);
    }
});
