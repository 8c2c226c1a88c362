//! The canonical encoder: a serde serializer that writes docs/formats.md §1.2
//! directly, without building a tree of values first.
//!
//! Owns the one encoding of every signed body: shortest heads, definite
//! lengths, and every map's entries sorted by the bytes of their encoded
//! keys. Each map is written in the order serde gives its entries, with
//! their positions noted on a shared stack; at the map's end the entries are
//! rewritten in sorted order when they are not sorted already. The mapping
//! of the serde data model is ciborium's, which wrote these formats before:
//! `None` and `()` as null, a unit variant as its name, a newtype variant as
//! a one-entry map, a struct as a map of its field names. Floats and values
//! that need a tag (integers beyond 64 bits) are refused: no format here has
//! them. Calls `serde` only.

use std::fmt;

use serde::ser::{self, Serialize};

/// Why a value could not be encoded: a type these formats do not use.
#[derive(Debug)]
pub(crate) struct EncodeError(String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

impl ser::Error for EncodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        EncodeError(msg.to_string())
    }
}

/// Encodes `value` in the canonical form.
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut encoder = Encoder::default();
    value.serialize(&mut encoder)?;
    Ok(encoder.out)
}

thread_local! {
    /// An encoder kept for [`encodes_to`], so that checking thousands of
    /// values (the members of a list) allocates nothing after the first.
    static REUSED: std::cell::RefCell<Encoder> = std::cell::RefCell::new(Encoder::default());
}

/// Whether `value`'s canonical encoding is exactly `bytes`.
pub(crate) fn encodes_to<T: Serialize + ?Sized>(
    value: &T,
    bytes: &[u8],
) -> Result<bool, EncodeError> {
    REUSED.with(|cell| match cell.try_borrow_mut() {
        Ok(mut encoder) => {
            encoder.out.clear();
            encoder.entries.clear();
            encoder.out.reserve(bytes.len());
            value.serialize(&mut *encoder)?;
            let same = encoder.out == bytes;
            // Keep the buffers, but not one of a few megabytes.
            if encoder.out.capacity() > 1 << 20 {
                *encoder = Encoder::default();
            }
            Ok(same)
        }
        // Only if a value's serialize called back in here: encode afresh.
        Err(_) => Ok(to_vec(value)? == bytes),
    })
}

/// Where one map entry lies in the output.
#[derive(Clone, Copy)]
struct Entry {
    key_start: usize,
    key_end: usize,
    end: usize,
}

#[derive(Default)]
struct Encoder {
    out: Vec<u8>,
    /// The entries of every map being written, innermost last.
    entries: Vec<Entry>,
    /// Room to rewrite a map's entries in sorted order.
    scratch: Vec<u8>,
}

const UNSIGNED: u8 = 0;
const NEGATIVE: u8 = 1;
const BYTES: u8 = 2;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
const MAP: u8 = 5;
const FALSE: u8 = 0xf4;
const TRUE: u8 = 0xf5;
const NULL: u8 = 0xf6;

/// The shortest head for `major` and `argument`, and how many of the bytes
/// it takes.
pub(super) fn head(major: u8, argument: u64) -> ([u8; 9], usize) {
    let mut out = [0u8; 9];
    let major = major << 5;
    let len = match argument {
        0..=23 => {
            out[0] = major | argument as u8;
            1
        }
        24..=0xff => {
            out[0] = major | 24;
            out[1] = argument as u8;
            2
        }
        0x100..=0xffff => {
            out[0] = major | 25;
            out[1..3].copy_from_slice(&(argument as u16).to_be_bytes());
            3
        }
        0x1_0000..=0xffff_ffff => {
            out[0] = major | 26;
            out[1..5].copy_from_slice(&(argument as u32).to_be_bytes());
            5
        }
        _ => {
            out[0] = major | 27;
            out[1..9].copy_from_slice(&argument.to_be_bytes());
            9
        }
    };
    (out, len)
}

impl Encoder {
    fn head(&mut self, major: u8, argument: u64) {
        let (bytes, len) = head(major, argument);
        self.out.extend_from_slice(&bytes[..len]);
    }

    fn text(&mut self, text: &str) {
        self.head(TEXT, text.len() as u64);
        self.out.extend_from_slice(text.as_bytes());
    }

