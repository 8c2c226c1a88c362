//! Who may gossip what: non-members, removed members, an expired list, bad
//! events of every kind, and member lists travelling by gossip.

use std::time::Duration;

use anyhow::{Context, Result};
use handbereik_keys::{Domain, NodeKey, Purpose, SignedEnvelope, canonical, time};
use handbereik_node::metrics::Metrics;
use handbereik_node::notify::event::{self, Draft, Notification, Rejection};
use handbereik_proto::v1 as pb;
use handbereik_tests::net::{TestNet, TestNode, jeugd, publish_request, wait_until};

const LIMIT: Duration = Duration::from_secs(20);

fn draft(purpose: &Purpose, subject: &str) -> Draft {
    Draft {
        event_type: "nl.samenonderhandbereik.melding.ontvangen".into(),
        purpose: purpose.clone(),
        subject: subject.into(),
        dataref: String::new(),
        datacontenttype: "application/json".into(),
        data: b"{}".to_vec(),
    }
}

/// An event signed by `node`'s key, as if `node` published it with `seq`.
fn signed_by(node: &TestNode, purpose: &Purpose, seq: u64, subject: &str) -> Result<Vec<u8>> {
    Ok(event::sign_own(
        &node.key,
        &node.member_id,
        &draft(purpose, subject),
        seq,
        time::rfc3339(time::now()),
    )?)
}

async fn status(node: &TestNode) -> Result<pb::StatusResponse> {
    Ok(node
        .node_client()
        .await?
        .status(pb::StatusRequest {})
        .await?
        .into_inner())
}

async fn wait_rejected(metrics: &Metrics, reason: Rejection) -> Result<()> {
    wait_until(
        LIMIT,
        &format!("a rejection for {}", reason.label()),
        || async { metrics.rejected_count(reason) >= 1 },
    )
    .await
}

