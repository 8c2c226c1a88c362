//! `kill -9` during a burst of inspections.
//!
//! Several back-office clients inspect at a source through the asking node
//! at once; cycle after cycle either the source or the asking node is killed
//! with SIGKILL in the middle of it and started again. Afterwards
//! `handbereik audit verify --offline` passes on both data directories, and
//! every answer a client received has its audit entry, by request id: an
//! answer from the source at the serving node ("served") and at the asking
//! node ("asked"); an unreachable answer at the asking node.
//!
//! `HANDBEREIK_FAULT_SCALE=N` runs N times the cycles.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use handbereik_proto::v1 as pb;
use handbereik_tests::net::{entry, pseudonym};
use handbereik_tests::proc::cli;
use handbereik_tests::procnet::{
    Api, CALL, CLI, PURPOSE, PartnerSpec, ProcNet, Tuning, scale, within,
};

/// Clients inspecting at once.
const CLIENTS: usize = 4;
/// Cycles at scale 1.
const CYCLES: u64 = 4;
/// Subjects registered at the source.
const SUBJECTS: usize = 8;

const SOURCE: usize = 0;
const ASKER: usize = 1;

/// One answer a client received.
struct Received {
    request_id: String,
    /// The source answered (signed); otherwise it was unreachable.
    answered: bool,
}

