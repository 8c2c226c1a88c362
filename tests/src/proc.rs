//! Child processes of the end-to-end tests: the built binaries run with a
//! clean environment, their stderr followed line by line, bounded waits, and
//! kill-on-drop guards so that a failing test leaves nothing running.
//!
//! Owns no knowledge of handbereik beyond the binary names; `procnet` builds
//! partner networks on top of it. Calls only the standard library and
//! [`crate::bin`].

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{Run, bin};

/// A `Command` for a workspace binary with a clean environment for it:
/// `RUST_LOG=info` and none of the caller's `HANDBEREIK_*` variables (the
/// node would read them as configuration overrides).
pub fn command(name: &str) -> Result<Command> {
    let mut cmd = Command::new(bin(name)?);
    clean_env(&mut cmd);
    Ok(cmd)
}

/// Removes the caller's `HANDBEREIK_*` variables from `cmd` and sets
/// `RUST_LOG=info` and no standard input.
pub fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HANDBEREIK_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "info").stdin(Stdio::null());
}

/// Removes terminal colour codes (`ESC [ ... m`), which the node's log may
/// have.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The value of `key=` in a log line, up to the next space.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!(" {key}=");
    let start = line.find(&needle)? + needle.len();
    line[start..].split_whitespace().next()
}

/// The stderr of a running process, line by line, as it arrives.
#[derive(Default)]
pub struct Log {
    state: Mutex<(Vec<String>, bool)>,
    changed: Condvar,
}

impl Log {
    /// Follows `stream` on a thread of its own until it closes.
    pub fn follow(stream: impl Read + Send + 'static) -> Arc<Log> {
        let log = Arc::new(Log::default());
        let writer = log.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                let n = reader.read_until(b'\n', &mut buf).unwrap_or(0);
                let mut state = writer.state.lock().unwrap();
                if n == 0 {
                    state.1 = true;
                    writer.changed.notify_all();
                    return;
                }
                let line = strip_ansi(String::from_utf8_lossy(&buf).trim_end());
                state.0.push(line);
                writer.changed.notify_all();
            }
        });
        log
    }

    /// The first line that satisfies `matches`, waiting up to `limit`.
    pub fn wait_for(
        &self,
        limit: Duration,
        what: &str,
        matches: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + limit;
        let mut state = self.state.lock().unwrap();
        loop {
            if let Some(line) = state.0.iter().find(|l| matches(l)) {
                return Ok(line.clone());
            }
            if state.1 {
                bail!(
                    "the process ended its stderr before {what}:\n{}",
                    state.0.join("\n")
                );
            }
            let now = Instant::now();
            if now >= deadline {
                bail!(
                    "timed out after {limit:?} waiting for {what}; stderr so far:\n{}",
                    state.0.join("\n")
                );
            }
            state = self.changed.wait_timeout(state, deadline - now).unwrap().0;
        }
    }

    /// Waits (bounded) until the stream is closed, then returns all of it.
    pub fn all(&self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let mut state = self.state.lock().unwrap();
        while !state.1 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self.changed.wait_timeout(state, deadline - now).unwrap().0;
        }
        state.0.join("\n")
    }

    /// The last `n` lines so far.
    pub fn tail(&self, n: usize) -> String {
        let state = self.state.lock().unwrap();
        let from = state.0.len().saturating_sub(n);
        state.0[from..].join("\n")
    }

    /// Whether some line so far satisfies `matches`.
    pub fn contains(&self, matches: impl Fn(&str) -> bool) -> bool {
        self.state.lock().unwrap().0.iter().any(|l| matches(l))
    }
}

/// Kills `child` (SIGKILL) if it still runs, and reaps it.
pub fn kill(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Sends `signal` (such as `TERM`, `STOP`, `CONT`) to `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) -> Result<()> {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -{signal} {pid} failed: {status}");
    }
    Ok(())
}

/// Polls `child` until it exits or `limit` passes.
pub fn wait_child(child: &mut Child, limit: Duration) -> Result<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            bail!("process {} did not exit within {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills the child when dropped (a command that hangs, or a failed test).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        kill(&mut self.0);
    }
}

/// Runs `cmd` to completion, killing it after `limit`; collects its output.
pub fn output_within(mut cmd: Command, limit: Duration) -> Result<Run> {
    let what = format!("{cmd:?}");
    let mut child = KillOnDrop(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {what}"))?,
    );
    let drain = |stream: Box<dyn Read + Send>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut stream = stream;
            let mut bytes = Vec::new();
            let _ = stream.read_to_end(&mut bytes);
            let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
        });
        rx
    };
    let stdout = drain(Box::new(child.0.stdout.take().context("no stdout")?));
    let stderr = drain(Box::new(child.0.stderr.take().context("no stderr")?));
    let status = wait_child(&mut child.0, limit).with_context(|| what.clone())?;
    let collect =
        |rx: mpsc::Receiver<String>| rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
    Ok(Run {
        code: status.code().unwrap_or(-1),
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

/// Runs the workspace binary `name` with `args` to completion, killing it
/// after `limit`.
pub fn cli_of(name: &str, args: &[&str], limit: Duration) -> Result<Run> {
    let mut cmd = command(name)?;
    cmd.args(args);
    output_within(cmd, limit)
}

/// Runs `handbereik ARGS` to completion, killing it after `limit`.
pub fn cli(args: &[&str], limit: Duration) -> Result<Run> {
    cli_of("handbereik", args, limit)
}
