//! `handbereik audit verify` and `handbereik audit report`.
//!
//! `verify` asks the running node (which also compares its chain with the
//! copies of its checkpoints that other members hold as witnesses), or with
//! `--offline` opens a stopped node's data directory itself and recomputes
//! the local chain there, and says that witnesses were not asked.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use handbereik_proto::v1 as pb;

use super::actor::ActorArgs;
use super::client::{ApiArgs, explain};
use super::subject::SubjectArgs;
use crate::config::Config;
use crate::store::{Store, StoreError};

/// `handbereik audit ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum AuditCommand {
    /// Recompute the hash chain, check the signed checkpoints, and compare
    /// with the witnesses' countersigned copies.
    ///
    /// Example: handbereik audit verify --config handbereik.toml
    ///          handbereik audit verify --offline   (node stopped)
    #[command(verbatim_doc_comment)]
    Verify(VerifyArgs),
    /// Every disclosure about one subject: who asked, in what role, when,
    /// for what; emergencies first. With --network, from every member's log.
    ///
    /// Example: handbereik audit report --bsn 111222333
    ///          handbereik audit report --network --bsn 111222333 \
    ///              --purpose burgerinzage --user portal-1 --role burgerportaal
    #[command(verbatim_doc_comment)]
    Report(ReportArgs),
}

/// Arguments of `audit verify`.
#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    #[allow(missing_docs)]
    #[command(flatten)]
    pub api: ApiArgs,
    /// Open the (stopped) node's data directory instead of asking the node.
    #[arg(long)]
    pub offline: bool,
}

/// Arguments of `audit report`.
#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    #[allow(missing_docs)]
    #[command(flatten)]
    pub api: ApiArgs,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// Ask every member for what its audit log holds about the subject
    /// (each answers under its own policy, action `report`), and combine.
    #[arg(long)]
    pub network: bool,
    /// For --network: the purpose the report is asked for, such as burgerinzage.
    #[arg(long, required_if_eq("network", "true"))]
    pub purpose: Option<String>,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub actor: ActorArgs,
    /// For --network: how long to wait for all members, in milliseconds
    /// (default 2000, at most 30000).
    #[arg(long, default_value_t = 0)]
    pub deadline_ms: u32,
    /// For --network: ask only members serving this region (repeatable),
    /// and national ones.
    #[arg(long = "region", value_name = "CODE")]
    pub regions: Vec<String>,
}

/// Runs `audit verify`.
pub async fn verify(args: &VerifyArgs) -> Result<()> {
    let mut witnesses = None;
    let keys: usize;
    let (ok, entries, head, checkpoints, bad, problem) = if args.offline {
        let config = Config::load(&args.api.config)
            .with_context(|| format!("reading {}", args.api.config.display()))?;
        let c = config.config;
        let key = handbereik_keys::NodeKey::load(&c.node.key_file)?;
        let opened = match Store::open(&c.node.data_dir, 8 << 20) {
            Ok(opened) => opened,
            Err(StoreError::Locked { dir }) => {
                bail!(
                    "the node is running on {}; stop it, or leave out --offline to ask it",
                    dir.display()
                )
            }
            Err(e) => return Err(e.into()),
        };
        let report = crate::audit::Audit::new(opened.store.clone()).verify(&key.public_key());
        let _ = opened.store.close().await;
        let _ = opened.writer.join(std::time::Duration::from_secs(30)).await;
        let report = report?;
        keys = report.keys.len();
        let (bad, problem) = report.problem.clone().unwrap_or_default();
        (
            report.ok(),
            report.entries,
            hex::encode(report.head),
            report.checkpoints,
            bad,
            problem,
        )
    } else {
        let mut clients = args.api.connect().await?;
        let r = clients
            .audit
            .verify(pb::AuditVerifyRequest {})
            .await
            .map_err(explain)?
            .into_inner();
        keys = r.node_keys.len();
        witnesses = Some(r.clone());
        (
            r.ok,
            r.entries,
            r.head_hash,
            r.checkpoints,
            r.first_bad_sequence,
            r.problem,
        )
    };
    if !ok {
        if let Some(r) = &witnesses {
            print_witnesses(r);
        }
        bail!("audit log BROKEN at entry {bad}: {problem}");
    }
    println!(
        "audit log ok: {entries} entries, head {head}, {checkpoints} signed checkpoints by {keys} node key(s)"
    );
    match &witnesses {
        Some(r) => print_witnesses(r),
        None => println!(
            "witnesses not asked: --offline checks the local chain only (the node is stopped); run it without --offline on the running node to compare with the copies other members hold"
        ),
    }
    Ok(())
}