    /// Starts an array or map of `len` items (if known): writes its head now
    /// and remembers where, so that `finish` can correct it.
    fn open(&mut self, major: u8, len: Option<usize>) -> Open {
        let at = self.out.len();
        let declared = len.map(|n| n as u64);
        let (bytes, head_len) = head(major, declared.unwrap_or(0));
        self.out.extend_from_slice(&bytes[..head_len]);
        Open {
            major,
            at,
            head_len,
            declared,
            count: 0,
            base: self.entries.len(),
        }
    }

    /// Ends an array or map: sorts a map's entries, and rewrites the head if
    /// serde's count was missing or wrong.
    fn finish(&mut self, open: Open) {
        if open.major == MAP {
            self.sort_entries(open.base);
            self.entries.truncate(open.base);
        }
        if open.declared != Some(open.count) {
            let (bytes, len) = head(open.major, open.count);
            self.out.splice(
                open.at..open.at + open.head_len,
                bytes[..len].iter().copied(),
            );
        }
    }

    /// Rewrites the entries from `base` on in the order of their key bytes,
    /// unless they are in that order already. Stable: equal keys keep their
    /// order.
    fn sort_entries(&mut self, base: usize) {
        let out = &self.out;
        let entries = &mut self.entries[base..];
        let key = |e: &Entry| &out[e.key_start..e.key_end];
        if entries
            .windows(2)
            .all(|w| compare(key(&w[0]), key(&w[1])).is_le())
        {
            return;
        }
        // Entries lie one after the other, from the first key to the last value.
        let (Some(start), Some(end)) = (
            entries.first().map(|e| e.key_start),
            entries.last().map(|e| e.end),
        ) else {
            return;
        };
        entries.sort_by(|a, b| compare(key(a), key(b)));
        self.scratch.clear();
        for e in entries.iter() {
            self.scratch.extend_from_slice(&out[e.key_start..e.end]);
        }
        self.out[start..end].copy_from_slice(&self.scratch);
    }

    fn begin_entry(&mut self) -> usize {
        self.out.len()
    }

    fn end_entry(&mut self, key_start: usize, key_end: usize) {
        self.entries.push(Entry {
            key_start,
            key_end,
            end: self.out.len(),
        });
    }
}

/// Bytewise order of two encoded keys. The first byte of a short text key
/// is its length, which decides most comparisons of field names at once.
fn compare(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// An array or map being written.
struct Open {
    major: u8,
    at: usize,
    head_len: usize,
    declared: Option<u64>,
    count: u64,
    base: usize,
}

/// The serializer for arrays, maps and structs (and variants holding them).
struct Compound<'a> {
    encoder: &'a mut Encoder,
    open: Open,
    /// For maps: where the current key began and ended.
    key: Option<(usize, usize)>,
}

impl Compound<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        value.serialize(&mut *self.encoder)?;
        self.open.count += 1;
        Ok(())
    }

    fn field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        let key_start = self.encoder.begin_entry();
        self.encoder.text(key);
        let key_end = self.encoder.out.len();
        value.serialize(&mut *self.encoder)?;
        self.encoder.end_entry(key_start, key_end);
        self.open.count += 1;
        Ok(())
    }

    fn done(self) -> Result<(), EncodeError> {
        self.encoder.finish(self.open);
        Ok(())
    }
}

fn unsupported(what: &str) -> EncodeError {
    EncodeError(format!("{what} are not used in these formats"))
}

impl<'a> ser::Serializer for &'a mut Encoder {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Result<(), EncodeError> {
        self.out.push(if v { TRUE } else { FALSE });
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), EncodeError> {
        self.serialize_i64(v.into())
    }

    fn serialize_i16(self, v: i16) -> Result<(), EncodeError> {
        self.serialize_i64(v.into())
    }

    fn serialize_i32(self, v: i32) -> Result<(), EncodeError> {
        self.serialize_i64(v.into())
    }

    fn serialize_i64(self, v: i64) -> Result<(), EncodeError> {
        if v < 0 {
            // -1 - n, as CBOR writes a negative integer.
            self.head(NEGATIVE, !(v as u64));
        } else {
            self.head(UNSIGNED, v as u64);
        }
        Ok(())
    }

