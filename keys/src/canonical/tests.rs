//! Tests of the canonical encoder and decoder: each rule of docs/formats.md
//! §1.2 and §1.3 with an input that breaks it, the encoder against the one
//! these formats were written with before, and the split decoder against the
//! whole one.

use super::*;
use ciborium::Value;
use proptest::prelude::*;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

/// The encoder these formats were written with before `encode`: a
/// ciborium value tree, every map sorted by its encoded keys, written by
/// ciborium. The new encoder must give the same bytes for every value.
fn oracle<T: Serialize>(value: &T) -> Vec<u8> {
    fn canonicalize(value: Value) -> Value {
        match value {
            Value::Array(items) => Value::Array(items.into_iter().map(canonicalize).collect()),
            Value::Map(entries) => {
                let mut keyed: Vec<(Vec<u8>, Value, Value)> = entries
                    .into_iter()
                    .map(|(k, v)| {
                        let k = canonicalize(k);
                        let mut encoded = Vec::new();
                        ciborium::ser::into_writer(&k, &mut encoded).unwrap();
                        (encoded, k, canonicalize(v))
                    })
                    .collect();
                keyed.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Map(keyed.into_iter().map(|(_, k, v)| (k, v)).collect())
            }
            other => other,
        }
    }
    let mut out = Vec::new();
    ciborium::ser::into_writer(&canonicalize(Value::serialized(value).unwrap()), &mut out).unwrap();
    out
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<u64>().prop_map(|n| Value::Integer(n.into())),
        any::<i64>().prop_map(|n| Value::Integer(n.into())),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
        ".{0,30}".prop_map(Value::Text),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((inner.clone(), inner), 0..8).prop_map(Value::Map),
        ]
    })
}

#[derive(Serialize)]
enum Kinds {
    Unit,
    Newtype(u32),
    Tuple(u8, String),
    Struct { zz: bool, a: Option<i64> },
}

#[derive(Serialize)]
struct Wrapper(String);

#[derive(Serialize)]
struct Empty;

#[derive(Serialize)]
struct Everything {
    kinds: Vec<Kinds>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    maybe: Vec<u8>,
    by_name: BTreeMap<String, Vec<u8>>,
    by_number: HashMap<u32, String>,
    pair: (u8, String),
    letter: char,
    wide: i128,
    huge: u128,
    wrapper: Wrapper,
    empty: Empty,
    unit: (),
    #[serde(with = "crate::bytes::byte_string")]
    raw: Vec<u8>,
}

proptest! {
    #[test]
    fn the_encoder_writes_what_the_value_tree_wrote(value in arb_value()) {
        prop_assert_eq!(encode::to_vec(&value).unwrap(), oracle(&value));
    }

    #[test]
    fn every_kind_of_serde_value_encodes_as_before(
        n in any::<u32>(),
        text in ".{0,40}",
        names in proptest::collection::btree_map("[a-z]{0,30}", proptest::collection::vec(any::<u8>(), 0..5), 0..30),
        numbers in proptest::collection::hash_map(any::<u32>(), "[a-z]{0,3}", 0..30),
        maybe in proptest::collection::vec(any::<u8>(), 0..3),
        letter in any::<char>(),
        wide in any::<i64>(),
        huge in any::<u64>(),
    ) {
        let value = Everything {
            kinds: vec![
                Kinds::Unit,
                Kinds::Newtype(n),
                Kinds::Tuple(7, text.clone()),
                Kinds::Struct { zz: true, a: Some(-5) },
                Kinds::Struct { zz: false, a: None },
            ],
            maybe,
            by_name: names,
            by_number: numbers,
            pair: (1, text.clone()),
            letter,
            // Up to twice i64: beyond i64, within what CBOR writes without a tag.
            wide: i128::from(wide) * 2,
            huge: u128::from(huge),
            wrapper: Wrapper(text.clone()),
            empty: Empty,
            unit: (),
            raw: text.into_bytes(),
        };
        prop_assert_eq!(encode::to_vec(&value).unwrap(), oracle(&value));
    }
}

