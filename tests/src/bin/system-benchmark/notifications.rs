//! Notification figures: the single-core signature baseline, the per-event
//! check, ingest by gossip and by sync with the catch-up time, publish →
//! delivered latency over a 10-node network, and the time a list that drops
//! a member takes to close its connections. Every wait is bounded.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ed25519_dalek::{Signer, SigningKey};
use handbereik_keys::time;
use handbereik_node::notify::event;
use handbereik_proto::v1 as pb;
use handbereik_tests::fill;
use handbereik_tests::net::{TestNet, jeugd, publish_request, wait_until};

use crate::report::{Report, Target, quantile, within};

/// Signatures verified per second on one core, with `verify_strict`.
pub fn verify_baseline(report: &mut Report, n: usize) -> Result<()> {
    let key = SigningKey::from_bytes(&[7; 32]);
    let public = key.verifying_key();
    let messages: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("handbereik/notification/v1\0{i:0600}").into_bytes())
        .collect();
    let signatures: Vec<_> = messages.iter().map(|m| key.sign(m)).collect();
    let started = Instant::now();
    for (m, s) in messages.iter().zip(&signatures) {
        if public.verify_strict(m, s).is_err() {
            bail!("verify_strict refused a good signature");
        }
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    report.plain(
        "baseline",
        "verify_strict.rate",
        "single-core ed25519 verify_strict",
        rate,
        "/s",
    );
    Ok(())
}

