//! A signed member list as it arrives (gossip, sync, URL, file): the whole
//! of `verify_member_list` on arbitrary bytes.
#![no_main]
use handbereik_fuzz::{NOW, anchor};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static ANCHOR: LazyLock<handbereik_keys::Anchor> = LazyLock::new(anchor);

fuzz_target!(|data: &[u8]| {
    let _ = handbereik_keys::verify_member_list(data, &ANCHOR, None, NOW);
    let _ = handbereik_keys::verify_member_list(data, &ANCHOR, Some(1), NOW);
    let _ = handbereik_keys::TrustState::resume("fuzz", ANCHOR.clone(), data);
});
