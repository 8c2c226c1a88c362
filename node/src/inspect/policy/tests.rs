//! Tests of the policy: compiling, deciding, the deploy example, reloading.

use super::compile::Builtins;
use super::*;
use crate::error::Error;
use handbereik_keys::{MemberId, PublicKey, Role};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const VEILIG_THUIS: &str = "00000001002345678000";
const INSTELLING: &str = "00000001003456789000";

fn member(oin: &str, roles: &[Role], purposes: &[&str]) -> Member {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    Member {
        member_id: MemberId::parse(oin).unwrap(),
        name: "Gecertificeerde Instelling Test".to_string(),
        roles: roles.to_vec(),
        purposes: purposes
            .iter()
            .map(|p| Purpose::parse(p).unwrap())
            .collect(),
        node_key: PublicKey::from_bytes(key.as_bytes()).unwrap(),
        p2p_addresses: Vec::new(),
        grpc_endpoint: "localhost:4100".to_string(),
        valid_from: 0,
        valid_until: None,
        maintenance: false,
        regions: Vec::new(),
    }
}

fn afnemer(purposes: &[&str]) -> Member {
    member(INSTELLING, &[Role::Afnemer], purposes)
}

fn purpose(p: &str) -> Purpose {
    Purpose::parse(p).unwrap()
}

fn cat<'a>(name: &'a str, kind: Kind, classification: &'a str) -> CategoryRef<'a> {
    CategoryRef {
        name,
        kind,
        classification,
    }
}

const MELDING: CategoryRef<'static> = CategoryRef {
    name: "melding",
    kind: Kind::Wat,
    classification: "vertrouwelijk",
};

const SIMPLE: &str = r#"
    @id("dat-for-admitted-purpose")
    permit (principal, action == Action::"known", resource)
    when { resource.kind == "dat" && principal.purposes.contains(context.purpose) };

    @id("melding-for-jeugdbescherming")
    permit (principal, action == Action::"inspect", resource == Category::"melding")
    when { context.purpose == "jeugdbescherming" };

    @id("no-strikt-vertrouwelijk")
    forbid (principal, action, resource)
    when { resource.classification == "strikt-vertrouwelijk" };
"#;

#[test]
fn schema_is_valid() {
    Builtins::get().unwrap();
}

#[test]
fn allow_names_the_policy() {
    let policy = Policy::parse(SIMPLE, "simple.cedar").unwrap();
    let d = policy.authorize(
        &afnemer(&["jeugdbescherming"]),
        Action::Inspect,
        &MELDING,
        &purpose("jeugdbescherming"),
    );
    assert_eq!(
        d,
        Decision {
            allowed: true,
            policies: vec!["melding-for-jeugdbescherming".to_string()],
            errors: vec![],
        }
    );
    assert_eq!(
        policy.policy_ids(),
        [
            "dat-for-admitted-purpose",
            "melding-for-jeugdbescherming",
            "no-strikt-vertrouwelijk"
        ]
    );
}

#[test]
fn default_deny_names_no_policy() {
    let policy = Policy::parse(SIMPLE, "simple.cedar").unwrap();
    // No permit for inspecting the plan.
    let d = policy.authorize(
        &afnemer(&["jeugdbescherming"]),
        Action::Inspect,
        &cat("plan", Kind::Wat, "vertrouwelijk"),
        &purpose("jeugdbescherming"),
    );
    assert_eq!(d, Decision::deny(vec![]));
    // Known is not Inspect.
    let d = policy.authorize(
        &afnemer(&["jeugdbescherming"]),
        Action::Known,
        &MELDING,
        &purpose("jeugdbescherming"),
    );
    assert_eq!(d, Decision::deny(vec![]));
    // Nothing at all is allowed by deny_all.
    let d = Policy::deny_all().authorize(
        &afnemer(&["jeugdbescherming"]),
        Action::Inspect,
        &MELDING,
        &purpose("jeugdbescherming"),
    );
    assert_eq!(d, Decision::deny(vec![]));
    assert!(Policy::deny_all().policy_ids().is_empty());
}

#[test]
fn generated_ids_without_annotation() {
    let text = r#"permit (principal, action == Action::"known", resource);
                  permit (principal, action == Action::"inspect", resource);"#;
    let policy = Policy::parse(text, "plain.cedar").unwrap();
    assert_eq!(policy.policy_ids(), ["policy0", "policy1"]);
    let d = policy.authorize(
        &afnemer(&["zorg-coordinatie"]),
        Action::Inspect,
        &MELDING,
        &purpose("zorg-coordinatie"),
    );
    assert!(d.allowed);
    assert_eq!(d.policies, ["policy1"]);
}

