//! A real partition of one node, healed, with convergence time.
//!
//! Two nodes run in the test's network namespace and one in a namespace of
//! its own, joined by a veth pair; every listener is on the pair's
//! addresses. The link is cut silently (the namespace's end goes down: no
//! reset, no close), the others publish meanwhile, and then:
//!
//! - dead-peer detection: the cut-off node must leave its peers'
//!   `Status.connected_peers` and their `handbereik_peers_connected` gauge
//!   within [`DETECT`];
//! - after the heal it must come back in both, and deliver everything
//!   published during the partition within [`CONVERGE`].
//!
//! Needs root and `ip netns`; elsewhere it prints why and passes without
//! running. `HANDBEREIK_FAULT_SCALE=N` holds the partition N times as long
//! (at most 120 s) and publishes N times the notifications.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use handbereik_tests::netns::{self, Netns};
use handbereik_tests::procnet::{PartnerSpec, ProcNet, Tuning, scale};
use handbereik_tests::subscriber::{Tally, follow};

/// How long the partition lasts at least, at scale 1.
const HOLD_SECS: u64 = 5;
/// Notifications published during the partition, at scale 1.
const EVENTS: u64 = 100;
/// The bound on noticing that the cut-off node is gone.
const DETECT: Duration = Duration::from_secs(60);
/// The bound on convergence after the heal.
const CONVERGE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_node_is_noticed_and_converges_after_the_heal() -> Result<()> {
    if let Some(reason) = netns::unavailable() {
        eprintln!("fault_partition: SKIPPED: {reason}");
        return Ok(());
    }
    // Declared before the network, so the nodes are killed before the
    // namespace is removed.
    let ns = Netns::create(0)?;
    let outside = |name: &str| PartnerSpec {
        host: ns.outside.clone(),
        ..PartnerSpec::loopback(name)
    };
    let specs = [
        outside("publisher"),
        outside("witness"),
        PartnerSpec {
            host: ns.inside.clone(),
            netns: Some(ns.name.clone()),
            ..PartnerSpec::loopback("cut-off")
        },
    ];
    let mut net = tokio::task::block_in_place(|| ProcNet::create(&specs, &Tuning::default()))?;
    let result = run(&mut net, &ns).await;
    net.explain(result)
}

/// Whether `member` is listed as connected by `of` and its gauge says `gauge`.
async fn sees(net: &ProcNet, of: usize, member: &str) -> Result<(bool, f64)> {
    let listed = net.partners[of]
        .api()
        .await?
        .connected()
        .await?
        .iter()
        .any(|m| m == member);
    let gauge = net.partners[of].metric("handbereik_peers_connected")?;
    Ok((listed, gauge))
}

async fn run(net: &mut ProcNet, ns: &Netns) -> Result<()> {
    tokio::task::block_in_place(|| net.start_all())?;
    net.wait_connected(&[0, 1, 2], Duration::from_secs(60))
        .await?;
    let hold = Duration::from_secs((HOLD_SECS * scale()).min(120));
    let events = EVENTS * scale();
    let cut_off = net.partners[2].member_id.clone();
    let publisher = net.partners[0].api().await?;
    let isolated = net.partners[2].api().await?;

    // A first notification, so the cut-off node's subscription is current.
    let first = publisher
        .publish("p-before", Duration::from_secs(30))
        .await??;
    let tally = Tally::shared();
    follow(
        &isolated,
        "backoffice",
        &tally,
        Duration::from_secs(60),
        |t| t.acked.contains(&first.id),
    )
    .await?;

    ns.cut()?;
    let cut = Instant::now();
    let mut want = HashSet::new();
    for n in 0..events {
        let notification = publisher
            .publish(&format!("p-{n}"), Duration::from_secs(30))
            .await
            .context("the publisher stopped acknowledging during the partition")?
            .with_context(|| format!("publish {n} was refused during the partition"))?;
        want.insert(notification.id);
    }

    // Dead-peer detection, at both nodes outside.
    let mut detected: [Option<f64>; 2] = [None, None];
    let mut last = [(true, 0.0), (true, 0.0)];
    while cut.elapsed() < DETECT && detected.iter().any(Option::is_none) {
        for of in 0..2 {
            if detected[of].is_none() {
                last[of] = sees(net, of, &cut_off).await?;
                if !last[of].0 && last[of].1 <= 1.0 {
                    detected[of] = Some(cut.elapsed().as_secs_f64());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if let Some(rest) = hold.checked_sub(cut.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let partitioned_for = cut.elapsed().as_secs_f64();

    ns.heal()?;
    let healed = Instant::now();
    follow(&isolated, "backoffice", &tally, CONVERGE, |t| {
        t.has_all(&want)
    })
    .await
    .with_context(|| {
        format!("the cut-off node did not deliver all {events} within {CONVERGE:?} of the heal")
    })?;
    let converge_secs = healed.elapsed().as_secs_f64();

    // Back in both peers' lists and gauges.
    let mut back: [Option<f64>; 2] = [None, None];
    while healed.elapsed() < CONVERGE && back.iter().any(Option::is_none) {
        for (of, back) in back.iter_mut().enumerate() {
            if back.is_none() {
                let (listed, gauge) = sees(net, of, &cut_off).await?;
                if listed && gauge >= 2.0 {
                    *back = Some(healed.elapsed().as_secs_f64());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let secs =
        |v: Option<f64>| v.map_or("not within the bound".to_string(), |s| format!("{s:.1} s"));
    println!(
        "fault_partition: partitioned {partitioned_for:.1} s (veth down in a namespace), \
         published meanwhile {events}, noticed gone by publisher {} and witness {} (bound \
         {DETECT:?}), back in both lists after the heal {} / {}, converged {converge_secs:.1} s \
         after the heal; cut-off node: {}",
        secs(detected[0]),
        secs(detected[1]),
        secs(back[0]),
        secs(back[1]),
        tally.lock().unwrap().summary()
    );
    ensure!(
        back.iter().all(Option::is_some),
        "after the heal the cut-off node {cut_off} did not come back in its peers' \
         Status.connected_peers and handbereik_peers_connected within {CONVERGE:?}"
    );
    for (of, name) in ["publisher", "witness"].iter().enumerate() {
        if detected[of].is_none() {
            bail!(
                "dead peer looks alive: {DETECT:?} after a silent partition the {name} still \
                 listed {cut_off} as connected: waited for it to leave Status.connected_peers \
                 (last: listed {}) and for handbereik_peers_connected to drop to 1 (last: {}). \
                 The node needs a keep-alive (libp2p ping) that closes dead connections",
                last[of].0,
                last[of].1
            );
        }
    }
    Ok(())
}
