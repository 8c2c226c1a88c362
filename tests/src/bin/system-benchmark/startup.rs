//! The start-up figure: a node whose store holds `events` notifications of
//! another member and `audit` audit entries is started, and timed from the
//! start until its local API answers `Status` with its member list held.
//! The store is filled directly through the store's own writer (the path
//! gossip and the audit log take), with the node stopped.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use handbereik_node::audit::{Actor, Audit, Decision, Direction, Record};
use handbereik_proto::v1 as pb;
use handbereik_tests::fill;
use handbereik_tests::net::{TestNet, TestNode, jeugd};

use crate::report::{Report, Target, within};

/// Fills a stopped node's store, starts it and times it until it serves.
pub async fn startup(report: &mut Report, events: u64, audit: u64) -> Result<()> {
    let mut net = TestNet::new(2, &[jeugd()], 5)?;
    net.start_all().await?;
    let list = net.list(|_| true, 3600)?;
    net.hand_out(&list, |_| true)?;
    for node in &mut net.nodes {
        node.stop().await;
    }
    let filled = Instant::now();
    fill(&net, events, audit).await?;
    println!(
        "  (store filled with {events} events and {audit} audit entries in {:.1} s)",
        filled.elapsed().as_secs_f64()
    );

    // The first start after the writes replays sled's log since its last
    // snapshot (sled 0.34 writes one only when it opens); the second is a
    // restart of a node that was started before.
    let node = &mut net.nodes[1];
    let first = time_start(node).await?;
    let again = time_start(node).await?;
    let what = format!("{events} stored events and {audit} audit entries");
    report.against(
        "startup",
        "startup.ms",
        &format!(
            "start → serving (Status with its list), {what}, first start after they were written"
        ),
        first * 1e3,
        "ms",
        Target::AtMost(300.0),
    );
    report.against(
        "startup",
        "restart.ms",
        &format!("the same node stopped and started again, {what}"),
        again * 1e3,
        "ms",
        Target::AtMost(300.0),
    );
    Ok(())
}

/// Starts `node`, waits until its local API answers Status with its list,
/// stops it; seconds from the start to that answer.
async fn time_start(node: &mut TestNode) -> Result<f64> {
    let started = Instant::now();
    node.start().await?;
    let started_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut client = node.node_client().await?;
    loop {
        let status =
            tokio::time::timeout(Duration::from_secs(2), client.status(pb::StatusRequest {})).await;
        if let Ok(Ok(s)) = status
            && s.into_inner().member_list_version >= 1
        {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the node did not serve Status with its list within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "  (Node::start returned after {started_ms:.0} ms, Status with the list after {:.0} ms)",
        elapsed * 1e3
    );
    node.stop().await;
    Ok(elapsed)
}

/// Stores `events` events of node 0 and `audit` audit entries in node 1's
/// stopped store.
async fn fill(net: &TestNet, events: u64, audit: u64) -> Result<()> {
    let source = &net.nodes[0];
    let opened =
        fill::store_events(&net.nodes[1].dir.join("data"), source, &jeugd(), events).await?;
    let log = Audit::new(opened.store.clone());
    let peer = source.member_id.to_string();
    let mut written = 0;
    while written < audit {
        let n = 1_000.min(audit - written);
        let entries = (written..written + n).map(|i| {
            let log = log.clone();
            let record = Record {
                direction: Direction::Served,
                peer: peer.clone(),
                purpose: jeugd().to_string(),
                subject: format!("{:064x}", i % 5_000),
                action: "inspect".into(),
                asked: vec!["melding".into()],
                given: vec!["melding".into()],
                decision: Decision::Allowed,
                policies: vec!["policy0".into()],
                request_id: format!("bench-{i}"),
                actor: Actor::default(),
                emergency: None,
                signed_request: Vec::new(),
            };
            async move { log.log(record, None).await }
        });
        let results = within(Duration::from_secs(120), "writing audit entries", async {
            Ok(futures::future::join_all(entries).await)
        })
        .await?;
        for r in results {
            r.context("writing an audit entry")?;
        }
        written += n;
    }
    drop(log);
    fill::close(opened).await
}
