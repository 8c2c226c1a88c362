//! An audit entry as read back from the store (or a peer's export): only
//! the canonical form is accepted, so what decodes must encode to the same
//! bytes.
#![no_main]
use handbereik_node::audit::AuditEntry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = AuditEntry::decode(data) {
        let _ = entry.is_disclosure();
        let _ = entry.is_obtained();
        let _ = entry.is_emergency();
        if let Ok(again) = entry.encode() {
            assert_eq!(again, data, "a non-canonical audit entry was accepted");
        }
    }
});
