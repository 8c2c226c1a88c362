//! The system benchmark: throughput and latency of real nodes on loopback,
//! each next to a baseline measured in the same run on the same machine.
//!
//! Run it (release build, a few minutes):
//!
//!     cargo run --release --locked -p handbereik-tests --bin system-benchmark
//!
//! It prints, and the figures in docs/benchmarks.md come from it:
//!
//! 1. baseline: single-core `verify_strict` rate of ed25519 signatures;
//! 2. ingest: notifications checked (signature, member, purpose), deduplicated
//!    and durably stored per second at one node, received by gossip;
//! 3. catch-up: the same through the sync protocol, a node fetching what it
//!    missed from a peer;
//! 4. latency: publish (local API) to delivered (a subscriber's stream) at
//!    every other node of a 10-node network, p50 and p99;
//! 5. cut-off: time from a member list that drops a member being handed out
//!    to its connections being closed at the other nodes;
//! 6. inspections: Inspect at one source from 64 concurrent mutual-TLS
//!    clients (member check, Cedar policy, durable audit entry, signed
//!    answer), beside a bare tonic echo service over the same TLS setup;
//! 7. locate: Locate through the local API over a 10-node network.
//!
//! `system-benchmark inspection` runs only 6 and 7.
//!
//! Not a test: nothing here asserts a figure; the targets are printed beside
//! the figures, for a person to read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod inspection;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ed25519_dalek::{Signer, SigningKey};
use handbereik_keys::{Purpose, time};
use handbereik_node::notify::event::{self, Draft};
use handbereik_proto::v1 as pb;
use handbereik_tests::net::{TestNet, TestNode, jeugd, publish_request, wait_until};

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("handbereik system benchmark");
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    if std::env::args().nth(1).as_deref() == Some("inspection") {
        return runtime.block_on(inspection_figures());
    }
    let baseline = verify_baseline(20_000);
    println!("baseline  single-core ed25519 verify_strict: {baseline:>9.0} /s");
    runtime.block_on(async {
        let check_rate = check_single_core(20_000).await?;
        println!(
            "checks    single-core event::check (decode, member, verify_strict, purpose): {check_rate:>9.0} /s ({:.2}x verify alone)",
            check_rate / baseline
        );
        let (gossip_rate, sync_rate) = ingest(40_000).await?;
        println!(
            "ingest    by gossip, checked+deduplicated+stored: {gossip_rate:>9.0} /s  ({:.2}x the single-core verify rate; target >= 20,000 /s)",
            gossip_rate / baseline
        );
        println!(
            "ingest    by sync (catch-up), checked+deduplicated+stored: {sync_rate:>9.0} /s  ({:.2}x the single-core verify rate; target >= 20,000 /s)",
            sync_rate / baseline
        );
        let (p50, p99, samples) = latency(10, 200).await?;
        println!(
            "latency   publish -> delivered at 9 other nodes of 10: p50 {:.2} ms, p99 {:.2} ms over {samples} deliveries (target p50 <= 5 ms, p99 <= 20 ms)",
            p50 * 1e3,
            p99 * 1e3
        );
        let cut = cut_off().await?;
        println!("cut-off   list drops a member -> its connections closed: {:.0} ms (includes the 1 s file poll)", cut * 1e3);
        inspection_figures().await
    })?;
    Ok(())
}

async fn inspection_figures() -> Result<()> {
    let span = Duration::from_secs(8);
    let echo = inspection::echo_throughput(span).await?;
    println!(
        "baseline  bare tonic echo over the same mutual TLS, {} clients: {:>9.0} /s, p50 {:.2} ms, p99 {:.2} ms",
        inspection::CLIENTS,
        echo.rate,
        echo.p50 * 1e3,
        echo.p99 * 1e3
    );
    let inspect = inspection::inspect_throughput(span, 1000).await?;
    println!(
        "inspect   {} clients, policy + durable audit + signed answer: {:>9.0} /s, p50 {:.2} ms, p99 {:.2} ms, {} errors ({:.2}x echo; target >= 10,000 /s, p99 <= 10 ms, >= 0.5x echo)",
        inspection::CLIENTS,
        inspect.rate,
        inspect.p50 * 1e3,
        inspect.p99 * 1e3,
        inspect.errors,
        inspect.rate / echo.rate
    );
    let (p50, p99, n) = inspection::locate_latency(10, 300).await?;
    println!(
        "locate    over 10 nodes (9 sources asked) via the local API: p50 {:.2} ms, p99 {:.2} ms over {n} calls (target p99 <= 30 ms)",
        p50 * 1e3,
        p99 * 1e3
    );
    Ok(())
}

