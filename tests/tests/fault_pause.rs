//! A node paused with SIGSTOP while the others publish, then continued with
//! SIGCONT: the publisher keeps acknowledging while its peer is frozen, and
//! the paused node converges (delivers everything published meanwhile)
//! within a bound. The time from SIGCONT to the last delivery is printed.
//!
//! `HANDBEREIK_FAULT_SCALE=N` pauses N times as long (at most 60 s) and
//! publishes N times the notifications.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use handbereik_tests::procnet::{PartnerSpec, ProcNet, Tuning, scale};
use handbereik_tests::subscriber::{Tally, follow};

/// Seconds paused at scale 1.
const PAUSE_SECS: u64 = 5;
/// Notifications published during the pause at scale 1.
const EVENTS: u64 = 200;
/// The bound on convergence after SIGCONT.
const CONVERGE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_converges_after_sigcont() -> Result<()> {
    let specs = [
        PartnerSpec::loopback("publisher"),
        PartnerSpec::loopback("witness"),
        PartnerSpec::loopback("paused"),
    ];
    let mut net = tokio::task::block_in_place(|| ProcNet::create(&specs, &Tuning::default()))?;
    let result = run(&mut net).await;
    net.explain(result)
}

async fn run(net: &mut ProcNet) -> Result<()> {
    tokio::task::block_in_place(|| net.start_all())?;
    net.wait_connected(&[0, 1, 2], Duration::from_secs(60))
        .await?;
    let pause = Duration::from_secs((PAUSE_SECS * scale()).min(60));
    let events = EVENTS * scale();
    let publisher = net.partners[0].api().await?;
    let paused = net.partners[2].api().await?;

    // One before, so the paused node's subscription exists and is current.
    let first = publisher
        .publish("p-before", Duration::from_secs(30))
        .await??;
    let tally = Tally::shared();
    follow(
        &paused,
        "backoffice",
        &tally,
        Duration::from_secs(60),
        |t| t.acked.contains(&first.id),
    )
    .await?;

    net.partners[2].pause()?;
    let stopped = Instant::now();
    let mut want = HashSet::new();
    for n in 0..events {
        let limit = Duration::from_secs(30);
        let notification = publisher
            .publish(&format!("p-{n}"), limit)
            .await
            .context("the publisher stopped acknowledging while a peer was paused")?
            .with_context(|| format!("publish {n} was refused while a peer was paused"))?;
        want.insert(notification.id);
    }
    let publish_secs = stopped.elapsed().as_secs_f64();
    if let Some(rest) = pause.checked_sub(stopped.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let paused_for = stopped.elapsed().as_secs_f64();
    net.partners[2].resume()?;
    let resumed = Instant::now();
    follow(&paused, "backoffice", &tally, CONVERGE, |t| {
        t.has_all(&want)
    })
    .await
    .with_context(|| {
        format!("the paused node did not deliver all {events} within {CONVERGE:?} of SIGCONT")
    })?;
    let converge_secs = resumed.elapsed().as_secs_f64();
    // The witness, never paused, has them too.
    let witness = net.partners[1].api().await?;
    let witness_tally = Tally::shared();
    follow(&witness, "backoffice", &witness_tally, CONVERGE, |t| {
        t.has_all(&want)
    })
    .await?;
    let t = tally.lock().unwrap();
    println!(
        "fault_pause: paused {paused_for:.1} s (SIGSTOP), published meanwhile {events} in \
         {publish_secs:.1} s, converged {converge_secs:.1} s after SIGCONT; paused node: {}",
        t.summary()
    );
    ensure!(
        t.redelivered_acked == 0,
        "an acknowledged notification came again"
    );
    Ok(())
}