#[test]
fn a_member_list_encodes_as_before() {
    use crate::{
        ActorRole, GovernanceSet, Member, MemberId, MemberList, NetworkProfile, NodeKey, Purpose,
        Revocation, Role,
    };
    let key = |n: u8| NodeKey::from_seed([n; 32]).public_key();
    let member = |n: u8, regions: &[&str]| Member {
        member_id: MemberId::parse(&format!("000000010012345{n:05}")).unwrap(),
        name: format!("Partner ñ {n}"),
        roles: vec![Role::Afnemer, Role::Bronhouder],
        purposes: vec![Purpose::parse("jeugd").unwrap()],
        node_key: key(n),
        p2p_addresses: vec!["/dns4/a.example.nl/tcp/4001".into()],
        grpc_endpoint: "a.example.nl:7443".into(),
        valid_from: 1_800_000_000,
        valid_until: n.is_multiple_of(2).then_some(1_900_000_000),
        maintenance: n == 3,
        regions: regions.iter().map(|r| r.to_string()).collect(),
    };
    let list = MemberList {
        network: "demo".into(),
        version: 300,
        issued_at: 1_800_000_000,
        expires_at: 1_800_086_400,
        governance: GovernanceSet::new(vec![key(100), key(101)], 1).unwrap(),
        members: vec![
            member(1, &[]),
            member(2, &["GM0363", "VR13"]),
            member(3, &[]),
        ],
        revoked: vec![Revocation {
            key: key(9),
            member_id: MemberId::parse("00000001001234500009").unwrap(),
            revoked_at: 5,
            reason: "lost".into(),
        }],
        profile: NetworkProfile {
            actor_roles: vec![ActorRole::parse("melder").unwrap()],
        },
    };
    assert_eq!(to_vec(&list, "l").unwrap(), oracle(&list));
    let mut bare = list;
    bare.profile = NetworkProfile::default();
    assert_eq!(to_vec(&bare, "l").unwrap(), oracle(&bare));
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct Item {
    n: u64,
    key: crate::PublicKey,
    name: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct Holder {
    tail: String,
    items: Vec<Item>,
    zz: Option<u8>,
}

fn holder(count: usize) -> Vec<u8> {
    let key = crate::NodeKey::from_seed([3; 32]).public_key();
    let value = Holder {
        tail: "end".into(),
        items: (0..count as u64)
            .map(|n| Item {
                n,
                key,
                name: format!("item {n}"),
            })
            .collect(),
        zz: Some(1),
    };
    to_vec(&value, "h").unwrap()
}

fn split(bytes: &[u8]) -> Result<Holder> {
    from_slice_split(bytes, "h", None, "items", |h: &mut Holder, items| {
        h.items = items
    })
}

/// The split decoder gives the whole decoder's answer: the same value,
/// or an error of the same kind.
fn same_answer(bytes: &[u8]) {
    let whole = from_slice::<Holder>(bytes, "h");
    let parts = split(bytes);
    match (&whole, &parts) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(
            std::mem::discriminant(a),
            std::mem::discriminant(b),
            "whole: {a}; split: {b}"
        ),
        _ => panic!("whole: {whole:?}; split: {parts:?}"),
    }
}

#[test]
fn a_long_array_decodes_in_parts_to_the_same_value() {
    let bytes = holder(2 * ITEMS_PER_THREAD + 5);
    let value = split(&bytes).unwrap();
    assert_eq!(value.items.len(), 2 * ITEMS_PER_THREAD + 5);
    assert_eq!(value, from_slice::<Holder>(&bytes, "h").unwrap());
    same_answer(&holder(10));
}

#[test]
fn a_long_array_is_refused_in_parts_as_a_whole() {
    let bytes = holder(2 * ITEMS_PER_THREAD + 5);
    // A weak key deep inside.
    let key = *crate::NodeKey::from_seed([3; 32]).public_key().as_bytes();
    let at = bytes.windows(32).rposition(|w| w == key).unwrap();
    let mut weak = bytes.clone();
    weak[at..at + 32].copy_from_slice(&{
        let mut identity = [0u8; 32];
        identity[0] = 1;
        identity
    });
    assert!(split(&weak).unwrap_err().to_string().contains("weak"));
    same_answer(&weak);
    // The array's count in a longer head than needed: 0x9a + 4 bytes.
    let start = bytes.windows(6).position(|w| w == b"\x65items").unwrap() + 6;
    assert_eq!(bytes[start], 0x99);
    let mut long = bytes[..start].to_vec();
    long.push(0x9a);
    long.extend_from_slice(&((2 * ITEMS_PER_THREAD + 5) as u32).to_be_bytes());
    long.extend_from_slice(&bytes[start + 3..]);
    assert!(matches!(split(&long), Err(KeysError::NotCanonical { .. })));
    same_answer(&long);
    // Trailing bytes, a truncated end, an item with a long integer head.
    let mut trailing = bytes.clone();
    trailing.push(0);
    same_answer(&trailing);
    same_answer(&bytes[..bytes.len() - 1]);
    let mut item_head = bytes[..start + 3].to_vec();
    let first = &bytes[start + 3..];
    // The first item is {"n": 0, ...}: write 0 as 0x18 0x00 and fix nothing else.
    let n = first.windows(2).position(|w| w == b"\x61n").unwrap() + 2;
    item_head.extend_from_slice(&first[..n]);
    item_head.extend_from_slice(&[0x18, 0x00]);
    item_head.extend_from_slice(&first[n + 1..]);
    assert!(matches!(
        split(&item_head),
        Err(KeysError::NotCanonical { .. })
    ));
    same_answer(&item_head);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn any_flipped_bit_gets_the_whole_decoders_answer(index in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = holder(2 * ITEMS_PER_THREAD + 1);
        let i = index.index(bytes.len());
        bytes[i] ^= 1 << bit;
        same_answer(&bytes);
    }
}

#[test]
fn a_map_of_unknown_length_gets_the_right_head() {
    // serde's flatten writes maps without a length up front.
    #[derive(Serialize)]
    struct Outer {
        first: u8,
        #[serde(flatten)]
        rest: BTreeMap<String, u8>,
    }
    let rest: BTreeMap<String, u8> = (0..30).map(|i| (format!("k{i}"), i)).collect();
    let value = Outer { first: 1, rest };
    assert_eq!(encode::to_vec(&value).unwrap(), oracle(&value));
}

#[test]
fn floats_and_wide_integers_are_not_encoded() {
    assert!(to_vec(&1.5f64, "f").is_err());
    assert!(to_vec(&u128::MAX, "u").is_err());
    assert!(to_vec(&i128::MIN, "i").is_err());
}

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
