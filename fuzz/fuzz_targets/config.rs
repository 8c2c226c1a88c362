//! The node's configuration file: `Config::load_with` reads it from disk,
//! applies overrides and validates. Input: the file's text, then after a NUL
//! byte, one `--set section.key=value` per line.
#![no_main]
use handbereik_node::config::Config;
use libfuzzer_sys::fuzz_target;
use std::io::Write;
use std::sync::LazyLock;

#[allow(clippy::expect_used)]
static DIR: LazyLock<tempfile::TempDir> =
    LazyLock::new(|| tempfile::tempdir().expect("a temporary directory"));

fuzz_target!(|data: &[u8]| {
    let (file, sets) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let sets: Vec<String> = String::from_utf8_lossy(sets)
        .lines()
        .map(str::to_string)
        .collect();
    let path = DIR.path().join("handbereik.toml");
    let Ok(mut f) = std::fs::File::create(&path) else {
        return;
    };
    if f.write_all(file).is_err() {
        return;
    }
    drop(f);
    let _ = Config::load_with(&path, std::iter::empty(), &sets);
});
