//! Publish → delivered: one node publishes through its local API at a
//! steady rate; every other node's inbox head (the count of notifications
//! of other members it has durably stored) is followed, so each event's
//! arrival at each node is timed without a gRPC stream per node. With one
//! publisher the k-th arrival at a node is the k-th event (an event that
//! overtook the one before it would swap two timings, never lose one).
//!
//! Also the bytes on the wire while publishing, less the idle rate, per
//! delivered event.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use handbereik_tests::net::{TestNet, jeugd, publish_request};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::network;
use crate::report::Spread;

/// How long the harness waits for one Publish call.
const PUBLISH_LIMIT: Duration = Duration::from_secs(10);
/// Gossip goes on for a few heartbeats after the last delivery (IHAVE of
/// the message cache): counted in the event's bytes.
const GOSSIP_TAIL: Duration = Duration::from_secs(3);

/// What one publishing phase measured.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Delivery {
    /// Events published.
    pub events: usize,
    /// Publish calls that failed or timed out.
    pub publish_errors: usize,
    /// Deliveries expected: events × (N − 1).
    pub expected: usize,
    /// Deliveries seen before the deadline.
    pub delivered: usize,
    /// Expected deliveries not seen by the deadline.
    pub lost: usize,
    /// Events stored through sync rather than gossip while publishing.
    pub by_sync: u64,
    /// Publish (before the call) → durably stored, over every delivery, ms.
    pub per_delivery_ms: Spread,
    /// Publish → stored at the last node, over the events every node got, ms.
    pub all_nodes_ms: Spread,
    /// Events that did not reach every node.
    pub events_not_everywhere: usize,
    /// Seconds from the first publish to the end of the byte window.
    pub window_secs: f64,
    /// Bytes sent in that window, summed over the nodes.
    pub wire_bytes: u64,
    /// Those bytes less the idle rate over the window.
    pub wire_bytes_net: f64,
    /// `wire_bytes_net` per delivery.
    pub bytes_per_delivery: f64,
    /// Process CPU time in the window, less the idle rate, per delivery, µs.
    pub cpu_us_per_delivery: f64,
    /// The deadline for deliveries passed.
    pub timed_out: bool,
}

/// What the idle window measured, to take out of the publishing window.
#[derive(Clone, Copy, Debug)]
pub struct IdleRates {
    /// Bytes sent per second, all nodes.
    pub bytes_per_sec: f64,
    /// CPU seconds per second, the whole process.
    pub cpu_per_sec: f64,
    /// Clock ticks per second of `/proc` times.
    pub ticks: f64,
}

/// Publishes `count` events at `publisher`, one every `1/rate` s on a fixed
/// schedule; answers when each call was made, in sequence order, and how
/// many calls failed.
pub async fn publish_paced(
    net: &TestNet,
    publisher: usize,
    count: usize,
    rate: f64,
    label: &str,
) -> Result<(Vec<Instant>, usize)> {
    let mut client = tokio::time::timeout(PUBLISH_LIMIT, net.nodes[publisher].notifications())
        .await
        .context("connecting to the publisher's local API timed out")??;
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let mut sent = Vec::with_capacity(count);
    let mut errors = 0;
    for i in 0..count {
        tokio::time::sleep_until(start + period.mul_f64(i as f64)).await;
        let at = Instant::now();
        let request = publish_request(&jeugd(), &format!("p-{label}-{i:05}"));
        match tokio::time::timeout(PUBLISH_LIMIT, client.publish(request)).await {
            Ok(Ok(_)) => sent.push(at),
            Ok(Err(status)) => {
                errors += 1;
                println!("    publish {i} failed: {status}");
            }
            Err(_) => {
                errors += 1;
                println!("    TIMEOUT: publish {i} took more than {PUBLISH_LIMIT:?}");
            }
        }
    }
    Ok((sent, errors))
}

