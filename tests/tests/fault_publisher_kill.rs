//! `kill -9` of a publisher under concurrent publishing, many cycles.
//!
//! Several back-office tasks publish at once through the publisher's local
//! API; the publisher is killed with SIGKILL in the middle of it and started
//! again, cycle after cycle. Afterwards every acknowledged notification is in
//! the publisher's store and was delivered at the receiver, by id, under the
//! sequence number it was acknowledged with; the numbers of the stream
//! continue across every restart with no number used twice and no hole below
//! the highest acknowledged one; and no id is stored under two numbers. A
//! publish that was not acknowledged may or may not have been kept.
//!
//! `HANDBEREIK_FAULT_SCALE=N` runs N times the cycles.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use handbereik_tests::procnet::{PartnerSpec, ProcNet, Tuning, scale};
use handbereik_tests::subscriber::{Tally, follow};

/// Back-office tasks publishing at once.
const PUBLISHERS: usize = 4;
/// Cycles at scale 1.
const CYCLES: u64 = 6;

/// One acknowledged publish.
#[derive(Clone, Debug)]
struct Acked {
    cycle: u64,
    sequence: u64,
    id: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_killed_under_concurrent_publishing_loses_nothing_acknowledged() -> Result<()> {
    let specs = [
        PartnerSpec::loopback("publisher"),
        PartnerSpec::loopback("receiver"),
    ];
    let mut net = tokio::task::block_in_place(|| ProcNet::create(&specs, &Tuning::default()))?;
    let result = run(&mut net).await;
    net.explain(result)
}

async fn run(net: &mut ProcNet) -> Result<()> {
    tokio::task::block_in_place(|| net.start_all())?;
    net.wait_connected(&[0, 1], Duration::from_secs(60)).await?;
    let cycles = CYCLES * scale();
    let mut acked: Vec<Acked> = Vec::new();
    let mut refused = 0u64;
    let mut pid_seen = HashSet::new();

    for cycle in 0..cycles {
        if cycle > 0 {
            tokio::task::block_in_place(|| net.partners[0].start())?;
        }
        pid_seen.insert(net.partners[0].pid()?);
        let api = net.partners[0].api().await?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for t in 0..PUBLISHERS {
            let api = api.clone();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let mut ok = Vec::new();
                let mut failed = 0u64;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    match api
                        .publish(&format!("p-{cycle}-{t}-{n}"), Duration::from_secs(30))
                        .await
                    {
                        Ok(Ok(notification)) => ok.push((notification.sequence, notification.id)),
                        // Not acknowledged: the node is starting or was killed.
                        Ok(Err(_)) => {
                            failed += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(timeout) => return Err(timeout),
                    }
                }
                Ok::<_, anyhow::Error>((ok, failed))
            }));
        }
        // Let the publishers get going, then kill the node under them. The
        // moment moves from cycle to cycle so that it falls at other points
        // of a commit.
        let started = Instant::now();
        let count_before = acked.len();
        let run_for = Duration::from_millis(300 + (cycle * 137) % 500);
        while started.elapsed() < Duration::from_secs(30) {
            let status = net.partners[0].api().await?.connected().await;
            if status.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(run_for).await;
        tokio::task::block_in_place(|| net.partners[0].kill9())?;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            let (ok, failed) = tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .context("a publishing task did not finish within 60 s of the kill")???;
            refused += failed;
            acked.extend(ok.into_iter().map(|(sequence, id)| Acked {
                cycle,
                sequence,
                id,
            }));
        }
        ensure!(
            acked.len() > count_before,
            "cycle {cycle}: no publish was acknowledged in {run_for:?} before the kill"
        );
    }

    // Once more, for good: the stream continues after the last kill.
    tokio::task::block_in_place(|| net.partners[0].start())?;
    let api = net.partners[0].api().await?;
    let after = loop {
        match api.publish("p-after", Duration::from_secs(30)).await? {
            Ok(n) => break n,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    acked.push(Acked {
        cycle: cycles,
        sequence: after.sequence,
        id: after.id.clone(),
    });

    // The acknowledged numbers: each used once, rising from cycle to cycle.
    let mut by_sequence: BTreeMap<u64, &Acked> = BTreeMap::new();
    for a in &acked {
        if let Some(first) = by_sequence.insert(a.sequence, a) {
            bail!(
                "sequence {} was acknowledged twice: id {} in cycle {} and id {} in cycle {}",
                a.sequence,
                first.id,
                first.cycle,
                a.id,
                a.cycle
            );
        }
    }
    let mut highest_before = 0u64;
    for cycle in 0..=cycles {
        let numbers: Vec<u64> = acked
            .iter()
            .filter(|a| a.cycle == cycle)
            .map(|a| a.sequence)
            .collect();
        let (Some(&low), Some(&high)) = (numbers.iter().min(), numbers.iter().max()) else {
            continue;
        };
        ensure!(
            low > highest_before,
            "after restart {cycle} the stream did not continue: its lowest acknowledged \
             sequence is {low}, but {highest_before} was acknowledged before the kill"
        );
        highest_before = high;
    }
    let highest = highest_before;
    let want: HashSet<String> = acked.iter().map(|a| a.id.clone()).collect();
    ensure!(want.len() == acked.len(), "an id was acknowledged twice");

    // The receiver gets every acknowledged notification.
    let receiver = net.partners[1].api().await?;
    let tally = Tally::shared();
    let converging = Instant::now();
    follow(
        &receiver,
        "backoffice",
        &tally,
        Duration::from_secs(120),
        |t| t.has_all(&want),
    )
    .await
    .context("the receiver did not get every acknowledged notification")?;
    let receiver_secs = converging.elapsed().as_secs_f64();

    // Both stopped; their stores are read directly.
    for p in &mut net.partners {
        let (status, log) = tokio::task::block_in_place(|| p.terminate(Duration::from_secs(60)))?;
        ensure!(
            status.success(),
            "{} did not stop cleanly: {status}\n{log}",
            p.name
        );
    }
    let source = net.partners[0].member_id.clone();
    let mut lost = 0u64;
    let mut stored_unacked = 0u64;
    for p in &net.partners {
        let stored = p.stored_stream(&source).await?;
        ensure!(
            stored.mark >= highest,
            "{} holds the stream contiguously only up to {}, but {highest} was acknowledged \
             (a hole or a lost event)",
            p.name,
            stored.mark
        );
        let at: HashMap<u64, &str> = stored
            .events
            .iter()
            .map(|(s, id)| (*s, id.as_str()))
            .collect();
        let mut ids = HashSet::new();
        for (seq, id) in &stored.events {
            ensure!(
                ids.insert(id.as_str()),
                "{}: id {id} is stored twice (again under sequence {seq})",
                p.name
            );
        }
        for a in &acked {
            match at.get(&a.sequence) {
                Some(id) if *id == a.id => {}
                Some(id) => bail!(
                    "{}: sequence {} was acknowledged as id {} but holds id {id}",
                    p.name,
                    a.sequence,
                    a.id
                ),
                None => lost += 1,
            }
        }
        if p.name == "publisher" {
            stored_unacked = stored.mark.saturating_sub(acked.len() as u64);
        }
    }
    let t = tally.lock().unwrap();
    println!(
        "fault_publisher_kill: cycles {cycles}, publishing tasks {PUBLISHERS}, acknowledged {}, \
         not acknowledged (refused or cut off) {refused}, stored but not acknowledged \
         {stored_unacked}, lost {lost}, duplicate numbers 0, highest sequence {highest}, \
         receiver complete {receiver_secs:.1} s after the last publish; receiver: {}",
        acked.len(),
        t.summary()
    );
    ensure!(lost == 0, "{lost} acknowledged notifications are missing");
    ensure!(
        t.redelivered_acked == 0,
        "the receiver delivered an acknowledged notification again"
    );
    ensure!(
        pid_seen.len() as u64 == cycles,
        "every cycle ran its own process"
    );
    Ok(())
}
