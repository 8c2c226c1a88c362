//! A source's signed answer as the asker reads it:
//! `inspect::answer::check` against the source's key.
#![no_main]
use ed25519_dalek::VerifyingKey;
use handbereik_fuzz::member_key;
use handbereik_node::inspect::answer::{self, Expected};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

#[allow(clippy::expect_used)]
static KEY: LazyLock<VerifyingKey> = LazyLock::new(|| {
    member_key()
        .public_key()
        .verifying_key()
        .expect("a valid point")
});

fuzz_target!(|data: &[u8]| {
    let expected = Expected {
        request_id: "r",
        source: handbereik_fuzz::MEMBER_ID,
        asker: handbereik_fuzz::MEMBER_ID,
        subject: "00",
        purpose: "jeugd",
        action: "inspect",
        categories: None,
    };
    let _ = answer::check(data, &KEY, &expected);
});