#[test]
fn forbid_overrides_permit() {
    let policy = Policy::parse(SIMPLE, "simple.cedar").unwrap();
    let d = policy.authorize(
        &afnemer(&["jeugdbescherming"]),
        Action::Inspect,
        &cat("melding", Kind::Wat, "strikt-vertrouwelijk"),
        &purpose("jeugdbescherming"),
    );
    assert!(!d.allowed);
    assert_eq!(d.policies, ["no-strikt-vertrouwelijk"]);
    assert!(d.errors.is_empty());
}

#[test]
fn purpose_not_admitted_is_denied() {
    let policy = Policy::parse(SIMPLE, "simple.cedar").unwrap();
    let contact = cat("contactpersoon", Kind::Dat, "vertrouwelijk");
    let m = afnemer(&["zorg-coordinatie"]);
    let d = policy.authorize(&m, Action::Known, &contact, &purpose("zorg-coordinatie"));
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.policies, ["dat-for-admitted-purpose"]);
    let d = policy.authorize(&m, Action::Known, &contact, &purpose("jeugdbescherming"));
    assert_eq!(d, Decision::deny(vec![]));
}

#[test]
fn evaluation_error_denies_and_is_listed() {
    // Valid against the schema, but the entity named is not part of the
    // request, so reading its attribute fails at evaluation.
    let text = format!(
        r#"@id("always") permit (principal, action, resource);
           @id("reads-other-member") permit (principal, action, resource)
           when {{ Member::"{VEILIG_THUIS}".purposes.contains(context.purpose) }};"#
    );
    let policy = Policy::parse(&text, "errors.cedar").unwrap();
    let d = policy.authorize(
        &afnemer(&["jeugdbescherming"]),
        Action::Inspect,
        &MELDING,
        &purpose("jeugdbescherming"),
    );
    assert!(!d.allowed, "{d:?}");
    assert_eq!(d.policies, ["reads-other-member"]);
    assert_eq!(d.errors.len(), 1, "{d:?}");
    assert!(d.errors[0].contains("reads-other-member"), "{d:?}");
}

#[test]
fn syntax_error_names_file_and_line() {
    let text = "@id(\"a\")\npermit (principal, action, resource);\n\npermitt (principal, action, resource);\n";
    let err = Policy::parse(text, "/etc/handbereik/policy.cedar").unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::Policy(_)), "{message}");
    assert!(
        message.contains("/etc/handbereik/policy.cedar"),
        "{message}"
    );
    assert!(message.contains("line 4, column 1"), "{message}");
    assert!(message.contains("correct the policy"), "{message}");
}

#[test]
fn schema_violation_names_the_attribute_and_policy() {
    let text = "@id(\"ok\")\npermit (principal, action, resource);\n@id(\"by-colour\")\npermit (principal, action, resource)\nwhen { resource.colour == \"red\" };\n";
    let message = Policy::parse(text, "colour.cedar").unwrap_err().to_string();
    assert!(message.contains("colour.cedar"), "{message}");
    assert!(message.contains("colour"), "{message}");
    assert!(message.contains("by-colour"), "{message}");
    assert!(message.contains("line 5"), "{message}");

    // A wrong type, an unknown action and an unknown entity type too.
    for bad in [
        r#"permit (principal, action, resource) when { resource.kind == 1 };"#,
        r#"permit (principal, action == Action::"delete", resource);"#,
        r#"permit (principal == User::"x", action, resource);"#,
    ] {
        let e = Policy::parse(bad, "bad.cedar").unwrap_err().to_string();
        assert!(e.starts_with("policy: bad.cedar is refused: "), "{e}");
    }
}

#[test]
fn duplicate_ids_and_templates_are_refused() {
    let text = r#"@id("same") permit (principal, action, resource);
                  @id("same") forbid (principal, action, resource);"#;
    let message = Policy::parse(text, "dup.cedar").unwrap_err().to_string();
    assert!(message.contains("\"same\""), "{message}");
    let text = r#"@id("tpl") permit (principal == ?principal, action, resource);"#;
    let message = Policy::parse(text, "tpl.cedar").unwrap_err().to_string();
    assert!(message.contains("tpl is a template"), "{message}");
}

#[test]
fn kinds_and_actions_print() {
    assert_eq!(Kind::parse("dat"), Some(Kind::Dat));
    assert_eq!(Kind::parse("wat"), Some(Kind::Wat));
    assert_eq!(Kind::Wat.as_str(), "wat");
    assert!(Kind::parse("Dat").is_none());
    assert_eq!(Action::Known.as_str(), "known");
    assert_eq!(Action::Inspect.to_string(), "inspect");
}