/// Follows one node's inbox head from its value now: the time of each of
/// the next `want` arrivals, until cancelled.
fn follow(
    mut head: tokio::sync::watch::Receiver<u64>,
    want: usize,
    total: Arc<AtomicUsize>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<Vec<Instant>> {
    tokio::spawn(async move {
        let mut seen = *head.borrow_and_update();
        let mut arrivals = Vec::with_capacity(want);
        while arrivals.len() < want {
            tokio::select! {
                () = cancel.cancelled() => break,
                changed = head.changed() => if changed.is_err() { break },
            }
            let now = Instant::now();
            let value = *head.borrow_and_update();
            while seen < value && arrivals.len() < want {
                seen += 1;
                arrivals.push(now);
                total.fetch_add(1, Ordering::Relaxed);
            }
        }
        arrivals
    })
}

/// One publishing phase: `events` at `rate` per second from `publisher`,
/// deliveries awaited until `limit` after the last publish.
pub async fn measure(
    net: &TestNet,
    publisher: usize,
    events: usize,
    rate: f64,
    idle: IdleRates,
    limit: Duration,
) -> Result<Delivery> {
    let cancel = CancellationToken::new();
    let total = Arc::new(AtomicUsize::new(0));
    let mut followers = Vec::new();
    for (i, node) in net.nodes.iter().enumerate() {
        if i == publisher {
            continue;
        }
        let running = node.handle()?;
        followers.push(follow(
            running.inbox_head(),
            events,
            total.clone(),
            cancel.clone(),
        ));
    }
    let metrics = network::metrics(net);
    let sync_before: u64 = metrics.iter().map(|m| m.fetched_by_sync.get()).sum();
    let bytes_before = network::wire_sent(net);
    let cpu_before = crate::process::cpu_seconds(idle.ticks)?;
    let first = Instant::now();
    let (sent, publish_errors) = publish_paced(net, publisher, events, rate, "scale").await?;
    let expected = sent.len() * followers.len();
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    while total.load(Ordering::Relaxed) < expected {
        if Instant::now() > deadline {
            println!(
                "    TIMEOUT: {} of {expected} deliveries {limit:?} after the last publish; going on",
                total.load(Ordering::Relaxed)
            );
            timed_out = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(GOSSIP_TAIL).await;
    let window = first.elapsed().as_secs_f64();
    let wire_bytes = network::wire_sent(net).saturating_sub(bytes_before);
    let cpu = crate::process::cpu_seconds(idle.ticks)? - cpu_before;
    let by_sync = metrics
        .iter()
        .map(|m| m.fetched_by_sync.get())
        .sum::<u64>()
        .saturating_sub(sync_before);
    cancel.cancel();
    let mut per_delivery = Vec::with_capacity(expected);
    let mut last_arrival: Vec<Option<f64>> = vec![Some(0.0); sent.len()];
    for follower in followers {
        let arrivals = tokio::time::timeout(Duration::from_secs(5), follower)
            .await
            .context("a follower did not end within 5 s")??;
        for (k, at) in sent.iter().enumerate() {
            match arrivals.get(k) {
                Some(arrived) => {
                    let latency = arrived.saturating_duration_since(*at).as_secs_f64() * 1e3;
                    per_delivery.push(latency);
                    if let Some(Some(worst)) = last_arrival.get_mut(k) {
                        *worst = worst.max(latency);
                    }
                }
                None => last_arrival[k] = None,
            }
        }
    }
    let everywhere: Vec<f64> = last_arrival.iter().filter_map(|l| *l).collect();
    let delivered = per_delivery.len();
    let wire_bytes_net = (wire_bytes as f64 - idle.bytes_per_sec * window).max(0.0);
    let cpu_net = (cpu - idle.cpu_per_sec * window).max(0.0);
    Ok(Delivery {
        events: sent.len(),
        publish_errors,
        expected,
        delivered,
        lost: expected.saturating_sub(delivered),
        by_sync,
        per_delivery_ms: Spread::of(per_delivery),
        events_not_everywhere: sent.len() - everywhere.len(),
        all_nodes_ms: Spread::of(everywhere),
        window_secs: window,
        wire_bytes,
        wire_bytes_net,
        bytes_per_delivery: wire_bytes_net / delivered.max(1) as f64,
        cpu_us_per_delivery: cpu_net * 1e6 / delivered.max(1) as f64,
        timed_out,
    })
}
