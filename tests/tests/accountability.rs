//! Accountability across the network, with real nodes over mutual TLS: the
//! acting professional's role decides at the source and both audit logs name
//! them; an emergency (noodknop) Inspect is allowed only by an emergency
//! permit, flagged in both logs and the subject report, counted and announced
//! on the local stream; a citizen's report across the network lists exactly
//! the disclosures and names the members that refused or did not answer.

#![allow(clippy::expect_used)]

use std::time::Duration;

use anyhow::{Context, Result};
use handbereik_keys::{ActorRole, Purpose};
use handbereik_proto::v1 as pb;
use handbereik_tests::net::{TestNet, bsn, entry, jeugd};

const A: &str = "111222333";

/// The vocabulary of the test network.
const ROLES: [&str; 3] = ["burgerportaal", "casusregisseur", "deelnemer"];

/// The source's policy: `melding` for any role admitted for the purpose, the
/// plan only for a casusregisseur, the plan to others only in an emergency,
/// and a citizen's report for the portal.
const POLICY: &str = r#"
@id("melding-for-admitted-purpose")
permit (principal, action == Action::"inspect", resource == Category::"melding")
when { principal.purposes.contains(context.purpose) };

@id("casusregisseur-inspects-plan")
permit (principal, action == Action::"inspect", resource == Category::"plan")
when { context.role == "casusregisseur" };

@id("noodknop-plan")
permit (principal, action == Action::"inspect", resource == Category::"plan")
when { context.emergency && context.role == "deelnemer" };

@id("burgerportaal-reports")
permit (principal, action == Action::"report", resource == Report::"audit")
when { context.purpose == "burgerinzage" && context.role == "burgerportaal" };
"#;

/// The same without the emergency and report permits.
const STRICT_POLICY: &str = r#"
@id("melding-for-admitted-purpose")
permit (principal, action == Action::"inspect", resource == Category::"melding")
when { principal.purposes.contains(context.purpose) };

@id("casusregisseur-inspects-plan")
permit (principal, action == Action::"inspect", resource == Category::"plan")
when { context.role == "casusregisseur" };
"#;

fn burgerinzage() -> Purpose {
    Purpose::parse("burgerinzage").expect("valid purpose")
}

fn actor(user: &str, role: &str) -> Option<pb::Actor> {
    Some(pb::Actor {
        user: user.into(),
        role: role.into(),
        on_behalf_of: String::new(),
    })
}

/// `n` nodes admitted for jeugdbescherming and burgerinzage, node `i` with
/// `policy(i)`, a list naming the role vocabulary, all connected.
async fn network(n: usize, policy: impl Fn(usize) -> &'static str) -> Result<TestNet> {
    let mut net = TestNet::new(n, &[jeugd(), burgerinzage()], 5)?;
    for (i, node) in net.nodes.iter().enumerate() {
        node.set_policy(policy(i))?;
    }
    net.start_all().await?;
    let list = net.list_with(
        |_| true,
        3600,
        |l| {
            l.profile.actor_roles = ROLES
                .iter()
                .map(|r| ActorRole::parse(r).expect("valid role"))
                .collect();
        },
    )?;
    net.hand_out(&list, |_| true)?;
    net.wait_connected(Duration::from_secs(60)).await?;
    Ok(net)
}

async fn register(net: &TestNet, node: usize, categories: &[&str]) -> Result<()> {
    let mut registry = net.nodes[node].registry().await?;
    for c in categories {
        registry
            .register(pb::RegisterRequest {
                subject: bsn(A),
                entry: entry(c, "{}"),
            })
            .await?;
    }
    Ok(())
}

/// Node `from` inspects `category` of subject A at node `at`.
async fn inspect(
    net: &TestNet,
    from: usize,
    at: usize,
    category: &str,
    actor: Option<pb::Actor>,
    emergency: &str,
) -> std::result::Result<pb::InspectResponse, tonic::Status> {
    let mut client = net.nodes[from]
        .inspections()
        .await
        .map_err(|e| tonic::Status::unknown(e.to_string()))?;
    client
        .inspect(pb::InspectRequest {
            actor,
            emergency_reason: emergency.into(),
            member_id: net.nodes[at].member_id.to_string(),
            subject: bsn(A),
            purpose: jeugd().to_string(),
            categories: vec![category.into()],
            deadline_ms: 10_000,
        })
        .await
        .map(|r| r.into_inner())
}

