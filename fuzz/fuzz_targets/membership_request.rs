//! A signed membership request as a governance holder receives it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = handbereik_keys::MembershipRequest::verify(data);
});