    fn serialize_i128(self, v: i128) -> Result<(), EncodeError> {
        match i64::try_from(v) {
            Ok(v) => self.serialize_i64(v),
            Err(_) if v >= 0 => self.serialize_u128(v as u128),
            Err(_) => match u64::try_from(-1 - v) {
                Ok(n) => {
                    self.head(NEGATIVE, n);
                    Ok(())
                }
                Err(_) => Err(unsupported("integers beyond 64 bits")),
            },
        }
    }

    fn serialize_u8(self, v: u8) -> Result<(), EncodeError> {
        self.serialize_u64(v.into())
    }

    fn serialize_u16(self, v: u16) -> Result<(), EncodeError> {
        self.serialize_u64(v.into())
    }

    fn serialize_u32(self, v: u32) -> Result<(), EncodeError> {
        self.serialize_u64(v.into())
    }

    fn serialize_u64(self, v: u64) -> Result<(), EncodeError> {
        self.head(UNSIGNED, v);
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Result<(), EncodeError> {
        let v = u64::try_from(v).map_err(|_| unsupported("integers beyond 64 bits"))?;
        self.serialize_u64(v)
    }

    fn serialize_f32(self, _: f32) -> Result<(), EncodeError> {
        Err(unsupported("floats"))
    }

    fn serialize_f64(self, _: f64) -> Result<(), EncodeError> {
        Err(unsupported("floats"))
    }

    fn serialize_char(self, v: char) -> Result<(), EncodeError> {
        self.text(v.encode_utf8(&mut [0u8; 4]));
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), EncodeError> {
        self.text(v);
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), EncodeError> {
        self.head(BYTES, v.len() as u64);
        self.out.extend_from_slice(v);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), EncodeError> {
        self.out.push(NULL);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), EncodeError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), EncodeError> {
        self.serialize_none()
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), EncodeError> {
        self.serialize_none()
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), EncodeError> {
        self.text(variant);
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        refuse_tags(name)?;
        self.head(MAP, 1);
        self.text(variant);
        value.serialize(self)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'a>, EncodeError> {
        let open = self.open(ARRAY, len);
        Ok(Compound {
            encoder: self,
            open,
            key: None,
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>, EncodeError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, EncodeError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, EncodeError> {
        refuse_tags(name)?;
        self.head(MAP, 1);
        self.text(variant);
        self.serialize_seq(Some(len))
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Compound<'a>, EncodeError> {
        let open = self.open(MAP, len);
        Ok(Compound {
            encoder: self,
            open,
            key: None,
        })
    }

    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Compound<'a>, EncodeError> {
        self.serialize_map(Some(len))
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, EncodeError> {
        refuse_tags(name)?;
        self.head(MAP, 1);
        self.text(variant);
        self.serialize_map(Some(len))
    }
}

/// ciborium writes its tag wrappers as a variant of an enum of this name; no
/// format here uses tags.
fn refuse_tags(name: &str) -> Result<(), EncodeError> {
    if name == "@@TAG@@" {
        Err(unsupported("tags"))
    } else {
        Ok(())
    }
}

/// Arrays, tuples and tuple variants all write their items one after another.
macro_rules! items {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = EncodeError;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
                self.element(value)
            }

            fn end(self) -> Result<(), EncodeError> {
                self.done()
            }
        }
    )*};
}

items!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), EncodeError> {
        let start = self.encoder.begin_entry();
        key.serialize(&mut *self.encoder)?;
        self.key = Some((start, self.encoder.out.len()));
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        let (key_start, key_end) = self
            .key
            .take()
            .ok_or_else(|| EncodeError("a map value without its key".into()))?;
        value.serialize(&mut *self.encoder)?;
        self.encoder.end_entry(key_start, key_end);
        self.open.count += 1;
        Ok(())
    }

    fn end(self) -> Result<(), EncodeError> {
        self.done()
    }
}

/// Structs and struct variants write their fields as map entries.
macro_rules! fields {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = EncodeError;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), EncodeError> {
                self.field(key, value)
            }

            fn end(self) -> Result<(), EncodeError> {
                self.done()
            }
        }
    )*};
}

fields!(SerializeStruct, SerializeStructVariant);