fn subject(n: usize) -> String {
    format!("{:064x}", n + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_a_burst_of_inspections_every_answer_is_audited() -> Result<()> {
    let specs = [
        PartnerSpec::loopback("source"),
        PartnerSpec::loopback("asker"),
    ];
    let mut net = tokio::task::block_in_place(|| ProcNet::create(&specs, &Tuning::default()))?;
    let result = run(&mut net).await;
    net.explain(result)
}

/// Every audit entry of a node, page by page.
async fn entries(api: &Api) -> Result<Vec<pb::AuditEntry>> {
    let mut out: Vec<pb::AuditEntry> = Vec::new();
    loop {
        let after = out.last().map_or(0, |e| e.sequence);
        let page = within(
            CALL,
            "Audit.Query",
            api.audit().query(pb::AuditQueryRequest {
                after_sequence: after,
                limit: 1000,
                ..Default::default()
            }),
        )
        .await??
        .into_inner()
        .entries;
        if page.is_empty() {
            return Ok(out);
        }
        out.extend(page);
    }
}

async fn run(net: &mut ProcNet) -> Result<()> {
    tokio::task::block_in_place(|| net.start_all())?;
    net.wait_connected(&[SOURCE, ASKER], Duration::from_secs(60))
        .await?;
    let source_id = net.partners[SOURCE].member_id.clone();
    let registry = net.partners[SOURCE].api().await?;
    for n in 0..SUBJECTS {
        within(
            CALL,
            "Register",
            registry.registry().register(pb::RegisterRequest {
                subject: pseudonym(&subject(n)),
                entry: entry("melding", "{\"urgentie\":\"hoog\"}"),
            }),
        )
        .await??;
    }

    let cycles = CYCLES * scale();
    let mut received: Vec<Received> = Vec::new();
    let mut failed_calls = 0u64;
    for cycle in 0..cycles {
        let asker = net.partners[ASKER].api().await?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let asker = asker.clone();
            let stop = stop.clone();
            let source_id = source_id.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                let mut failed = 0u64;
                let mut n = c;
                while !stop.load(Ordering::Relaxed) {
                    n += CLIENTS;
                    let request = pb::InspectRequest {
                        actor: None,
                        emergency_reason: String::new(),
                        member_id: source_id.clone(),
                        subject: pseudonym(&subject(n % SUBJECTS)),
                        purpose: PURPOSE.into(),
                        categories: vec!["melding".into()],
                        deadline_ms: 3000,
                    };
                    match within(CALL, "Inspect", asker.inspections().inspect(request)).await? {
                        Ok(answer) => {
                            let answer = answer.into_inner();
                            got.push(Received {
                                answered: answer.provenance.is_some(),
                                request_id: answer.request_id,
                            });
                        }
                        // No answer: the asking node is down or starting.
                        Err(_) => {
                            failed += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                Ok::<_, anyhow::Error>((got, failed))
            }));
        }
        let run_for = Duration::from_millis(400 + (cycle * 173) % 600);
        tokio::time::sleep(run_for).await;
        let victim = if cycle % 2 == 0 { SOURCE } else { ASKER };
        tokio::task::block_in_place(|| net.partners[victim].kill9())?;
        // Clients keep asking a little while one side is down.
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            let (got, failed) = tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .context("an inspecting client did not finish within 60 s")???;
            received.extend(got);
            failed_calls += failed;
        }
        tokio::task::block_in_place(|| net.partners[victim].start())?;
        net.wait_connected(&[SOURCE, ASKER], Duration::from_secs(60))
            .await?;
    }

    // Both stopped: the operator's offline check of each chain.
    for p in &mut net.partners {
        let (status, log) = tokio::task::block_in_place(|| p.terminate(Duration::from_secs(60)))?;
        ensure!(
            status.success(),
            "{} did not stop cleanly: {status}\n{log}",
            p.name
        );
    }
    let mut verified = Vec::new();
    for p in &net.partners {
        let config = p.config().to_string_lossy().into_owned();
        let out = tokio::task::block_in_place(|| {
            cli(&["audit", "verify", "--offline", "--config", &config], CLI)
        })?;
        ensure!(
            out.code == 0 && out.stdout.starts_with("audit log ok"),
            "audit verify --offline failed at {}: exit {}: {}{}",
            p.name,
            out.code,
            out.stdout,
            out.stderr
        );
        verified.push(out.stdout.trim().to_string());
    }

    // Started again: every received answer has its entries.
    tokio::task::block_in_place(|| net.start_all())?;
    let served_at = entries(&net.partners[SOURCE].api().await?).await?;
    let asked_at = entries(&net.partners[ASKER].api().await?).await?;
    let served: HashSet<&str> = served_at
        .iter()
        .filter(|e| e.direction == "served")
        .map(|e| e.request_id.as_str())
        .collect();
    let asked: HashSet<&str> = asked_at
        .iter()
        .filter(|e| e.direction == "asked")
        .map(|e| e.request_id.as_str())
        .collect();
    let mut missing_served = Vec::new();
    let mut missing_asked = Vec::new();
    for r in &received {
        if r.answered && !served.contains(r.request_id.as_str()) {
            missing_served.push(r.request_id.clone());
        }
        if !asked.contains(r.request_id.as_str()) {
            missing_asked.push(r.request_id.clone());
        }
    }
    let answered = received.iter().filter(|r| r.answered).count();
    let verify_online = within(
        CALL,
        "Audit.Verify",
        net.partners[SOURCE]
            .api()
            .await?
            .audit()
            .verify(pb::AuditVerifyRequest {}),
    )
    .await??
    .into_inner();
    println!(
        "fault_inspect_kill: cycles {cycles} (source and asker killed in turn), clients {CLIENTS}, \
         answers received {} (from the source {answered}, unreachable {}), calls without an \
         answer {failed_calls}, audit entries at the source {} and at the asker {}, answers \
         without a served entry {}, without an asked entry {}; {} / {}",
        received.len(),
        received.len() - answered,
        served_at.len(),
        asked_at.len(),
        missing_served.len(),
        missing_asked.len(),
        verified[SOURCE],
        verified[ASKER]
    );
    ensure!(answered > 0, "no inspection was answered by the source");
    ensure!(
        missing_served.is_empty(),
        "answers from the source without a served entry at the source: {:?}",
        &missing_served[..missing_served.len().min(5)]
    );
    ensure!(
        missing_asked.is_empty(),
        "received answers without an asked entry at the asking node: {:?}",
        &missing_asked[..missing_asked.len().min(5)]
    );
    ensure!(
        verify_online.ok,
        "Audit.Verify at the source: {}",
        verify_online.problem
    );
    Ok(())
}
