//! The system benchmark: throughput, latency, start-up, memory and list
//! figures of real nodes on loopback, each next to its target and, where
//! one applies, a baseline measured in the same run on the same machine.
//!
//! Run it (release build, about ten minutes):
//!
//!     cargo run --release --locked -p handbereik-tests --bin system-benchmark -- \
//!         --json bench.json --plot docs/benchmark-latency.svg
//!
//! Phases, in order (name them to run only some):
//!
//! - `baseline`: single-core `verify_strict`, and the whole per-event check;
//! - `ingest`: notifications checked, deduplicated and durably stored per
//!   second at one node by gossip, then by sync, and the catch-up time;
//! - `latency`: publish (local API) → delivered (a subscriber's stream) at
//!   every other node of a 10-node network;
//! - `cut-off`: a list that drops a member → its connections closed;
//! - `inspection`: Inspect at one source from 64 mutual-TLS clients (member
//!   check, Cedar policy, durable audit entry, signed answer), beside a bare
//!   tonic echo over the same TLS listener;
//! - `flood`: one member floods a source with Inspect while another asks
//!   steadily: the steady member's p99 beside its p99 alone;
//! - `locate`: Locate through the local API over a 10-node network;
//! - `startup`: start → serving with a full store;
//! - `memory`: idle resident memory of two connected `handbereik run`s;
//! - `list`: verify and install a 20,000-member list.
//!
//! Every wait is bounded and every phase has a time limit: a phase that
//! fails or runs out of time is printed as such and the run goes on.
//! `--quick` runs every phase at small sizes, to check in CI that the
//! benchmark completes (its figures are not comparable); it exits non-zero
//! if a phase did not complete. Without `--quick` the exit status is zero
//! whatever the figures: nothing here asserts a target, the targets are
//! printed beside the figures for a person to read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod flood;
mod inspection;
mod list;
mod memory;
mod notifications;
mod plot;
mod report;
mod startup;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

use report::{Report, Target, phase};

const PHASES: [&str; 10] = [
    "baseline",
    "ingest",
    "latency",
    "cut-off",
    "inspection",
    "flood",
    "locate",
    "startup",
    "memory",
    "list",
];

/// The handbereik system benchmark.
#[derive(Parser, Debug)]
#[command(
    about = "Measures real handbereik nodes on loopback and prints each figure beside its target and baseline",
    after_help = "Examples:\n  system-benchmark --json bench.json --plot docs/benchmark-latency.svg\n  system-benchmark inspection locate\n  system-benchmark --quick --json /tmp/bench.json"
)]
struct Args {
    /// Small sizes: checks that every phase completes (figures not comparable).
    #[arg(long)]
    quick: bool,
    /// Write every figure and every phase's outcome to this file as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Draw the latency distributions to this SVG file.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Phases to run (default: all): baseline, ingest, latency, cut-off,
    /// inspection, flood, locate, startup, memory, list.
    #[arg(value_name = "PHASE", value_parser = clap::builder::PossibleValuesParser::new(PHASES))]
    phases: Vec<String>,
}

