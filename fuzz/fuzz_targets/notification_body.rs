//! The body of a notification behind its signature: signed here with the
//! key of the fixture list's member, so `check` decodes and judges it.
#![no_main]
use handbereik_fuzz::{NOW, member_key, sign, view};
use handbereik_keys::{Domain, NodeKey};
use handbereik_node::membership::MembershipView;
use handbereik_node::notify::event;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static VIEW: LazyLock<MembershipView> = LazyLock::new(view);
static KEY: LazyLock<NodeKey> = LazyLock::new(member_key);

fuzz_target!(|data: &[u8]| {
    let signed = sign(Domain::Notification, data, &KEY);
    let _ = event::check(&signed, &VIEW, None, NOW, |_, _, _| false);
    let _ = event::decode_stored(&signed);
});
