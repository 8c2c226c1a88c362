//! Fixed-size byte values on the wire: public keys and signatures.
//!
//! Owns their CBOR form (a byte string of exactly the right length, never an
//! array of integers) and their text form (lowercase hex). A public key is
//! checked when it is parsed: it must be a valid, not small-order ed25519
//! point, so that no weak key enters a request, a list or an anchor.
//!
//! Checking a key costs a point decompression (about 4 µs), which for a list
//! of 20,000 members is most of the work of reading it. So the canonical
//! decoder reads the keys of one object first and checks them together
//! afterwards ([`defer_key_checks`], [`check_keys`]): spread over the cores,
//! and skipping keys the caller checked before (the members of the list it
//! holds). Nothing that is decoded is handed out before its keys passed.
//! Calls `ed25519-dalek` and `parallel`.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::error::{KeysError, Result};

/// An ed25519 public key, 32 bytes, checked to be usable.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

/// An ed25519 signature, 64 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SignatureBytes(pub [u8; 64]);

impl PublicKey {
    /// Checks 32 bytes as an ed25519 key: a valid point, not of small order.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let array: [u8; 32] = bytes.try_into().map_err(|_| KeysError::WrongLength {
            what: "an ed25519 public key",
            expected: 32,
            found: bytes.len(),
        })?;
        let key = VerifyingKey::from_bytes(&array).map_err(|_| KeysError::BadPublicKey {
            key: hex::encode(array),
            reason: "not a valid ed25519 point",
        })?;
        if key.is_weak() {
            return Err(KeysError::BadPublicKey {
                key: hex::encode(array),
                reason: "a weak (small-order) ed25519 key",
            });
        }
        Ok(PublicKey(array))
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self> {
        let bytes = hex::decode(text.trim()).map_err(|e| KeysError::Hex {
            what: "public key",
            reason: e.to_string(),
        })?;
        Self::from_bytes(&bytes)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, as written in configs and shown by the CLIs.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The key for `ed25519-dalek`; cannot fail, the bytes were checked.
    pub fn verifying_key(&self) -> Result<VerifyingKey> {
        VerifyingKey::from_bytes(&self.0).map_err(|_| KeysError::BadPublicKey {
            key: self.to_hex(),
            reason: "not a valid ed25519 point",
        })
    }

    /// Wraps a verifying key taken from a private key.
    pub(crate) fn from_verifying_key(key: &VerifyingKey) -> Self {
        PublicKey(key.to_bytes())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl fmt::Debug for SignatureBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignatureBytes({})", hex::encode(self.0))
    }
}

impl std::str::FromStr for PublicKey {
    type Err = KeysError;
    fn from_str(s: &str) -> Result<Self> {
        Self::from_hex(s)
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            return PublicKey::from_hex(&text).map_err(de::Error::custom);
        }
        let array = deserializer.deserialize_bytes(KeyBytesVisitor)?;
        if defer(array) {
            // Checked by `check_keys` before the decoded value is handed out.
            return Ok(PublicKey(array));
        }
        PublicKey::from_bytes(&array).map_err(de::Error::custom)
    }
}

thread_local! {
    /// The keys read while a decode on this thread defers their checks.
    static DEFERRED: RefCell<Option<Vec<[u8; 32]>>> = const { RefCell::new(None) };
}

/// Records `key` for a later check if a decode on this thread defers key
/// checks; answers whether it did.
fn defer(key: [u8; 32]) -> bool {
    DEFERRED.with(|d| match d.borrow_mut().as_mut() {
        Some(keys) => {
            keys.push(key);
            true
        }
        None => false,
    })
}

/// Runs `decode` with the checks of the public keys it reads deferred, and
/// returns its result with those keys, in the order read. The caller must
/// pass them to [`check_keys`] before it uses anything `decode` returned.
pub(crate) fn defer_key_checks<R>(decode: impl FnOnce() -> R) -> (R, Vec<[u8; 32]>) {
    /// Puts back what was deferred before, also if `decode` unwinds.
    struct Restore(Option<Vec<[u8; 32]>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            DEFERRED.with(|d| *d.borrow_mut() = outer);
        }
    }
    let outer = DEFERRED.with(|d| d.replace(Some(Vec::new())));
    let restore = Restore(outer);
    let result = decode();
    let keys = DEFERRED.with(|d| d.borrow_mut().take()).unwrap_or_default();
    drop(restore);
    (result, keys)
}

