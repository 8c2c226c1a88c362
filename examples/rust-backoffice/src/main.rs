//! An example back-office integration of handbereik, in Rust.
//!
//! What a partner's case-management system does through its own node's
//! local API: register what it holds about a subject, announce it to the
//! network, read its subscription, find out which other sources know a
//! subject and inspect one of them. Run it against `handbereik dev`:
//!
//! ```sh
//! cargo run -p handbereik-example-backoffice -- --config dev-net/gemeente/handbereik.toml
//! ```
//!
//! Every step prints one or a few lines; any refusal ends the program with
//! a message that says what to do, and exit code 1.

mod connect;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Parser;
use handbereik_proto::v1 as pb;

use connect::{Api, connect, explain};

/// Registers, publishes, subscribes, locates and inspects through a node.
#[derive(Parser, Debug)]
#[command(
    name = "handbereik-example-backoffice",
    after_help = "Example:\n  handbereik-example-backoffice --config dev-net/gemeente/handbereik.toml \\\n    --member 00000001002345678000"
)]
struct Args {
    /// The node's handbereik.toml (for the local API address and token file).
    #[arg(long)]
    config: PathBuf,
    /// The member to inspect (default: Veilig Thuis in the dev network).
    #[arg(long, default_value = "00000001002345678000")]
    member: String,
    /// The BSN this back office registers (passes the 11-test).
    #[arg(long, default_value = "111111110")]
    bsn: String,
    /// The BSN to locate and inspect (registered by the dev network's samples).
    #[arg(long, default_value = "111222333")]
    ask_bsn: String,
    /// The purpose (doelbinding) of every request.
    #[arg(long, default_value = "jeugdbescherming")]
    purpose: String,
    /// The acting professional: this back office's pseudonymous user id.
    #[arg(long, default_value = "example-user-1")]
    user: String,
    /// Their role, from the network's role vocabulary in the member list.
    #[arg(long, default_value = "casusregisseur")]
    role: String,
}

/// Who acts: every request that reaches another member names the
/// professional and their role; both audit logs record it.
fn actor(args: &Args) -> Option<pb::Actor> {
    Some(pb::Actor {
        user: args.user.clone(),
        role: args.role.clone(),
        on_behalf_of: String::new(),
    })
}

