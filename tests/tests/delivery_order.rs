//! Delivery that is right: each (source, purpose) stream reaches a subscriber
//! in sequence order, whatever order gossip brings it in; a gap that cannot
//! be filled in time is delivered past and reported; a missing event that
//! comes later is delivered late; and every position delivered can be
//! acknowledged at once.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use handbereik_keys::time;
use handbereik_node::notify::event::{self, Draft};
use handbereik_proto::v1 as pb;
use handbereik_tests::net::{TestNet, jeugd, publish_request, wait_until};

const PATIENCE: Duration = Duration::from_secs(60);

/// Reads `count` deliveries of subscription `name` at node `i`, acknowledging
/// each at once; fails on any refused Ack or if they do not come in time.
async fn read_and_ack(
    net: &TestNet,
    i: usize,
    name: &str,
    count: usize,
) -> Result<Vec<pb::Delivery>> {
    let mut client = net.nodes[i].notifications().await?;
    let mut stream = client
        .subscribe(pb::SubscribeRequest {
            name: name.into(),
            types: vec![],
            purposes: vec![],
            sources: vec![],
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    while out.len() < count {
        let next = tokio::time::timeout(PATIENCE, stream.message())
            .await
            .with_context(|| format!("only {} of {count} deliveries came in time", out.len()))?;
        let delivery = next?.context("the stream ended")?;
        // The Ack race: a position just delivered must always be accepted.
        let acked = client
            .ack(pb::AckRequest {
                name: name.into(),
                position: delivery.position,
            })
            .await
            .with_context(|| format!("Ack of delivered position {} refused", delivery.position))?;
        assert!(acked.into_inner().acked >= delivery.position);
        out.push(delivery);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_are_delivered_in_sequence_order() -> Result<()> {
    const PUBLISHERS: usize = 8;
    const EACH: usize = 40;
    let mut net = TestNet::new(3, &[jeugd()], 5)?;
    net.up().await?;
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let mut client = net.nodes[0].notifications().await?;
        tasks.push(tokio::spawn(async move {
            for n in 0..EACH {
                let subject = format!("p-{p}-{n}");
                client
                    .publish(publish_request(&jeugd(), &subject))
                    .await
                    .map(|_| ())?;
            }
            Ok::<(), tonic::Status>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    for i in [1, 2] {
        let deliveries = read_and_ack(&net, i, "order", PUBLISHERS * EACH).await?;
        let seqs: Vec<u64> = deliveries
            .iter()
            .map(|d| d.notification.as_ref().unwrap().sequence)
            .collect();
        let expected: Vec<u64> = (1..=(PUBLISHERS * EACH) as u64).collect();
        if seqs != expected {
            let first_wrong = seqs.iter().zip(&expected).position(|(a, b)| a != b);
            bail!("node {i} got the stream out of order, first at index {first_wrong:?}: {seqs:?}");
        }
        assert!(deliveries.iter().all(|d| d.gap_before.is_none() && !d.late));
    }
    Ok(())
}

/// Signs event `seq` of node 0's jeugdbescherming stream as node 0 would.
fn signed(net: &TestNet, seq: u64) -> Result<Vec<u8>> {
    let draft = Draft {
        event_type: "nl.samenonderhandbereik.melding.ontvangen".into(),
        purpose: jeugd(),
        subject: format!("injected-{seq}"),
        dataref: String::new(),
        datacontenttype: "application/json".into(),
        data: b"{}".to_vec(),
    };
    let node = &net.nodes[0];
    Ok(event::sign_own(
        &node.key,
        &node.member_id,
        &draft,
        seq,
        time::rfc3339(time::now()),
    )?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_above_a_gap_wait_for_it_and_a_gap_that_stays_open_is_reported() -> Result<()> {
    let mut net = TestNet::new(2, &[jeugd()], 3600)?;
    net.nodes[1].extra_config = "[notify]\ngap_timeout_secs = 2\n".into();
    net.up().await?;
    // Events of node 0's stream, gossiped as node 0 but never stored there:
    // nobody can fill a gap by sync, so only gossip order and the gap rules act.
    let p2p = net.nodes[0].handle()?.p2p().clone();
    let events: Vec<Vec<u8>> = (0..=5)
        .map(|seq| signed(&net, seq))
        .collect::<Result<_>>()?;
    let gossip = |seq: usize| {
        let p2p = p2p.clone();
        let bytes = events[seq].clone();
        async move {
            p2p.publish(jeugd(), bytes).await?;
            Ok::<(), anyhow::Error>(())
        }
    };
    let metrics = net.nodes[1].metrics()?.clone();
    let received = move |n: u64| {
        let metrics = metrics.clone();
        async move { metrics.received.get() >= n }
    };
    gossip(2).await?;
    gossip(3).await?;
    wait_until(PATIENCE, "2 and 3 are stored at node 1", || received(2)).await?;
    gossip(1).await?;
    let first = read_and_ack(&net, 1, "gaps", 3).await?;
    let seqs: Vec<u64> = first
        .iter()
        .map(|d| d.notification.as_ref().unwrap().sequence)
        .collect();
    assert_eq!(seqs, [1, 2, 3], "held until 1 arrived, then in order");

    // 5 without 4: after the gap timeout it comes anyway, the gap named.
    gossip(5).await?;
    let passed = read_and_ack(&net, 1, "gaps", 1).await?;
    let n = passed[0].notification.as_ref().unwrap();
    assert_eq!(n.sequence, 5);
    let gap = passed[0]
        .gap_before
        .as_ref()
        .context("the gap is reported")?;
    assert_eq!((gap.from, gap.to), (4, 4));
    // 4 comes after all: delivered, marked late, once.
    gossip(4).await?;
    let late = read_and_ack(&net, 1, "gaps", 1).await?;
    assert_eq!(late[0].notification.as_ref().unwrap().sequence, 4);
    assert!(late[0].late);
    let ids: HashSet<String> = first
        .iter()
        .chain(&passed)
        .chain(&late)
        .map(|d| d.notification.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(ids.len(), 5, "each exactly once");
    let mut by_seq = BTreeMap::new();
    for d in first.iter().chain(&passed).chain(&late) {
        by_seq.insert(d.notification.as_ref().unwrap().sequence, d.position);
    }
    assert_eq!(by_seq.len(), 5);
    Ok(())
}
