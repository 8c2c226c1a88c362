//! A network namespace joined to the test's own namespace by a veth pair, for
//! the partition tests: one node runs inside it (`ip netns exec`), listening
//! on the namespace's address; the others listen on the host side's address.
//!
//! Cutting the link takes the namespace's end of the pair down: nothing
//! arrives on either side and no connection is reset, so to TCP both ends
//! still look connected (a silent partition, like a cable pulled between two
//! sites). The host side keeps its address, so the nodes outside keep
//! reaching each other.
//!
//! Everything made here is removed when the guard drops, also when a test
//! fails. Calls `ip` (iproute2) only; needs root.

use std::process::Command;

use anyhow::{Context, Result, bail};

/// Why namespaces cannot be used here, or `None` when they can.
pub fn unavailable() -> Option<String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_default();
    if uid != "0" {
        return Some(format!(
            "not root (uid {uid}); network namespaces need root"
        ));
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Err(e) => Some(format!("`ip` (iproute2) cannot run: {e}")),
        Ok(out) if !out.status.success() => Some(format!(
            "`ip netns list` fails: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// A namespace with a veth pair to the test's namespace; removed on drop.
pub struct Netns {
    /// The namespace's name, for `ip netns exec`.
    pub name: String,
    /// The address of the pair's end inside the namespace.
    pub inside: String,
    /// The address of the pair's end in the test's namespace.
    pub outside: String,
    host_if: String,
    ns_if: String,
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .with_context(|| format!("running ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Netns {
    /// Makes namespace number `n` of this test process, with its link up.
    pub fn create(n: u32) -> Result<Netns> {
        let pid = std::process::id();
        let tag = format!("{}{n}", pid % 100_000);
        // Third octet from the process id, so two test processes at once do
        // not share a subnet (10.231.0.0/16 is used by nothing else here).
        let octet = (pid.wrapping_mul(7).wrapping_add(n)) % 250 + 1;
        let ns = Netns {
            name: format!("hbfault{tag}"),
            inside: format!("10.231.{octet}.2"),
            outside: format!("10.231.{octet}.1"),
            host_if: format!("hbh{tag}"),
            ns_if: format!("hbn{tag}"),
        };
        // Leftovers of an earlier, killed run with the same process id.
        let _ = ip(&["netns", "del", &ns.name]);
        let _ = ip(&["link", "del", &ns.host_if]);
        ip(&["netns", "add", &ns.name])?;
        let steps: [&[&str]; 7] = [
            &[
                "link",
                "add",
                &ns.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &ns.ns_if,
            ],
            &["link", "set", &ns.ns_if, "netns", &ns.name],
            &[
                "addr",
                "add",
                &format!("{}/30", ns.outside),
                "dev",
                &ns.host_if,
            ],
            &["link", "set", &ns.host_if, "up"],
            &[
                "-n",
                &ns.name,
                "addr",
                "add",
                &format!("{}/30", ns.inside),
                "dev",
                &ns.ns_if,
            ],
            &["-n", &ns.name, "link", "set", &ns.ns_if, "up"],
            &["-n", &ns.name, "link", "set", "lo", "up"],
        ];
        for step in steps {
            ip(step)?;
        }
        Ok(ns)
    }

    /// Cuts the link silently: the namespace's end goes down.
    pub fn cut(&self) -> Result<()> {
        ip(&["-n", &self.name, "link", "set", &self.ns_if, "down"])
    }

    /// Heals the link.
    pub fn heal(&self) -> Result<()> {
        ip(&["-n", &self.name, "link", "set", &self.ns_if, "up"])
    }

    /// The words that run a program inside the namespace.
    pub fn exec_prefix(&self) -> Vec<String> {
        vec!["netns".into(), "exec".into(), self.name.clone()]
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it the other.
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_if]);
    }
}
