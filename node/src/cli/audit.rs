//! `handbereik audit verify` and `handbereik audit report`.
//!
//! `verify` asks the running node (which also compares its chain with the
//! copies of its checkpoints that other members hold as witnesses), or with
//! `--offline` opens a stopped node's data directory itself and recomputes
//! the local chain there, and says that witnesses were not asked.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use handbereik_proto::v1 as pb;

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
    /// Every disclosure about one subject: who asked, when, for what.
    ///
    /// Example: handbereik audit report --bsn 111222333
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

fn print_entries(title: &str, entries: &[pb::AuditEntry], to: &str) {
    println!("{title}:");
    if entries.is_empty() {
        println!("  none");
    }
    for e in entries {
        println!(
            "  {}  {to} {}  purpose {}  {}  given: {}  request {}",
            handbereik_keys::time::rfc3339(e.time_ms / 1000),
            e.peer,
            e.purpose,
            e.action,
            e.categories_given.join(", "),
            e.request_id
        );
    }
}

/// Runs `audit report`.
pub async fn report(args: &ReportArgs) -> Result<()> {
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
    Ok(())
}
