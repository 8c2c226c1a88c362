//! The independent Python verifier (`tests/interop/verify_member_list.py`,
//! written from docs/formats.md alone) against lists this crate makes: it
//! accepts what the Rust code accepts and refuses, for the same rule, what
//! the Rust code refuses.
//!
//! Needs `python3` with the `cryptography` package (`pip install
//! 'cryptography>=41'`), as CI has. Set `HANDBEREIK_SKIP_PYTHON=1` to skip on
//! a machine without them; the test says so rather than passing quietly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use handbereik_keys::{
    Anchor, Domain, MemberList, Signature, SignedEnvelope, canonical, time::MAX_SECS,
    verify_member_list,
};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/verify_member_list.py")
}

/// Whether the verifier can run here. Without `cryptography` the test skips
/// with a printed reason, unless `CI_REQUIRE_PYTHON` is set (CI sets
/// it, so there it must run).
fn python_ready() -> bool {
    if std::env::var_os("HANDBEREIK_SKIP_PYTHON").is_some() {
        eprintln!("SKIPPED: HANDBEREIK_SKIP_PYTHON is set; the Python verifier was not run");
        return false;
    }
    let ok = Command::new("python3")
        .args(["-c", "import cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var_os("CI_REQUIRE_PYTHON").is_none() {
        eprintln!(
            "SKIPPED: python3 with the cryptography package is not here \
             (pip install 'cryptography>=41' to run the independent verifier)"
        );
        return false;
    }
    assert!(
        ok,
        "python3 with the cryptography package is needed: pip install 'cryptography>=41' \
         (or set HANDBEREIK_SKIP_PYTHON=1 to skip this test)"
    );
    true
}

/// Runs the verifier on `bytes`; returns (accepted, its output line).
fn python_verify(dir: &Path, name: &str, bytes: &[u8]) -> (bool, String) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let mut command = Command::new("python3");
    command.arg(script()).arg(&path);
    for key in &two_of_three().keys {
        command.args(["--anchor", &key.to_hex()]);
    }
    let out = command
        .args(["--threshold", "2", "--now", &NOW.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success(), stdout)
}

/// `list` signed by governance keys 1 and 2, with no check on the way.
pub fn signed(list: &MemberList) -> Vec<u8> {
    signed_body(canonical::to_vec(list, "member list").unwrap())
}

/// `body` signed by governance keys 1 and 2.
fn signed_body(body: Vec<u8>) -> Vec<u8> {
    let signatures = [1u8, 2]
        .iter()
        .map(|n| Signature {
            key: gov(*n).public_key(),
            sig: gov(*n).sign(Domain::MemberList, &body),
        })
        .collect();
    SignedEnvelope { body, signatures }.encode().unwrap()
}

/// Both verifiers on one list: they must agree; a refusal must mention `rule`.
fn agree(dir: &Path, name: &str, list: &MemberList, rule: Option<&str>) {
    agree_on_bytes(dir, name, &signed(list), rule);
}

fn agree_on_bytes(dir: &Path, name: &str, bytes: &[u8], rule: Option<&str>) {
    let rust = verify_member_list(bytes, &Anchor::from_governance(&two_of_three()), None, NOW);
    let (python, line) = python_verify(dir, name, bytes);
    match rule {
        None => {
            assert!(rust.is_ok(), "{name}: Rust refused: {}", rust.unwrap_err());
            assert!(python, "{name}: Python refused: {line}");
        }
        Some(rule) => {
            let err = rust.expect_err(name).to_string();
            assert!(err.contains(rule), "{name}: Rust: {err}");
            assert!(!python, "{name}: Python accepted: {line}");
            assert!(line.contains(rule), "{name}: Python: {line}");
        }
    }
}

#[test]
fn python_and_rust_agree_on_time_bounds() {
    if !python_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = first_draft().list;
    agree(d, "plain.cbor", &base, None);

    let mut list = base.clone();
    list.expires_at = MAX_SECS;
    list.members[0].valid_until = Some(MAX_SECS);
    agree(d, "last-moment.cbor", &list, None);

    let mut list = base.clone();
    list.expires_at = MAX_SECS + 1;
    agree(d, "expires.cbor", &list, Some("expires_at is past"));

    let mut list = base.clone();
    list.members[1].valid_from = u64::MAX;
    agree(d, "valid-from.cbor", &list, Some("valid_from is past"));

    let mut list = base.clone();
    list.members[0].valid_until = Some(MAX_SECS + 1);
    agree(d, "valid-until.cbor", &list, Some("valid_until is past"));

    let mut list = base;
    list.revoked.push(handbereik_keys::Revocation {
        key: node(9).public_key(),
        member_id: oin(9),
        revoked_at: u64::MAX,
        reason: "x".into(),
    });
    agree(d, "revoked-at.cbor", &list, Some("revoked_at is past"));
}

#[test]
fn python_and_rust_agree_on_regions() {
    if !python_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A list signed before regions existed.
    let before = include_bytes!("fixtures/member-list-v1-before-regions.cbor");
    agree_on_bytes(d, "before-regions.cbor", before, None);

    let base = first_draft().list;
    let codes = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut list = base.clone();
    list.members[0].regions = codes(&["GM0344", "GM0363", "GM363", "JR12", "VR13"]);
    agree(d, "regions.cbor", &list, None);

    let mut list = base.clone();
    list.members[0].regions = (0..512).map(|i| format!("GM{i:04}")).collect();
    agree(d, "512-regions.cbor", &list, None);
    list.members[0].regions.push("ZZ99".into());
    agree(d, "513-regions.cbor", &list, Some("at most 512"));

    for (name, bad) in [
        ("lowercase.cbor", "gm0363"),
        ("short.cbor", "GM1"),
        ("long.cbor", "GM03631"),
        ("letters.cbor", "GMX363"),
        ("wide-digits.cbor", "GM\u{663}\u{663}"),
    ] {
        let mut list = base.clone();
        list.members[1].regions = vec![bad.to_string()];
        agree(d, name, &list, Some("not a region code"));
    }

    let mut list = base.clone();
    list.members[0].regions = codes(&["VR13", "GM0363"]);
    agree(d, "unsorted.cbor", &list, Some("sorted"));
    list.members[0].regions = codes(&["GM0363", "GM0363"]);
    agree(d, "repeated.cbor", &list, Some("sorted"));

    // `regions: []` written out: a second encoding of a list without regions.
    let mut tree = ciborium::Value::serialized(&base).unwrap();
    if let ciborium::Value::Map(entries) = &mut tree {
        for (k, v) in entries.iter_mut() {
            if k.as_text() == Some("members")
                && let ciborium::Value::Array(members) = v
                && let ciborium::Value::Map(fields) = &mut members[0]
            {
                fields.push(("regions".into(), ciborium::Value::Array(Vec::new())));
            }
        }
    }
    let body = canonical::to_vec(&tree, "tree").unwrap();
    agree_on_bytes(
        d,
        "empty-regions.cbor",
        &signed_body(body),
        Some("canonical"),
    );
}

#[test]
fn python_and_rust_agree_on_the_network_profile() {
    if !python_ready() {
        return;
    }
    use ciborium::Value;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = first_draft().list;
    let roles = |names: &[&str]| -> Vec<handbereik_keys::ActorRole> {
        names
            .iter()
            .map(|n| handbereik_keys::ActorRole::parse(n).unwrap())
            .collect()
    };
    let mut list = base.clone();
    list.profile.actor_roles = roles(&[
        "burgerportaal",
        "casusregisseur",
        "deelnemer",
        "melder",
        "procesregisseur",
    ]);
    list.members[0].regions = vec!["GM0363".into()];
    agree(d, "profile.cbor", &list, None);

    let mut list = base.clone();
    list.profile.actor_roles = (0..64)
        .map(|i| handbereik_keys::ActorRole::parse(&format!("rol-{i:02}")).unwrap())
        .collect();
    agree(d, "64-roles.cbor", &list, None);
    list.profile
        .actor_roles
        .push(handbereik_keys::ActorRole::parse("zz").unwrap());
    agree(d, "65-roles.cbor", &list, Some("at most 64 actor roles"));

    let mut list = base.clone();
    list.profile.actor_roles = roles(&["melder", "deelnemer"]);
    agree(d, "unsorted-roles.cbor", &list, Some("sorted"));

    // Forms only a hand-made list has: empty, unknown, malformed.
    let with_profile = |value: Value| {
        let mut tree = Value::serialized(&base).unwrap();
        if let Value::Map(entries) = &mut tree {
            entries.push(("profile".into(), value));
        }
        signed_body(canonical::to_vec(&tree, "tree").unwrap())
    };
    let role_list =
        |items: Vec<Value>| Value::Map(vec![("actor_roles".into(), Value::Array(items))]);
    agree_on_bytes(
        d,
        "empty-profile.cbor",
        &with_profile(Value::Map(Vec::new())),
        Some("canonical"),
    );
    agree_on_bytes(
        d,
        "empty-roles.cbor",
        &with_profile(role_list(Vec::new())),
        Some("canonical"),
    );
    agree_on_bytes(
        d,
        "unknown-in-profile.cbor",
        &with_profile(Value::Map(vec![("colour".into(), Value::Text("x".into()))])),
        Some("unknown field"),
    );
    agree_on_bytes(
        d,
        "capital-role.cbor",
        &with_profile(role_list(vec![Value::Text("Melder".into())])),
        Some("a-z, 0-9"),
    );
    agree_on_bytes(
        d,
        "one-role.cbor",
        &with_profile(role_list(vec![Value::Text("melder".into())])),
        None,
    );
}