/// The whole per-event check on one core, without storage or network.
pub async fn check_single_core(report: &mut Report, n: u64) -> Result<()> {
    let mut net = TestNet::new(2, &[jeugd()], 5)?;
    net.start_all().await?;
    let list = net.list(|_| true, 3600)?;
    let verified = handbereik_keys::verify_member_list(
        &list,
        &handbereik_keys::Anchor::new([net.gov.public_key()], 1)?,
        None,
        time::now(),
    )?;
    let view = handbereik_node::membership::MembershipView::from_list(verified);
    let events = fill::signed_events(&net.nodes[0], &jeugd(), 1, n)?;
    let now = time::now();
    let started = Instant::now();
    for e in &events {
        if event::check(e, &view, Some(&jeugd()), now, |_, _, _| false).is_err() {
            bail!("event::check refused a good event");
        }
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    for node in &mut net.nodes {
        node.stop().await;
    }
    report.relative(
        "baseline",
        "check.rate",
        "single-core event::check (decode, member, verify_strict, purpose, fields)",
        rate,
        "/s",
        None,
        "verify_strict.rate",
        None,
    );
    Ok(())
}

/// Node 0 (the source) signs `n` events and goes down. Node 1 relays them
/// by gossip to node 2, which checks and stores them; node 1 stores nothing
/// itself, so nothing reaches node 2 by sync: this is gossip alone, with
/// flow control (at most `WINDOW` events ahead of what node 2 stored), as a
/// publisher facing a busy peer would see it. Then node 3, which was down
/// all along, starts and catches up from node 2 by sync.
pub async fn ingest(report: &mut Report, n: u64) -> Result<()> {
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
    let events = fill::signed_events(&net.nodes[0], &jeugd(), 1, n)?;
    let receiver = net.nodes[2].metrics()?.clone();
    let relay = net.nodes[1].handle()?.p2p().clone();
    let started = Instant::now();
    for (sent, bytes) in events.into_iter().enumerate() {
        within(Duration::from_secs(10), "the relay takes an event", async {
            Ok(relay.publish(jeugd(), bytes).await?)
        })
        .await?;
        let sent = sent as u64 + 1;
        if sent.is_multiple_of(512) {
            let _ = wait_until(Duration::from_secs(10), "the receiver keeps up", || async {
                receiver.received.get() + WINDOW >= sent
            })
            .await;
        }
    }
    let _ = wait_until(
        Duration::from_secs(60),
        "the receiver holds every event",
        || async { receiver.received.get() >= n },
    )
    .await;
    let got = receiver.received.get();
    let gossip = got as f64 / started.elapsed().as_secs_f64();
    println!(
        "  (gossip: {got} of {n} stored, {} of them by sync, {} refused)",
        receiver.fetched_by_sync.get(),
        receiver.rejected_total()
    );
    report.relative(
        "ingest",
        "ingest.gossip.rate",
        "ingest by gossip, checked + deduplicated + durably stored",
        gossip,
        "/s",
        Some(Target::AtLeast(20_000.0)),
        "verify_strict.rate",
        Some(Target::AtLeast(0.85)),
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
    let caught = wait_until(
        Duration::from_secs(300),
        "the late node caught up",
        || async { catcher.received.get() >= got },
    )
    .await;
    let held = catcher.received.get();
    let rate = held.saturating_sub(1) as f64 / first.elapsed().as_secs_f64();
    let total = started.elapsed().as_secs_f64();
    println!(
        "  (catch-up: first event {:.0} ms after start, {held} of {got} after {total:.2} s)",
        (first - started).as_secs_f64() * 1e3,
    );
    for node in &mut net.nodes {
        node.stop().await;
    }
    caught?;
    report.relative(
        "ingest",
        "ingest.sync.rate",
        "ingest by sync (catch-up from one peer), checked + deduplicated + durably stored",
        rate,
        "/s",
        Some(Target::AtLeast(20_000.0)),
        "verify_strict.rate",
        None,
    );
    report.against(
        "ingest",
        "catch_up.seconds",
        &format!("catch-up of {got} missed events, start → all stored"),
        total,
        "s",
        Target::AtMost(10.0 * got as f64 / 100_000.0),
    );
    Ok(())
}

/// Publish at node 0, one event every 20 ms; every other node has a
/// subscriber that records when each event arrives.
pub async fn latency(report: &mut Report, nodes: usize, events: usize) -> Result<()> {
    let mut net = TestNet::new(nodes, &[jeugd()], 5)?;
    net.up().await?;
    net.wait_connected(Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let origin = Instant::now();
    let mut receivers = Vec::new();
    for node in &net.nodes[1..] {
        let mut client = node.notifications().await?;
        let mut stream = within(Duration::from_secs(10), "Subscribe", async {
            Ok(client
                .subscribe(pb::SubscribeRequest {
                    name: "latency".into(),
                    types: vec![],
                    purposes: vec![],
                    sources: vec![],
                })
                .await?
                .into_inner())
        })
        .await?;
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
    let mut sent = vec![f64::NAN; events + 1];
    for i in 0..events {
        let at = origin.elapsed().as_secs_f64();
        let n = within(Duration::from_secs(10), "Publish", async {
            publisher
                .publish(publish_request(&jeugd(), &format!("p-lat-{i}")))
                .await?
                .into_inner()
                .notification
                .context("Publish answered no notification")
        })
        .await?;
        if let Some(slot) = usize::try_from(n.sequence)
            .ok()
            .and_then(|s| sent.get_mut(s))
        {
            *slot = at;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut samples = Vec::new();
    let mut missing = 0;
    for receiver in receivers {
        let arrivals = receiver.await?;
        missing += events - arrivals.len();
        samples.extend(arrivals.into_iter().filter_map(|(seq, at)| {
            let sent = *sent.get(usize::try_from(seq).ok()?)?;
            sent.is_finite().then_some(at - sent)
        }));
    }
    for node in &mut net.nodes {
        node.stop().await;
    }
    if missing > 0 {
        println!("  ({missing} deliveries missing)");
    }
    samples.sort_by(f64::total_cmp);
    let what = format!(
        "publish → delivered at {} other nodes of {nodes}, {} deliveries",
        nodes - 1,
        samples.len()
    );
    report.against(
        "latency",
        "delivery.p50_ms",
        &what,
        quantile(&samples, 0.5) * 1e3,
        "ms",
        Target::AtMost(5.0),
    );
    report.against(
        "latency",
        "delivery.p99_ms",
        &what,
        quantile(&samples, 0.99) * 1e3,
        "ms",
        Target::AtMost(20.0),
    );
    report.samples.delivery = samples;
    Ok(())
}

/// Three nodes; a new list drops the third. Time until both others list
/// version 2 and no connection to it.
pub async fn cut_off(report: &mut Report) -> Result<()> {
    let mut net = TestNet::new(3, &[jeugd()], 5)?;
    net.up().await?;
    let v2 = net.list(|i| i < 2, 3600)?;
    let dropped = net.nodes[2].member_id.to_string();
    let started = Instant::now();
    net.hand_out(&v2, |_| true)?;
    for i in 0..2 {
        let mut client = net.nodes[i].node_client().await?;
        let dropped = dropped.clone();
        wait_until(
            Duration::from_secs(30),
            "the others close the dropped member's connections",
            || {
                let mut client = client.clone();
                let dropped = dropped.clone();
                async move {
                    let Ok(Ok(s)) = tokio::time::timeout(
                        Duration::from_secs(2),
                        client.status(pb::StatusRequest {}),
                    )
                    .await
                    else {
                        return false;
                    };
                    let s = s.into_inner();
                    s.member_list_version == 2
                        && s.connected_peers.iter().all(|p| p.member_id != dropped)
                }
            },
        )
        .await?;
        let _ = &mut client;
    }
    let elapsed = started.elapsed().as_secs_f64();
    for node in &mut net.nodes {
        node.stop().await;
    }
    report.plain(
        "cut-off",
        "cut_off.ms",
        "a list that drops a member → its connections closed at the others (includes the 1 s file poll)",
        elapsed * 1e3,
        "ms",
    );
    Ok(())
}
