//! Inspection figures: Inspect at one source from 64 concurrent mutual-TLS
//! clients (policy, durable audit entry and a signed answer per request),
//! beside a bare tonic echo service over the same TLS setup; and Locate
//! over a 10-node network through the local API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use handbereik_keys::{MemberId, PublicKey};
use handbereik_node::inspect::tls::{self, Admission, TlsIdentity};
use handbereik_proto::v1 as pb;
use handbereik_proto::v1::source_client::SourceClient;
use handbereik_tests::net::{TestNet, TestNode, bsn, entry, jeugd};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::report::{quantile, within};

/// Concurrent clients, each on its own TLS connection.
pub const CLIENTS: usize = 64;

/// Requests per second and latency quantiles.
pub struct Figures {
    /// Completed requests per second.
    pub rate: f64,
    /// Median latency, seconds.
    pub p50: f64,
    /// 99th percentile latency, seconds.
    pub p99: f64,
    /// Requests that failed or got no answer within 5 s.
    pub errors: usize,
    /// Every answered request's latency, seconds, sorted.
    pub samples: Vec<f64>,
}

/// How long one request may take before it counts as an error.
const CALL_LIMIT: Duration = Duration::from_secs(5);

/// A valid BSN (passes the 11-test) for subject `i`: eight digits, and the
/// ninth that makes 9·d1 + 8·d2 + … + 2·d8 − d9 a multiple of 11 (bases
/// whose check digit would be 10 are skipped).
pub fn bsn_number(i: u32) -> String {
    let mut base = 10_000_000 + i * 2;
    loop {
        let digits: Vec<u32> = format!("{base:08}")
            .chars()
            .filter_map(|c| c.to_digit(10))
            .collect();
        let sum: u32 = digits.iter().zip((2..=9).rev()).map(|(d, w)| d * w).sum();
        let check = sum % 11;
        if check < 10 {
            return format!("{base:08}{check}");
        }
        base += 1;
    }
}

/// An Inspect of `subject`'s `melding` for jeugdbescherming, unsigned (the
/// source accepts a request without the asker's signature).
pub fn inspect_request(request_id: String, subject: String) -> pb::SourceInspectRequest {
    pb::SourceInspectRequest {
        signed_request: Vec::new(),
        request_id,
        subject,
        purpose: jeugd().to_string(),
        categories: vec!["melding".into()],
    }
}

