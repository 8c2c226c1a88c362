//! The body of a membership request behind its signature: signed here with
//! the fixture member key, which the seed corpus's bodies name, so the
//! request decoder and field checks see it.
#![no_main]
use handbereik_fuzz::{member_key, sign};
use handbereik_keys::{Domain, NodeKey};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static KEY: LazyLock<NodeKey> = LazyLock::new(member_key);

fuzz_target!(|data: &[u8]| {
    let signed = sign(Domain::MembershipRequest, data, &KEY);
    let _ = handbereik_keys::MembershipRequest::verify(&signed);
});