/// Sizes of one run.
struct Sizes {
    signatures: usize,
    checks: u64,
    ingest: u64,
    latency_nodes: usize,
    latency_events: usize,
    inspect_span: Duration,
    subjects: u32,
    locate_nodes: usize,
    locate_calls: usize,
    stored_events: u64,
    audit_entries: u64,
    idle: Duration,
    list_members: usize,
    limit: Duration,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        if quick {
            Sizes {
                signatures: 2_000,
                checks: 2_000,
                ingest: 3_000,
                latency_nodes: 4,
                latency_events: 20,
                inspect_span: Duration::from_secs(2),
                subjects: 50,
                locate_nodes: 4,
                locate_calls: 20,
                stored_events: 10_000,
                audit_entries: 2_000,
                idle: Duration::from_secs(3),
                list_members: 500,
                limit: Duration::from_secs(300),
            }
        } else {
            Sizes {
                signatures: 20_000,
                checks: 20_000,
                ingest: 100_000,
                latency_nodes: 10,
                latency_events: 200,
                inspect_span: Duration::from_secs(8),
                subjects: 1_000,
                locate_nodes: 10,
                locate_calls: 300,
                stored_events: 1_000_000,
                audit_entries: 100_000,
                idle: Duration::from_secs(15),
                list_members: 20_000,
                limit: Duration::from_secs(900),
            }
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut report = Report {
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        quick: args.quick,
        profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .into(),
        ..Report::default()
    };
    println!("handbereik system benchmark");
    println!(
        "machine: {} cores; {} build{}",
        report.cores,
        report.profile,
        if args.quick {
            "; --quick (small sizes, figures not comparable)"
        } else {
            ""
        }
    );
    let wanted = |name: &str| args.phases.is_empty() || args.phases.iter().any(|p| p == name);
    let s = Sizes::new(args.quick);
    runtime.block_on(async {
        if wanted("baseline") {
            phase(&mut report, "baseline", s.limit, async |r: &mut Report| {
                notifications::verify_baseline(r, s.signatures)?;
                notifications::check_single_core(r, s.checks).await
            })
            .await;
        }
        if wanted("ingest") {
            phase(&mut report, "ingest", s.limit, async |r: &mut Report| {
                if r.value("verify_strict.rate").is_none() {
                    notifications::verify_baseline(r, s.signatures)?;
                }
                notifications::ingest(r, s.ingest).await
            })
            .await;
        }
        if wanted("latency") {
            phase(&mut report, "latency", s.limit, async |r: &mut Report| {
                notifications::latency(r, s.latency_nodes, s.latency_events).await
            })
            .await;
        }
        if wanted("cut-off") {
            phase(&mut report, "cut-off", s.limit, async |r: &mut Report| {
                notifications::cut_off(r).await
            })
            .await;
        }
        if wanted("inspection") {
            phase(&mut report, "inspection", s.limit, async |r: &mut Report| {
                inspection_figures(r, &s).await
            })
            .await;
        }
        if wanted("flood") {
            phase(&mut report, "flood", s.limit, async |r: &mut Report| {
                flood::flood(r, s.inspect_span, s.subjects).await
            })
            .await;
        }
        if wanted("locate") {
            phase(&mut report, "locate", s.limit, async |r: &mut Report| {
                let (p50, p99, n) = inspection::locate_latency(s.locate_nodes, s.locate_calls).await?;
                let what = format!(
                    "Locate via the local API over {} nodes ({} sources asked), {n} sequential calls",
                    s.locate_nodes,
                    s.locate_nodes - 1
                );
                r.plain("locate", "locate.p50_ms", &what, p50 * 1e3, "ms");
                r.against("locate", "locate.p99_ms", &what, p99 * 1e3, "ms", Target::AtMost(30.0));
                Ok(())
            })
            .await;
        }
        if wanted("startup") {
            phase(&mut report, "startup", s.limit, async |r: &mut Report| {
                startup::startup(r, s.stored_events, s.audit_entries).await
            })
            .await;
        }
        if wanted("memory") {
            phase(&mut report, "memory", s.limit, async |r: &mut Report| {
                memory::idle_memory(r, s.idle).await
            })
            .await;
        }
        if wanted("list") {
            phase(&mut report, "list", s.limit, async |r: &mut Report| {
                let members = s.list_members;
                tokio::task::spawn_blocking(move || {
                    let mut part = Report::default();
                    list::list_figures(&mut part, members).map(|()| part)
                })
                .await?
                .map(|part| r.figures.extend(part.figures))
            })
            .await;
        }
    });
    report.print_summary();
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
        println!("figures written to {}", path.display());
    }
    if let Some(path) = &args.plot {
        let caption = format!(
            "handbereik latency distributions ({} cores, {} build{})",
            report.cores,
            report.profile,
            if args.quick { ", --quick" } else { "" }
        );
        plot::latency_svg(path, &report.samples, &caption)
            .with_context(|| format!("drawing {}", path.display()))?;
        println!("latency plot drawn to {}", path.display());
    }
    // Shut the phases' leftovers down without waiting on them.
    runtime.shutdown_timeout(Duration::from_secs(5));
    let incomplete: Vec<_> = report.phases.iter().filter(|p| p.status != "ok").collect();
    if args.quick && !incomplete.is_empty() {
        anyhow::bail!(
            "{} of {} phases did not complete: {}",
            incomplete.len(),
            report.phases.len(),
            incomplete
                .iter()
                .map(|p| format!("{} ({})", p.name, p.status))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

async fn inspection_figures(r: &mut Report, s: &Sizes) -> Result<()> {
    let echo = inspection::echo_throughput(s.inspect_span).await?;
    let clients = inspection::CLIENTS;
    r.plain(
        "inspection",
        "echo.rate",
        &format!("bare tonic echo over the same mutual TLS, {clients} clients (p50 {:.2} ms, p99 {:.2} ms)", echo.p50 * 1e3, echo.p99 * 1e3),
        echo.rate,
        "/s",
    );
    let inspect = inspection::inspect_throughput(s.inspect_span, s.subjects).await?;
    r.relative(
        "inspection",
        "inspect.rate",
        &format!("Inspect, {clients} mutual-TLS clients: policy + durable audit + signed answer ({} errors)", inspect.errors),
        inspect.rate,
        "/s",
        Some(Target::AtLeast(10_000.0)),
        "echo.rate",
        Some(Target::AtLeast(0.5)),
    );
    r.plain(
        "inspection",
        "inspect.p50_ms",
        "Inspect p50",
        inspect.p50 * 1e3,
        "ms",
    );
    r.against(
        "inspection",
        "inspect.p99_ms",
        "Inspect p99",
        inspect.p99 * 1e3,
        "ms",
        Target::AtMost(10.0),
    );
    r.samples.inspect = inspect.samples;
    r.samples.echo = echo.samples;
    Ok(())
}
