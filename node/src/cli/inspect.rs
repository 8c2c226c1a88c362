//! `handbereik locate` and `handbereik inspect`: inspections at other
//! members through this node's local API.

use anyhow::{Context, Result};
use clap::Args;
use handbereik_proto::v1 as pb;

use super::actor::ActorArgs;
use super::client::{ApiArgs, explain};
use super::subject::SubjectArgs;

/// Arguments of `handbereik locate`.
#[derive(Args, Debug, Clone)]
pub struct LocateArgs {
    #[allow(missing_docs)]
    #[command(flatten)]
    pub api: ApiArgs,
    /// The purpose (doelbinding) this node asks for.
    #[arg(long)]
    pub purpose: String,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// How long to wait for the sources, in milliseconds (default 2000).
    #[arg(long, default_value_t = 0)]
    pub deadline_ms: u32,
    /// Ask only sources serving this region (a code such as GM0363; repeatable),
    /// and national ones that name no region.
    #[arg(long = "region", value_name = "CODE")]
    pub regions: Vec<String>,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub actor: ActorArgs,
}

/// Arguments of `handbereik inspect`.
#[derive(Args, Debug, Clone)]
pub struct InspectArgs {
    #[allow(missing_docs)]
    #[command(flatten)]
    pub api: ApiArgs,
    /// The member to ask (its OIN).
    #[arg(long)]
    pub member: String,
    /// The purpose (doelbinding) this node asks for.
    #[arg(long)]
    pub purpose: String,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// A category to inspect (repeatable).
    #[arg(long = "category")]
    pub categories: Vec<String>,
    /// Ask only for the that-information (Known) instead.
    #[arg(long, conflicts_with = "categories")]
    pub known: bool,
    /// How long to wait, in milliseconds (default 2000).
    #[arg(long, default_value_t = 0)]
    pub deadline_ms: u32,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub actor: ActorArgs,
    /// Break-glass (noodknop): inspect as an emergency, with this reason. The
    /// source's policy decides; both audit logs flag it.
    #[arg(long, value_name = "REASON", conflicts_with = "known")]
    pub emergency: Option<String>,
}

/// `  (reason)` after an answer line, or nothing when there is no reason.
fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!("  ({reason})")
    }
}

fn answer_text(code: i32) -> &'static str {
    match pb::Answer::try_from(code) {
        Ok(pb::Answer::Known) => "known",
        Ok(pb::Answer::NotKnown) => "not known",
        Ok(pb::Answer::Denied) => "denied",
        Ok(pb::Answer::Unreachable) => "unreachable",
        _ => "answered",
    }
}

fn print_record(r: &pb::Record) {
    let content = match std::str::from_utf8(&r.content) {
        Ok(text) => text.to_string(),
        Err(_) => format!("<{} bytes of {}>", r.content.len(), r.content_type),
    };
    println!(
        "  {} ({}, {}, basis: {}, kept until {}): {content}",
        r.category,
        r.kind,
        r.classification,
        r.legal_basis,
        handbereik_keys::time::rfc3339(r.retain_until)
    );
}

fn print_provenance(p: &Option<pb::Provenance>) {
    if let Some(p) = p {
        let short: String = p.source_key.chars().take(16).collect();
        println!(
            "signed by {} key {short}… ({} bytes kept as proof)",
            p.source_member_id,
            p.signed_answer.len()
        );
    }
}

/// Asks every bronhouder admitted for the purpose.
pub async fn locate(args: &LocateArgs) -> Result<()> {
    let mut clients = args.api.connect().await?;
    let r = clients
        .inspections
        .locate(pb::LocateRequest {
            subject: args.subject.to_proto(),
            purpose: args.purpose.clone(),
            deadline_ms: args.deadline_ms,
            regions: args.regions.clone(),
            actor: args.actor.to_proto(),
        })
        .await
        .map_err(explain)?
        .into_inner();
    println!("subject {}  request {}", r.subject, r.request_id);
    if r.answers.is_empty() {
        println!("no other bronhouder is admitted for {}", args.purpose);
    }
    for a in &r.answers {
        println!(
            "{}  {}  {}  {} ms{}",
            a.member_id,
            a.name,
            answer_text(a.answer),
            a.elapsed_ms,
            reason_suffix(&a.reason)
        );
    }
    Ok(())
}

