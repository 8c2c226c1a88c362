//! Helpers for the end-to-end tests: the built binaries and running them.
//!
//! The tests here drive `handbereik` and `handbereik-keys` as a partner and a
//! governance officer would, as separate processes. The binaries are built
//! once per test run with the same profile as the tests, so that
//! `cargo test --workspace` needs no earlier step.

#![deny(missing_docs)]
// Test support: a panic here is a failed test, which is what it should be.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod fill;
pub mod localapi;
pub mod net;
pub mod netns;
pub mod proc;
pub mod procnet;
pub mod stored;
pub mod subscriber;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

/// The directory holding the workspace's binaries for this profile.
fn bin_dir() -> Result<&'static PathBuf> {
    static DIR: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| build_binaries().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

fn build_binaries() -> Result<PathBuf> {
    // target/<profile>/deps/<test binary>, or target/<profile>/<tool> for
    // the benchmark and the harness.
    let exe = std::env::current_exe().context("locating the test binary")?;
    let parent = exe.parent().context("the test binary has no directory")?;
    let dir = if parent.file_name().is_some_and(|n| n == "deps") {
        parent
            .parent()
            .context("target/<profile>/deps has no parent")?
    } else {
        parent
    }
    .to_path_buf();
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_string(),
        Some(other) => other.to_string(),
        None => bail!("cannot tell the build profile from {}", dir.display()),
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let mut build = Command::new(cargo);
    // `cargo test` gives the test process variables such as
    // CARGO_MANIFEST_DIR; build scripts (ring's) watch some of them, so
    // passing them on would make this build differ from the one `cargo test`
    // just did and rebuild half the dependency tree every run.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key == "CARGO_MANIFEST_DIR"
            || key == "CARGO_MANIFEST_PATH"
            || key == "CARGO_CRATE_NAME"
            || key == "CARGO_PRIMARY_PACKAGE"
            || key == "CARGO_TARGET_TMPDIR"
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_")
        {
            build.env_remove(key);
        }
    }
    let status = build
        .args([
            "build",
            "--quiet",
            "--locked",
            "--bins",
            "--profile",
            &profile,
        ])
        .args([
            "-p",
            "handbereik-keys",
            "-p",
            "handbereik-node",
            "--manifest-path",
            manifest,
        ])
        .status()
        .context("running cargo build for the binaries")?;
    if !status.success() {
        bail!("cargo build of the binaries failed: {status}");
    }
    Ok(dir)
}

/// The path of a workspace binary, built if needed.
pub fn bin(name: &str) -> Result<PathBuf> {
    Ok(bin_dir()?.join(name))
}

/// The outcome of one command.
#[derive(Debug)]
pub struct Run {
    /// Exit code, or -1 if killed by a signal.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Fails unless the command exited 0.
    pub fn ok(self) -> Result<Self> {
        if self.code != 0 {
            bail!("exit {}: {}{}", self.code, self.stdout, self.stderr);
        }
        Ok(self)
    }

    /// Fails unless the command failed the way bad input must: exit 2, one
    /// line on stderr that contains `needle`, and no panic.
    pub fn refused(self, needle: &str) -> Result<Self> {
        if self.code != 2 {
            bail!(
                "expected exit 2, got {}: {}{}",
                self.code,
                self.stdout,
                self.stderr
            );
        }
        let lines: Vec<_> = self.stderr.lines().collect();
        if lines.len() != 1 || !self.stderr.contains(needle) {
            bail!(
                "expected one error line containing {needle:?}, got: {}",
                self.stderr
            );
        }
        if self.stderr.contains("panicked") || self.stderr.contains("RUST_BACKTRACE") {
            bail!("the command panicked: {}", self.stderr);
        }
        Ok(self)
    }
}

/// Runs a workspace binary with `args` in `cwd`.
pub fn run(name: &str, cwd: &Path, args: &[&str]) -> Result<Run> {
    let output = Command::new(bin(name)?)
        .args(args)
        .current_dir(cwd)
        .output()
        .with_context(|| format!("running {name}"))?;
    Ok(Run::from(output))
}