fn decision(r: &pb::InspectResponse) -> (pb::CategoryDecision, Vec<String>) {
    let c = &r.categories[0];
    (
        pb::CategoryDecision::try_from(c.decision).unwrap_or_default(),
        c.policies.clone(),
    )
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

async fn entry_of(net: &TestNet, node: usize, request_id: &str) -> Result<pb::AuditEntry> {
    entries(net, node)
        .await?
        .into_iter()
        .find(|e| e.request_id == request_id)
        .with_context(|| format!("node {node} logged no entry for request {request_id}"))
}

async fn stop_all(net: &mut TestNet) {
    for node in &mut net.nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_role_decides_at_the_source_and_both_logs_name_the_actor() -> Result<()> {
    let mut net = network(2, |_| POLICY).await?;
    register(&net, 1, &["melding", "plan"]).await?;

    let mut regisseur = actor("jh-17", "casusregisseur");
    if let Some(a) = regisseur.as_mut() {
        a.on_behalf_of = "jh-3".into();
    }
    let allowed = inspect(&net, 0, 1, "plan", regisseur, "").await?;
    assert_eq!(
        decision(&allowed),
        (
            pb::CategoryDecision::Allowed,
            vec!["casusregisseur-inspects-plan".to_string()]
        )
    );
    let refused = inspect(&net, 0, 1, "plan", actor("jh-18", "deelnemer"), "").await?;
    assert_eq!(decision(&refused).0, pb::CategoryDecision::Refused);

    // Both sides log who acted, in what role, for whom; the source keeps the
    // asking node's signed request as proof.
    for node in [0, 1] {
        let e = entry_of(&net, node, &allowed.request_id).await?;
        let a = e.actor.context("the entry names the actor")?;
        assert_eq!(
            (a.user.as_str(), a.role.as_str(), a.on_behalf_of.as_str()),
            ("jh-17", "casusregisseur", "jh-3"),
            "node {node}"
        );
        assert_eq!(e.decision, "allowed", "node {node}");
        let e = entry_of(&net, node, &refused.request_id).await?;
        assert_eq!(e.actor.context("actor")?.role, "deelnemer", "node {node}");
        assert_eq!(e.decision, "denied", "node {node}");
    }
    let served = entry_of(&net, 1, &allowed.request_id).await?;
    assert!(
        !served.signed_request.is_empty(),
        "the source keeps the signed request"
    );
    let asked = entry_of(&net, 0, &allowed.request_id).await?;
    assert!(asked.signed_request.is_empty(), "only the source keeps it");

    // A role outside the vocabulary, or no actor where the list names roles,
    // is refused with a clear error before anything is asked.
    let before = entries(&net, 1).await?.len();
    for (who, name) in [
        (actor("jh-17", "wethouder"), "unknown role"),
        (None, "no actor"),
        (actor("jh-17", ""), "no role"),
        (actor("111222333", "deelnemer"), "a BSN as user id"),
    ] {
        let status = inspect(&net, 0, 1, "melding", who, "")
            .await
            .expect_err(name);
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{name}: {status:?}"
        );
        assert!(
            status.message().contains("actor"),
            "{name}: the error names the field: {}",
            status.message()
        );
        assert!(!status.message().contains(A), "{name}: never repeats a BSN");
    }
    let status = net.nodes[0]
        .inspections()
        .await?
        .locate(pb::LocateRequest {
            subject: bsn(A),
            purpose: jeugd().to_string(),
            deadline_ms: 5000,
            regions: Vec::new(),
            actor: actor("jh-17", "wethouder"),
        })
        .await
        .expect_err("an unknown role in Locate");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("casusregisseur"),
        "{}",
        status.message()
    );
    assert_eq!(
        entries(&net, 1).await?.len(),
        before,
        "refused at the asking node, nothing reached the source"
    );
    stop_all(&mut net).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emergency_is_flagged_counted_and_announced_at_once() -> Result<()> {
    let mut net = network(3, |i| if i == 2 { STRICT_POLICY } else { POLICY }).await?;
    register(&net, 1, &["melding", "plan"]).await?;
    register(&net, 2, &["plan"]).await?;

    // The source's privacy officer listens on its local stream.
    let mut officer = net.nodes[1]
        .notifications()
        .await?
        .subscribe(pb::SubscribeRequest {
            name: "privacy".into(),
            types: vec!["nl.handbereik.audit.emergency".into()],
            purposes: Vec::new(),
            sources: Vec::new(),
        })
        .await?
        .into_inner();

    let first = inspect(&net, 0, 1, "melding", actor("jh-18", "deelnemer"), "").await?;
    assert_eq!(decision(&first).0, pb::CategoryDecision::Allowed);
    let reason = "kind vermist, plan nodig voor zoekactie";
    let urgent = inspect(&net, 0, 1, "plan", actor("jh-18", "deelnemer"), reason).await?;
    assert_eq!(
        decision(&urgent),
        (
            pb::CategoryDecision::Allowed,
            vec!["noodknop-plan".to_string()]
        ),
        "only the emergency permit allows a deelnemer the plan"
    );
    let last = inspect(&net, 0, 1, "melding", actor("jh-18", "deelnemer"), "").await?;
    assert_eq!(decision(&last).0, pb::CategoryDecision::Allowed);

    // Announced on the source's local stream, within a deadline.
    let delivery = tokio::time::timeout(Duration::from_secs(20), officer.message())
        .await
        .context("no emergency announcement within 20 s")??
        .context("the stream ended")?;
    let n = delivery.notification.context("empty delivery")?;
    assert_eq!(n.r#type, "nl.handbereik.audit.emergency");
    assert_eq!(n.purpose, Purpose::LOCAL);
    assert_eq!(n.source_member_id, net.nodes[1].member_id.as_str());
    let data = String::from_utf8(n.data)?;
    assert!(data.contains(reason), "{data}");
    assert!(data.contains(net.nodes[0].member_id.as_str()), "{data}");
    assert!(!data.contains(A), "no BSN in the announcement: {data}");

    // Flagged in both logs, with the reason.
    for node in [0, 1] {
        let e = entry_of(&net, node, &urgent.request_id).await?;
        assert_eq!(e.emergency_reason, reason, "node {node}");
        let e = entry_of(&net, node, &first.request_id).await?;
        assert!(e.emergency_reason.is_empty(), "node {node}");
    }
    // Counted on both sides.
    assert_eq!(
        net.nodes[1].metrics()?.emergency_count("served", "allowed"),
        1
    );
    assert_eq!(
        net.nodes[0].metrics()?.emergency_count("asked", "allowed"),
        1
    );

    // The subject report puts emergencies first (the emergency was the second
    // of three disclosures in time) and counts them.
    let report = net.nodes[1]
        .audit()
        .await?
        .subject_report(pb::SubjectReportRequest { subject: bsn(A) })
        .await?
        .into_inner();
    assert_eq!(report.emergencies, 1);
    assert_eq!(report.disclosures.len(), 3);
    assert_eq!(report.disclosures[0].request_id, urgent.request_id);
    assert_eq!(report.disclosures[1].request_id, first.request_id);

    // Where the policy has no emergency permit, an emergency gives nothing.
    let strict = inspect(&net, 0, 2, "plan", actor("jh-18", "deelnemer"), reason).await?;
    assert_eq!(decision(&strict).0, pb::CategoryDecision::Refused);
    assert_eq!(
        net.nodes[0].metrics()?.emergency_count("asked", "denied"),
        1
    );
    assert_eq!(
        net.nodes[2].metrics()?.emergency_count("served", "denied"),
        1
    );
    let e = entry_of(&net, 2, &strict.request_id).await?;
    assert_eq!(e.emergency_reason, reason);

    // The reason is checked: too long, or holding a BSN, is refused.
    for bad in ["x".repeat(501), format!("bsn {A}")] {
        let status = inspect(&net, 0, 1, "plan", actor("jh-18", "deelnemer"), &bad)
            .await
            .expect_err("a bad reason");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains("emergency"),
            "{}",
            status.message()
        );
        assert!(!status.message().contains(A));
    }
    stop_all(&mut net).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_report_lists_every_disclosure_and_names_who_did_not_answer() -> Result<()> {
    // 0 asks for the citizen; 1 and 2 hold data; 3 asks and refuses to
    // report; 4 is down.
    let mut net = network(5, |i| if i == 3 { STRICT_POLICY } else { POLICY }).await?;
    register(&net, 1, &["melding", "veiligheidsplan"]).await?;
    register(&net, 2, &["melding"]).await?;
    let d1 = inspect(&net, 3, 1, "melding", actor("jh-18", "deelnemer"), "").await?;
    let d2 = inspect(&net, 2, 1, "melding", actor("vt-2", "casusregisseur"), "").await?;
    let refused = inspect(
        &net,
        3,
        1,
        "veiligheidsplan",
        actor("jh-18", "deelnemer"),
        "",
    )
    .await?;
    assert_eq!(decision(&d1).0, pb::CategoryDecision::Allowed);
    assert_eq!(decision(&d2).0, pb::CategoryDecision::Allowed);
    assert_eq!(decision(&refused).0, pb::CategoryDecision::Refused);
    net.nodes[4].stop().await;

    let report = net.nodes[0]
        .audit()
        .await?
        .network_report(pb::NetworkReportRequest {
            subject: bsn(A),
            purpose: burgerinzage().to_string(),
            actor: actor("portaal-1", "burgerportaal"),
            deadline_ms: 5000,
            regions: Vec::new(),
        })
        .await?
        .into_inner();

    let mut ids: Vec<&str> = report
        .disclosures
        .iter()
        .map(|d| d.request_id.as_str())
        .collect();
    ids.sort();
    let mut want = vec![d1.request_id.as_str(), d2.request_id.as_str()];
    want.sort();
    assert_eq!(
        ids, want,
        "exactly the two disclosures: {:?}",
        report.disclosures
    );
    let one = report
        .disclosures
        .iter()
        .find(|d| d.request_id == d2.request_id)
        .context("d2")?;
    assert_eq!(one.source_member_id, net.nodes[1].member_id.as_str());
    assert_eq!(one.asker_member_id, net.nodes[2].member_id.as_str());
    assert_eq!(one.categories, vec!["melding".to_string()]);
    assert_eq!(one.actor.as_ref().context("actor")?.role, "casusregisseur");
    let mut by = one.reported_by.clone();
    by.sort();
    let mut both = vec![
        net.nodes[1].member_id.to_string(),
        net.nodes[2].member_id.to_string(),
    ];
    both.sort();
    assert_eq!(by, both, "the same disclosure from both logs, listed once");
    assert!(!format!("{report:?}").contains(A), "no BSN in the report");

    let outcome = |i: usize| -> Result<pb::PartnerReport> {
        report
            .partners
            .iter()
            .find(|p| p.member_id == net.nodes[i].member_id.as_str())
            .cloned()
            .with_context(|| format!("node {i} is not named in the report"))
    };
    let of = |p: &pb::PartnerReport| pb::ReportOutcome::try_from(p.outcome).unwrap_or_default();
    let p1 = outcome(1)?;
    assert_eq!(of(&p1), pb::ReportOutcome::ReportAnswered);
    assert_eq!((p1.disclosures, p1.refused), (2, 1));
    assert!(p1.provenance.is_some(), "a member's answer is signed");
    let p2 = outcome(2)?;
    assert_eq!(of(&p2), pb::ReportOutcome::ReportAnswered);
    assert_eq!((p2.disclosures, p2.obtained), (0, 1));
    let p3 = outcome(3)?;
    assert_eq!(of(&p3), pb::ReportOutcome::ReportRefused, "{p3:?}");
    assert!(!p3.reason.is_empty());
    let p4 = outcome(4)?;
    assert_eq!(of(&p4), pb::ReportOutcome::ReportNotAnswered, "{p4:?}");
    assert_eq!(of(&outcome(0)?), pb::ReportOutcome::ReportAnswered);
    assert_eq!(report.partners.len(), 5);

    // The report is itself in the audit logs of both sides.
    let served = entries(&net, 1)
        .await?
        .into_iter()
        .find(|e| e.action == "report" && e.direction == "served")
        .context("node 1 logged the report it gave")?;
    assert_eq!(served.peer, net.nodes[0].member_id.as_str());
    assert_eq!(served.actor.context("actor")?.role, "burgerportaal");
    let asked = entries(&net, 0)
        .await?
        .into_iter()
        .filter(|e| e.action == "report" && e.direction == "asked")
        .count();
    assert!(asked >= 3, "node 0 logged each member it asked: {asked}");
    stop_all(&mut net).await;
    Ok(())
}