/// The witnesses' part of an online verify.
fn print_witnesses(r: &pb::AuditVerifyResponse) {
    println!(
        "witnesses: {} asked, {} agree, {} disagree, {} unreachable, {} hold no checkpoint of this node",
        r.witnesses_asked,
        r.witnesses_agreeing,
        r.witnesses_disagreeing,
        r.witnesses_unreachable,
        r.witnesses_without_copy
    );
    for w in &r.witnesses {
        match w.outcome.as_str() {
            "agrees" => println!("  {}  agrees at entry {}", w.member_id, w.sequence),
            "none" => println!("  {}  holds none", w.member_id),
            other => println!("  {}  {other}: {}", w.member_id, w.reason),
        }
    }
}

/// `  role casusregisseur, user u-17 (for u-3)`, or nothing.
fn actor_text(actor: &Option<pb::Actor>) -> String {
    let Some(a) = actor else {
        return String::new();
    };
    let mut text = format!("  role {}, user {}", or_none(&a.role), a.user);
    if !a.on_behalf_of.is_empty() {
        text.push_str(&format!(" (for {})", a.on_behalf_of));
    }
    text
}

fn or_none(text: &str) -> &str {
    if text.is_empty() { "(none)" } else { text }
}

/// `EMERGENCY (reason) ` before a line, or nothing.
fn emergency_text(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!("EMERGENCY ({reason})  ")
    }
}

fn print_entries(title: &str, entries: &[pb::AuditEntry], to: &str) {
    println!("{title}:");
    if entries.is_empty() {
        println!("  none");
    }
    for e in entries {
        println!(
            "  {}{}  {to} {}  purpose {}  {}  given: {}{}  request {}",
            emergency_text(&e.emergency_reason),
            handbereik_keys::time::rfc3339(e.time_ms / 1000),
            e.peer,
            e.purpose,
            e.action,
            e.categories_given.join(", "),
            actor_text(&e.actor),
            e.request_id
        );
    }
}

/// Runs `audit report --network`.
async fn network_report(args: &ReportArgs) -> Result<()> {
    let mut clients = args.api.connect().await?;
    let r = clients
        .audit
        .network_report(pb::NetworkReportRequest {
            subject: args.subject.to_proto(),
            purpose: args.purpose.clone().unwrap_or_default(),
            actor: args.actor.to_proto(),
            deadline_ms: args.deadline_ms,
            regions: args.regions.clone(),
        })
        .await
        .map_err(explain)?
        .into_inner();
    println!("subject {}  request {}", r.subject, r.request_id);
    println!("Disclosures across the network (emergencies first):");
    if r.disclosures.is_empty() {
        println!("  none");
    }
    for d in &r.disclosures {
        println!(
            "  {}{}  {} ({}) looked at {} of {} ({})  purpose {}  {}{}  reported by {}",
            emergency_text(&d.emergency_reason),
            handbereik_keys::time::rfc3339(d.time_ms / 1000),
            d.asker_member_id,
            or_none(&d.asker_name),
            d.categories.join(", "),
            d.source_member_id,
            or_none(&d.source_name),
            d.purpose,
            d.action,
            actor_text(&d.actor),
            d.reported_by.join(", ")
        );
    }
    println!("Partners:");
    for p in &r.partners {
        let outcome = match pb::ReportOutcome::try_from(p.outcome) {
            Ok(pb::ReportOutcome::ReportAnswered) => "answered",
            Ok(pb::ReportOutcome::ReportRefused) => "REFUSED",
            Ok(pb::ReportOutcome::ReportNotAnswered) => "NOT ANSWERED",
            _ => "?",
        };
        let reason = if p.reason.is_empty() {
            String::new()
        } else {
            format!("  ({})", p.reason)
        };
        println!(
            "  {}  {}  {outcome}  {} disclosed, {} obtained, {} refused{}{reason}",
            p.member_id,
            or_none(&p.name),
            p.disclosures,
            p.obtained,
            p.refused,
            if p.truncated {
                " (truncated: newest only)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// Runs `audit report`.
pub async fn report(args: &ReportArgs) -> Result<()> {
    if args.network {
        return network_report(args).await;
    }
    let mut clients = args.api.connect().await?;
    let r = clients
        .audit
        .subject_report(pb::SubjectReportRequest {
            subject: args.subject.to_proto(),
        })
        .await
        .map_err(explain)?
        .into_inner();
    println!("subject {}", r.subject);
    print_entries("Disclosed by this partner", &r.disclosures, "to");
    print_entries("Obtained from other partners", &r.obtained, "from");
    println!("Refused or unanswered: {}", r.refused);
    if r.emergencies > 0 {
        println!("Emergencies among them: {}", r.emergencies);
    }
    Ok(())
}
