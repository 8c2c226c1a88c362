//! Subjects: the BSN's 11-test, the network pseudonym key, and the keyed
//! hash that turns a BSN into the pseudonym.
//!
//! The BSN lives only on the stack of [`Subjects::resolve`]: it is never
//! stored, logged, sent or put in an error message. Calls `handbereik-keys`
//! for reading a private file.

use std::path::Path;

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::types::Pseudonym;

/// Domain separation for the pseudonym hash.
const PSEUDONYM_DOMAIN: &[u8] = b"handbereik/pseudonym/v1\0";

/// Checks a BSN: nine digits that pass the 11-test (elfproef). The message
/// never repeats the number.
pub fn check_bsn(bsn: &str) -> Result<()> {
    let digits: Vec<u32> = bsn.chars().filter_map(|c| c.to_digit(10)).collect();
    if bsn.len() != 9 || digits.len() != 9 {
        return Err(Error::InvalidRequest(
            "a BSN is exactly 9 digits (no spaces or dots); the one given is not".into(),
        ));
    }
    let sum: i64 = digits
        .iter()
        .zip([9i64, 8, 7, 6, 5, 4, 3, 2, -1])
        .map(|(d, w)| i64::from(*d) * w)
        .sum();
    if digits.iter().all(|d| *d == 0) || sum % 11 != 0 {
        return Err(Error::InvalidRequest(
            "the BSN given fails the 11-test (elfproef); check it for a typing error".into(),
        ));
    }
    Ok(())
}

/// Parses a pseudonym: 64 lowercase hex characters.
pub fn parse_pseudonym(text: &str) -> Result<Pseudonym> {
    let bad = || {
        Error::InvalidRequest(format!(
            "a pseudonym is 64 lowercase hex characters; {} is not",
            handbereik_keys::text::excerpt(text)
        ))
    };
    if text.len() != 64 || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).map_err(|_| bad())?;
    Ok(out)
}

/// A pseudonym as text.
pub fn pseudonym_text(p: &Pseudonym) -> String {
    hex::encode(p)
}

/// Turns subjects as the back office gives them into pseudonyms.
#[derive(Clone)]
pub struct Subjects {
    key: Option<[u8; 32]>,
}

impl std::fmt::Debug for Subjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subjects")
            .field("pseudonym_key", &self.key.map(|_| "<set>"))
            .finish()
    }
}

impl Subjects {
    /// With the network pseudonym key, or without one (then only pseudonyms).
    pub fn new(key: Option<[u8; 32]>) -> Self {
        Subjects { key }
    }

    /// Reads the pseudonym key file: 64 hex characters, not readable by group
    /// or others.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(Subjects::new(None));
        };
        use std::os::unix::fs::PermissionsExt;
        let bytes = handbereik_keys::files::read_file(path, "pseudonym key file", 1024)?;
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        if mode & 0o077 != 0 {
            return Err(Error::PseudonymKey {
                path: path.to_path_buf(),
                reason: format!(
                    "it is readable by group or others (mode {mode:o}); run `chmod 600 {}`",
                    path.display()
                ),
            });
        }
        let text = String::from_utf8_lossy(&bytes);
        let mut key = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut key).map_err(|_| Error::PseudonymKey {
            path: path.to_path_buf(),
            reason: "it must hold the network's pseudonym key as 64 hex characters; ask governance for it".into(),
        })?;
        Ok(Subjects::new(Some(key)))
    }

    /// Whether BSNs can be turned into pseudonyms here.
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// The pseudonym of a BSN.
    pub fn pseudonym_of_bsn(&self, bsn: &str) -> Result<Pseudonym> {
        check_bsn(bsn)?;
        let key = self.key.ok_or_else(|| {
            Error::InvalidRequest(
                "this node has no pseudonym key, so it cannot accept a BSN; set registry.pseudonym_key_file, or give the subject as a pseudonym".into(),
            )
        })?;
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&key)
            .map_err(|_| Error::InvalidRequest("the pseudonym key is unusable".into()))?;
        mac.update(PSEUDONYM_DOMAIN);
        mac.update(bsn.as_bytes());
        Ok(mac.finalize().into_bytes().into())
    }

    /// A subject given as exactly one of a BSN or a pseudonym.
    pub fn resolve(&self, bsn: Option<&str>, pseudonym: Option<&str>) -> Result<Pseudonym> {
        match (bsn, pseudonym) {
            (Some(bsn), None) => self.pseudonym_of_bsn(bsn),
            (None, Some(p)) => parse_pseudonym(p),
            _ => Err(Error::InvalidRequest(
                "give the subject as a BSN or as a pseudonym".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleven_test() {
        // 111222333: 9+8+7+12+10+8+9+6-3 = 66 = 6 × 11.
        assert!(check_bsn("111222333").is_ok());
        assert!(check_bsn("123456782").is_ok());
        for bad in [
            "111222334",
            "000000000",
            "12345678",
            "1234567890",
            "12345678a",
            "",
        ] {
            let err = check_bsn(bad).unwrap_err().to_string();
            assert!(
                !bad.is_empty() && !err.contains(bad) || bad.is_empty(),
                "{err}"
            );
        }
    }

    #[test]
    fn pseudonyms_are_keyed_and_stable() {
        let a = Subjects::new(Some([1; 32]));
        let b = Subjects::new(Some([2; 32]));
        let p = a.pseudonym_of_bsn("111222333").unwrap();
        assert_eq!(p, a.pseudonym_of_bsn("111222333").unwrap());
        assert_ne!(p, b.pseudonym_of_bsn("111222333").unwrap());
        assert_ne!(p, a.pseudonym_of_bsn("123456782").unwrap());
        assert_eq!(parse_pseudonym(&pseudonym_text(&p)).unwrap(), p);
        assert!(!pseudonym_text(&p).contains("111222333"));
    }

    #[test]
    fn no_key_no_bsn() {
        let s = Subjects::new(None);
        let err = s.pseudonym_of_bsn("111222333").unwrap_err().to_string();
        assert!(err.contains("registry.pseudonym_key_file"), "{err}");
        assert!(!err.contains("111222333"));
        assert!(s.resolve(None, Some(&"ab".repeat(32))).is_ok());
        assert!(s.resolve(None, Some(&"AB".repeat(32))).is_err());
        assert!(s.resolve(None, None).is_err());
    }
}
