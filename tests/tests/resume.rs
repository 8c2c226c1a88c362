//! Durable subscriptions: a subscriber that goes away, and a node that
//! restarts, resume without losing an event.

use std::time::Duration;

use anyhow::{Context, Result};
use handbereik_proto::v1 as pb;
use handbereik_tests::net::{TestNet, jeugd, publish_request, wait_until};

fn subscribe(name: &str) -> pb::SubscribeRequest {
    pb::SubscribeRequest {
        name: name.into(),
        types: vec![],
        purposes: vec![jeugd().to_string()],
        sources: vec![],
    }
}

async fn next(stream: &mut tonic::Streaming<pb::Delivery>) -> Result<pb::Delivery> {
    tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .context("no delivery within 20 s")??
        .context("stream ended")
}

fn seq(d: &pb::Delivery) -> u64 {
    d.notification.as_ref().map_or(0, |n| n.sequence)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_and_nodes_resume_without_loss() -> Result<()> {
    let mut net = TestNet::new(2, &[jeugd()], 2)?;
    net.up().await?;
    let mut publisher = net.nodes[0].notifications().await?;
    for i in 0..10 {
        publisher
            .publish(publish_request(&jeugd(), &format!("p-{i}")))
            .await?;
    }
    let b_metrics = net.nodes[1].metrics()?.clone();
    wait_until(Duration::from_secs(20), "B stores 10", || async {
        b_metrics.received.get() == 10
    })
    .await?;

    // Read 5 and acknowledge them, then go away.
    let mut client = net.nodes[1].notifications().await?;
    let mut stream = client.subscribe(subscribe("bo")).await?.into_inner();
    for expected in 1..=5 {
        let d = next(&mut stream).await?;
        assert_eq!(seq(&d), expected);
        client
            .ack(pb::AckRequest {
                name: "bo".into(),
                position: d.position,
            })
            .await?;
    }
    drop(stream);
    for i in 10..15 {
        publisher
            .publish(publish_request(&jeugd(), &format!("p-{i}")))
            .await?;
    }

    // Back: 6..15 in order; acknowledge up to 10 only.
    let mut stream = client.subscribe(subscribe("bo")).await?.into_inner();
    for expected in 6..=15 {
        let d = next(&mut stream).await?;
        assert_eq!(seq(&d), expected);
        if expected <= 10 {
            client
                .ack(pb::AckRequest {
                    name: "bo".into(),
                    position: d.position,
                })
                .await?;
        }
    }
    drop(stream);

    // The node restarts; what was not acknowledged comes again, and nothing else.
    net.nodes[1].stop().await;
    net.nodes[1].start().await?;
    let mut client = net.nodes[1].notifications().await?;
    let mut stream = client.subscribe(subscribe("bo")).await?.into_inner();
    for expected in 11..=15 {
        assert_eq!(seq(&next(&mut stream).await?), expected);
    }
    let more = tokio::time::timeout(Duration::from_millis(1500), stream.message()).await;
    assert!(more.is_err(), "nothing beyond 15 may arrive: {more:?}");

    // An Ack beyond the inbox, and one for an unknown subscription, are refused.
    let err = client
        .ack(pb::AckRequest {
            name: "bo".into(),
            position: 1_000_000,
        })
        .await
        .expect_err("ack beyond the inbox");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let err = client
        .ack(pb::AckRequest {
            name: "nobody".into(),
            position: 1,
        })
        .await
        .expect_err("ack of an unknown subscription");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    for node in &mut net.nodes {
        node.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_api_wants_the_token() -> Result<()> {
    let mut net = TestNet::new(1, &[jeugd()], 5)?;
    net.up().await?;
    let addr = net.nodes[0].handle()?.local_api();
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut anonymous = pb::node_client::NodeClient::new(channel);
    let err = anonymous
        .status(pb::StatusRequest {})
        .await
        .expect_err("no token");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert!(err.message().contains("api-token"), "{}", err.message());
    net.nodes[0].stop().await;
    Ok(())
}
