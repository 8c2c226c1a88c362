//! The inspection issue's acceptance tests: real nodes on loopback, real
//! mutual TLS between them, real Cedar policies, sled on disk.

use anyhow::{Context, Result};
use handbereik_keys::Purpose;
use handbereik_proto::v1 as pb;
use handbereik_tests::net::{TestNet, bsn, entry, jeugd};

/// A purpose the test nodes are admitted for, besides jeugdbescherming,
/// for which the test policy allows `known` but no `inspect`.
#[allow(clippy::expect_used)]
fn zorg() -> Purpose {
    Purpose::parse("zorg-coordinatie").expect("valid purpose")
}

async fn register(net: &TestNet, node: usize, subject: &str, categories: &[&str]) -> Result<()> {
    let mut registry = net.nodes[node].registry().await?;
    for c in categories {
        registry
            .register(pb::RegisterRequest {
                subject: bsn(subject),
                entry: entry(c, &format!("{{\"{c}\":\"inhoud\"}}")),
            })
            .await?;
    }
    Ok(())
}

async fn audit_entries(net: &TestNet, node: usize) -> Result<Vec<pb::AuditEntry>> {
    let mut audit = net.nodes[node].audit().await?;
    Ok(audit
        .query(pb::AuditQueryRequest::default())
        .await?
        .into_inner()
        .entries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_and_denied_requests_are_answered_and_logged_on_both_sides() -> Result<()> {
    let mut net = TestNet::new(2, &[jeugd(), zorg()], 5)?;
    net.up().await?;
    register(
        &net,
        1,
        "111222333",
        &["betrokkenheid", "melding", "plan", "veiligheidsplan"],
    )
    .await?;
    let source = net.nodes[1].member_id.to_string();
    let mut asker = net.nodes[0].inspections().await?;

    let known = asker
        .known(pb::KnownRequest {
            actor: None,
            member_id: source.clone(),
            subject: bsn("111222333"),
            purpose: jeugd().to_string(),
            deadline_ms: 5000,
        })
        .await?
        .into_inner();
    let answer = known.answer.context("an answer")?;
    assert_eq!(answer.answer, pb::Answer::Known as i32, "{answer:?}");
    assert_eq!(answer.records.len(), 1);
    assert_eq!(answer.records[0].category, "betrokkenheid");
    assert_eq!(answer.policies, vec!["known-for-admitted-purpose"]);
    assert!(
        answer
            .provenance
            .is_some_and(|p| !p.signed_answer.is_empty())
    );

    let inspected = asker
        .inspect(pb::InspectRequest {
            actor: None,
            emergency_reason: String::new(),
            member_id: source.clone(),
            subject: bsn("111222333"),
            purpose: jeugd().to_string(),
            categories: vec![
                "melding".into(),
                "veiligheidsplan".into(),
                "onbekend".into(),
            ],
            deadline_ms: 5000,
        })
        .await?
        .into_inner();
    let by_name = |name: &str| {
        inspected
            .categories
            .iter()
            .find(|c| c.category == name)
            .cloned()
            .context(name.to_string())
    };
    let melding = by_name("melding")?;
    assert_eq!(melding.decision, pb::CategoryDecision::Allowed as i32);
    assert_eq!(melding.records.len(), 1);
    let strict = by_name("veiligheidsplan")?;
    assert_eq!(strict.decision, pb::CategoryDecision::Refused as i32);
    assert_eq!(strict.policies, vec!["never-strictly-confidential"]);
    assert!(strict.records.is_empty());
    assert_eq!(
        by_name("onbekend")?.decision,
        pb::CategoryDecision::UnknownCategory as i32
    );

    // Admitted for zorg-coordinatie, but the policy allows no inspect for it.
    let denied = asker
        .inspect(pb::InspectRequest {
            actor: None,
            emergency_reason: String::new(),
            member_id: source.clone(),
            subject: bsn("111222333"),
            purpose: zorg().to_string(),
            categories: vec!["melding".into()],
            deadline_ms: 5000,
        })
        .await?
        .into_inner();
    assert_eq!(denied.categories.len(), 1);
    assert_eq!(
        denied.categories[0].decision,
        pb::CategoryDecision::Refused as i32
    );
    assert!(denied.categories[0].records.is_empty());

    // Both sides logged the three decisions with the same request ids.
    let served = audit_entries(&net, 1).await?;
    let asked = audit_entries(&net, 0).await?;
    assert_eq!(served.len(), 3, "{served:?}");
    assert_eq!(asked.len(), 3, "{asked:?}");
    for (s, a) in served.iter().zip(&asked) {
        assert_eq!(s.request_id, a.request_id);
        assert_eq!(s.direction, "served");
        assert_eq!(a.direction, "asked");
        assert_eq!(s.peer, net.nodes[0].member_id.to_string());
        assert_eq!(a.peer, source);
        assert_eq!(s.decision, a.decision);
    }
    assert_eq!(served[0].decision, "allowed");
    assert_eq!(served[1].categories_given, vec!["melding"]);
    assert_eq!(served[2].decision, "denied");
    assert_eq!(served[2].purpose, zorg().to_string());
    Ok(())
}
