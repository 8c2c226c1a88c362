//! Time as this crate writes it: whole seconds since the Unix epoch, shown in RFC 3339.
//!
//! Timestamps arrive from outside (lists, requests, registrations, answers),
//! so every function here is total: formatting never panics, and
//! [`check_bounded`] refuses a moment past [`MAX_SECS`] at validation, so no
//! later arithmetic on it can overflow.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The latest moment accepted anywhere: 9999-12-31T23:59:59Z, the last one
/// RFC 3339 can write.
pub const MAX_SECS: u64 = 253_402_300_799;

/// Now, in seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Seconds since the epoch as RFC 3339 UTC, such as `2026-11-22T10:00:00Z`.
/// A moment past [`MAX_SECS`] is written as that moment: never a panic.
pub fn rfc3339(secs: u64) -> String {
    let secs = secs.min(MAX_SECS);
    match UNIX_EPOCH.checked_add(Duration::from_secs(secs)) {
        Some(at) => humantime::format_rfc3339_seconds(at).to_string(),
        None => "9999-12-31T23:59:59Z".to_string(),
    }
}

/// Refuses a timestamp past [`MAX_SECS`]; `field` names it in the message.
pub fn check_bounded(field: &str, secs: u64) -> Result<u64, String> {
    if secs > MAX_SECS {
        Err(format!(
            "{field} is past 9999-12-31T23:59:59Z ({MAX_SECS} seconds since the Unix epoch); give seconds since the Unix epoch, not milliseconds"
        ))
    } else {
        Ok(secs)
    }
}

/// Parses a moment given on the command line (`--valid-until` and the like):
/// RFC 3339 such as `2027-12-31T00:00:00Z`, no earlier than 1970 and no later
/// than [`MAX_SECS`]. Says what is wrong; never panics, whatever the text.
pub fn parse(text: &str) -> Result<u64, String> {
    let t = humantime::parse_rfc3339_weak(text)
        .map_err(|e| format!("{e}; use RFC 3339 such as 2027-12-31T00:00:00Z"))?;
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| "a time before 1970".to_string())?;
    check_bounded("the time", secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_is_total() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(MAX_SECS), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(MAX_SECS + 1), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn bounds_name_the_field() {
        assert_eq!(check_bounded("retain_until", 5), Ok(5));
        let err = check_bounded("retain_until", u64::MAX).unwrap_err();
        assert!(err.contains("retain_until"), "{err}");
    }

    #[test]
    fn parsing_is_total_and_bounded() {
        assert_eq!(parse("2027-12-31T00:00:00Z"), Ok(1_830_211_200));
        assert_eq!(parse("9999-12-31T23:59:59Z"), Ok(MAX_SECS));
        assert!(parse("1969-12-31T23:59:59Z").is_err());
        assert!(parse("tomorrow").unwrap_err().contains("RFC 3339"));
    }
}
