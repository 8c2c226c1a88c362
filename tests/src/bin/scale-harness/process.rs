//! This process's own figures, read from `/proc/self`: CPU time (user plus
//! system, all threads, those that ended included), resident memory, open
//! file descriptors, threads, and the machine's load; and the file
//! descriptor limit, raised at start.
//!
//! Every node of the harness runs in this one process, so the process's
//! figures divided by N are the figures per node.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// CPU time this process has used, in seconds: `utime + stime` of
/// `/proc/self/stat`, in clock ticks of `ticks_per_sec`.
pub fn cpu_seconds(ticks_per_sec: f64) -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // The command name is in parentheses and may hold spaces: the fields
    // after the last ')' start with field 3 (state); utime and stime are
    // fields 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("/proc/self/stat has no ')'")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Result<f64> {
        let raw = fields
            .get(n - 3)
            .with_context(|| format!("/proc/self/stat has no field {n}"))?;
        raw.parse::<f64>()
            .with_context(|| format!("field {n} of /proc/self/stat: {raw:?}"))
    };
    Ok((field(14)? + field(15)?) / ticks_per_sec)
}

/// Clock ticks per second for `/proc` times (`getconf CLK_TCK`; 100, the
/// Linux value, when getconf is not there).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// A field of `/proc/self/status` in its own unit (kB for memory).
fn status_field(name: &str) -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    for line in status.lines() {
        if let Some(value) = line.strip_prefix(name).and_then(|r| r.strip_prefix(':')) {
            let number = value.split_whitespace().next().unwrap_or_default();
            return number
                .parse()
                .with_context(|| format!("{name} in /proc/self/status: {value:?}"));
        }
    }
    bail!("/proc/self/status has no {name}")
}

/// Resident memory of this process in bytes (`VmRSS`).
pub fn rss_bytes() -> Result<u64> {
    Ok(status_field("VmRSS")? * 1024)
}

/// Threads of this process now.
pub fn threads() -> Result<u64> {
    status_field("Threads")
}

/// File descriptors open now.
pub fn open_fds() -> Result<usize> {
    Ok(std::fs::read_dir(Path::new("/proc/self/fd"))
        .context("reading /proc/self/fd")?
        .count())
}

/// The 1-minute load average of the machine (other work on it shows here).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Raises the soft limit on open files to the hard limit, and the hard limit
/// to `wanted` where this process may (as root); answers the limits now.
pub fn raise_fd_limit(wanted: u64) -> Result<(u64, u64)> {
    use rlimit::Resource;
    let (soft, hard) = Resource::NOFILE
        .get()
        .context("reading the open-files limit")?;
    if hard < wanted && Resource::NOFILE.set(wanted, wanted).is_ok() {
        return Resource::NOFILE
            .get()
            .context("reading the open-files limit");
    }
    if soft < hard {
        Resource::NOFILE
            .set(hard, hard)
            .context("raising the soft open-files limit to the hard limit")?;
    }
    Resource::NOFILE
        .get()
        .context("reading the open-files limit")
}
