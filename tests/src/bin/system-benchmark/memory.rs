//! The idle memory figure: two real `handbereik run` processes, made the way
//! an operator makes them (`handbereik init`, `handbereik-keys`), connected
//! and idle; their resident memory (`VmRSS`) read from /proc by the
//! benchmark itself.

use std::time::Duration;

use anyhow::{Context, Result};
use handbereik_tests::procnet::{PartnerSpec, ProcNet, Tuning};

use crate::report::{Report, Target};

/// Resident memory of process `pid` in MB (10^6 bytes).
fn rss_mb(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("no VmRSS line")?
        .parse()?;
    Ok(kb * 1024.0 / 1e6)
}

/// Two connected `handbereik run` processes, idle for `idle`; the larger VmRSS.
pub async fn idle_memory(report: &mut Report, idle: Duration) -> Result<()> {
    let specs = [
        PartnerSpec::loopback("gemeente"),
        PartnerSpec::loopback("wijkteam"),
    ];
    // Deployment-like timers: a sync tick every 30 s, checkpoints every 5 min.
    let tuning = Tuning {
        sync_secs: 30,
        checkpoint_secs: 300,
        ..Tuning::default()
    };
    let mut net = tokio::task::block_in_place(|| ProcNet::create(&specs, &tuning))?;
    tokio::task::block_in_place(|| net.start_all())?;
    let result = async {
        net.wait_connected(&[0, 1], Duration::from_secs(60)).await?;
        tokio::time::sleep(idle).await;
        let mut worst: f64 = 0.0;
        for p in &net.partners {
            let mb = rss_mb(p.pid()?)?;
            println!("  ({}: VmRSS {mb:.1} MB)", p.name);
            worst = worst.max(mb);
        }
        Ok::<_, anyhow::Error>(worst)
    }
    .await;
    let worst = net.explain(result)?;
    report.against(
        "memory",
        "idle_rss.mb",
        &format!(
            "idle resident memory, the larger of 2 connected `handbereik run` processes after {} s ({} build)",
            idle.as_secs(),
            report.profile
        ),
        worst,
        "MB",
        Target::AtMost(40.0),
    );
    Ok(())
}