#[test]
fn deploy_example_validates_and_decides() {
    let policy = Policy::parse(
        include_str!("../../../../deploy/policy.cedar"),
        "deploy/policy.cedar",
    )
    .unwrap();
    assert!(
        policy
            .policy_ids()
            .iter()
            .all(|id| !id.starts_with("policy"))
    );
    let jb = afnemer(&["jeugdbescherming"]);
    let vt = member(
        VEILIG_THUIS,
        &[Role::Afnemer, Role::Bronhouder],
        &["huiselijk-geweld", "veiligheid"],
    );
    let betrokkenheid = cat("betrokkenheid", Kind::Dat, "vertrouwelijk");
    let plan = cat("plan", Kind::Wat, "vertrouwelijk");
    let veiligheidsplan = cat("veiligheidsplan", Kind::Wat, "strikt-vertrouwelijk");
    let check = |m: &Member, a, c: &CategoryRef<'_>, p, allowed, ids: &[&str]| {
        let d = policy.authorize(m, a, c, &purpose(p));
        assert_eq!(
            d.allowed, allowed,
            "{} {a} {} {p}: {d:?}",
            m.member_id, c.name
        );
        assert_eq!(d.policies, ids, "{} {a} {} {p}: {d:?}", m.member_id, c.name);
        assert!(d.errors.is_empty(), "{d:?}");
    };
    use Action::{Inspect, Known};
    check(
        &jb,
        Known,
        &betrokkenheid,
        "jeugdbescherming",
        true,
        &["dat-for-admitted-purpose"],
    );
    check(
        &jb,
        Known,
        &betrokkenheid,
        "veiligheid",
        false,
        &["purpose-must-be-admitted"],
    );
    check(
        &jb,
        Inspect,
        &MELDING,
        "jeugdbescherming",
        true,
        &["jeugdbescherming-inspects-melding-en-risicotaxatie"],
    );
    check(&jb, Inspect, &plan, "jeugdbescherming", false, &[]);
    check(&jb, Inspect, &betrokkenheid, "jeugdbescherming", false, &[]);
    check(
        &vt,
        Inspect,
        &veiligheidsplan,
        "veiligheid",
        true,
        &["veilig-thuis-inspects-wat"],
    );
    check(
        &vt,
        Inspect,
        &veiligheidsplan,
        "huiselijk-geweld",
        false,
        &["strikt-vertrouwelijk-only-for-veiligheid"],
    );
    // The same rights under another OIN give nothing substantive.
    let other = member(
        INSTELLING,
        &[Role::Afnemer],
        &["huiselijk-geweld", "veiligheid"],
    );
    check(&other, Inspect, &MELDING, "veiligheid", false, &[]);
    // A source holder that is not a consumer does not ask.
    let bron = member(INSTELLING, &[Role::Bronhouder], &["jeugdbescherming"]);
    check(
        &bron,
        Known,
        &betrokkenheid,
        "jeugdbescherming",
        false,
        &["only-afnemers-ask"],
    );
}

#[test]
fn load_missing_is_deny_all_and_invalid_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let handle = PolicyHandle::load(
        &dir.path().join("absent.cedar"),
        crate::metrics::Metrics::new(),
    )
    .unwrap();
    assert!(handle.current().policy_ids().is_empty());
    let path = dir.path().join("bad.cedar");
    std::fs::write(
        &path,
        "permit (principal, action, resource) when { resource.colour };",
    )
    .unwrap();
    let message = PolicyHandle::load(&path, crate::metrics::Metrics::new())
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("bad.cedar"), "{message}");
    std::fs::write(&path, SIMPLE).unwrap();
    let handle = PolicyHandle::load(&path, crate::metrics::Metrics::new()).unwrap();
    assert_eq!(handle.current().policy_ids().len(), 3);
    assert_eq!(handle.current().origin(), path.display().to_string());
}

