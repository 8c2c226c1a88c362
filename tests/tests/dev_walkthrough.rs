//! The README's "Run it" and "Try it", as a partner would do them: starts
//! `handbereik dev` as a child process, waits for its `ready:` line, runs
//! every command block of the walkthrough in order and checks that each
//! prints what the README shows under it (`...` stands for what differs per
//! run). Then stops the network with SIGTERM and starts it again from the
//! same directory, which must continue the same network.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use handbereik_tests::bin;

const README: &str = include_str!("../../README.md");

/// One step of the walkthrough: the commands and what they print.
#[derive(Debug)]
struct Step {
    commands: String,
    expected: Option<String>,
}

/// Fenced blocks between two markers, in order: (info string, body).
fn blocks(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(info)) => current = Some((info.trim().to_string(), String::new())),
            (Some(_), Some("")) => out.extend(current.take()),
            (Some((_, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

fn section<'a>(start: &str, end: &str) -> &'a str {
    let from = README
        .find(start)
        .unwrap_or_else(|| panic!("README lacks {start}"));
    let to = README[from..]
        .find(end)
        .unwrap_or_else(|| panic!("README lacks {end}"));
    &README[from..from + to]
}

fn steps() -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let walk = section(
        "<!-- dev-walkthrough:start -->",
        "<!-- dev-walkthrough:end -->",
    );
    for (info, body) in blocks(walk) {
        match info.as_str() {
            "sh" => steps.push(Step {
                commands: body,
                expected: None,
            }),
            "text" => {
                let last = steps.last_mut().expect("a text block follows a sh block");
                assert!(last.expected.is_none(), "two text blocks after one command");
                last.expected = Some(body);
            }
            other => panic!("unexpected block type {other:?} in the walkthrough"),
        }
    }
    steps
}

/// Whether `line` matches `pattern`, where `...` matches any text.
fn matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("...").collect();
    if parts.len() == 1 {
        return pattern == line;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !line.starts_with(first) || !line[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &line[first.len()..line.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

fn check_output(step: &Step, stdout: &str) {
    let Some(expected) = &step.expected else {
        return;
    };
    let want: Vec<&str> = expected.lines().collect();
    let got: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        want.len(),
        got.len(),
        "`{}` printed\n{stdout}\nbut the README shows\n{expected}",
        step.commands.trim()
    );
    for (w, g) in want.iter().zip(&got) {
        assert!(
            matches(w, g),
            "`{}` printed the line\n  {g}\nwhere the README shows\n  {w}",
            step.commands.trim()
        );
    }
}

/// `handbereik dev` as a child, with its stdout lines on a channel.
struct Dev {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Dev {
    fn start(cwd: &Path, args: &[&str]) -> Result<Dev> {
        let mut child = Command::new(bin("handbereik")?)
            .arg("dev")
            .args(args)
            .current_dir(cwd)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting handbereik dev")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Dev {
            child,
            lines,
            seen: Vec::new(),
        })
    }

    /// Waits for a line starting with `prefix`; returns it.
    fn wait_for(&mut self, prefix: &str, limit: Duration) -> Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return Ok(line);
                    }
                }
                Err(_) => bail!(
                    "no line starting with {prefix:?} within {limit:?}; printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn terminate(mut self) -> Result<i32> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status()?;
        assert!(status.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.code().unwrap_or(-1));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("handbereik dev did not stop within 60 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one block with bash in `cwd`, the built binaries first on PATH.
fn run_block(cwd: &Path, commands: &str) -> Result<String> {
    let bin_dir = bin("handbereik")?
        .parent()
        .context("binary has no directory")?
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("bash")
        .args(["-euo", "pipefail", "-c", commands])
        .current_dir(cwd)
        .env("PATH", path)
        .env_remove("HANDBEREIK_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("`{}` did not finish within 60 s", commands.trim());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "`{}` failed ({}):\n{stdout}{}",
            commands.trim(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

#[test]
fn the_readme_walkthrough_runs_against_handbereik_dev() -> Result<()> {
    // "Run it" names the command the test runs.
    let run_it = section("## Run it", "## Try it");
    let start = blocks(run_it)
        .into_iter()
        .find(|(info, _)| info == "sh")
        .context("Run it has a sh block")?
        .1;
    let dev_line = start
        .lines()
        .find(|l| l.contains("handbereik dev"))
        .context("Run it starts handbereik dev")?;
    let dev_args: Vec<&str> = dev_line
        .split_whitespace()
        .skip_while(|w| *w != "dev")
        .skip(1)
        .collect();
    assert_eq!(dev_args, ["--dir", "dev-net"], "Run it: {dev_line}");

    let steps = steps();
    assert!(steps.len() >= 7, "the walkthrough has its steps: {steps:?}");
    let all = steps
        .iter()
        .map(|s| s.commands.as_str())
        .collect::<String>();
    for command in ["publish", "subscribe", "locate", "inspect", "audit report"] {
        assert!(
            all.contains(&format!("handbereik {command}")),
            "{command} is in the walkthrough"
        );
    }

    let cwd = tempfile::tempdir()?;
    let mut dev = Dev::start(cwd.path(), &dev_args)?;
    let ready = dev.wait_for("ready:", Duration::from_secs(120))?;
    assert_eq!(
        ready,
        "ready: 3 nodes connected, member list version 1; Ctrl-C stops them"
    );
    assert!(
        dev.seen.iter().any(|l| l.contains("made network \"dev\"")),
        "{:?}",
        dev.seen
    );
    for step in &steps {
        let stdout = run_block(cwd.path(), &step.commands)?;
        check_output(step, &stdout);
    }
    assert_eq!(dev.terminate()?, 0, "dev stops cleanly on SIGTERM");

    // The same --dir continues the network: same data, a newer list.
    let mut dev = Dev::start(cwd.path(), &dev_args)?;
    let ready = dev.wait_for("ready:", Duration::from_secs(120))?;
    assert!(ready.contains("member list version 2"), "{ready}");
    assert!(
        dev.seen
            .iter()
            .any(|l| l.contains("continued network \"dev\"")),
        "{:?}",
        dev.seen
    );
    let listed = run_block(
        cwd.path(),
        "handbereik registry list --config dev-net/gemeente/handbereik.toml --bsn 111222333",
    )?;
    assert!(listed.ends_with("4 entries\n"), "{listed}");
    let report = run_block(
        cwd.path(),
        "handbereik audit report --config dev-net/gemeente/handbereik.toml --bsn 111222333",
    )?;
    assert!(report.contains("given: melding"), "{report}");
    assert_eq!(dev.terminate()?, 0);
    Ok(())
}

#[test]
fn a_directory_that_is_not_a_dev_network_is_refused() -> Result<()> {
    let cwd = tempfile::tempdir()?;
    std::fs::write(cwd.path().join("notes.txt"), "mine")?;
    let out = Command::new(bin("handbereik")?)
        .args(["dev", "--dir"])
        .arg(cwd.path())
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("holds no dev network") && stderr.contains("give a new or empty --dir"),
        "{stderr}"
    );
    assert!(!cwd.path().join("governance").exists(), "nothing written");
    Ok(())
}

#[test]
fn the_wildcard_matcher_is_strict() {
    assert!(matches("a ... c", "a b c"));
    assert!(matches("a ... c ... e", "a b c d e"));
    assert!(!matches("a ... c", "a b d"));
    assert!(!matches("a ... c", "x a b c"));
    assert!(!matches("exact", "exact!"));
    assert!(matches("...", "anything"));
}