/// Known or Inspect at one member.
pub async fn inspect(args: &InspectArgs) -> Result<()> {
    let mut clients = args.api.connect().await?;
    if args.known {
        let r = clients
            .inspections
            .known(pb::KnownRequest {
                member_id: args.member.clone(),
                subject: args.subject.to_proto(),
                purpose: args.purpose.clone(),
                deadline_ms: args.deadline_ms,
                actor: args.actor.to_proto(),
            })
            .await
            .map_err(explain)?
            .into_inner();
        let a = r.answer.context("the node answered without an answer")?;
        println!(
            "{}  {}  policies: {}{}",
            a.member_id,
            answer_text(a.answer),
            a.policies.join(", "),
            reason_suffix(&a.reason)
        );
        a.records.iter().for_each(print_record);
        print_provenance(&a.provenance);
        if a.answer == pb::Answer::Denied as i32 {
            refusal_hint(&a.member_id, "Known", &args.purpose);
        }
        return Ok(());
    }
    if args.categories.is_empty() {
        anyhow::bail!("name at least one --category to inspect, or use --known");
    }
    let r = clients
        .inspections
        .inspect(pb::InspectRequest {
            member_id: args.member.clone(),
            subject: args.subject.to_proto(),
            purpose: args.purpose.clone(),
            categories: args.categories.clone(),
            deadline_ms: args.deadline_ms,
            actor: args.actor.to_proto(),
            emergency_reason: args.emergency.clone().unwrap_or_default(),
        })
        .await
        .map_err(explain)?
        .into_inner();
    if r.categories.is_empty() {
        println!(
            "{}  {}  ({})",
            r.member_id,
            answer_text(r.reachability),
            r.reason
        );
        return Ok(());
    }
    for c in &r.categories {
        let decision = match pb::CategoryDecision::try_from(c.decision) {
            Ok(pb::CategoryDecision::Allowed) => "allowed",
            Ok(pb::CategoryDecision::Refused) => "refused",
            Ok(pb::CategoryDecision::UnknownCategory) => "unknown category",
            _ => "?",
        };
        println!(
            "{}  {decision}  policies: {}",
            c.category,
            if c.policies.is_empty() && decision == "refused" {
                "none (default deny)".to_string()
            } else if c.policies.is_empty() {
                "-".to_string()
            } else {
                c.policies.join(", ")
            }
        );
        c.records.iter().for_each(print_record);
    }
    print_provenance(&r.provenance);
    let refused: Vec<&str> = r
        .categories
        .iter()
        .filter(|c| c.decision == pb::CategoryDecision::Refused as i32)
        .map(|c| c.category.as_str())
        .collect();
    if !refused.is_empty() {
        refusal_hint(&r.member_id, &refused.join(", "), &args.purpose);
    }
    let unknown: Vec<&str> = r
        .categories
        .iter()
        .filter(|c| c.decision == pb::CategoryDecision::UnknownCategory as i32)
        .map(|c| c.category.as_str())
        .collect();
    if !unknown.is_empty() {
        eprintln!(
            "note: {} is not in the category catalogue of {}; ask its partner which categories it holds",
            unknown.join(", "),
            r.member_id
        );
    }
    Ok(())
}

/// Says, on stderr, what a policy refusal means and what to do about it.
fn refusal_hint(member: &str, what: &str, purpose: &str) {
    eprintln!(
        "note: the policy of {member} does not allow {what} for purpose {purpose}; the policies \
         named above decided it, and the refusal is in the audit logs of both sides. Ask only for \
         what this purpose needs; if you need it for your task, contact that partner about its policy."
    );
}