/// Waits up to 20 seconds for `done`.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn reload_swaps_valid_and_keeps_old_on_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.cedar");
    std::fs::write(&path, SIMPLE).unwrap();
    let handle = PolicyHandle::load(&path, crate::metrics::Metrics::new()).unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(handle.clone().watch_file(
        path.clone(),
        Duration::from_millis(20),
        shutdown.clone(),
    ));
    let m = afnemer(&["jeugdbescherming"]);
    let jb = purpose("jeugdbescherming");
    let allowed = |h: &PolicyHandle| {
        h.current()
            .authorize(&m, Action::Inspect, &MELDING, &jb)
            .allowed
    };
    assert!(allowed(&handle));

    // A new valid policy: the melding is now forbidden.
    std::fs::write(
        &path,
        r#"@id("nothing-substantive") forbid (principal, action == Action::"inspect", resource);"#,
    )
    .unwrap();
    eventually("the reload", || handle.reloads() == 1).await;
    assert!(!allowed(&handle));
    assert_eq!(handle.current().policy_ids(), ["nothing-substantive"]);

    // Back to the first policy, then an invalid one: the first stays.
    std::fs::write(&path, SIMPLE).unwrap();
    eventually("the second reload", || handle.reloads() == 2).await;
    assert!(allowed(&handle));
    std::fs::write(
        &path,
        "permit (principal, action, resource) when { resource.colour };",
    )
    .unwrap();
    eventually("the refusal", || handle.reload_failures() == 1).await;
    assert!(allowed(&handle));
    assert_eq!(handle.current().policy_ids().len(), 3);
    // The same bad content counts once, however often it is polled.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(handle.reload_failures(), 1);
    assert_eq!(handle.reloads(), 2);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap();
}

/// Rough timing: `cargo test --release -p handbereik-node --lib
/// inspect::policy -- --ignored --nocapture`.
#[test]
#[ignore]
fn authorize_timing() {
    let policy = Policy::parse(
        include_str!("../../../../deploy/policy.cedar"),
        "deploy/policy.cedar",
    )
    .unwrap();
    let m = afnemer(&["jeugdbescherming", "zorg-coordinatie"]);
    let p = purpose("jeugdbescherming");
    let n = 100_000;
    let start = std::time::Instant::now();
    let mut allowed = 0;
    for i in 0..n {
        let c = if i % 2 == 0 {
            MELDING
        } else {
            cat("plan", Kind::Wat, "vertrouwelijk")
        };
        allowed += usize::from(policy.authorize(&m, Action::Inspect, &c, &p).allowed);
    }
    let elapsed = start.elapsed();
    assert_eq!(allowed, n / 2);
    println!(
        "authorize: {n} calls in {elapsed:?}, {:.2} µs per call",
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
}

#[test]
fn tasks_reports_roles_and_emergencies_are_decided_too() {
    let text = r#"
        @id("onderzoek-for-jeugdbescherming")
        permit (principal, action == Action::"task",
                resource == TaskType::"nl.samenonderhandbereik.opdracht.onderzoek")
        when { context.purpose == "jeugdbescherming" };

        @id("plan-for-casusregisseur")
        permit (principal, action == Action::"inspect", resource == Category::"plan")
        when { context.role == "casusregisseur" };

        @id("emergency-melding")
        permit (principal, action == Action::"inspect", resource == Category::"melding")
        when { context.emergency };

        @id("report-for-burgerportaal")
        permit (principal, action == Action::"report", resource == Report::"audit")
        when { context.role == "burgerportaal" && context.purpose == "burgerinzage" };

        @id("no-strikt-vertrouwelijk")
        forbid (principal, action, resource)
        when { resource.classification == "strikt-vertrouwelijk" };
    "#;
    let policy = Policy::parse(text, "roles.cedar").unwrap();
    let m = afnemer(&["jeugdbescherming", "burgerinzage"]);
    let jb = purpose("jeugdbescherming");
    let ask = |action, resource, role: &'static str, emergency, p: &Purpose| {
        policy.decide(&PolicyRequest {
            member: &m,
            action,
            resource,
            context: RequestContext {
                purpose: p,
                role,
                actor: "u-1",
                emergency,
            },
        })
    };
    let onderzoek = Resource::TaskType("nl.samenonderhandbereik.opdracht.onderzoek");
    assert!(ask(Action::Task, onderzoek, "", false, &jb).allowed);
    assert!(
        !ask(
            Action::Task,
            Resource::TaskType("nl.x.other"),
            "",
            false,
            &jb
        )
        .allowed
    );
    let plan = Resource::Category(cat("plan", Kind::Wat, "vertrouwelijk"));
    assert!(ask(Action::Inspect, plan, "casusregisseur", false, &jb).allowed);
    assert!(!ask(Action::Inspect, plan, "deelnemer", false, &jb).allowed);
    let melding = Resource::Category(MELDING);
    assert!(!ask(Action::Inspect, melding, "deelnemer", false, &jb).allowed);
    let d = ask(Action::Inspect, melding, "deelnemer", true, &jb);
    assert_eq!(d.policies, ["emergency-melding"]);
    let inzage = purpose("burgerinzage");
    assert!(
        ask(
            Action::Report,
            Resource::AuditReport,
            "burgerportaal",
            false,
            &inzage
        )
        .allowed
    );
    assert!(
        !ask(
            Action::Report,
            Resource::AuditReport,
            "deelnemer",
            false,
            &inzage
        )
        .allowed
    );
}
