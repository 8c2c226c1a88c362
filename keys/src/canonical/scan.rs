//! The first look at CBOR from outside, before anything is decoded into a
//! value: one well-formed item of the subset these formats use.
//!
//! Owns rules 1 and 2 of docs/formats.md §1.3: exactly one item with no
//! bytes after it, every length within the input, nesting at most
//! [`MAX_DEPTH`] deep, only the simple values false,
//! true, null (and `undefined`, which rule 4 refuses later); no float and no
//! tag. An indefinite length is valid CBOR but never canonical, so it is
//! refused as such right here. Allocates nothing but a small stack, so that
//! the typed decoder that runs next only ever sees lengths the input holds.
//! Whether text is UTF-8 is left to that decoder, which reads every text
//! string of the value as text. Calls nothing.

use std::ops::Range;

/// Deepest nesting of arrays and maps accepted, the outermost counting as 1:
/// the formats here nest at most 5 deep.
pub(super) const MAX_DEPTH: usize = 16;

/// Why a scan refused the input.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Not one well-formed item of the subset (rule 1); the reason says where.
    Malformed(String),
    /// A float or a tag (rule 2).
    FloatOrTag,
    /// Valid CBOR that no canonical writer produces (an indefinite length).
    NotCanonical,
}

/// Checks that `bytes` hold exactly one well-formed item of the subset.
pub(super) fn scan(bytes: &[u8]) -> Result<(), Refusal> {
    let end = walk(bytes, 0, 0)?;
    if end != bytes.len() {
        return Err(Refusal::Malformed(format!(
            "{} unexpected bytes after the first {end}",
            bytes.len() - end
        )));
    }
    Ok(())
}

/// Walks the one item that starts at `start`, inside `depth` arrays or maps
/// already; answers where it ends.
fn walk(bytes: &[u8], start: usize, depth: usize) -> Result<usize, Refusal> {
    let mut pos = start;
    // Items still to read in each open array or map, innermost last.
    let mut open = [0u64; MAX_DEPTH];
    let mut opened = 0usize;
    let mut pending: u64 = 1;
    loop {
        if pending == 0 {
            if opened == 0 {
                break;
            }
            opened -= 1;
            pending = open[opened];
            continue;
        }
        pending -= 1;
        let at = pos;
        let initial = *bytes.get(pos).ok_or_else(ends_early)?;
        pos += 1;
        let major = initial >> 5;
        let info = initial & 0x1f;
        let argument = match info {
            0..=23 => u64::from(info),
            24..=27 => {
                let size = 1usize << (info - 24);
                let end = pos.checked_add(size).ok_or_else(ends_early)?;
                let raw = bytes.get(pos..end).ok_or_else(ends_early)?;
                pos = end;
                raw.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b))
            }
            31 if (2..=5).contains(&major) => return Err(Refusal::NotCanonical),
            _ => return Err(malformed(at)),
        };
        match major {
            0 | 1 => {}
            2 | 3 => {
                pos = usize::try_from(argument)
                    .ok()
                    .and_then(|len| pos.checked_add(len))
                    .filter(|end| *end <= bytes.len())
                    .ok_or_else(ends_early)?;
            }
            4 | 5 => {
                // The outermost item is at level 1; this one is inside every
                // container still open.
                if depth + opened + 1 > MAX_DEPTH {
                    return Err(Refusal::Malformed("nested too deeply".into()));
                }
                let items = if major == 5 {
                    argument.checked_mul(2).ok_or_else(ends_early)?
                } else {
                    argument
                };
                // Every item takes at least one byte: a count beyond what is
                // left is a truncated (or lying) input.
                if items > (bytes.len() - pos) as u64 {
                    return Err(ends_early());
                }
                if items > 0 {
                    // Within bounds: `opened < MAX_DEPTH - depth` by the check above.
                    let Some(slot) = open.get_mut(opened) else {
                        return Err(Refusal::Malformed("nested too deeply".into()));
                    };
                    *slot = pending;
                    opened += 1;
                    pending = items;
                }
            }
            6 => return Err(Refusal::FloatOrTag),
            _ => match info {
                20..=23 => {}
                25..=27 => return Err(Refusal::FloatOrTag),
                _ => {
                    return Err(Refusal::Malformed(format!(
                        "a simple value other than false, true and null at byte {at}"
                    )));
                }
            },
        }
    }
    Ok(pos)
}

/// The major type, argument and end of the head at `pos`, for input that
/// passed [`scan`]: definite lengths only.
fn head_at(bytes: &[u8], pos: usize) -> Option<(u8, u64, usize)> {
    let initial = *bytes.get(pos)?;
    let (major, info) = (initial >> 5, initial & 0x1f);
    match info {
        0..=23 => Some((major, u64::from(info), pos + 1)),
        24..=27 => {
            let end = pos + 1 + (1usize << (info - 24));
            let raw = bytes.get(pos + 1..end)?;
            Some((
                major,
                raw.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b)),
                end,
            ))
        }
        _ => None,
    }
}