/// Below this many keys to check, one thread checks them.
const KEYS_PER_THREAD: usize = 512;

/// Checks `keys` as [`PublicKey::from_bytes`] does, except those in
/// `checked`; answers the error of the first bad one in `keys`' order. Many
/// keys are checked over the machine's cores.
pub(crate) fn check_keys(keys: &[[u8; 32]], checked: Option<&HashSet<[u8; 32]>>) -> Result<()> {
    let known = |k: &[u8; 32]| checked.is_some_and(|set| set.contains(k));
    let first_bad = |chunk: &[&[u8; 32]]| {
        chunk
            .iter()
            .find_map(|k| PublicKey::from_bytes(k.as_slice()).err())
    };
    let bad = if keys.len() < 2 * KEYS_PER_THREAD {
        keys.iter()
            .filter(|k| !known(k))
            .find_map(|k| PublicKey::from_bytes(k).err())
    } else {
        let unknown: Vec<&[u8; 32]> = keys.iter().filter(|k| !known(k)).collect();
        let chunks = crate::parallel::map_chunks(&unknown, KEYS_PER_THREAD, first_bad);
        chunks.into_iter().flatten().next()
    };
    match bad {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Accepts a CBOR byte string of exactly 32 bytes, without allocating.
struct KeyBytesVisitor;

impl<'de> de::Visitor<'de> for KeyBytesVisitor {
    type Value = [u8; 32];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string of 32 bytes")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> std::result::Result<[u8; 32], E> {
        v.try_into().map_err(|_| {
            de::Error::custom(KeysError::WrongLength {
                what: "an ed25519 public key",
                expected: 32,
                found: v.len(),
            })
        })
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> std::result::Result<[u8; 32], E> {
        self.visit_bytes(&v)
    }
}

impl Serialize for SignatureBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&hex::encode(self.0))
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for SignatureBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let bytes = deserializer.deserialize_byte_buf(ByteBufVisitor)?;
        let array: [u8; 64] = bytes.as_slice().try_into().map_err(|_| {
            de::Error::custom(KeysError::WrongLength {
                what: "an ed25519 signature",
                expected: 64,
                found: bytes.len(),
            })
        })?;
        Ok(SignatureBytes(array))
    }
}

/// Accepts a CBOR byte string and nothing else.
pub(crate) struct ByteBufVisitor;

impl<'de> de::Visitor<'de> for ByteBufVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> std::result::Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> std::result::Result<Vec<u8>, E> {
        Ok(v)
    }
}

/// Serde helper for `Vec<u8>` fields that must be CBOR byte strings.
pub(crate) mod byte_string {
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        bytes: &[u8],
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Vec<u8>, D::Error> {
        deserializer.deserialize_byte_buf(super::ByteBufVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_length_is_refused() {
        let err = PublicKey::from_bytes(&[1u8; 31]).unwrap_err();
        assert!(
            matches!(
                err,
                KeysError::WrongLength {
                    expected: 32,
                    found: 31,
                    ..
                }
            ),
            "{err}"
        );
        let err = PublicKey::from_hex(&"ab".repeat(33)).unwrap_err();
        assert!(
            matches!(err, KeysError::WrongLength { found: 33, .. }),
            "{err}"
        );
    }

    #[test]
    fn weak_key_is_refused() {
        // The identity point: small order, a signature "by" it proves nothing.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let err = PublicKey::from_bytes(&identity).unwrap_err();
        assert!(matches!(err, KeysError::BadPublicKey { .. }), "{err}");
        assert!(err.to_string().contains("weak"), "{err}");
    }

    #[test]
    fn non_hex_is_refused() {
        let err = PublicKey::from_hex("zz").unwrap_err();
        assert!(matches!(err, KeysError::Hex { .. }), "{err}");
    }

    #[test]
    fn signature_of_wrong_length_does_not_decode() {
        let mut bytes = Vec::new();
        ciborium::ser::into_writer(&ciborium::Value::Bytes(vec![0u8; 63]), &mut bytes).unwrap();
        let err = ciborium::de::from_reader::<SignatureBytes, _>(bytes.as_slice()).unwrap_err();
        assert!(err.to_string().contains("64"), "{err}");
    }
}
