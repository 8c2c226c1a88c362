//! A notification envelope as it arrives from gossip or catch-up:
//! `notify::event::check` against a fixed member list, and the stored-event
//! decoder.
#![no_main]
use handbereik_fuzz::{NOW, view};
use handbereik_keys::Purpose;
use handbereik_node::membership::MembershipView;
use handbereik_node::notify::event;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static VIEW: LazyLock<MembershipView> = LazyLock::new(view);
#[allow(clippy::expect_used)]
static PURPOSE: LazyLock<Purpose> = LazyLock::new(|| Purpose::parse("jeugd").expect("valid"));

fuzz_target!(|data: &[u8]| {
    let _ = event::check(data, &VIEW, None, NOW, |_, _, _| false);
    let _ = event::check(data, &VIEW, Some(&PURPOSE), NOW, |_, _, s| s == 1);
    let _ = event::decode_stored(data);
});
