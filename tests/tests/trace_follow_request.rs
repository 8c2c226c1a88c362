//! One inspection followed across two nodes' logs by its request id
//! (docs/operator.md, "Following one request"): real `handbereik run`
//! processes with the node's debug lines on, an Inspect through the asking
//! node's local API, and then the asking node's log has the answer inside
//! the span of the local call (`rpc{... request_id=...}`), and the source's
//! log has its answer inside the span of the peer request, with the asking
//! member, the purpose and the same request id.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use anyhow::{Result, ensure};
use handbereik_proto::v1 as pb;
use handbereik_tests::net::{entry, pseudonym};
use handbereik_tests::proc::strip_ansi;
use handbereik_tests::procnet::{CALL, PURPOSE, PartnerSpec, ProcNet, Tuning, within};

const SOURCE: usize = 0;
const ASKER: usize = 1;
/// How long a log line may take to appear on a busy machine.
const LOG_LINE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inspection_is_followed_across_both_logs_by_its_request_id() -> Result<()> {
    let specs = [
        PartnerSpec::loopback("source"),
        PartnerSpec::loopback("asker"),
    ];
    let mut net = tokio::task::block_in_place(|| ProcNet::create(&specs, &Tuning::default()))?;
    let result = run(&mut net).await;
    net.explain(result)
}

/// The node's own debug lines on, the rest of the crates at info.
fn debug_logs(net: &mut ProcNet) {
    for partner in &mut net.partners {
        partner.log_filter = "info,handbereik_node=debug".into();
    }
}

async fn run(net: &mut ProcNet) -> Result<()> {
    debug_logs(net);
    tokio::task::block_in_place(|| net.start_all())?;
    net.wait_connected(&[SOURCE, ASKER], Duration::from_secs(60))
        .await?;
    let subject = format!("{:064x}", 7);
    let source = net.partners[SOURCE].api().await?;
    within(
        CALL,
        "Register",
        source.registry().register(pb::RegisterRequest {
            subject: pseudonym(&subject),
            entry: entry("melding", "{\"urgentie\":\"hoog\"}"),
        }),
    )
    .await??;
    let asker = net.partners[ASKER].api().await?;
    let answer = within(
        CALL,
        "Inspect",
        asker.inspections().inspect(pb::InspectRequest {
            actor: None,
            emergency_reason: String::new(),
            member_id: net.partners[SOURCE].member_id.clone(),
            subject: pseudonym(&subject),
            purpose: PURPOSE.into(),
            categories: vec!["melding".into()],
            deadline_ms: 5000,
        }),
    )
    .await??
    .into_inner();
    ensure!(
        answer.provenance.is_some(),
        "the source did not answer the inspection: {answer:?}"
    );
    let id = answer.request_id;
    ensure!(!id.is_empty(), "the answer has no request id");
    let request_id = format!("request_id={id}");

    let asker_line = net.partners[ASKER].log()?.wait_for(
        LOG_LINE,
        "the asking node's line of the answer in the span of the local call",
        |line| {
            let line = strip_ansi(line);
            line.contains("member answered")
                && line.contains("rpc{method=/handbereik.v1.Inspections/Inspect")
                && line.contains(&request_id)
        },
    )?;
    ensure!(
        strip_ansi(&asker_line).contains("outcome=known"),
        "the asking node's line names the outcome: {asker_line}"
    );

    let asker_member = format!("member={}", net.partners[ASKER].member_id);
    let purpose = format!("purpose={PURPOSE}");
    net.partners[SOURCE].log()?.wait_for(
        LOG_LINE,
        "the source's line of its answer in the span of the peer request",
        |line| {
            let line = strip_ansi(line);
            line.contains("peer request answered")
                && line.contains("peer_rpc{method=/handbereik.v1.Source/Inspect")
                && line.contains(&asker_member)
                && line.contains(&purpose)
                && line.contains(&request_id)
        },
    )?;
    Ok(())
}