/// Signatures verified per second on one core, with `verify_strict`.
fn verify_baseline(n: usize) -> f64 {
    let key = SigningKey::from_bytes(&[7; 32]);
    let public = key.verifying_key();
    let messages: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("handbereik/notification/v1\0{i:0600}").into_bytes())
        .collect();
    let signatures: Vec<_> = messages.iter().map(|m| key.sign(m)).collect();
    let started = Instant::now();
    for (m, s) in messages.iter().zip(&signatures) {
        assert!(public.verify_strict(m, s).is_ok());
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// The whole per-event check on one core, without storage or network.
async fn check_single_core(n: u64) -> Result<f64> {
    let mut net = TestNet::new(2, &[jeugd()], 5)?;
    net.start_all().await?;
    let list = net.list(|_| true, 3600)?;
    let view_list = handbereik_keys::verify_member_list(
        &list,
        &handbereik_keys::Anchor::new([net.gov.public_key()], 1)?,
        None,
        time::now(),
    )?;
    let view = handbereik_node::membership::MembershipView::from_list(view_list);
    let events = signed_events(&net.nodes[0], &jeugd(), n)?;
    let now = time::now();
    let started = Instant::now();
    for e in &events {
        let checked = event::check(e, &view, Some(&jeugd()), now, |_, _, _| false);
        assert!(checked.is_ok());
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    for node in &mut net.nodes {
        node.stop().await;
    }
    Ok(rate)
}

fn signed_events(source: &TestNode, purpose: &Purpose, n: u64) -> Result<Vec<Vec<u8>>> {
    let now = time::rfc3339(time::now());
    (1..=n)
        .map(|seq| {
            let draft = Draft {
                event_type: "nl.samenonderhandbereik.melding.ontvangen".into(),
                purpose: purpose.clone(),
                subject: format!("p-{seq:08x}"),
                dataref: format!("https://bron.example.nl/inzage/{seq}"),
                datacontenttype: "application/json".into(),
                data: br#"{"urgentie":"hoog","categorie":"zorgmelding"}"#.to_vec(),
            };
            Ok(event::sign_own(
                &source.key,
                &source.member_id,
                &draft,
                seq,
                now.clone(),
            )?)
        })
        .collect()
}

/// Node 0 (the source) signs `n` events and goes down. Node 1 relays them
/// by gossip to node 2, which checks and stores them; node 1 stores nothing
/// itself, so nothing reaches node 2 by sync: this is gossip alone, with
/// flow control (at most `WINDOW` events ahead of what node 2 stored), as a
/// publisher facing a busy peer would see it. Then node 3, which was down,
/// catches up from node 2 by sync.
async fn ingest(n: u64) -> Result<(f64, f64)> {
    const WINDOW: u64 = 4096;
    let mut net = TestNet::new(4, &[jeugd()], 1)?;
    // Every node must be listed with an address, so each is started once.
    net.start_all().await?;
    let list = net.list(|_| true, 3600)?;
    net.hand_out(&list, |_| true)?;
    net.nodes[0].stop().await;
    net.nodes[3].stop().await;
    net.wait_connected_among(&[1, 2], Duration::from_secs(30))
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = signed_events(&net.nodes[0], &jeugd(), n)?;
    let receiver = net.nodes[2].metrics()?.clone();
    let relay = net.nodes[1].handle()?.p2p().clone();
    let started = Instant::now();
    for (sent, bytes) in events.into_iter().enumerate() {
        relay.publish(jeugd(), bytes).await?;
        let sent = sent as u64 + 1;
        if sent.is_multiple_of(512) {
            let _ = wait_until(Duration::from_secs(10), "the receiver keeps up", || async {
                receiver.received.get() + WINDOW >= sent
            })
            .await;
        }
    }
    let _ = wait_until(
        Duration::from_secs(30),
        "the receiver holds every event",
        || async { receiver.received.get() >= n },
    )
    .await;
    let got = receiver.received.get();
    let gossip = got as f64 / started.elapsed().as_secs_f64();
    eprintln!(
        "  (gossip: {got} of {n} stored, {} by sync, {} refused)",
        receiver.fetched_by_sync.get(),
        receiver.rejected_total()
    );

    net.nodes[1].stop().await;
    let started = Instant::now();
    net.nodes[3].start().await?;
    let catcher = net.nodes[3].metrics()?.clone();
    wait_until(
        Duration::from_secs(60),
        "the late node got its first event",
        || async { catcher.received.get() >= 1 },
    )
    .await?;
    let first = Instant::now();
    wait_until(
        Duration::from_secs(600),
        "the late node caught up",
        || async { catcher.received.get() >= got },
    )
    .await?;
    let sync = (got - 1) as f64 / first.elapsed().as_secs_f64();
    eprintln!(
        "  (catch-up: first event {:.0} ms after start, all {got} after {:.2} s)",
        (first - started).as_secs_f64() * 1e3,
        started.elapsed().as_secs_f64()
    );
    for node in &mut net.nodes {
        node.stop().await;
    }
    Ok((gossip, sync))
}

/// Publish at node 0, one event every 20 ms; every other node has a
/// subscriber that records when each event arrives.
async fn latency(nodes: usize, events: usize) -> Result<(f64, f64, usize)> {
    let mut net = TestNet::new(nodes, &[jeugd()], 5)?;
    net.up().await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let origin = Instant::now();
    let mut receivers = Vec::new();
    for node in &net.nodes[1..] {
        let mut client = node.notifications().await?;
        let mut stream = client
            .subscribe(pb::SubscribeRequest {
                name: "latency".into(),
                types: vec![],
                purposes: vec![],
                sources: vec![],
            })
            .await?
            .into_inner();
        receivers.push(tokio::spawn(async move {
            let mut arrivals = Vec::new();
            while arrivals.len() < events {
                match tokio::time::timeout(Duration::from_secs(30), stream.message()).await {
                    Ok(Ok(Some(d))) => {
                        let seq = d.notification.map_or(0, |n| n.sequence);
                        arrivals.push((seq, origin.elapsed().as_secs_f64()));
                    }
                    _ => break,
                }
            }
            arrivals
        }));
    }
    let mut publisher = net.nodes[0].notifications().await?;
    let mut sent = vec![0f64; events + 1];
    for i in 0..events {
        let at = origin.elapsed().as_secs_f64();
        let n = publisher
            .publish(publish_request(&jeugd(), &format!("p-lat-{i}")))
            .await?
            .into_inner()
            .notification
            .context("no notification")?;
        sent[n.sequence as usize] = at;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut samples = Vec::new();
    let mut lost = 0;
    for receiver in receivers {
        let arrivals = receiver.await?;
        lost += events - arrivals.len();
        samples.extend(
            arrivals
                .into_iter()
                .map(|(seq, at)| at - sent[seq as usize]),
        );
    }
    if lost > 0 {
        eprintln!("  ({lost} deliveries missing)");
    }
    samples.sort_by(f64::total_cmp);
    let pick = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let result = (pick(0.50), pick(0.99), samples.len());
    for node in &mut net.nodes {
        node.stop().await;
    }
    Ok(result)
}

/// Three nodes; a new list drops the third.
async fn cut_off() -> Result<f64> {
    let mut net = TestNet::new(3, &[jeugd()], 5)?;
    net.up().await?;
    let v2 = net.list(|i| i < 2, 3600)?;
    let dropped = net.nodes[2].member_id.to_string();
    let started = Instant::now();
    net.hand_out(&v2, |_| true)?;
    for i in 0..2 {
        let mut client = net.nodes[i].node_client().await?;
        loop {
            let s = client.status(pb::StatusRequest {}).await?.into_inner();
            if s.member_list_version == 2
                && s.connected_peers.iter().all(|p| p.member_id != dropped)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    for node in &mut net.nodes {
        node.stop().await;
    }
    Ok(elapsed)
}
