//! A node that was away while its peer took in events of many sources
//! catches up on all of them from that peer, although the fetched pages
//! arrive faster than its ingest pipeline takes them.
//!
//! The bug this catches: a fetch chain ended when the pipeline's page queue
//! was full (or a page came back busy), and with a cursor per peer nothing
//! asked for the stream again: the late node stopped short, for ever
//! (98,816 of 100,000 in the system benchmark). With one chain per stream,
//! many sources send many pages at once, so the queue (64 pages) overflows
//! whatever the build's speed.

use std::time::Duration;

use anyhow::Result;
use handbereik_keys::{MemberId, NodeKey, Role, time};
use handbereik_tests::fill;
use handbereik_tests::net::{TestNet, jeugd, wait_until};

/// Listed members that never run; their events reach the late node only
/// through its peer.
const SOURCES: u32 = 200;
/// Events per source: one page each.
const PER_SOURCE: u64 = 100;

fn source_key(i: u32) -> NodeKey {
    let mut seed = [0x33; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    NodeKey::from_seed(seed)
}

fn source_id(i: u32) -> Result<MemberId> {
    Ok(MemberId::parse(&format!("0000000300{i:010}"))?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_node_catches_up_on_every_stream_of_a_large_backlog() -> Result<()> {
    let mut net = TestNet::new(2, &[jeugd()], 1)?;
    for node in &mut net.nodes {
        // All members chosen, so the two running ones surely connect.
        node.max_peers = Some(2 * SOURCES as usize);
    }
    net.start_all().await?;
    let now = time::now();
    let mut extra = Vec::new();
    for i in 0..SOURCES {
        extra.push(handbereik_keys::Member {
            member_id: source_id(i)?,
            name: format!("Bron {i}"),
            roles: vec![Role::Bronhouder],
            purposes: vec![jeugd()],
            node_key: source_key(i).public_key(),
            // Nobody listens there: dials fail at once.
            p2p_addresses: vec![format!("/ip4/127.0.0.1/tcp/{}", 1 + i)],
            grpc_endpoint: "127.0.0.1:1".into(),
            valid_from: now - 60,
            valid_until: None,
            maintenance: false,
            regions: Vec::new(),
        });
    }
    let list = net.list_with(
        |_| true,
        3600,
        |l| {
            l.members.extend(extra);
            l.members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        },
    )?;
    net.hand_out(&list, |_| true)?;
    for node in &mut net.nodes {
        node.stop().await;
    }
    // Node 0 holds every source's events; node 1, the late one, none.
    let opened =
        fill::store_events(&net.nodes[0].dir.join("data"), &net.nodes[1], &jeugd(), 0).await?;
    for i in 0..SOURCES {
        fill::add_events(
            &opened.store,
            &source_key(i),
            &source_id(i)?,
            &jeugd(),
            PER_SOURCE,
        )
        .await?;
    }
    fill::close(opened).await?;
    let total = u64::from(SOURCES) * PER_SOURCE;

    net.nodes[0].start().await?;
    net.nodes[1].start().await?;
    let late = net.nodes[1].metrics()?.clone();
    let caught = wait_until(
        Duration::from_secs(240),
        "the late node holds every event of every source",
        || async { late.received.get() >= total },
    )
    .await;
    let held = late.received.get();
    for node in &mut net.nodes {
        node.stop().await;
    }
    caught.map_err(|e| anyhow::anyhow!("{e}: it holds {held} of {total}"))?;
    assert_eq!(held, total, "each event stored once");
    Ok(())
}
