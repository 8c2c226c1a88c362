//! Holds docs/configuration.md against the code: every key the loader
//! accepts is documented, every documented key exists, each documented
//! environment variable is the one the loader reads, and each documented
//! default is the code's default.
//!
//! The code's keys are not listed by hand here. Every section refuses
//! unknown keys, and serde's refusal names the keys it expected, so the
//! test asks the loader itself: it feeds a key that does not exist into each
//! section and reads the expected ones out of the error.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use handbereik_node::config::{Config, ConfigError};

const REFERENCE: &str = include_str!("../../docs/configuration.md");

/// A configuration that passes parsing: only the required keys.
const MINIMAL: &str = r#"
[node]
member_id = "00000001001234567000"
network = "demo"
[governance]
anchor_keys = ["6ac13c94e74a8af4e0b67b1e9d7c2e3f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d"]
threshold = 1
"#;

const PROBE: &str = "zz_not_a_key";

/// The names serde lists after "expected" in an unknown-field error.
fn expected_names(message: &str) -> BTreeSet<String> {
    let Some((_, expected)) = message.split_once("expected") else {
        panic!("the loader's message no longer lists the expected keys: {message}");
    };
    // The loader appends the section: "... expected one of `a`, `b` in `node`".
    let expected = expected
        .rsplit_once(" in `")
        .map_or(expected, |(names, _)| names);
    let names: BTreeSet<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert!(!names.is_empty(), "no key names in: {message}");
    names
}

/// Loads `text` and returns the expected keys named by the refusal.
fn refusal(text: &str) -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("handbereik.toml");
    std::fs::write(&path, text).unwrap();
    match Config::load(&path) {
        Err(ConfigError::Syntax { message, .. }) => {
            assert!(
                message.contains(PROBE),
                "the refusal does not name the unknown key: {message}"
            );
            expected_names(&message)
        }
        Err(other) => panic!("expected an unknown-key refusal, got: {other}"),
        Ok(_) => panic!("a config with `{PROBE}` was accepted:\n{text}"),
    }
}

/// The code's keys, as `section.key`, plus the fields of one category.
fn code_keys() -> (BTreeSet<String>, BTreeSet<String>) {
    let sections = refusal(&format!("{PROBE} = 1\n{MINIMAL}"));
    let mut keys = BTreeSet::new();
    for section in &sections {
        let text = if MINIMAL.contains(&format!("[{section}]")) {
            MINIMAL.replace(
                &format!("[{section}]"),
                &format!("[{section}]\n{PROBE} = 1"),
            )
        } else {
            format!("{MINIMAL}\n[{section}]\n{PROBE} = 1\n")
        };
        for key in refusal(&text) {
            keys.insert(format!("{section}.{key}"));
        }
    }
    let category = refusal(&format!(
        "{MINIMAL}\n[registry.categories.x]\nkind = \"dat\"\nclassification = \"basis\"\n{PROBE} = 1\n"
    ));
    (keys, category)
}

/// Documented rows: key → environment variable cell.
fn documented() -> BTreeMap<String, String> {
    let mut rows = BTreeMap::new();
    for line in REFERENCE.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `key` | type | default | variable | meaning |
        if cells.len() < 7 {
            continue;
        }
        let Some(key) = cells[1].strip_prefix('`').and_then(|c| c.strip_suffix('`')) else {
            continue;
        };
        let previous = rows.insert(key.to_string(), cells[4].trim_matches('`').to_string());
        assert!(previous.is_none(), "{key} is documented twice");
    }
    rows
}

#[test]
fn every_key_of_the_code_is_documented_and_no_other() {
    let (code, category_fields) = code_keys();
    assert!(code.len() >= 20, "too few keys found in the code: {code:?}");
    let docs = documented();
    let documented_keys: BTreeSet<String> = docs
        .keys()
        .filter(|k| !k.starts_with("registry.categories.NAME."))
        .cloned()
        .collect();
    let missing: Vec<_> = code.difference(&documented_keys).collect();
    let extra: Vec<_> = documented_keys.difference(&code).collect();
    assert!(
        missing.is_empty(),
        "keys in the code but not in docs/configuration.md: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "keys in docs/configuration.md that the code does not accept: {extra:?}"
    );
    let documented_fields: BTreeSet<String> = docs
        .keys()
        .filter_map(|k| k.strip_prefix("registry.categories.NAME."))
        .map(str::to_string)
        .collect();
    assert_eq!(
        documented_fields, category_fields,
        "the fields of a category in docs/configuration.md"
    );
}

