//! The bounded peer set with real nodes: sixteen nodes that keep at most four
//! connections each still deliver every notification to every node (through
//! relays, once per subscription), a node catches up from peers that are not
//! the publisher, a revoked member is cut off everywhere, no node ever holds
//! more connections than its bound; two members restarted together keep
//! one connection and gossip both ways; and a node given a list of 20,000
//! members starts, serves, and dials no more than its bound.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use handbereik_keys::{
    Domain, GovernanceSet, Member, MemberId, MemberList, NodeKey, Revocation, Role, SignedEnvelope,
    canonical, time,
};
use handbereik_proto::v1 as pb;
use handbereik_tests::net::{TestNet, jeugd, publish_request, wait_until};

const PATIENCE: Duration = Duration::from_secs(120);
const MAX_PEERS: i64 = 4;

/// Samples every running node's connection gauge until stopped; answers the
/// highest value seen.
fn watch_connections(net: &TestNet) -> Result<(Arc<AtomicBool>, tokio::task::JoinHandle<i64>)> {
    let gauges: Vec<_> = net
        .nodes
        .iter()
        .filter(|n| n.node.is_some())
        .map(|n| n.metrics().cloned())
        .collect::<Result<_>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let highest = Arc::new(AtomicI64::new(0));
    Ok((
        stop,
        tokio::spawn(async move {
            while !stopped.load(Ordering::Relaxed) {
                for m in &gauges {
                    highest.fetch_max(m.p2p_connections.get(), Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            highest.load(Ordering::Relaxed)
        }),
    ))
}

async fn connected_to(net: &TestNet, i: usize) -> Result<HashSet<String>> {
    let status = net.nodes[i]
        .node_client()
        .await?
        .status(pb::StatusRequest {})
        .await?
        .into_inner();
    Ok(status
        .connected_peers
        .into_iter()
        .map(|p| p.member_id)
        .collect())
}

async fn sixteen() -> Result<TestNet> {
    let mut net = TestNet::new(16, &[jeugd()], 2)?;
    for node in &mut net.nodes {
        node.max_peers = Some(MAX_PEERS as usize);
    }
    Ok(net)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_nodes_of_four_peers_each_deliver_everything_through_relays() -> Result<()> {
    let mut net = sixteen().await?;
    net.start_all().await?;
    let list = net.list(|_| true, 3600)?;
    net.hand_out(&list, |_| true)?;
    let (stop, highest) = watch_connections(&net)?;
    // Everyone has some peers; nobody has all.
    for i in 0..16 {
        let client = net.nodes[i].node_client().await?;
        wait_until(PATIENCE, "each node has a peer", || {
            let mut client = client.clone();
            async move {
                client
                    .status(pb::StatusRequest {})
                    .await
                    .map(|s| !s.into_inner().connected_peers.is_empty())
                    .unwrap_or(false)
            }
        })
        .await?;
    }
    // Node 0 publishes; every other node must get each event exactly once.
    const EVENTS: u64 = 20;
    let mut publisher = net.nodes[0].notifications().await?;
    for n in 0..EVENTS {
        publisher
            .publish(publish_request(&jeugd(), &format!("relay-{n}")))
            .await?;
    }
    for i in 1..16 {
        let metrics = net.nodes[i].metrics()?.clone();
        wait_until(PATIENCE, &format!("node {i} stores all events"), || {
            let metrics = metrics.clone();
            async move { metrics.received.get() >= EVENTS }
        })
        .await?;
        let mut sub = net.nodes[i].notifications().await?;
        let mut stream = sub
            .subscribe(pb::SubscribeRequest {
                name: "relay".into(),
                types: vec![],
                purposes: vec![],
                sources: vec![],
            })
            .await?
            .into_inner();
        let mut ids = HashSet::new();
        for _ in 0..EVENTS {
            let d = tokio::time::timeout(PATIENCE, stream.message())
                .await
                .context("a delivery in time")??
                .context("the stream ended")?;
            assert!(
                ids.insert(d.notification.unwrap().id),
                "delivered twice at node {i}"
            );
        }
        assert_eq!(
            net.nodes[i].metrics()?.received.get(),
            EVENTS,
            "stored once at node {i}"
        );
    }
    let direct = connected_to(&net, 0).await?.len();
    assert!(
        direct < 15,
        "the publisher is not connected to everyone ({direct})"
    );
    stop.store(true, Ordering::Relaxed);
    let highest = highest.await?;
    assert!(
        highest <= MAX_PEERS,
        "a node held {highest} connections, more than {MAX_PEERS}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_catches_up_from_peers_that_are_not_the_publisher() -> Result<()> {
    let mut net = sixteen().await?;
    net.start_all().await?;
    let list = net.list(|_| true, 3600)?;
    net.hand_out(&list, |_| true)?;
    let publisher_id = net.nodes[0].member_id.to_string();
    // A node that does not hold a connection to the publisher.
    let mut chosen = None;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while chosen.is_none() && tokio::time::Instant::now() < deadline {
        for i in 1..16 {
            let peers = connected_to(&net, i).await?;
            if !peers.is_empty() && !peers.contains(&publisher_id) {
                chosen = Some(i);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let x = chosen.context("some node is not connected to the publisher")?;
    net.nodes[x].stop().await;
    const EVENTS: u64 = 25;
    let mut publisher = net.nodes[0].notifications().await?;
    for n in 0..EVENTS {
        publisher
            .publish(publish_request(&jeugd(), &format!("missed-{n}")))
            .await?;
    }
    net.nodes[x].start().await?;
    let metrics = net.nodes[x].metrics()?.clone();
    wait_until(
        PATIENCE,
        "the restarted node has every missed event",
        || {
            let metrics = metrics.clone();
            async move { metrics.received.get() >= EVENTS }
        },
    )
    .await?;
    assert!(metrics.fetched_by_sync.get() > 0, "caught up by sync");
    assert!(
        !connected_to(&net, x).await?.contains(&publisher_id),
        "it caught up without the publisher among its peers"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_member_is_cut_off_everywhere() -> Result<()> {
    let mut net = sixteen().await?;
    net.start_all().await?;
    let list = net.list(|_| true, 3600)?;
    net.hand_out(&list, |_| true)?;
    let victim = 5;
    let victim_id = net.nodes[victim].member_id.clone();
    let victim_key = net.nodes[victim].key.public_key();
    wait_until(PATIENCE, "the victim has peers", || {
        let net = &net;
        async move {
            connected_to(net, victim)
                .await
                .map(|p| !p.is_empty())
                .unwrap_or(false)
        }
    })
    .await?;
    let revoked = net.list_with(
        |i| i != victim,
        3600,
        |l| {
            l.revoked.push(Revocation {
                key: victim_key,
                member_id: victim_id.clone(),
                revoked_at: time::now(),
                reason: "test".into(),
            })
        },
    )?;
    net.hand_out(&revoked, |i| i != victim)?;
    let victim_text = victim_id.to_string();
    for i in (0..16).filter(|i| *i != victim) {
        let client = net.nodes[i].node_client().await?;
        let victim_text = victim_text.clone();
        wait_until(
            PATIENCE,
            &format!("node {i} holds no connection to the revoked member"),
            || {
                let mut client = client.clone();
                let victim_text = victim_text.clone();
                async move {
                    client
                        .status(pb::StatusRequest {})
                        .await
                        .map(|s| {
                            let s = s.into_inner();
                            s.member_list_version == 2
                                && s.connected_peers.iter().all(|p| p.member_id != victim_text)
                        })
                        .unwrap_or(false)
                }
            },
        )
        .await?;
    }
    // And it stays cut off: its dials are refused and counted as strangers.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in (0..16).filter(|i| *i != victim) {
        assert!(
            !connected_to(&net, i).await?.contains(&victim_text),
            "node {i}"
        );
    }
    Ok(())
}

/// A node given a list of 20,000 members (made with the library): it
/// installs it, serves its API, and dials no more than its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_list_of_twenty_thousand_members_dials_only_its_bound() -> Result<()> {
    const MEMBERS: u32 = 20_000;
    let mut net = TestNet::new(2, &[jeugd()], 5)?;
    for node in &mut net.nodes {
        node.max_peers = Some(8);
    }
    net.start_all().await?;
    let now = time::now();
    let mut members: Vec<Member> = (0..MEMBERS)
        .map(|i| {
            let key = NodeKey::from_seed(seed(i));
            Member {
                member_id: MemberId::parse(&format!("0000000200{:010}", i)).unwrap(),
                name: format!("Zorgaanbieder {i}"),
                roles: vec![Role::Afnemer, Role::Bronhouder],
                purposes: vec![jeugd()],
                node_key: key.public_key(),
                // Nobody listens there: every dial of these fails at once.
                p2p_addresses: vec![format!("/ip4/127.0.0.1/tcp/{}", 1 + i % 1000)],
                grpc_endpoint: "127.0.0.1:1".into(),
                valid_from: now - 60,
                valid_until: None,
                maintenance: false,
                regions: Vec::new(),
            }
        })
        .collect();
    for node in &net.nodes {
        members.push(Member {
            member_id: node.member_id.clone(),
            name: "Test partner".into(),
            roles: vec![Role::Afnemer, Role::Bronhouder],
            purposes: vec![jeugd()],
            node_key: node.key.public_key(),
            p2p_addresses: vec![node.p2p_addr.clone().context("started")?],
            grpc_endpoint: node.peer_addr.clone().context("started")?,
            valid_from: now - 60,
            valid_until: None,
            maintenance: false,
            regions: Vec::new(),
        });
    }
    members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    let list = MemberList {
        network: "test".into(),
        version: 1,
        issued_at: now,
        expires_at: now + 3600,
        governance: GovernanceSet::new(vec![net.gov.public_key()], 1)?,
        members,
        revoked: Vec::new(),
        profile: Default::default(),
    };
    list.check()?;
    let bytes = SignedEnvelope::signed(
        Domain::MemberList,
        canonical::to_vec(&list, "member list")?,
        &net.gov,
    )
    .encode()?;
    net.hand_out(&bytes, |i| i == 0)?;
    let node = &net.nodes[0];
    let client = node.node_client().await?;
    wait_until(PATIENCE, "the node installs the 20,000-member list", || {
        let mut client = client.clone();
        async move {
            client
                .status(pb::StatusRequest {})
                .await
                .map(|s| s.into_inner().member_list_version == 1)
                .unwrap_or(false)
        }
    })
    .await?;
    // A while of dialling the unreachable ones.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let metrics = node.metrics()?;
    let dialled = metrics.p2p_members_dialled.get();
    assert!(dialled >= 1, "it dials some");
    assert!(dialled <= 8, "dialled {dialled} members with max_peers = 8");
    assert!(metrics.p2p_connections.get() <= 8);
    // And it still answers its back office promptly.
    let started = std::time::Instant::now();
    let members = node
        .node_client()
        .await?
        .members(pb::MembersRequest {})
        .await?
        .into_inner();
    assert_eq!(members.members.len(), MEMBERS as usize + 2);
    println!(
        "20,002 members: {dialled} dialled, Members answered in {:?}",
        started.elapsed()
    );
    Ok(())
}

/// A distinct key seed per member.
fn seed(i: u32) -> [u8; 32] {
    let mut seed = [0x42; 32];
    seed[..4].copy_from_slice(&i.to_be_bytes());
    seed
}

/// Publishes through `from` once a second until `to` has stored one
/// notification more than `before`, so that what is measured is whether
/// gossip flows, not whether the first publish beat the subscription
/// exchange. Sync runs every ten minutes here: only gossip (and the gap
/// fetch a gossiped event sets off) can carry them.
async fn gossip_reaches(net: &TestNet, from: usize, to: usize, round: usize) -> Result<()> {
    let metrics = net.nodes[to].metrics()?.clone();
    let before = metrics.received.get();
    let mut publisher = net.nodes[from].notifications().await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    while metrics.received.get() == before {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "round {round}: nothing from node {from} reached node {to} by gossip in 30 s ({n} published)"
        );
        publisher
            .publish(publish_request(
                &jeugd(),
                &format!("pair-{round}-{from}-{n}"),
            ))
            .await?;
        n += 1;
        let _ = wait_until(Duration::from_secs(1), "a delivery", || async {
            metrics.received.get() > before
        })
        .await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_that_dial_each_other_at_once_keep_one_connection_and_gossip_both_ways()
-> Result<()> {
    let mut net = TestNet::new(2, &[jeugd()], 600)?;
    net.up().await?;
    for round in 0..8 {
        for node in &mut net.nodes {
            node.stop().await;
        }
        // Started together, each finds the stored list and dials the other
        // at once: a simultaneous dial, over and over.
        {
            let (a, b) = net.nodes.split_at_mut(1);
            let (ra, rb) = tokio::join!(a[0].start(), b[0].start());
            ra?;
            rb?;
        }
        let (stop, highest) = watch_connections(&net)?;
        net.wait_connected(PATIENCE).await?;
        gossip_reaches(&net, 0, 1, round).await?;
        gossip_reaches(&net, 1, 0, round).await?;
        stop.store(true, Ordering::Relaxed);
        let highest = highest.await?;
        assert_eq!(highest, 1, "round {round}: two connections to one peer");
    }
    for node in &mut net.nodes {
        node.stop().await;
    }
    Ok(())
}
