//! The audit log and the registry's erasure, with real nodes: tampering is
//! found and named, a failing append refuses the request, subject reports
//! list exactly the disclosures, erased and expired subjects are unknown.

use std::time::Duration;

use anyhow::{Context, Result};
use handbereik_proto::v1 as pb;
use handbereik_tests::net::{TestNet, bsn, entry, jeugd, wait_until};

const A: &str = "111222333";
const B: &str = "123456782";

async fn register(net: &TestNet, node: usize, subject: &str, categories: &[&str]) -> Result<()> {
    let mut registry = net.nodes[node].registry().await?;
    for c in categories {
        registry
            .register(pb::RegisterRequest {
                subject: bsn(subject),
                entry: entry(c, "{}"),
            })
            .await?;
    }
    Ok(())
}

async fn known(net: &TestNet, subject: &str) -> Result<(String, pb::MemberAnswer)> {
    let r = net.nodes[0]
        .inspections()
        .await?
        .known(pb::KnownRequest {
            actor: None,
            member_id: net.nodes[1].member_id.to_string(),
            subject: bsn(subject),
            purpose: jeugd().to_string(),
            deadline_ms: 5000,
        })
        .await?
        .into_inner();
    Ok((r.request_id, r.answer.context("answer")?))
}

async fn inspect(
    net: &TestNet,
    subject: &str,
    category: &str,
) -> Result<Result<pb::InspectResponse, tonic::Status>> {
    Ok(net.nodes[0]
        .inspections()
        .await?
        .inspect(pb::InspectRequest {
            actor: None,
            emergency_reason: String::new(),
            member_id: net.nodes[1].member_id.to_string(),
            subject: bsn(subject),
            purpose: jeugd().to_string(),
            categories: vec![category.into()],
            deadline_ms: 5000,
        })
        .await
        .map(|r| r.into_inner()))
}

