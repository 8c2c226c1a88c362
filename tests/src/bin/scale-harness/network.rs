//! One size of the harness: N real nodes started in this process (the
//! node library's `Node::start`, loopback TCP, one sled store each), the
//! signed list of all of them handed out through their list files, the wait
//! for the overlay, a sampler of every node's connection gauge, and the stop.
//!
//! Calls `handbereik_tests::net` (keys, configs, lists) and the nodes'
//! metrics; never waits without a deadline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use handbereik_node::metrics::Metrics;
use handbereik_tests::net::{TestNet, jeugd};

/// How every node of a size is configured.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `p2p.max_peers`.
    pub max_peers: usize,
    /// `store.cache_capacity_mb`.
    pub cache_mb: u64,
    /// `p2p.sync_interval_secs`.
    pub sync_secs: u64,
    /// Where the nodes' directories are made.
    pub dir: PathBuf,
}

/// Makes and starts `n` nodes, then hands every node the list of all.
/// Answers the network and how long starting took.
pub async fn start(n: usize, settings: &Settings) -> Result<(TestNet, Duration)> {
    let mut net = TestNet::new_in(&settings.dir, n, &[jeugd()], settings.sync_secs)
        .with_context(|| format!("making {n} node directories"))?;
    for node in &mut net.nodes {
        node.max_peers = Some(settings.max_peers);
        node.cache_capacity_mb = settings.cache_mb;
        node.default_timers = true;
    }
    let started = Instant::now();
    for (i, node) in net.nodes.iter_mut().enumerate() {
        tokio::time::timeout(Duration::from_secs(60), node.start())
            .await
            .with_context(|| format!("node {i} did not start within 60 s"))?
            .with_context(|| format!("starting node {i}"))?;
        if (i + 1) % 100 == 0 && i + 1 < n {
            println!("    {} of {n} nodes started", i + 1);
        }
    }
    let took = started.elapsed();
    // Every node must have listened once for the list to hold its address.
    let list = net.list(|_| true, 24 * 3600)?;
    net.hand_out(&list, |_| true)?;
    Ok((net, took))
}

/// The metrics of every running node.
pub fn metrics(net: &TestNet) -> Vec<Arc<Metrics>> {
    net.nodes
        .iter()
        .filter_map(|n| n.node.as_ref().map(|node| node.metrics().clone()))
        .collect()
}

/// Every running node's connection gauge now.
pub fn connections(net: &TestNet) -> Vec<i64> {
    metrics(net)
        .iter()
        .map(|m| m.p2p_connections.get())
        .collect()
}

/// Bytes sent on libp2p connections, summed over the running nodes: every
/// byte on the wire once (its receiver counts it again as received).
pub fn wire_sent(net: &TestNet) -> u64 {
    metrics(net).iter().map(|m| m.p2p_bytes_sent.get()).sum()
}

/// How the wait for the overlay went.
#[derive(Debug)]
pub struct Overlay {
    /// From the list being handed out to the condition holding (or the deadline).
    pub waited: Duration,
    /// The deadline passed first.
    pub timed_out: bool,
}

/// Waits until every node has at least one connection and the median node
/// has `max_peers / 2`, then until the total number of connections has not
/// changed for three seconds; `limit` for each.
pub async fn wait_overlay(net: &TestNet, max_peers: usize, limit: Duration) -> Overlay {
    let started = Instant::now();
    let want = i64::try_from(max_peers / 2).unwrap_or(i64::MAX);
    let mut timed_out = false;
    loop {
        let mut counts = connections(net);
        counts.sort_unstable();
        let min = counts.first().copied().unwrap_or(0);
        let median = counts.get(counts.len() / 2).copied().unwrap_or(0);
        if min >= 1 && median >= want {
            break;
        }
        if started.elapsed() > limit {
            println!(
                "    TIMEOUT: after {limit:?} the overlay has min {min}, median {median} connections (wanted >= 1 and >= {want}); going on"
            );
            timed_out = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let waited = started.elapsed();
    let settling = Instant::now();
    let mut last = -1;
    let mut still_since = Instant::now();
    while !timed_out {
        let total: i64 = connections(net).iter().sum();
        if total != last {
            last = total;
            still_since = Instant::now();
        } else if still_since.elapsed() >= Duration::from_secs(3) {
            break;
        }
        if settling.elapsed() > limit {
            println!(
                "    TIMEOUT: the number of connections still changed after {limit:?}; going on"
            );
            timed_out = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Overlay { waited, timed_out }
}

/// Samples every node's connection gauge until stopped: the highest value
/// any node showed.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<i64>,
}

impl Sampler {
    /// Starts sampling the nodes running now, every 250 ms.
    pub fn start(net: &TestNet) -> Self {
        let gauges = metrics(net);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let highest = Arc::new(AtomicI64::new(0));
        let task = tokio::spawn(async move {
            while !stopped.load(Ordering::Relaxed) {
                for m in &gauges {
                    highest.fetch_max(m.p2p_connections.get(), Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            highest.load(Ordering::Relaxed)
        });
        Sampler { stop, task }
    }

    /// Stops and answers the highest value seen.
    pub async fn finish(self) -> i64 {
        self.stop.store(true, Ordering::Relaxed);
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(highest)) => highest,
            _ => {
                println!("    TIMEOUT: the connection sampler did not end within 5 s");
                -1
            }
        }
    }
}

/// Stops every running node, all at once; each node's shutdown has its
/// own phase deadlines, and the whole has `limit`.
pub async fn stop_all(net: &mut TestNet, limit: Duration) {
    let stops = net.nodes.iter_mut().map(|n| n.stop());
    if tokio::time::timeout(limit, futures::future::join_all(stops))
        .await
        .is_err()
    {
        println!("    TIMEOUT: the nodes did not all stop within {limit:?}; going on");
    }
}

/// The signed size of every event of `source`'s `purpose` stream in the
/// stopped node's store at `data_dir`: (count, mean bytes).
pub async fn event_sizes(data_dir: &Path, source: &str, purpose: &str) -> Result<(usize, f64)> {
    use handbereik_keys::{MemberId, Purpose};
    use handbereik_node::store::{Opened, Store};
    let stream =
        handbereik_node::types::StreamId::new(MemberId::parse(source)?, Purpose::parse(purpose)?);
    let Opened { store, writer, .. } = Store::open(data_dir, 8 << 20)?;
    let read = || -> Result<(usize, f64)> {
        let mark = store.mark(&stream)?;
        let events = store.events_from(&stream, 1, mark, usize::MAX, usize::MAX)?;
        let total: usize = events.iter().map(Vec::len).sum();
        Ok((events.len(), total as f64 / events.len().max(1) as f64))
    };
    let result = read();
    let _ = tokio::time::timeout(Duration::from_secs(30), store.close()).await;
    let _ = writer.join(Duration::from_secs(30)).await;
    result
}
