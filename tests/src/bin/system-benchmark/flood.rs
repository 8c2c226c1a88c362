//! The fairness figure: one member floods a source with Inspect from 64
//! mutual-TLS clients while another member asks at a steady pace; the
//! steady member's p99 is compared with its p99 when nobody floods. The
//! source runs with its default per-member limits (`peer_api.member_*`),
//! which are what keeps the flooder from starving the others.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use handbereik_node::inspect::tls::{self, TlsIdentity};
use handbereik_proto::v1::source_client::SourceClient;
use handbereik_tests::net::{TestNet, jeugd};

use crate::inspection::{CLIENTS, connect, drive, inspect_request, register_subjects};
use crate::report::{Report, Target, quantile};

/// The steady member's pace: one request every 10 ms (100/s, half its limit).
const PACE: Duration = Duration::from_millis(10);

/// Latencies of the steady member's requests over `span`, sorted; and how
/// many failed.
async fn steady(
    client: SourceClient<tonic::transport::Channel>,
    pseudonyms: Arc<Vec<String>>,
    span: Duration,
    tag: &str,
) -> (Vec<f64>, usize) {
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut failed = 0;
    let mut i = 0usize;
    while started.elapsed() < span {
        let mut client = client.clone();
        let t = Instant::now();
        let call = client.inspect(inspect_request(
            format!("steady-{tag}-{i}"),
            pseudonyms[i % pseudonyms.len()].clone(),
        ));
        match tokio::time::timeout(Duration::from_secs(5), call).await {
            Ok(Ok(r)) if !r.get_ref().envelope.is_empty() => {
                samples.push(t.elapsed().as_secs_f64())
            }
            _ => failed += 1,
        }
        i += 1;
        tokio::time::sleep(PACE.saturating_sub(t.elapsed())).await;
    }
    samples.sort_by(f64::total_cmp);
    (samples, failed)
}

/// Node 2 is the source; node 0 floods, node 1 asks steadily.
pub async fn flood(report: &mut Report, span: Duration, subjects: u32) -> Result<()> {
    let mut net = TestNet::new(3, &[jeugd()], 5)?;
    net.up().await?;
    let pseudonyms = Arc::new(register_subjects(&net.nodes[2], subjects).await?);
    let server_key = net.nodes[2].key.public_key();
    let endpoint = net.nodes[2].peer_addr.clone().context("peer address")?;
    let steady_identity = TlsIdentity::new(&net.nodes[1].key, &net.nodes[1].member_id)?;
    let steady_client = SourceClient::new(tls::channel(
        &endpoint,
        tls::client_config(&steady_identity, server_key)?,
        Duration::from_secs(10),
    )?);
    let flood_identity = TlsIdentity::new(&net.nodes[0].key, &net.nodes[0].member_id)?;
    let flooders = connect(&flood_identity, server_key, &endpoint).await?;

    // Warm-up, then the steady member alone.
    let _ = steady(
        steady_client.clone(),
        pseudonyms.clone(),
        Duration::from_millis(500),
        "warm",
    )
    .await;
    let (alone, alone_failed) =
        steady(steady_client.clone(), pseudonyms.clone(), span, "alone").await;

    // The same while the other member floods.
    let flood_pseudonyms = pseudonyms.clone();
    let flooding = tokio::spawn(drive(span + Duration::from_millis(500), move |c, i| {
        let mut client = flooders[c].clone();
        let subject = flood_pseudonyms[(c * 7919 + i as usize) % flood_pseudonyms.len()].clone();
        async move {
            client
                .inspect(inspect_request(format!("flood-{c}-{i}"), subject))
                .await
                .is_ok_and(|r| !r.into_inner().envelope.is_empty())
        }
    }));
    // Let the flood reach its full rate before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (flooded, flooded_failed) = steady(steady_client, pseudonyms, span, "flooded").await;
    let flood = flooding.await?;
    for node in &mut net.nodes {
        node.stop().await;
    }
    println!(
        "  (steady member: {} answered alone, {alone_failed} failed; {} answered under the flood, {flooded_failed} failed; the flooder: {:.0} answered /s from {CLIENTS} clients, {} refused or failed)",
        alone.len(),
        flooded.len(),
        flood.rate,
        flood.errors
    );
    report.plain(
        "flood",
        "flood.alone_p99_ms",
        "a member's Inspect p99 at a source, 100 requests/s, nobody else asking",
        quantile(&alone, 0.99) * 1e3,
        "ms",
    );
    report.relative(
        "flood",
        "flood.flooded_p99_ms",
        &format!("the same while another member floods from {CLIENTS} clients"),
        quantile(&flooded, 0.99) * 1e3,
        "ms",
        None,
        "flood.alone_p99_ms",
        Some(Target::AtMost(2.0)),
    );
    report.plain(
        "flood",
        "flood.flooder_rate",
        "the flooding member's answered requests (the rest refused with RESOURCE_EXHAUSTED)",
        flood.rate,
        "/s",
    );
    Ok(())
}