fn bsn(number: &str) -> Option<pb::Subject> {
    Some(pb::Subject {
        kind: Some(pb::subject::Kind::Bsn(number.to_string())),
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut api = connect(&args.config).await?;
    println!("connected to the local API at {}", api.address);
    let pseudonym = register(&mut api, &args).await?;
    publish(&mut api, &args, &pseudonym).await?;
    read_subscription(&mut api).await?;
    locate(&mut api, &args).await?;
    inspect(&mut api, &args).await?;
    report(&mut api, &args).await?;
    Ok(())
}

/// Registers a report of concern, or updates it when this runs again.
async fn register(api: &mut Api, args: &Args) -> Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let entry = pb::EntryInput {
        category: "melding".into(),
        legal_basis: "Jeugdwet art. 2.3".into(),
        retain_until: now + 365 * 86_400,
        content_type: "application/json".into(),
        content: br#"{"ontvangen":"2026-11-22","zorg":"signalen uit de wijk"}"#.to_vec(),
    };
    let registered = api
        .registry
        .register(pb::RegisterRequest {
            subject: bsn(&args.bsn),
            entry: Some(entry.clone()),
        })
        .await;
    let (verb, response) = match registered {
        Ok(response) => ("registered", response),
        Err(status) if status.code() == tonic::Code::AlreadyExists => {
            let response = api
                .registry
                .update(pb::UpdateRequest {
                    subject: bsn(&args.bsn),
                    entry: Some(entry),
                })
                .await
                .map_err(explain)?;
            ("updated", response)
        }
        Err(status) => return Err(explain(status)).context("registering"),
    };
    let stored = response
        .into_inner()
        .entry
        .context("the node answered without the entry")?;
    // The node answers with the network pseudonym; the BSN stays here.
    println!(
        "{verb} {} for subject {} (retain_until {})",
        stored.category, stored.subject, stored.retain_until
    );
    Ok(stored.subject)
}

/// Announces the report to the members admitted for the purpose.
async fn publish(api: &mut Api, args: &Args, pseudonym: &str) -> Result<()> {
    let published = api
        .notifications
        .publish(pb::PublishRequest {
            r#type: "nl.samenonderhandbereik.melding.ontvangen".into(),
            purpose: args.purpose.clone(),
            subject: pseudonym.to_string(),
            dataref: "melding".into(),
            datacontenttype: "application/json".into(),
            data: br#"{"urgentie":"normaal"}"#.to_vec(),
        })
        .await
        .map_err(explain)
        .context("publishing")?
        .into_inner()
        .notification
        .context("the node answered without the notification")?;
    println!(
        "published {} sequence {} id {}",
        published.r#type, published.sequence, published.id
    );
    Ok(())
}

/// Reads what arrived for this back office's durable subscription for a
/// few seconds, acknowledging each after handling it (at-least-once).
async fn read_subscription(api: &mut Api) -> Result<()> {
    const NAME: &str = "rust-example";
    let mut stream = api
        .notifications
        .subscribe(pb::SubscribeRequest {
            name: NAME.into(),
            ..Default::default()
        })
        .await
        .map_err(explain)
        .context("subscribing")?
        .into_inner();
    let mut handled = 0;
    // Subscribe stays open for live deliveries; an example stops after a while.
    let window = tokio::time::sleep(Duration::from_secs(3));
    tokio::pin!(window);
    loop {
        tokio::select! {
            _ = &mut window => break,
            message = stream.message() => {
                let Some(delivery) = message.map_err(explain)? else { break };
                if let Some(n) = &delivery.notification {
                    println!(
                        "received {} from {} about {} (position {})",
                        n.r#type, n.source_member_id, n.subject, delivery.position
                    );
                }
                api.notifications
                    .ack(pb::AckRequest { name: NAME.into(), position: delivery.position })
                    .await
                    .map_err(explain)?;
                handled += 1;
            }
        }
    }
    println!("subscription {NAME}: {handled} notifications handled");
    Ok(())
}

/// Asks every source admitted for the purpose whether it knows the subject.
async fn locate(api: &mut Api, args: &Args) -> Result<()> {
    let located = api
        .inspections
        .locate(pb::LocateRequest {
            subject: bsn(&args.ask_bsn),
            purpose: args.purpose.clone(),
            deadline_ms: 2000,
            regions: Vec::new(),
            actor: actor(args),
        })
        .await
        .map_err(explain)
        .context("locating")?
        .into_inner();
    for a in &located.answers {
        let answer = pb::Answer::try_from(a.answer).unwrap_or(pb::Answer::Unspecified);
        println!(
            "locate: {} ({}) {}",
            a.name,
            a.member_id,
            answer.as_str_name()
        );
    }
    Ok(())
}

/// What this node's audit log holds about the subject: every request above
/// was logged before its answer was used.
async fn report(api: &mut Api, args: &Args) -> Result<()> {
    let report = api
        .audit
        .subject_report(pb::SubjectReportRequest {
            subject: bsn(&args.ask_bsn),
        })
        .await
        .map_err(explain)
        .context("the audit report")?
        .into_inner();
    for e in &report.obtained {
        println!(
            "audit: obtained {} from {} for {}",
            e.categories_given.join(", "),
            e.peer,
            e.purpose
        );
    }
    println!(
        "audit: {} disclosures, {} obtained, {} refused or unanswered",
        report.disclosures.len(),
        report.obtained.len(),
        report.refused
    );
    Ok(())
}

/// Asks one member for two categories: the policy there decides each.
async fn inspect(api: &mut Api, args: &Args) -> Result<()> {
    let answer = api
        .inspections
        .inspect(pb::InspectRequest {
            member_id: args.member.clone(),
            subject: bsn(&args.ask_bsn),
            purpose: args.purpose.clone(),
            categories: vec!["melding".into(), "veiligheidsplan".into()],
            deadline_ms: 2000,
            actor: actor(args),
            emergency_reason: String::new(),
        })
        .await
        .map_err(explain)
        .context("inspecting")?
        .into_inner();
    for c in &answer.categories {
        let decision =
            pb::CategoryDecision::try_from(c.decision).unwrap_or(pb::CategoryDecision::Unspecified);
        println!(
            "inspect {}: {} by {}",
            c.category,
            decision.as_str_name(),
            c.policies.join(", ")
        );
        for r in &c.records {
            println!(
                "  {} ({}): {}",
                r.category,
                r.legal_basis,
                String::from_utf8_lossy(&r.content)
            );
        }
    }
    if let Some(p) = &answer.provenance {
        println!(
            "answer signed by {} ({} bytes kept as proof)",
            p.source_member_id,
            p.signed_answer.len()
        );
    }
    Ok(())
}
