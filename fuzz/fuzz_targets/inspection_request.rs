//! A signed inspection request (the asker's statement) as the source reads
//! it: `inspect::ask::check` against the asker's key.
#![no_main]
use handbereik_fuzz::{NOW, member_key};
use handbereik_keys::PublicKey;
use handbereik_node::inspect::ask::{self, Plain};
use handbereik_node::inspect::policy::Action;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static KEY: LazyLock<PublicKey> = LazyLock::new(|| member_key().public_key());

fuzz_target!(|data: &[u8]| {
    let plain = Plain {
        request_id: "r",
        asker: handbereik_fuzz::MEMBER_ID,
        subject: "00",
        purpose: "jeugd",
        action: Action::Inspect,
        categories: &[],
    };
    let _ = ask::check(data, &KEY, &plain, NOW);
});