async fn entries(net: &TestNet, node: usize) -> Result<Vec<pb::AuditEntry>> {
    Ok(net.nodes[node]
        .audit()
        .await?
        .query(pb::AuditQueryRequest::default())
        .await?
        .into_inner()
        .entries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_one_stored_entry_makes_verify_fail_and_name_it() -> Result<()> {
    let mut net = TestNet::new(2, &[jeugd()], 5)?;
    net.up().await?;
    register(&net, 1, A, &["betrokkenheid", "melding"]).await?;
    for _ in 0..2 {
        known(&net, A).await?;
        inspect(&net, A, "melding").await??;
    }
    let verified = net.nodes[1]
        .audit()
        .await?
        .verify(pb::AuditVerifyRequest {})
        .await?
        .into_inner();
    assert!(verified.ok, "{verified:?}");
    assert_eq!(verified.entries, 4);
    net.nodes[1].stop().await;

    // Change one letter of the purpose in entry 2, keeping the CBOR valid.
    let data = net.nodes[1].dir.join("data");
    {
        let db = sled::open(&data)?;
        let tree = db.open_tree("audit")?;
        let mut key = vec![b'e'];
        key.extend_from_slice(&2u64.to_be_bytes());
        let mut value = tree.get(&key)?.context("entry 2")?.to_vec();
        let at = value
            .windows(16)
            .position(|w| w == b"jeugdbescherming")
            .context("purpose in entry 2")?;
        value[at] = b'J';
        tree.insert(&key, value)?;
        db.flush()?;
    }
    let handbereik_node::store::Opened { store, writer, .. } =
        handbereik_node::store::Store::open(&data, 8 << 20)?;
    let report =
        handbereik_node::audit::Audit::new(store.clone()).verify(&net.nodes[1].key.public_key())?;
    store.close().await?;
    assert!(writer.join(Duration::from_secs(30)).await);
    // The database stays open while a handle is alive: let go of it.
    drop(store);
    let (seq, problem) = report.problem.context("the change must be found")?;
    assert_eq!(seq, 2, "{problem}");
    assert!(problem.contains("entry 2"), "{problem}");

    // The operator's command says the same.
    let config = net.nodes[1].dir.join("handbereik.toml");
    let config = config.to_str().context("utf-8 path")?.to_string();
    let dir = net.nodes[1].dir.clone();
    let run = tokio::task::spawn_blocking(move || {
        handbereik_tests::run(
            "handbereik",
            &dir,
            &["audit", "verify", "--offline", "--config", &config],
        )
    })
    .await??;
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("audit log BROKEN at entry 2"),
        "{}",
        run.stderr
    );

    // And so does the restarted node on its local API.
    net.nodes[1].start().await?;
    let verified = net.nodes[1]
        .audit()
        .await?
        .verify(pb::AuditVerifyRequest {})
        .await?
        .into_inner();
    assert!(!verified.ok, "{verified:?}");
    assert_eq!(verified.first_bad_sequence, 2, "{verified:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_audit_write_refuses_the_request_on_either_side() -> Result<()> {
    let mut net = TestNet::new(2, &[jeugd()], 5)?;
    net.up().await?;
    register(&net, 1, A, &["melding"]).await?;

    // Serving side: no answer leaves unlogged.
    let failures_before = net.nodes[1].metrics()?.audit_failures.get();
    net.nodes[1].handle()?.fail_audit_writes(true);
    let served_before = entries(&net, 1).await?.len();
    let r = inspect(&net, A, "melding").await??;
    assert_eq!(r.reachability, pb::Answer::Unreachable as i32, "{r:?}");
    assert!(r.categories.is_empty());
    assert!(r.reason.contains("audit"), "{}", r.reason);
    assert_eq!(entries(&net, 1).await?.len(), served_before);
    assert!(net.nodes[1].metrics()?.audit_failures.get() > failures_before);
    net.nodes[1].handle()?.fail_audit_writes(false);

    // Asking side: the back office gets an error, not the data.
    net.nodes[0].handle()?.fail_audit_writes(true);
    let err = inspect(&net, A, "melding")
        .await?
        .expect_err("the asking node cannot log");
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(err.message().contains("audit"), "{}", err.message());
    net.nodes[0].handle()?.fail_audit_writes(false);
    let r = inspect(&net, A, "melding").await??;
    assert_eq!(r.categories[0].records.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_report_lists_exactly_the_disclosures_about_that_subject() -> Result<()> {
    let mut net = TestNet::new(2, &[jeugd()], 5)?;
    net.up().await?;
    register(&net, 1, A, &["betrokkenheid", "melding", "veiligheidsplan"]).await?;
    register(&net, 1, B, &["betrokkenheid"]).await?;
    let (known_a, _) = known(&net, A).await?;
    let inspect_a = inspect(&net, A, "melding").await??.request_id;
    let refused = inspect(&net, A, "veiligheidsplan").await??;
    assert_eq!(
        refused.categories[0].decision,
        pb::CategoryDecision::Refused as i32
    );
    let (known_b, _) = known(&net, B).await?;

    let report = |node: usize, subject: &'static str| {
        let net = &net;
        async move {
            anyhow::Ok(
                net.nodes[node]
                    .audit()
                    .await?
                    .subject_report(pb::SubjectReportRequest {
                        subject: bsn(subject),
                    })
                    .await?
                    .into_inner(),
            )
        }
    };
    let a = report(1, A).await?;
    let ids: Vec<&str> = a
        .disclosures
        .iter()
        .map(|e| e.request_id.as_str())
        .collect();
    assert_eq!(ids, vec![known_a.as_str(), inspect_a.as_str()]);
    assert_eq!(a.refused, 1);
    assert!(a.obtained.is_empty());
    let b = report(1, B).await?;
    assert_eq!(b.disclosures.len(), 1);
    assert_eq!(b.disclosures[0].request_id, known_b);
    assert_eq!(b.disclosures[0].peer, net.nodes[0].member_id.to_string());
    let asked = report(0, A).await?;
    assert_eq!(asked.obtained.len(), 2);
    assert!(asked.disclosures.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_erase_the_subject_is_unknown_and_gone_from_the_registry() -> Result<()> {
    let mut net = TestNet::new(2, &[jeugd()], 5)?;
    net.up().await?;
    register(&net, 1, A, &["betrokkenheid", "melding"]).await?;
    assert_eq!(known(&net, A).await?.1.answer, pb::Answer::Known as i32);
    let mut registry = net.nodes[1].registry().await?;
    let erased = registry
        .erase(pb::EraseRequest { subject: bsn(A) })
        .await?
        .into_inner();
    assert_eq!(erased.removed, 2);
    assert_eq!(known(&net, A).await?.1.answer, pb::Answer::NotKnown as i32);
    let listed = registry
        .list(pb::ListRequest {
            subject: bsn(A),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(listed.entries.is_empty());
    let all = registry
        .list(pb::ListRequest::default())
        .await?
        .into_inner();
    assert!(all.entries.is_empty());
    let got = registry
        .get(pb::GetRequest {
            subject: bsn(A),
            category: "melding".into(),
        })
        .await
        .expect_err("erased");
    assert_eq!(got.code(), tonic::Code::NotFound);
    // Accountability outlives the data: the earlier disclosure is still reported.
    let report = net.nodes[1]
        .audit()
        .await?
        .subject_report(pb::SubjectReportRequest { subject: bsn(A) })
        .await?
        .into_inner();
    assert_eq!(report.disclosures.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_past_their_retention_are_removed() -> Result<()> {
    let mut net = TestNet::new(2, &[jeugd()], 5)?;
    net.up().await?;
    let mut input = entry("betrokkenheid", "{}").context("entry")?;
    input.retain_until = handbereik_keys::time::now() + 2;
    let mut registry = net.nodes[1].registry().await?;
    registry
        .register(pb::RegisterRequest {
            subject: bsn(A),
            entry: Some(input),
        })
        .await?;
    let all = registry
        .list(pb::ListRequest::default())
        .await?
        .into_inner();
    assert_eq!(all.entries.len(), 1);
    wait_until(
        Duration::from_secs(10),
        "the sweeper removed the entry",
        || {
            let mut registry = registry.clone();
            async move {
                registry
                    .get(pb::GetRequest {
                        subject: bsn(A),
                        category: "betrokkenheid".into(),
                    })
                    .await
                    .is_err_and(|s| s.code() == tonic::Code::NotFound)
            }
        },
    )
    .await?;
    assert_eq!(known(&net, A).await?.1.answer, pb::Answer::NotKnown as i32);
    Ok(())
}
