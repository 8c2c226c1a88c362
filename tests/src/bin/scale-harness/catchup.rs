//! Catch-up: a node that is not connected to the publisher is stopped,
//! events are published while it is away, and it is started again on the
//! same directory and ports; timed from the start call to its first
//! connection and to its inbox holding every event it missed (brought by
//! the sync protocol from peers that are not the publisher).

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, Result};
use handbereik_tests::net::TestNet;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::delivery::publish_paced;

/// What the catch-up phase measured.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CatchUp {
    /// The node stopped (an index into the network).
    pub node: usize,
    /// Whether it was connected to the publisher before it stopped.
    pub was_connected_to_publisher: bool,
    /// Events published while it was away.
    pub events: usize,
    /// Seconds it was stopped.
    pub stopped_secs: f64,
    /// The start call (store, keys, listeners), ms.
    pub start_ms: f64,
    /// From the start call to its first connection, ms.
    pub first_connection_ms: Option<f64>,
    /// From the start call to its inbox holding every event it missed, ms.
    pub caught_up_ms: Option<f64>,
    /// Events it stored through sync after the restart.
    pub by_sync: u64,
    /// The deadline passed before it caught up.
    pub timed_out: bool,
}

/// Runs the phase; `away` is how long the node stays stopped, `limit` the
/// deadline for catching up after the start call.
pub async fn measure(
    net: &mut TestNet,
    publisher: usize,
    events: usize,
    rate: f64,
    away: Duration,
    limit: Duration,
) -> Result<CatchUp> {
    let peers: HashSet<String> = tokio::time::timeout(
        Duration::from_secs(10),
        net.nodes[publisher].handle()?.p2p().connected_peers(),
    )
    .await
    .context("the publisher did not name its peers within 10 s")??
    .into_iter()
    .map(|(_, member)| member.to_string())
    .collect();
    let chosen = (0..net.nodes.len())
        .rev()
        .find(|i| *i != publisher && !peers.contains(&net.nodes[*i].member_id.to_string()));
    let (node, was_connected_to_publisher) = match chosen {
        Some(i) => (i, false),
        None => (net.nodes.len() - 1, true),
    };
    let before = *net.nodes[node].handle()?.inbox_head().borrow();
    let stopped_at = Instant::now();
    if tokio::time::timeout(Duration::from_secs(60), net.nodes[node].stop())
        .await
        .is_err()
    {
        println!("    TIMEOUT: node {node} did not stop within 60 s; going on");
    }
    let (sent, _errors) = publish_paced(net, publisher, events, rate, "away").await?;
    tokio::time::sleep_until(stopped_at + away).await;
    let stopped_secs = stopped_at.elapsed().as_secs_f64();
    let want = before + sent.len() as u64;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(60), net.nodes[node].start())
        .await
        .context("the stopped node did not start again within 60 s")??;
    let start_ms = started.elapsed().as_secs_f64() * 1e3;
    let running = net.nodes[node].handle()?;
    let head = running.inbox_head();
    let metrics = running.metrics().clone();
    let mut first_connection_ms = None;
    let mut caught_up_ms = None;
    let deadline = started + limit;
    loop {
        let ms = started.elapsed().as_secs_f64() * 1e3;
        if first_connection_ms.is_none() && metrics.p2p_connections.get() > 0 {
            first_connection_ms = Some(ms);
        }
        if *head.borrow() >= want {
            caught_up_ms = Some(ms);
            break;
        }
        if Instant::now() > deadline {
            println!(
                "    TIMEOUT: node {node} holds {} of {want} events {limit:?} after its start; going on",
                *head.borrow()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The inbox head moves before the stored events' reports reach the
    // swarm task, which counts those that came by sync: let it count.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(CatchUp {
        node,
        was_connected_to_publisher,
        events: sent.len(),
        stopped_secs,
        start_ms,
        first_connection_ms,
        timed_out: caught_up_ms.is_none(),
        caught_up_ms,
        by_sync: metrics.fetched_by_sync.get(),
    })
}