/// Where the value of the text key `key` starts in the map that `bytes`
/// hold at the top: the first such key. `None` when the item is not a map,
/// has no such key, or is not well formed before it. Bounds-checked, so any
/// input is fine.
pub(super) fn map_value(bytes: &[u8], key: &str) -> Option<usize> {
    let (major, pairs, mut pos) = head_at(bytes, 0)?;
    if major != 5 {
        return None;
    }
    for _ in 0..pairs {
        let key_end = walk(bytes, pos, 1).ok()?;
        if let Some((3, len, text)) = head_at(bytes, pos)
            && len == key.len() as u64
            && bytes.get(text..key_end) == Some(key.as_bytes())
        {
            return Some(key_end);
        }
        pos = walk(bytes, key_end, 1).ok()?;
    }
    None
}

/// An array found inside a larger item by [`array_items`].
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Items {
    /// Where the array's head ends (and its first item starts).
    pub(super) head_end: usize,
    /// Each item's bytes.
    pub(super) items: Vec<Range<usize>>,
    /// Where the array ends.
    pub(super) end: usize,
}

/// The items of the array that starts at `start`, `depth` arrays or maps
/// deep, each walked by the rules of [`scan`]. `None` when it is not an
/// array of well-formed items (let the whole decoder say what is wrong).
pub(super) fn array_items(bytes: &[u8], start: usize, depth: usize) -> Option<Items> {
    let (major, count, head_end) = head_at(bytes, start)?;
    if major != 4 || depth + 1 > MAX_DEPTH {
        return None;
    }
    let mut items = Vec::with_capacity(usize::try_from(count).ok()?.min(bytes.len()));
    let mut pos = head_end;
    for _ in 0..count {
        let end = walk(bytes, pos, depth + 1).ok()?;
        items.push(pos..end);
        pos = end;
    }
    Some(Items {
        head_end,
        items,
        end: pos,
    })
}

fn ends_early() -> Refusal {
    Refusal::Malformed("the data ends too early".into())
}

fn malformed(at: usize) -> Refusal {
    Refusal::Malformed(format!("malformed CBOR at byte {at}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> Vec<u8> {
        let mut bytes = vec![0x81; depth - 1];
        bytes.push(0x80);
        bytes
    }

    #[test]
    fn well_formed_items_pass() {
        for ok in [
            &[0x00][..],
            &[0x1b, 0, 0, 0, 0, 0, 0, 0, 1],
            &[0x43, 1, 2, 3],
            &[0x62, b'h', b'i'],
            &[0xa1, 0x61, b'a', 0xf6],
            &[0x82, 0xf4, 0xf5],
            &[0xf7],
            &[0x20],
        ] {
            assert_eq!(scan(ok), Ok(()), "{ok:02x?}");
        }
        assert_eq!(scan(&nested(MAX_DEPTH)), Ok(()));
    }

    #[test]
    fn malformed_items_are_refused() {
        for bad in [
            &[][..],
            &[0x18],
            &[0x43, 1, 2],
            &[0x82, 0x00],
            &[0xa1, 0x00],
            &[0x00, 0x00],
            &[0x1c],
            &[0xff],
            &[0xf8, 0x20],
            &[0xe0],
            // A length far beyond the input, as an attacker writes it.
            &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(
                matches!(scan(bad), Err(Refusal::Malformed(_))),
                "{bad:02x?}: {:?}",
                scan(bad)
            );
        }
        assert!(matches!(
            scan(&nested(MAX_DEPTH + 1)),
            Err(Refusal::Malformed(m)) if m.contains("deeply")
        ));
    }

    #[test]
    fn values_and_items_are_found() {
        // {"a": 1, "bb": [2, "x"], "a": 3}
        let bytes = [
            0xa3, 0x61, b'a', 0x01, 0x62, b'b', b'b', 0x82, 0x02, 0x61, b'x', 0x61, b'a', 0x03,
        ];
        assert_eq!(scan(&bytes), Ok(()));
        assert_eq!(map_value(&bytes, "a"), Some(3));
        assert_eq!(map_value(&bytes, "bb"), Some(7));
        assert_eq!(map_value(&bytes, "c"), None);
        assert_eq!(map_value(&[0x80], "a"), None);
        assert_eq!(map_value(&bytes[..5], "bb"), None);
        let found = array_items(&bytes, 7, 1).unwrap();
        assert_eq!(found.head_end, 8);
        assert_eq!(found.items, vec![8..9, 9..11]);
        assert_eq!(found.end, 11);
        assert_eq!(array_items(&bytes, 3, 1), None);
        assert_eq!(array_items(&bytes[..10], 7, 1), None);
        // The depth counts from the top, as in `scan`: at most 16 levels.
        assert!(array_items(&[0x81, 0x00], 0, MAX_DEPTH - 1).is_some());
        assert!(array_items(&[0x81, 0x80], 0, MAX_DEPTH - 1).is_none());
        assert!(array_items(&[0x81, 0x80], 0, MAX_DEPTH - 2).is_some());
        assert!(array_items(&[0x81, 0x81, 0x80], 0, MAX_DEPTH - 2).is_none());
        assert!(array_items(&[0x80], 0, MAX_DEPTH).is_none());
    }

    #[test]
    fn floats_tags_and_indefinite_lengths_are_refused_as_such() {
        assert_eq!(scan(&[0xf9, 0x3e, 0x00]), Err(Refusal::FloatOrTag));
        assert_eq!(scan(&[0xc2, 0x41, 0x01]), Err(Refusal::FloatOrTag));
        assert_eq!(scan(&[0x9f, 0xff]), Err(Refusal::NotCanonical));
        assert_eq!(scan(&[0x5f, 0xff]), Err(Refusal::NotCanonical));
    }
}
