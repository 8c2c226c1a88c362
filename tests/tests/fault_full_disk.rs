//! A full disk under the data directory.
//!
//! The node's data directory is on a small tmpfs of its own. Once the node
//! runs, a ballast file fills the file system to within a little of full,
//! and the back office publishes until the store can no longer write. The
//! node must refuse with a clear error (the gRPC status says the store
//! cannot write), not hang and not panic; stopping by itself through its
//! store watchdog (exit 1, one line naming it) is also acceptable. After the
//! ballast is removed and the node restarted, everything that was
//! acknowledged is there and publishing works again.
//!
//! Needs root (mount); elsewhere it prints why and passes without running.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use handbereik_tests::procnet::{PartnerSpec, ProcNet, Tuning};

/// The size of the file system.
const FS_SIZE: &str = "48m";
/// What the ballast leaves free.
const LEAVE_FREE: u64 = 2 << 20;
/// A publish that takes longer than this counts as a hang (the commit
/// watchdog is set to 5 s).
const PUBLISH_LIMIT: Duration = Duration::from_secs(30);

/// A tmpfs mounted for the test; unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(path: &Path) -> Result<Mount, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={FS_SIZE}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Mount(path.to_path_buf()))
    }

    /// Bytes free, from df.
    fn available(&self) -> Result<u64> {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.0)
            .output()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .context("no df line")?
            .trim()
            .parse()
            .context("df's figure")
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_refused_clearly_and_loses_nothing_acknowledged() -> Result<()> {
    if !is_root() {
        eprintln!("fault_full_disk: SKIPPED: not root; mounting a small tmpfs needs root");
        return Ok(());
    }
    let outer = tempfile::tempdir()?;
    // Declared before the network, so the node is killed before the unmount.
    let mount = match Mount::tmpfs(&outer.path().join("fs")) {
        Ok(m) => m,
        Err(reason) => {
            eprintln!("fault_full_disk: SKIPPED: {reason}");
            return Ok(());
        }
    };
    let spec = PartnerSpec {
        data_dir: Some(mount.0.join("data")),
        ..PartnerSpec::loopback("publisher")
    };
    let tuning = Tuning {
        commit_timeout_secs: 5,
        ..Tuning::default()
    };
    let mut net = tokio::task::block_in_place(|| ProcNet::create(&[spec], &tuning))?;
    let result = run(&mut net, &mount).await;
    net.explain(result)
}

/// How the node answered once the disk was full.
enum Full {
    /// A publish was refused with this status.
    Refused(tonic::Code, String),
    /// The node stopped by itself.
    Exited(String),
}