#[test]
fn every_documented_variable_is_the_one_the_loader_reads() {
    for (key, variable) in documented() {
        if key.starts_with("registry.categories.NAME.") {
            continue;
        }
        let want = format!("HANDBEREIK_{}", key.replace('.', "_").to_ascii_uppercase());
        assert_eq!(variable, want, "the environment variable of {key}");
    }
    // And the loader really reads such a name: a bad value through the
    // documented variable is refused with the key named.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("handbereik.toml");
    std::fs::write(&path, MINIMAL).unwrap();
    let env = [(
        "HANDBEREIK_PEER_API_MAX_HANDSHAKES".to_string(),
        "0".to_string(),
    )];
    match Config::load_with(&path, env, &[]) {
        Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "peer_api.max_handshakes"),
        other => panic!("expected peer_api.max_handshakes refused, got {other:?}"),
    }
}

/// Loads `text` from `dir` with `sets` applied as `--set` flags; the
/// configuration as read (paths resolved), in its Debug form, or the error.
fn load_minimal(dir: &std::path::Path, text: &str, sets: &[String]) -> Result<String, ConfigError> {
    let path = dir.join("handbereik.toml");
    std::fs::write(&path, text).unwrap();
    Config::load_with(&path, std::iter::empty(), sets).map(|valid| format!("{:?}", valid.config))
}

/// The default column: `required` keys must be given, `none` keys may be
/// left out, and any other value, given as `--set section.key=VALUE`, must
/// leave the configuration exactly as the code's own default does.
#[test]
fn every_documented_default_is_the_code_default() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let base = load_minimal(dir, MINIMAL, &[])
        .unwrap_or_else(|e| panic!("the minimal configuration of this test is refused: {e}"));
    let mut checked = 0;
    for line in REFERENCE.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 7 {
            continue;
        }
        let Some(key) = cells[1].strip_prefix('`').and_then(|c| c.strip_suffix('`')) else {
            continue;
        };
        if key.starts_with("registry.categories.NAME.") {
            continue;
        }
        let Some((section, field)) = key.split_once('.') else {
            panic!("documented key {key} is not section.key");
        };
        let default = cells[3];
        let given = MINIMAL
            .lines()
            .any(|l| l.starts_with(&format!("{field} =")))
            && MINIMAL.contains(&format!("[{section}]"));
        match default {
            "required" => {
                assert!(
                    given,
                    "{key} is documented as required, but the test's minimal config, which lacks it, loads"
                );
                let without: String = MINIMAL
                    .lines()
                    .filter(|l| !l.starts_with(&format!("{field} =")))
                    .map(|l| format!("{l}\n"))
                    .collect();
                match load_minimal(dir, &without, &[]) {
                    Err(ConfigError::Syntax { message, .. }) => assert!(
                        message.contains("missing field") && message.contains(field),
                        "{key} left out: {message}"
                    ),
                    other => panic!(
                        "{key} is documented as required, but leaving it out gives {other:?}"
                    ),
                }
            }
            _ => {
                assert!(
                    !given,
                    "{key} has a documented default ({default}) but the test's minimal config gives it"
                );
                if default != "none" {
                    let value = match default {
                        "empty" => "{}",
                        cell => cell
                            .strip_prefix('`')
                            .and_then(|c| c.strip_suffix('`'))
                            .unwrap_or_else(|| {
                                panic!("the default of {key} is not `VALUE`, required, none or empty: {default}")
                            }),
                    };
                    let set = format!("{key}={value}");
                    let with = load_minimal(dir, MINIMAL, std::slice::from_ref(&set))
                        .unwrap_or_else(|e| {
                            panic!("the documented default of {key} is refused: --set {set}: {e}")
                        });
                    if with != base {
                        let differ: Vec<(&str, &str)> = with
                            .split(", ")
                            .zip(base.split(", "))
                            .filter(|(a, b)| a != b)
                            .collect();
                        panic!(
                            "the documented default of {key} ({value}) is not the code's default: \
                             (documented, code) {differ:?}"
                        );
                    }
                }
            }
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} documented defaults found");
}

#[test]
fn the_expected_names_are_read_from_both_serde_forms() {
    assert_eq!(
        expected_names("unknown field `zz`, expected one of `a`, `b` in `node`"),
        BTreeSet::from(["a".to_string(), "b".to_string()])
    );
    assert_eq!(
        expected_names("unknown field `zz`, expected `only`"),
        BTreeSet::from(["only".to_string()])
    );
}
