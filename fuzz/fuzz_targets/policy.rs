//! The inspection policy file (Cedar): `Policy::parse`, strict validation
//! against the schema, and the error messages with line and column.
#![no_main]
use handbereik_node::inspect::policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(policy) = Policy::parse(text, "policy.cedar") {
            let _ = policy.policy_ids();
        }
    }
});