async fn stop_all(net: &mut TestNet) {
    for node in &mut net.nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_are_rejected_and_counted_by_reason() -> Result<()> {
    let other = Purpose::parse("schuldhulp")?;
    let mut net = TestNet::new(2, &[jeugd()], 5)?;
    // B also takes purpose "schuldhulp", which A is not admitted for.
    net.nodes[1].purposes.push(other.clone());
    net.up().await?;
    let a = &net.nodes[0];
    let b_metrics = net.nodes[1].metrics()?.clone();
    let inject = |purpose: Purpose, bytes: Vec<u8>| async move {
        a.handle()?.p2p().publish(purpose, bytes).await?;
        anyhow::Ok(())
    };

    // A legitimate event first, so B holds sequence 1 of A's stream.
    a.notifications()
        .await?
        .publish(publish_request(&jeugd(), "p-legit"))
        .await?;
    wait_until(LIMIT, "B stores the legitimate event", || async {
        b_metrics.received.get() == 1
    })
    .await?;

    // Forged: a valid event with one signature bit flipped.
    let mut forged = signed_by(a, &jeugd(), 2, "p-forged")?;
    let last = forged.len() - 1;
    forged[last] ^= 0x01;
    inject(jeugd(), forged).await?;
    wait_rejected(&b_metrics, Rejection::BadSignature).await?;

    // Wrong purpose: A signs for a purpose it is not admitted for.
    inject(other.clone(), signed_by(a, &other, 1, "p-wrong")?).await?;
    wait_rejected(&b_metrics, Rejection::WrongPurpose).await?;

    // Oversized: over 64 KiB, under gossipsub's frame limit.
    inject(jeugd(), vec![0xa2; 66 * 1024]).await?;
    wait_rejected(&b_metrics, Rejection::Oversized).await?;

    // Malformed bytes.
    inject(jeugd(), b"this is not a signed event".to_vec()).await?;
    wait_rejected(&b_metrics, Rejection::Malformed).await?;

    // A duplicate: sequence 1 again, signed anew (other bytes, so gossip's own
    // duplicate filter does not catch it; the store does).
    inject(jeugd(), signed_by(a, &jeugd(), 1, "p-again")?).await?;
    wait_rejected(&b_metrics, Rejection::Duplicate).await?;

    // Relayed by a member, signed by a key that is no member's.
    let stranger = NodeKey::generate()?;
    let body = canonical::to_vec(
        &Notification {
            id: "0190e7c4-0000-7000-8000-000000000000".into(),
            source: event::source_urn(&a.member_id),
            specversion: "1.0".into(),
            event_type: "nl.samenonderhandbereik.melding.ontvangen".into(),
            subject: "p-stranger".into(),
            time: time::rfc3339(time::now()),
            sequence: 3,
            dataref: String::new(),
            datacontenttype: "application/json".into(),
            purpose: jeugd(),
            data: Vec::new(),
        },
        "notification",
    )?;
    inject(
        jeugd(),
        SignedEnvelope::signed(Domain::Notification, body, &stranger).encode()?,
    )
    .await?;
    wait_rejected(&b_metrics, Rejection::UnknownSource).await?;

    // B is still running, stored only the legitimate event, and says so.
    let s = status(&net.nodes[1]).await?;
    let counters = s.counters.context("counters")?;
    assert_eq!(counters.received, 1);
    assert!(counters.rejected >= 6, "{counters:?}");
    let text = reqwest_metrics(&net.nodes[1]).await?;
    for reason in [
        "bad_signature",
        "wrong_purpose",
        "oversized",
        "malformed",
        "duplicate",
        "unknown_source",
    ] {
        assert!(
            text.contains(&format!("reason=\"{reason}\"")),
            "metrics lack {reason}:\n{text}"
        );
    }
    stop_all(&mut net).await;
    Ok(())
}

/// The Prometheus text of a node, over plain HTTP/1.
async fn reqwest_metrics(node: &TestNode) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = node.handle()?.metrics_addr();
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    Ok(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_key_is_not_listed_cannot_connect() -> Result<()> {
    let mut net = TestNet::new(3, &[jeugd()], 5)?;
    net.start_all().await?;
    // The list names nodes 0 and 1 only; node 2 gets the same valid list and dials them.
    let list = net.list(|i| i < 2, 3600)?;
    net.hand_out(&list, |_| true)?;
    net.wait_connected_among(&[0, 1], LIMIT).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in 0..2 {
        let s = status(&net.nodes[i]).await?;
        assert_eq!(
            s.connected_peers.len(),
            1,
            "node {i}: {:?}",
            s.connected_peers
        );
        assert_ne!(
            s.connected_peers[0].member_id,
            net.nodes[2].member_id.as_str()
        );
    }
    // The outsider dials the members it was given; each time its handshake
    // ends, the member refuses the connection (its allow list), so the
    // outsider may list a member for that instant, but never stays connected.
    wait_until(LIMIT, "the outsider has no connection", || async {
        status(&net.nodes[2])
            .await
            .map(|s| s.connected_peers.is_empty())
            .unwrap_or(false)
    })
    .await?;
    let refused: u64 = (0..2)
        .map(|i| {
            net.nodes[i]
                .metrics()
                .map(|m| m.p2p_connections_refused_count("not_a_member"))
                .unwrap_or(0)
        })
        .sum();
    assert!(
        refused >= 1,
        "the members refused the outsider's connections"
    );
    // Nor can it publish: it is not admitted for anything.
    let refused = net.nodes[2]
        .notifications()
        .await?
        .publish(publish_request(&jeugd(), "p-x"))
        .await
        .expect_err("an outsider's publish must be refused");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    stop_all(&mut net).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_that_drops_a_member_cuts_it_off_promptly() -> Result<()> {
    let mut net = TestNet::new(3, &[jeugd()], 5)?;
    net.up().await?;
    let v2 = net.list(|i| i < 2, 3600)?;
    let started = std::time::Instant::now();
    net.hand_out(&v2, |_| true)?;
    let dropped = net.nodes[2].member_id.to_string();
    for i in 0..2 {
        let node = &net.nodes[i];
        let dropped = dropped.clone();
        let kept = net.nodes[1 - i].member_id.to_string();
        wait_until(
            Duration::from_secs(10),
            "the dropped member is disconnected and the other stays",
            || {
                let (dropped, kept) = (dropped.clone(), kept.clone());
                async move {
                    status(node)
                        .await
                        .map(|s| {
                            s.member_list_version == 2
                                && s.connected_peers.iter().all(|p| p.member_id != dropped)
                                && s.connected_peers.iter().any(|p| p.member_id == kept)
                        })
                        .unwrap_or(false)
                }
            },
        )
        .await?;
    }
    eprintln!(
        "dropped member cut off {:?} after the list was handed out",
        started.elapsed()
    );
    // Its events, even relayed by a member, are refused. Gossip is best
    // effort (sync repairs what it drops, but a relayed stranger's event is
    // in no store to sync from), so a fresh event goes out every few seconds
    // until one has been judged; none may ever be taken.
    let metrics = net.nodes[1].metrics()?;
    let deadline = std::time::Instant::now() + LIMIT;
    let mut seq = 0u64;
    while metrics.rejected_count(Rejection::UnknownSource) == 0 {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "no rejection for unknown_source within {LIMIT:?} ({seq} events relayed)"
        );
        seq += 1;
        let c_event = signed_by(&net.nodes[2], &jeugd(), seq, &format!("p-from-c-{seq}"))?;
        net.nodes[0]
            .handle()?
            .p2p()
            .publish(jeugd(), c_event)
            .await?;
        let _ = wait_until(Duration::from_secs(3), "a rejection", || async {
            metrics.rejected_count(Rejection::UnknownSource) >= 1
        })
        .await;
    }
    assert_eq!(net.nodes[1].metrics()?.received.get(), 0);
    stop_all(&mut net).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_list_fails_closed() -> Result<()> {
    let mut net = TestNet::new(2, &[jeugd()], 5)?;
    net.start_all().await?;
    let short = net.list(|_| true, 5)?;
    net.hand_out(&short, |_| true)?;
    net.wait_connected(LIMIT).await?;
    let b = &net.nodes[1];
    wait_until(LIMIT, "the list has expired", || async {
        status(b)
            .await
            .map(|s| s.member_list_expired)
            .unwrap_or(false)
    })
    .await?;
    let s = status(b).await?;
    assert!(s.state.contains("expired"), "{}", s.state);
    let refused = net.nodes[0]
        .notifications()
        .await?
        .publish(publish_request(&jeugd(), "p-late"))
        .await
        .expect_err("publishing with an expired list must fail");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains("expired"),
        "{}",
        refused.message()
    );
    // An event that arrives anyway is refused.
    let event = signed_by(&net.nodes[0], &jeugd(), 1, "p-late")?;
    net.nodes[0].handle()?.p2p().publish(jeugd(), event).await?;
    wait_rejected(b.metrics()?, Rejection::ListExpired).await?;
    assert_eq!(b.metrics()?.received.get(), 0);
    stop_all(&mut net).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_list_given_to_one_node_reaches_all_by_gossip() -> Result<()> {
    // Sync every 10 minutes: only gossip can carry the list in this test.
    let mut net = TestNet::new(4, &[jeugd()], 600)?;
    net.up().await?;
    // Let the governance topic's mesh form.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let v2 = net.list(|_| true, 7200)?;
    net.hand_out(&v2, |i| i == 0)?;
    let started = std::time::Instant::now();
    for node in &net.nodes {
        wait_until(LIMIT, "every node holds version 2", || async {
            status(node)
                .await
                .map(|s| s.member_list_version == 2)
                .unwrap_or(false)
        })
        .await?;
    }
    eprintln!("list version 2 reached 4 nodes in {:?}", started.elapsed());
    stop_all(&mut net).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_subscribing_outside_its_purposes_is_cut_off() -> Result<()> {
    let other = Purpose::parse("schuldhulp")?;
    let mut net = TestNet::new(2, &[jeugd()], 600)?;
    net.start_all().await?;
    // A holds an older list that admits it for "schuldhulp" too, so it
    // subscribes to that topic; B holds the newer list, which does not.
    net.nodes[0].purposes.push(other.clone());
    let v1 = net.list(|_| true, 3600)?;
    net.nodes[0].purposes.retain(|p| p != &other);
    let v2 = net.list(|_| true, 3600)?;
    net.hand_out(&v1, |i| i == 0)?;
    net.hand_out(&v2, |i| i == 1)?;
    let b = net.nodes[1].metrics()?.clone();
    wait_until(LIMIT, "B cuts A off", || async {
        b.security_events.get() >= 1
    })
    .await?;
    stop_all(&mut net).await;
    Ok(())
}

/// Serves `body` to every HTTP request on a loopback port from the OS.
async fn serve_once_per_request(body: Vec<u8>) -> Result<std::net::SocketAddr> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/cbor\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            });
        }
    });
    Ok(addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_published_at_a_url_is_fetched() -> Result<()> {
    let mut net = TestNet::new(1, &[jeugd()], 5)?;
    net.start_all().await?;
    let list = net.list(|_| true, 3600)?;
    net.nodes[0].stop().await;
    let addr = serve_once_per_request(list).await?;
    let config = net.nodes[0].dir.join("handbereik.toml");
    let text = std::fs::read_to_string(&config)?.replace(
        "member_list_poll_secs = 1",
        &format!("member_list_poll_secs = 1\nmember_list_url = \"http://{addr}/member-list.cbor\"\nmember_list_url_poll_secs = 1"),
    );
    std::fs::write(&config, text)?;
    net.nodes[0].start().await?;
    let node = &net.nodes[0];
    wait_until(LIMIT, "the node installs the list from the URL", || async {
        status(node)
            .await
            .map(|s| s.member_list_version == 1)
            .unwrap_or(false)
    })
    .await?;
    stop_all(&mut net).await;
    Ok(())
}
