//! Locate (bepalen bekendheid) over a real network: every bronhouder
//! admitted for the purpose answers, or is reported unreachable, by the
//! deadline.

use std::time::{Duration, Instant};

use anyhow::Result;
use handbereik_proto::v1 as pb;
use handbereik_tests::net::{TestNet, bsn, entry, jeugd, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locate_over_five_nodes_with_one_down_answers_each_correctly() -> Result<()> {
    let mut net = TestNet::new(5, &[jeugd()], 5)?;
    net.up().await?;
    net.nodes[1]
        .registry()
        .await?
        .register(pb::RegisterRequest {
            subject: bsn("111222333"),
            entry: entry("betrokkenheid", r#"{"contact":"wijkteam"}"#),
        })
        .await?;
    net.nodes[3].set_policy("")?;
    let asker = net.nodes[0].inspections().await?;
    let node3 = net.nodes[3].member_id.to_string();
    wait_until(
        Duration::from_secs(20),
        "node 3 reloaded its empty policy",
        || {
            let mut asker = asker.clone();
            let node3 = node3.clone();
            async move {
                asker
                    .known(pb::KnownRequest {
                        actor: None,
                        member_id: node3,
                        subject: bsn("111222333"),
                        purpose: jeugd().to_string(),
                        deadline_ms: 5000,
                    })
                    .await
                    .is_ok_and(|r| {
                        r.into_inner()
                            .answer
                            .is_some_and(|a| a.answer == pb::Answer::Denied as i32)
                    })
            }
        },
    )
    .await?;
    net.nodes[4].stop().await;
    let before = asked_entries(&net).await?;

    let started = Instant::now();
    let located = asker
        .clone()
        .locate(pb::LocateRequest {
            actor: None,
            subject: bsn("111222333"),
            purpose: jeugd().to_string(),
            deadline_ms: 2000,
            regions: Vec::new(),
        })
        .await?
        .into_inner();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(located.answers.len(), 4, "{located:?}");
    let answer_of = |i: usize| {
        let id = net.nodes[i].member_id.to_string();
        located.answers.iter().find(|a| a.member_id == id).cloned()
    };
    let one = answer_of(1).expect("node 1 answered");
    assert_eq!(one.answer, pb::Answer::Known as i32, "{one:?}");
    assert_eq!(one.records.len(), 1);
    assert!(one.provenance.is_some());
    assert_eq!(
        answer_of(2).expect("node 2").answer,
        pb::Answer::NotKnown as i32
    );
    assert_eq!(
        answer_of(3).expect("node 3").answer,
        pb::Answer::Denied as i32
    );
    let four = answer_of(4).expect("node 4");
    assert_eq!(four.answer, pb::Answer::Unreachable as i32);
    assert!(!four.reason.is_empty());

    let after = asked_entries(&net).await?;
    let new: Vec<_> = after[before.len()..].to_vec();
    assert_eq!(new.len(), 4);
    assert!(new.iter().all(|e| e.request_id == located.request_id));
    let decision_for = |i: usize| {
        let id = net.nodes[i].member_id.to_string();
        new.iter()
            .filter(|e| e.peer == id)
            .map(|e| e.decision.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(decision_for(1), vec!["allowed"], "{new:?}");
    assert_eq!(decision_for(2), vec!["allowed"], "{new:?}");
    assert_eq!(decision_for(3), vec!["denied"], "{new:?}");
    assert_eq!(decision_for(4), vec!["unreachable"], "{new:?}");
    assert!(
        new.iter()
            .all(|e| e.action == "known" && e.purpose == jeugd().to_string())
    );
    Ok(())
}

async fn asked_entries(net: &TestNet) -> Result<Vec<pb::AuditEntry>> {
    Ok(net.nodes[0]
        .audit()
        .await?
        .query(pb::AuditQueryRequest {
            direction: "asked".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .entries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locate_fails_closed_without_a_valid_list_or_admission() -> Result<()> {
    let mut net = TestNet::new(2, &[jeugd()], 5)?;
    net.up().await?;
    let mut asker = net.nodes[0].inspections().await?;
    let denied = asker
        .locate(pb::LocateRequest {
            actor: None,
            subject: bsn("111222333"),
            purpose: "veiligheid".into(),
            deadline_ms: 2000,
            regions: Vec::new(),
        })
        .await
        .expect_err("not admitted");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    assert!(
        denied.message().contains("veiligheid"),
        "{}",
        denied.message()
    );

    let short = net.list(|_| true, 3)?;
    net.hand_out(&short, |i| i == 0)?;
    let client = net.nodes[0].node_client().await?;
    wait_until(Duration::from_secs(30), "node 0's list expired", || {
        let mut client = client.clone();
        async move {
            client
                .status(pb::StatusRequest {})
                .await
                .is_ok_and(|s| s.into_inner().member_list_expired)
        }
    })
    .await?;
    let refused = asker
        .locate(pb::LocateRequest {
            actor: None,
            subject: bsn("111222333"),
            purpose: jeugd().to_string(),
            deadline_ms: 2000,
            regions: Vec::new(),
        })
        .await
        .expect_err("expired list");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let served = net.nodes[1]
        .audit()
        .await?
        .query(pb::AuditQueryRequest::default())
        .await?
        .into_inner()
        .entries;
    assert!(served.is_empty(), "nothing was sent: {served:?}");
    assert!(
        refused.message().contains("expired"),
        "{}",
        refused.message()
    );
    Ok(())
}

/// A scoped Locate asks the sources of the regions named, and the national
/// ones (no region), not the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locate_scoped_to_a_region_asks_only_its_sources_and_national_ones() -> Result<()> {
    let mut net = TestNet::new(5, &[jeugd()], 5)?;
    net.start_all().await?;
    let ids: Vec<String> = net.nodes.iter().map(|n| n.member_id.to_string()).collect();
    let regions: Vec<(usize, Vec<String>)> = vec![
        (1, vec!["GM0001".into()]),
        (2, vec!["GM0002".into()]),
        (3, vec![]),
        (4, vec!["GM0002".into(), "GM0003".into()]),
    ];
    let by_id: std::collections::HashMap<String, Vec<String>> = regions
        .iter()
        .map(|(i, r)| (ids[*i].clone(), r.clone()))
        .collect();
    let list = net.list_with(
        |_| true,
        3600,
        |l| {
            for m in &mut l.members {
                if let Some(r) = by_id.get(m.member_id.as_str()) {
                    m.regions = r.clone();
                }
            }
        },
    )?;
    net.hand_out(&list, |_| true)?;
    net.wait_connected(Duration::from_secs(30)).await?;
    let located = net.nodes[0]
        .inspections()
        .await?
        .locate(pb::LocateRequest {
            actor: None,
            subject: bsn("111222333"),
            purpose: jeugd().to_string(),
            deadline_ms: 5000,
            regions: vec!["GM0002".into()],
        })
        .await?
        .into_inner();
    let mut asked: Vec<String> = located
        .answers
        .iter()
        .map(|a| a.member_id.clone())
        .collect();
    asked.sort();
    let mut expected = vec![ids[2].clone(), ids[3].clone(), ids[4].clone()];
    expected.sort();
    assert_eq!(asked, expected, "GM0002's sources and the national one");
    let refused = net.nodes[0]
        .inspections()
        .await?
        .locate(pb::LocateRequest {
            actor: None,
            subject: bsn("111222333"),
            purpose: jeugd().to_string(),
            deadline_ms: 5000,
            regions: vec!["gemeente amsterdam".into()],
        })
        .await
        .expect_err("a malformed region is refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    Ok(())
}
