//! The notifications issue's acceptance tests, with real nodes on loopback:
//! libp2p over TCP, sled on disk, the local gRPC API.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use handbereik_proto::v1 as pb;
use handbereik_tests::net::{TestNet, jeugd, publish_request, wait_until};

const LONG: Duration = Duration::from_secs(30);

/// Reads deliveries from a subscription until `count` arrived or `limit` passes.
async fn collect(
    stream: &mut tonic::Streaming<pb::Delivery>,
    count: usize,
    limit: Duration,
) -> Result<Vec<pb::Delivery>> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    while out.len() < count {
        let next = tokio::time::timeout_at(deadline, stream.message()).await;
        match next {
            Ok(Ok(Some(d))) => out.push(d),
            Ok(Ok(None)) => break,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => break,
        }
    }
    Ok(out)
}

fn subscribe_request(name: &str) -> pb::SubscribeRequest {
    pb::SubscribeRequest {
        name: name.into(),
        types: vec![],
        purposes: vec![],
        sources: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_reaches_every_other_subscriber_once() -> Result<()> {
    let mut net = TestNet::new(5, &[jeugd()], 5)?;
    net.up().await?;
    let mut streams = Vec::new();
    for node in &net.nodes[1..] {
        let mut client = node.notifications().await?;
        streams.push(
            client
                .subscribe(subscribe_request("backoffice"))
                .await?
                .into_inner(),
        );
    }
    let mut publisher = net.nodes[0].notifications().await?;
    let published = publisher
        .publish(publish_request(&jeugd(), "p-5a1"))
        .await?
        .into_inner()
        .notification
        .context("no notification")?;
    assert_eq!(published.sequence, 1);
    for (i, stream) in streams.iter_mut().enumerate() {
        let got = collect(stream, 1, LONG).await?;
        assert_eq!(got.len(), 1, "node {} got nothing", i + 1);
        let n = got[0].notification.as_ref().context("empty delivery")?;
        assert_eq!(n.id, published.id);
        assert_eq!(n.source_member_id, net.nodes[0].member_id.as_str());
        // Exactly once: nothing more arrives, though gossip reaches each node along several paths.
        let more = collect(stream, 1, Duration::from_millis(1500)).await?;
        assert!(more.is_empty(), "node {} got a duplicate: {more:?}", i + 1);
    }
    for node in &mut net.nodes {
        node.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_was_down_catches_up_also_from_relays() -> Result<()> {
    let mut net = TestNet::new(3, &[jeugd()], 1)?;
    net.up().await?;
    // C goes down; A publishes 1,000; B has them all; A goes down; C comes back.
    net.nodes[2].stop().await;
    let mut publisher = net.nodes[0].notifications().await?;
    let started = std::time::Instant::now();
    for i in 0..1000 {
        publisher
            .publish(publish_request(&jeugd(), &format!("p-{i}")))
            .await?;
    }
    let b = net.nodes[1].metrics()?.clone();
    wait_until(LONG, "B holds all 1,000", || {
        let b = b.clone();
        async move { b.received.get() >= 1000 }
    })
    .await?;
    eprintln!("published and relayed 1,000 in {:?}", started.elapsed());
    net.nodes[0].stop().await;
    let started = std::time::Instant::now();
    net.nodes[2].start().await?;
    let mut client = net.nodes[2].notifications().await?;
    let mut stream = client
        .subscribe(subscribe_request("catch-up"))
        .await?
        .into_inner();
    let got = collect(&mut stream, 1000, Duration::from_secs(60)).await?;
    eprintln!("caught up 1,000 in {:?}", started.elapsed());
    let mut sequences: Vec<u64> = got
        .iter()
        .filter_map(|d| d.notification.as_ref().map(|n| n.sequence))
        .collect();
    sequences.sort_unstable();
    assert_eq!(sequences, (1..=1000).collect::<Vec<_>>());
    let c = net.nodes[2].metrics()?;
    assert!(
        c.fetched_by_sync.get() >= 1000,
        "fetched by sync: {}",
        c.fetched_by_sync.get()
    );
    let mut positions: HashMap<u64, ()> = HashMap::new();
    for d in &got {
        assert!(
            positions.insert(d.position, ()).is_none(),
            "position delivered twice"
        );
    }
    for node in &mut net.nodes {
        node.stop().await;
    }
    Ok(())
}
