//! `kill -9` of a receiver mid-stream.
//!
//! A back office follows a durable subscription at the receiver with
//! `Subscribe` and acknowledges every delivery with `Ack`, while the
//! publisher publishes steadily. The receiver is killed with SIGKILL twice
//! during the stream and started again; the back office subscribes again.
//! In the end every published notification was delivered and acknowledged,
//! and none that was acknowledged came again (exactly once for what was
//! acknowledged). Deliveries again of what was sent but not yet acknowledged
//! are allowed by at-least-once delivery; they are counted and printed.
//!
//! `HANDBEREIK_FAULT_SCALE=N` publishes N times the notifications.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use handbereik_tests::procnet::{PartnerSpec, ProcNet, Tuning, scale};
use handbereik_tests::subscriber::{Tally, follow};

/// Notifications at scale 1.
const EVENTS: u64 = 400;
/// How many times the receiver is killed.
const KILLS: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_killed_mid_stream_delivers_each_acknowledged_exactly_once() -> Result<()> {
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
    let events = EVENTS * scale();
    let publisher = net.partners[0].api().await?;
    let receiver = net.partners[1].api().await?;

    // The publisher publishes steadily; it is never killed here.
    let published: Arc<Mutex<Vec<String>>> = Arc::default();
    let publishing = {
        let published = published.clone();
        tokio::spawn(async move {
            for n in 0..events {
                let notification = publisher
                    .publish(&format!("p-{n}"), Duration::from_secs(30))
                    .await?
                    .with_context(|| format!("publish {n} was refused"))?;
                published.lock().unwrap().push(notification.id);
                if n % 8 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            Ok::<_, anyhow::Error>(())
        })
    };

    // The back office follows the receiver until it has acknowledged all.
    let tally = Tally::shared();
    let following = {
        let tally = tally.clone();
        let published = published.clone();
        tokio::spawn(async move {
            follow(
                &receiver,
                "backoffice",
                &tally,
                Duration::from_secs(180),
                |t| {
                    let p = published.lock().unwrap();
                    p.len() as u64 == events && p.iter().all(|id| t.acked.contains(id))
                },
            )
            .await
        })
    };

    // Kill the receiver at a third and at two thirds of the stream.
    let mut kills = 0;
    let mut delivered_at_kill = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while kills < KILLS {
        let threshold = events * (kills as u64 + 1) / (KILLS as u64 + 1);
        let delivered = tally.lock().unwrap().delivered.len() as u64;
        if delivered >= threshold {
            tokio::task::block_in_place(|| net.partners[1].kill9())?;
            delivered_at_kill.push(delivered);
            tokio::time::sleep(Duration::from_millis(300)).await;
            tokio::task::block_in_place(|| net.partners[1].start())?;
            kills += 1;
        }
        ensure!(
            Instant::now() < deadline,
            "the subscriber had {delivered} of {events} after 120 s, before kill {}",
            kills + 1
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::timeout(Duration::from_secs(120), publishing)
        .await
        .context("the publisher did not finish within 120 s")???;
    let done_publishing = Instant::now();
    tokio::time::timeout(Duration::from_secs(200), following)
        .await
        .context("the subscriber did not finish within 200 s")???;
    let tail_secs = done_publishing.elapsed().as_secs_f64();

    let t = tally.lock().unwrap();
    let published = published.lock().unwrap();
    let want: HashSet<&String> = published.iter().collect();
    let strangers = t.delivered.keys().filter(|id| !want.contains(id)).count();
    let more_than_once = t.delivered.values().filter(|&&n| n > 1).count();
    println!(
        "fault_receiver_kill: events {events}, receiver kills {kills} (after {delivered_at_kill:?} \
         delivered), receiver restarts {}, {}; notifications delivered more than once {more_than_once}, \
         acknowledged exactly once {}, unknown ids {strangers}, complete {tail_secs:.1} s after \
         the last publish",
        net.partners[1].runs() - 1,
        t.summary(),
        t.acked.len()
    );
    ensure!(
        t.redelivered_acked == 0,
        "{} deliveries of notifications that were acknowledged before",
        t.redelivered_acked
    );
    ensure!(
        t.acked.len() == published.len(),
        "{} of {} published notifications were acknowledged",
        t.acked.len(),
        published.len()
    );
    ensure!(
        strangers == 0,
        "{strangers} delivered ids were never published"
    );
    ensure!(
        t.subscribes > KILLS as u64,
        "the subscriber must have subscribed again after each kill"
    );
    Ok(())
}
