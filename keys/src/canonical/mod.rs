//! Canonical CBOR: one value, one byte string.
//!
//! Owns the encoding of every signed body and its strict decoding.
//! [`to_vec`] writes the core deterministic encoding of RFC 8949 §4.2.1
//! (`encode`): shortest heads, definite lengths, and map entries sorted by
//! the bytes of their encoded keys. [`from_slice`] runs the rules of
//! docs/formats.md §1.3 in order: `scan` checks that the input is one
//! well-formed item of the subset (no float, no tag, lengths within the
//! input, nesting bounded), `cbor4ii` decodes it into the typed value
//! (reading text and bytes in place, not through a tree of values), the
//! public keys read on the way are checked (all at once, over the cores when
//! there are many, see [`crate::bytes`]), and the typed value is encoded
//! again and must give back exactly the input bytes. So unsorted maps, long
//! heads, a missing or an empty optional field written out, an enum in
//! another form: each is refused, and one value has one accepted encoding.
//!
//! The formats use no floats, no integers beyond 64 bits and no unit values
//! (`()`, unit structs): the encoder refuses the first two, and writes a unit
//! as null, as ciborium did, which the decoder does not read back as a unit.
//! A new format needs none of them.
//!
//! Calls `cbor4ii`, `serde` and `bytes` (for the key checks).

mod encode;
mod scan;

use std::collections::HashSet;

use serde::{Serialize, de::DeserializeOwned};

use crate::bytes;
use crate::error::{KeysError, Result};
use crate::text::redact;

/// Encodes `value` as canonical CBOR.
pub fn to_vec<T: Serialize>(value: &T, what: &'static str) -> Result<Vec<u8>> {
    encode::to_vec(value).map_err(|e| KeysError::Encode {
        what,
        reason: e.to_string(),
    })
}

/// Decodes canonical CBOR into `T`, refusing any encoding other than the one
/// `to_vec` gives for the decoded value: the typed value is encoded again and
/// must give back exactly the input bytes. So a missing optional field, an
/// enum in another form, or an unsorted map are all refused, and one value has
/// exactly one accepted byte string. Every public key in it is checked.
pub fn from_slice<T: Serialize + DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T> {
    decode(bytes, what, None)
}

/// Below this many items per thread, an array is decoded on one thread.
const ITEMS_PER_THREAD: usize = 1024;

/// [`from_slice`] (or [`from_slice_known`]) for a map whose value under
/// `key` may be a long array, such as a member list's `members`: its items
/// are decoded, checked and compared with their canonical encoding over the
/// cores, each as a value of its own, and the rest of the map as a map with
/// an empty array in that place; `put` then hands the items to the map.
///
/// Exactly the same bytes are accepted as by [`from_slice`]: a map is the
/// canonical encoding of its value exactly when the map with that array
/// emptied is, the array's head is the shortest, and every item is. Where the
/// input does not have that shape, or the array is short, [`from_slice`]
/// decodes it as a whole.
pub(crate) fn from_slice_split<T, I>(
    bytes: &[u8],
    what: &'static str,
    checked: Option<&HashSet<[u8; 32]>>,
    key: &str,
    put: impl FnOnce(&mut T, Vec<I>),
) -> Result<T>
where
    T: Serialize + DeserializeOwned,
    I: Serialize + DeserializeOwned + Send,
{
    let found = scan::map_value(bytes, key)
        .and_then(|start| Some((start, scan::array_items(bytes, start, 1)?)))
        .filter(|(_, f)| f.items.len() >= 2 * ITEMS_PER_THREAD);
    let Some((array_start, found)) = found else {
        return decode(bytes, what, checked);
    };
    let mut shell = Vec::with_capacity(bytes.len() - (found.end - array_start) + 1);
    shell.extend_from_slice(&bytes[..array_start]);
    shell.push(0x80);
    shell.extend_from_slice(&bytes[found.end..]);
    let items = crate::parallel::map_chunks(&found.items, ITEMS_PER_THREAD, |chunk| {
        chunk
            .iter()
            .map(|range| decode_scanned::<I>(&bytes[range.clone()], what, checked))
            .collect::<Result<Vec<I>>>()
    });
    let mut shell: Result<T> = decode(&shell, what, checked);
    let (head, head_len) = encode::head(4, found.items.len() as u64);
    let head_ok = bytes.get(array_start..found.head_end) == Some(&head[..head_len]);
    // The first error in the order the rules run: a value that does not
    // decode (in the array first, where a canonical list has it), then any
    // part that is not in its canonical encoding.
    let mut decoded = Vec::with_capacity(found.items.len());
    let mut not_canonical = !head_ok;
    for chunk in items {
        match chunk {
            Ok(chunk) => decoded.extend(chunk),
            Err(KeysError::NotCanonical { .. }) => not_canonical = true,
            Err(e) => return Err(e),
        }
    }
    match &shell {
        Err(KeysError::NotCanonical { .. }) => not_canonical = true,
        Err(_) => return shell,
        Ok(_) => {}
    }
    if not_canonical {
        return Err(KeysError::NotCanonical { what });
    }
    if let Ok(value) = shell.as_mut() {
        put(value, decoded);
    }
    shell
}

fn decode<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
    checked: Option<&HashSet<[u8; 32]>>,
) -> Result<T> {
    let decode = |reason: String| KeysError::Decode { what, reason };
    scan::scan(bytes).map_err(|refusal| match refusal {
        scan::Refusal::Malformed(reason) => decode(reason),
        scan::Refusal::FloatOrTag => decode("floats and tags are not used in this format".into()),
        scan::Refusal::NotCanonical => KeysError::NotCanonical { what },
    })?;
    decode_scanned(bytes, what, checked)
}

/// [`decode`] after the scan: `bytes` are one well-formed item of the subset.
fn decode_scanned<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
    checked: Option<&HashSet<[u8; 32]>>,
) -> Result<T> {
    let decode = |reason: String| KeysError::Decode { what, reason };
    let (typed, keys) = bytes::defer_key_checks(|| cbor4ii::serde::from_slice::<T>(bytes));
    let typed = typed.map_err(|e| decode(describe(e)))?;
    bytes::check_keys(&keys, checked).map_err(|e| decode(e.to_string()))?;
    let canonical = encode::encodes_to(&typed, bytes).map_err(|e| KeysError::Encode {
        what,
        reason: e.to_string(),
    })?;
    if !canonical {
        return Err(KeysError::NotCanonical { what });
    }
    Ok(typed)
}

/// What the typed decoder said, in words. After the scan the input is well
/// formed, so what is left is a value of the wrong kind or failing its rule.
fn describe(error: cbor4ii::serde::DecodeError<std::convert::Infallible>) -> String {
    use cbor4ii::core::error::DecodeError as Core;
    match error {
        cbor4ii::serde::DecodeError::Custom(message) => redact(&message),
        cbor4ii::serde::DecodeError::Core(core) => match core {
            Core::Mismatch { name, found } | Core::Unsupported { name, found } => {
                format!("expected {name}, found a CBOR item starting with 0x{found:02x}")
            }
            Core::RequireUtf8 { name } => format!("{name} is not valid UTF-8"),
            Core::Eof { .. } => "the data ends too early".into(),
            Core::DepthOverflow { .. } => "nested too deeply".into(),
            other => redact(&format!("{other:?}")),
        },
    }
}

#[cfg(test)]
mod tests;
