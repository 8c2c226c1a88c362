//! `handbereik register`, `handbereik registry list` and `handbereik erase`:
//! the source registration through the local API.

use anyhow::{Context, Result};
use clap::Args;
use handbereik_proto::v1 as pb;

use super::client::{ApiArgs, explain};
use super::subject::{MaybeSubjectArgs, SubjectArgs};

/// Arguments of `handbereik register`.
#[derive(Args, Debug, Clone)]
pub struct RegisterArgs {
    #[allow(missing_docs)]
    #[command(flatten)]
    pub api: ApiArgs,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// A category of this node's catalogue ([registry.categories]).
    #[arg(long)]
    pub category: String,
    /// The legal basis (grondslag).
    #[arg(long)]
    pub legal_basis: String,
    /// How many days the entry may be kept.
    #[arg(long, default_value_t = 365)]
    pub retain_days: u64,
    /// The content (JSON by default).
    #[arg(long, default_value = "{}")]
    pub content: String,
    /// Media type of the content.
    #[arg(long, default_value = "application/json")]
    pub content_type: String,
}

/// Arguments of `handbereik registry list`.
#[derive(Args, Debug, Clone)]
pub struct ListArgs {
    #[allow(missing_docs)]
    #[command(flatten)]
    pub api: ApiArgs,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub subject: MaybeSubjectArgs,
}

/// Arguments of `handbereik erase`.
#[derive(Args, Debug, Clone)]
pub struct EraseArgs {
    #[allow(missing_docs)]
    #[command(flatten)]
    pub api: ApiArgs,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub subject: SubjectArgs,
}

fn print_entry(e: &pb::Entry) {
    println!(
        "{}  {} ({}, {})  basis: {}  kept until {}",
        e.subject,
        e.category,
        e.kind,
        e.classification,
        e.legal_basis,
        handbereik_keys::time::rfc3339(e.retain_until)
    );
}

/// Registers one entry.
pub async fn register(args: &RegisterArgs) -> Result<()> {
    let mut clients = args.api.connect().await?;
    let retain_until = args
        .retain_days
        .checked_mul(86_400)
        .and_then(|secs| handbereik_keys::time::now().checked_add(secs))
        .context("--retain-days is too large")?;
    let r = clients
        .registry
        .register(pb::RegisterRequest {
            subject: args.subject.to_proto(),
            entry: Some(pb::EntryInput {
                category: args.category.clone(),
                legal_basis: args.legal_basis.clone(),
                retain_until,
                content_type: args.content_type.clone(),
                content: args.content.clone().into_bytes(),
            }),
        })
        .await
        .map_err(explain)?
        .into_inner();
    print!("registered  ");
    print_entry(&r.entry.context("the node answered without the entry")?);
    Ok(())
}

/// Lists the entries of a subject, or all.
pub async fn list(args: &ListArgs) -> Result<()> {
    let mut clients = args.api.connect().await?;
    let mut token = String::new();
    let mut count = 0;
    loop {
        let r = clients
            .registry
            .list(pb::ListRequest {
                subject: args.subject.to_proto(),
                page_token: token,
                limit: 0,
            })
            .await
            .map_err(explain)?
            .into_inner();
        count += r.entries.len();
        r.entries.iter().for_each(print_entry);
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    println!("{count} entries");
    Ok(())
}

/// Erases a subject.
pub async fn erase(args: &EraseArgs) -> Result<()> {
    let mut clients = args.api.connect().await?;
    let r = clients
        .registry
        .erase(pb::EraseRequest {
            subject: args.subject.to_proto(),
        })
        .await
        .map_err(explain)?
        .into_inner();
    println!(
        "erased subject {}: {} entries removed (the audit log keeps its records)",
        r.subject, r.removed
    );
    Ok(())
}
