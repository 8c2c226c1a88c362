//! Canonical CBOR: one value, one byte string.
//!
//! Owns the encoding of every signed body. Values are serialised with serde
//! into a `ciborium::Value`, map keys are sorted in the bytewise order of their
//! own encodings (RFC 8949 §4.2.1, core deterministic encoding), and the result
//! is written with definite lengths and the shortest integer heads, which is
//! what ciborium emits. Decoding is strict: bytes that do not re-encode to
//! themselves (unsorted maps, long integer heads, trailing bytes, floats) are
//! refused, so that no two byte strings stand for the same signed value.
//!
//! Calls only `ciborium` and `serde`.

use ciborium::Value;
use serde::{Serialize, de::DeserializeOwned};

use crate::error::{KeysError, Result};
use crate::text::redact;

/// Deepest nesting accepted when decoding; the formats here nest at most 5 deep.
const MAX_DEPTH: usize = 16;

/// Encodes `value` as canonical CBOR.
pub fn to_vec<T: Serialize>(value: &T, what: &'static str) -> Result<Vec<u8>> {
    let value = Value::serialized(value).map_err(|e| KeysError::Encode {
        what,
        reason: e.to_string(),
    })?;
    encode_value(canonicalize(value), what)
}

/// Decodes canonical CBOR into `T`, refusing any encoding other than the one
/// `to_vec` gives for the decoded value: the typed value is encoded again and
/// must give back exactly the input bytes. So a missing optional field, an
/// enum in another form, or an unsorted map are all refused, and one value has
/// exactly one accepted byte string.
pub fn from_slice<T: Serialize + DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T> {
    let decode = |reason: String| KeysError::Decode { what, reason };
    let mut rest = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_DEPTH)
        .map_err(|e| decode(describe_read_error(e)))?;
    if !rest.is_empty() {
        return Err(decode(format!(
            "{} unexpected bytes after the first {}",
            rest.len(),
            bytes.len() - rest.len()
        )));
    }
    reject_floats_and_tags(&value, what)?;
    let typed: T = value.deserialized().map_err(|e| match e {
        ciborium::value::Error::Custom(message) => decode(redact(&message)),
    })?;
    if to_vec(&typed, what)? != bytes {
        return Err(KeysError::NotCanonical { what });
    }
    Ok(typed)
}

fn describe_read_error(error: ciborium::de::Error<std::io::Error>) -> String {
    use ciborium::de::Error;
    match error {
        Error::Io(_) => "the data ends too early".into(),
        Error::Syntax(offset) => format!("malformed CBOR at byte {offset}"),
        Error::Semantic(Some(offset), message) => format!("{} at byte {offset}", redact(&message)),
        Error::Semantic(None, message) => redact(&message),
        Error::RecursionLimitExceeded => "nested too deeply".into(),
    }
}

fn encode_value(value: Value, what: &'static str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(&value, &mut out).map_err(|e| KeysError::Encode {
        what,
        reason: e.to_string(),
    })?;
    Ok(out)
}

/// Sorts every map by the encoding of its keys, recursively.
fn canonicalize(value: Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.into_iter().map(canonicalize).collect()),
        Value::Map(entries) => {
            let mut keyed: Vec<(Vec<u8>, Value, Value)> = entries
                .into_iter()
                .map(|(k, v)| {
                    let k = canonicalize(k);
                    let mut encoded = Vec::new();
                    // Encoding a Value into a Vec cannot fail.
                    let _ = ciborium::ser::into_writer(&k, &mut encoded);
                    (encoded, k, canonicalize(v))
                })
                .collect();
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Map(keyed.into_iter().map(|(_, k, v)| (k, v)).collect())
        }
        Value::Tag(tag, inner) => Value::Tag(tag, Box::new(canonicalize(*inner))),
        other => other,
    }
}

/// The formats here use no floats and no tags; refusing them keeps the
/// canonical form simple to state and to check in another language.
fn reject_floats_and_tags(value: &Value, what: &'static str) -> Result<()> {
    match value {
        Value::Float(_) | Value::Tag(..) => Err(KeysError::Decode {
            what,
            reason: "floats and tags are not used in this format".into(),
        }),
        Value::Array(items) => items
            .iter()
            .try_for_each(|v| reject_floats_and_tags(v, what)),
        Value::Map(entries) => entries.iter().try_for_each(|(k, v)| {
            reject_floats_and_tags(k, what)?;
            reject_floats_and_tags(v, what)
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Sample {
        zebra: u64,
        a: String,
        mid: Vec<u32>,
    }

    fn sample() -> Sample {
        Sample {
            zebra: 1_000_000,
            a: "x".into(),
            mid: vec![1, 300],
        }
    }

    #[test]
    fn map_keys_are_sorted_by_encoding() {
        let bytes = to_vec(&sample(), "sample").unwrap();
        // map(3), then "a" (shortest key first), "mid", "zebra".
        assert_eq!(bytes[0], 0xa3);
        assert_eq!(&bytes[1..3], &[0x61, b'a']);
        let a_pos = bytes.windows(2).position(|w| w == [0x61, b'a']).unwrap();
        let mid_pos = bytes
            .windows(4)
            .position(|w| w == [0x63, b'm', b'i', b'd'])
            .unwrap();
        let zebra_pos = bytes
            .windows(6)
            .position(|w| w == [0x65, b'z', b'e', b'b', b'r', b'a'])
            .unwrap();
        assert!(a_pos < mid_pos && mid_pos < zebra_pos);
    }

    #[test]
    fn same_value_gives_same_bytes() {
        assert_eq!(
            to_vec(&sample(), "s").unwrap(),
            to_vec(&sample(), "s").unwrap()
        );
        let back: Sample = from_slice(&to_vec(&sample(), "s").unwrap(), "s").unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn unsorted_map_is_refused() {
        // {"b": 1, "a": 2}: valid CBOR, keys out of order.
        let bytes = [0xa2, 0x61, b'b', 0x01, 0x61, b'a', 0x02];
        let err = from_slice::<std::collections::BTreeMap<String, u8>>(&bytes, "map").unwrap_err();
        assert!(matches!(err, KeysError::NotCanonical { .. }), "{err}");
    }

    #[test]
    fn long_integer_head_is_refused() {
        // 1 encoded in two bytes (0x18 0x01) instead of one.
        let err = from_slice::<u64>(&[0x18, 0x01], "int").unwrap_err();
        assert!(matches!(err, KeysError::NotCanonical { .. }), "{err}");
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = to_vec(&sample(), "s").unwrap();
        bytes.push(0x00);
        assert!(from_slice::<Sample>(&bytes, "s").is_err());
    }

    #[test]
    fn truncated_and_garbage_are_decode_errors() {
        let bytes = to_vec(&sample(), "s").unwrap();
        let err = from_slice::<Sample>(&bytes[..bytes.len() - 2], "s").unwrap_err();
        assert!(matches!(err, KeysError::Decode { .. }), "{err}");
        let err = from_slice::<Sample>(b"hello world, not cbor", "s").unwrap_err();
        assert!(
            matches!(
                err,
                KeysError::Decode { .. } | KeysError::NotCanonical { .. }
            ),
            "{err}"
        );
        assert!(from_slice::<Sample>(&[], "s").is_err());
    }

    #[test]
    fn floats_are_refused() {
        // 1.5 as a half float.
        let err = from_slice::<f64>(&[0xf9, 0x3e, 0x00], "f").unwrap_err();
        assert!(matches!(err, KeysError::Decode { .. }), "{err}");
    }
}