/// Registers `n` subjects at `node` (a `melding` each); their pseudonyms.
pub async fn register_subjects(node: &TestNode, n: u32) -> Result<Vec<String>> {
    let mut registry = node.registry().await?;
    let mut pseudonyms = Vec::new();
    for i in 0..n {
        let e = within(Duration::from_secs(10), "Register", async {
            Ok(registry
                .register(pb::RegisterRequest {
                    subject: bsn(&bsn_number(i)),
                    entry: entry("melding", r#"{"melding":"zorgen over de thuissituatie"}"#),
                })
                .await?)
        })
        .await?
        .into_inner()
        .entry
        .context("entry")?;
        pseudonyms.push(e.subject);
    }
    Ok(pseudonyms)
}

/// Runs `CLIENTS` loops of `call` for `span` after a warm-up; `call` gets
/// the client index and a counter.
pub async fn drive<F, Fut>(span: Duration, call: F) -> Figures
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let warm = Duration::from_millis(500);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            let mut i = 0u64;
            loop {
                let t = Instant::now();
                if t.duration_since(start) > warm + span {
                    break;
                }
                let ok = tokio::time::timeout(CALL_LIMIT, call(c, i))
                    .await
                    .unwrap_or(false);
                i += 1;
                if t.duration_since(start) >= warm {
                    if ok {
                        lat.push(t.elapsed().as_secs_f64());
                    } else {
                        errors += 1;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((lat, e)) = t.await {
            all.extend(lat);
            errors += e;
        }
    }
    all.sort_by(f64::total_cmp);
    Figures {
        rate: all.len() as f64 / span.as_secs_f64(),
        p50: quantile(&all, 0.5),
        p99: quantile(&all, 0.99),
        errors,
        samples: all,
    }
}

/// 64 clients calling Inspect at a real source node (node 1 of 2), with
/// node 0's identity. Every request: TLS, member check, Cedar decision,
/// registry read, audit entry flushed in a group commit, signed answer.
pub async fn inspect_throughput(span: Duration, subjects: u32) -> Result<Figures> {
    let mut net = TestNet::new(2, &[jeugd()], 5)?;
    // All 64 clients are one member here: the source's per-member limits
    // (there so that one member cannot starve the others) are lifted, so
    // that the figure is the source's capacity, not the limit.
    net.nodes[1].peer_api_extra =
        "member_requests_per_sec = 1000000\nmember_burst = 1000000\nmember_in_flight = 1024\n"
            .into();
    net.up().await?;
    let pseudonyms = register_subjects(&net.nodes[1], subjects).await?;
    let identity = TlsIdentity::new(&net.nodes[0].key, &net.nodes[0].member_id)?;
    let server_key = net.nodes[1].key.public_key();
    let endpoint = net.nodes[1].peer_addr.clone().context("peer address")?;
    let clients = connect(&identity, server_key, &endpoint).await?;
    let pseudonyms = Arc::new(pseudonyms);
    let figures = drive(span, move |c, i| {
        let mut client = clients[c].clone();
        let subject = pseudonyms[(c * 7919 + i as usize) % pseudonyms.len()].clone();
        async move {
            client
                .inspect(inspect_request(format!("bench-{c}-{i}"), subject))
                .await
                .is_ok_and(|r| !r.into_inner().envelope.is_empty())
        }
    })
    .await;
    let served = net.nodes[1]
        .metrics()?
        .inspections_served
        .get_or_create(&handbereik_node::metrics::InspectionLabel {
            action: "inspect".into(),
            decision: "allowed".into(),
        })
        .get();
    eprintln!("  (source answered {served} inspections, each with a durable audit entry)");
    for node in &mut net.nodes {
        node.stop().await;
    }
    Ok(figures)
}

/// `CLIENTS` Source clients with `identity`, each on its own TLS connection.
pub async fn connect(
    identity: &TlsIdentity,
    server_key: PublicKey,
    endpoint: &str,
) -> Result<Vec<SourceClient<tonic::transport::Channel>>> {
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let config = tls::client_config(identity, server_key)?;
        let channel = tls::channel(endpoint, config, Duration::from_secs(10))?;
        clients.push(SourceClient::new(channel));
    }
    Ok(clients)
}

/// Admits any certificate: the echo baseline measures transport alone.
#[derive(Debug)]
struct AnyOne(MemberId);

impl Admission for AnyOne {
    fn admit(&self, _: &PublicKey, _: &str) -> std::result::Result<MemberId, String> {
        Ok(self.0.clone())
    }
}

/// The bare service: answers the subject back, no policy, audit or signature.
struct Echo;

#[tonic::async_trait]
impl pb::source_server::Source for Echo {
    async fn known(
        &self,
        r: Request<pb::SourceKnownRequest>,
    ) -> Result<Response<pb::SignedAnswer>, Status> {
        Ok(Response::new(pb::SignedAnswer {
            envelope: r.into_inner().subject.into_bytes(),
        }))
    }

    async fn inspect(
        &self,
        r: Request<pb::SourceInspectRequest>,
    ) -> Result<Response<pb::SignedAnswer>, Status> {
        Ok(Response::new(pb::SignedAnswer {
            envelope: r.into_inner().subject.into_bytes(),
        }))
    }

    async fn report(
        &self,
        r: Request<pb::SourceReportRequest>,
    ) -> Result<Response<pb::SignedAnswer>, Status> {
        Ok(Response::new(pb::SignedAnswer {
            envelope: r.into_inner().subject.into_bytes(),
        }))
    }
}

/// The same 64 clients against a bare tonic echo service served over the
/// same mutual-TLS listener code.
pub async fn echo_throughput(span: Duration) -> Result<Figures> {
    let server_key = handbereik_keys::NodeKey::generate()?;
    let member = MemberId::parse("00000001009999999000")?;
    let server_identity = TlsIdentity::new(&server_key, &member)?;
    let config = tls::server_config(&server_identity, Arc::new(AnyOne(member.clone())))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let incoming = tls::incoming(
        listener,
        config,
        tls::AcceptLimits {
            handshake_timeout: Duration::from_secs(5),
            max_handshakes: 256,
            max_per_address: 256,
            max_silent: 1024,
        },
        shutdown.clone(),
        Arc::new(|_: &str| {}),
    );
    let stop = shutdown.clone();
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(pb::source_server::SourceServer::new(Echo))
            .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
            .await
    });
    let client_key = handbereik_keys::NodeKey::generate()?;
    let identity = TlsIdentity::new(&client_key, &MemberId::parse("00000001009999999001")?)?;
    let clients = connect(&identity, server_key.public_key(), &addr.to_string()).await?;
    let subject = "ab".repeat(32);
    let figures = drive(span, move |c, i| {
        let mut client = clients[c].clone();
        let subject = subject.clone();
        async move {
            client
                .inspect(inspect_request(format!("echo-{c}-{i}"), subject))
                .await
                .is_ok()
        }
    })
    .await;
    shutdown.cancel();
    let _ = server.await;
    Ok(figures)
}

/// Locate through node 0's local API over a network of `nodes`; three of the
/// others know the subject. Sequential calls; latency per call.
pub async fn locate_latency(nodes: usize, calls: usize) -> Result<(f64, f64, usize)> {
    let mut net = TestNet::new(nodes, &[jeugd()], 5)?;
    net.up().await?;
    for i in 1..4.min(nodes) {
        let mut registry = net.nodes[i].registry().await?;
        within(Duration::from_secs(10), "Register", async {
            Ok(registry
                .register(pb::RegisterRequest {
                    subject: bsn("111222333"),
                    entry: entry("betrokkenheid", r#"{"contact":"wijkteam"}"#),
                })
                .await?)
        })
        .await?;
    }
    let mut client = net.nodes[0].inspections().await?;
    let request = || pb::LocateRequest {
        actor: None,
        subject: bsn("111222333"),
        purpose: jeugd().to_string(),
        deadline_ms: 2000,
        regions: Vec::new(),
    };
    // Warm-up: connections to every source are made on first use.
    for _ in 0..5 {
        within(Duration::from_secs(10), "Locate (warm-up)", async {
            Ok(client.locate(request()).await?)
        })
        .await?;
    }
    let mut samples = Vec::with_capacity(calls);
    let mut incomplete = 0;
    for _ in 0..calls {
        let t = Instant::now();
        let r = within(Duration::from_secs(10), "Locate", async {
            Ok(client.locate(request()).await?)
        })
        .await?
        .into_inner();
        samples.push(t.elapsed().as_secs_f64());
        let known = r
            .answers
            .iter()
            .filter(|a| a.answer == pb::Answer::Known as i32)
            .count();
        if r.answers.len() != nodes - 1 || known != 3.min(nodes - 1) {
            incomplete += 1;
        }
    }
    if incomplete > 0 {
        eprintln!("  ({incomplete} locates with a missing or wrong answer)");
    }
    samples.sort_by(f64::total_cmp);
    for node in &mut net.nodes {
        node.stop().await;
    }
    Ok((
        quantile(&samples, 0.5),
        quantile(&samples, 0.99),
        samples.len(),
    ))
}