async fn run(net: &mut ProcNet, mount: &Mount) -> Result<()> {
    tokio::task::block_in_place(|| net.start_all())?;
    let api = net.partners[0].api().await?;
    let mut acked: HashMap<u64, String> = HashMap::new();
    // Wait for the member list, then a few with room to spare.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.len() < 20 {
        match api.publish("p-room", PUBLISH_LIMIT).await? {
            Ok(n) => {
                acked.insert(n.sequence, n.id);
            }
            Err(e) if Instant::now() > deadline => bail!("the node does not publish: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }

    // Fill the file system.
    let ballast = mount.0.join("ballast");
    let free = mount.available()?;
    let fill = free.saturating_sub(LEAVE_FREE);
    {
        let mut file = std::fs::File::create(&ballast)?;
        let chunk = vec![0x5a_u8; 1 << 20];
        let mut written = 0u64;
        while written < fill {
            let n = (fill - written).min(chunk.len() as u64) as usize;
            file.write_all(&chunk[..n])?;
            written += n as u64;
        }
        file.sync_all()?;
    }
    let left = mount.available()?;

    // Publish until the store cannot write.
    let filling = Instant::now();
    let mut attempts = 0u64;
    let full = loop {
        ensure!(
            filling.elapsed() < Duration::from_secs(180),
            "after 180 s and {attempts} publishes the node still acknowledged with {left} bytes \
             free at the start ({} now)",
            mount.available()?
        );
        attempts += 1;
        match api.publish(&format!("p-{attempts}"), PUBLISH_LIMIT).await {
            Ok(Ok(n)) => {
                if let Some(before) = acked.insert(n.sequence, n.id.clone()) {
                    bail!(
                        "sequence {} acknowledged twice ({before}, {})",
                        n.sequence,
                        n.id
                    );
                }
            }
            Ok(Err(status)) => {
                if let Some((status, log)) =
                    tokio::task::block_in_place(|| net.partners[0].exited())?
                {
                    break Full::Exited(format!("{status}\n{log}"));
                }
                break Full::Refused(status.code(), status.message().to_string());
            }
            Err(_) => bail!(
                "the node hangs on a full disk: a publish got no answer within \
                 {PUBLISH_LIMIT:?} (after {} acknowledged)",
                acked.len()
            ),
        }
    };
    let refused_after_secs = filling.elapsed().as_secs_f64();

    // What the node said, and that it keeps saying it without hanging.
    let outcome = match &full {
        Full::Refused(code, message) => {
            ensure!(
                message.contains("cannot write"),
                "a publish on a full disk was refused with {code:?} {message:?}: the message must \
                 say that the store cannot write"
            );
            match api.publish("p-again", PUBLISH_LIMIT).await {
                Err(_) => bail!(
                    "the node hangs after refusing once: the next publish got no answer within \
                     {PUBLISH_LIMIT:?}"
                ),
                Ok(Ok(n)) => {
                    acked.insert(n.sequence, n.id);
                }
                Ok(Err(_)) => {}
            }
            format!("refused with {code:?}: {message}")
        }
        Full::Exited(text) => {
            ensure!(
                text.starts_with("exit status: 1"),
                "the node stopped on a full disk with {}",
                text.lines().next().unwrap_or_default()
            );
            ensure!(
                text.lines().any(|l| l.contains("store watchdog")),
                "the node stopped on a full disk without a line naming the store watchdog:\n{text}"
            );
            "stopped by the store watchdog (exit 1)".to_string()
        }
    };
    if let Some(log) = net.partners[0].log().ok().map(|l| l.tail(400)) {
        ensure!(
            !log.contains("panicked"),
            "the node panicked on a full disk:\n{log}"
        );
    }

    // Free the space; stop the node if it still runs; start it again.
    std::fs::remove_file(&ballast)?;
    let stop = if net.partners[0].is_running() {
        let (status, log) =
            tokio::task::block_in_place(|| net.partners[0].terminate(Duration::from_secs(60)))
                .context("the node with a broken store did not stop within 60 s of SIGTERM")?;
        ensure!(
            !log.contains("panicked"),
            "the node panicked while stopping:\n{log}"
        );
        format!("{status}")
    } else {
        "exited before".to_string()
    };
    tokio::task::block_in_place(|| net.partners[0].start())?;
    let highest = acked.keys().copied().max().unwrap_or(0);
    let after = loop {
        match api.publish("p-after", PUBLISH_LIMIT).await? {
            Ok(n) => break n,
            Err(e) if filling.elapsed() > Duration::from_secs(300) => {
                bail!("after freeing space and a restart the node does not publish: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    ensure!(
        after.sequence > highest,
        "after the restart the stream went back: sequence {} after {highest} was acknowledged",
        after.sequence
    );
    acked.insert(after.sequence, after.id);
    let (status, log) =
        tokio::task::block_in_place(|| net.partners[0].terminate(Duration::from_secs(60)))?;
    ensure!(
        status.success(),
        "the restarted node did not stop cleanly: {status}\n{log}"
    );
    let source = net.partners[0].member_id.clone();
    let stored = net.partners[0].stored_stream(&source).await?;
    let at: HashMap<u64, &str> = stored
        .events
        .iter()
        .map(|(s, id)| (*s, id.as_str()))
        .collect();
    let lost: Vec<u64> = acked
        .iter()
        .filter(|(seq, id)| at.get(seq) != Some(&id.as_str()))
        .map(|(seq, _)| *seq)
        .collect();
    println!(
        "fault_full_disk: tmpfs {FS_SIZE}, {left} bytes free after the ballast, acknowledged {} \
         before the disk was full ({attempts} attempts, {refused_after_secs:.1} s), then {outcome}; \
         stop: {stop}; after freeing space and a restart: stored {} (contiguous to {}), lost {}",
        acked.len() - 1,
        stored.events.len(),
        stored.mark,
        lost.len()
    );
    ensure!(
        lost.is_empty(),
        "acknowledged but not stored: sequences {lost:?}"
    );
    Ok(())
}
