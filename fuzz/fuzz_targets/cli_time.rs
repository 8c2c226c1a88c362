//! The CLI's date and duration parsing (`handbereik-keys --valid-until`,
//! `--validity`), and formatting back what it parsed.
#![no_main]
use handbereik_keys::time;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(secs) = time::parse(text) {
            let shown = time::rfc3339(secs);
            assert_eq!(time::parse(&shown), Ok(secs), "{text:?} -> {shown}");
        }
        let _ = humantime::parse_duration(text);
    }
});
