//! A member list draft file, passed from one governance holder to the next:
//! `Draft::decode`, then what the CLI does with a draft it read.
#![no_main]
use handbereik_fuzz::NOW;
use handbereik_keys::Draft;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(draft) = Draft::decode(data) {
        let _ = draft.body();
        let _ = draft.valid_signers();
        let _ = draft.publish(NOW);
        let _ = draft.encode();
    }
});
