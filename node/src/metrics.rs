//! The node's metrics, one documented field per figure, and their HTTP endpoint.
//!
//! Owns the Prometheus registry and a small HTTP/1 server on a loopback port
//! that answers `/metrics` (Prometheus text), `/live` and `/ready`. Other
//! modules only increment the fields; nothing here reaches into them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::notify::event::Rejection;

/// The label of the rejected counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why an event was refused.
    pub reason: String,
}

/// The labels of the inspections-served counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InspectionLabel {
    /// `known`, `inspect` or `report`.
    pub action: String,
    /// `allowed` or `denied`.
    pub decision: String,
}

/// The labels of the emergency-inspections counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EmergencyLabel {
    /// `served` (another member asked this node) or `asked`.
    pub side: String,
    /// `allowed`, `denied` or `unreachable`.
    pub decision: String,
}

/// Every figure the node reports.
pub struct Metrics {
    registry: Registry,
    /// Notifications this node published (signed, stored, gossiped).
    pub published: Counter,
    /// Notifications from other members checked and stored.
    pub received: Counter,
    /// Notifications and gossip refused, by reason.
    pub rejected_by_reason: Family<ReasonLabel, Counter>,
    /// Notifications received through catch-up sync rather than gossip.
    pub fetched_by_sync: Counter,
    /// Members connected now.
    pub peers_connected: Gauge,
    /// libp2p connections open now (at most `p2p.max_peers`).
    pub p2p_connections: Gauge,
    /// Members this node chose to dial (half of `p2p.max_peers` at most).
    pub chosen_peers: Gauge,
    /// Incoming libp2p connections refused, by reason (`not_a_member`,
    /// `duplicate` (a second connection to a peer, from a simultaneous
    /// dial), `limit`, `denied`).
    pub p2p_connections_refused: Family<ReasonLabel, Counter>,
    /// Distinct members this node has dialled since it started: with a
    /// bounded peer set this stays near `p2p.max_peers`, whatever the list's size.
    pub p2p_members_dialled: Counter,
    /// Bytes received on libp2p connections (before decryption).
    pub p2p_bytes_received: Counter,
    /// Bytes sent on libp2p connections (after encryption).
    pub p2p_bytes_sent: Counter,
    /// Version of the member list held (0: none).
    pub member_list_version: Gauge,
    /// Seconds until the member list expires (negative: expired).
    pub member_list_seconds_to_expiry: Gauge,
    /// Peers cut off for subscribing to a purpose they are not admitted for.
    pub security_events: Counter,
    /// Inspections answered to other members, by action and decision.
    pub inspections_served: Family<InspectionLabel, Counter>,
    /// Answers this node got from other members, by outcome.
    pub inspections_asked: Family<ReasonLabel, Counter>,
    /// Requests refused because the audit log could not be written.
    pub audit_failures: Counter,
    /// Emergency (break-glass) inspections, by side and decision.
    pub emergencies: Family<EmergencyLabel, Counter>,

    /// TLS handshakes on the peer listener that were refused, by reason.
    pub handshakes_refused: Family<ReasonLabel, Counter>,
    /// Times a changed policy file was put in force.
    pub policy_reloads: Counter,
    /// Times a changed policy file was refused (unreadable or invalid).
    pub policy_reload_failures: Counter,
    /// Member lists offered (file, URL, gossip, sync) and refused, by reason.
    pub lists_refused: Family<ReasonLabel, Counter>,
    /// Peer API requests refused because their member exceeded its share
    /// (`rate` or `in_flight`).
    pub peer_requests_limited: Family<ReasonLabel, Counter>,
    // Witnessed audit (audit::witness).
    /// Audit alarms raised: a member's checkpoint did not extend the one
    /// held of it. No member label (tens of thousands of members); the
    /// member is in the log line, `Status` and the announcement.
    pub audit_witness_alarms: Counter,
    /// Gossiped audit checkpoints of other members, by outcome in the
    /// `reason` label (`accepted`, `same`, `conflict`, `conflict_repeated`,
    /// and refusals: `oversized`, `malformed`, `unknown_signer`,
    /// `bad_signature`, `wrong_member`, `limited`, `busy`, `no_list`).
    pub audit_witness_checkpoints: Family<ReasonLabel, Counter>,
    ready: AtomicBool,
    failed: AtomicBool,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("handbereik");
        let m = Metrics {
            registry: Registry::default(),
            published: Counter::default(),
            received: Counter::default(),
            rejected_by_reason: Family::default(),
            fetched_by_sync: Counter::default(),
            peers_connected: Gauge::default(),
            p2p_connections: Gauge::default(),
            chosen_peers: Gauge::default(),
            p2p_connections_refused: Family::default(),
            p2p_members_dialled: Counter::default(),
            p2p_bytes_received: Counter::default(),
            p2p_bytes_sent: Counter::default(),
            member_list_version: Gauge::default(),
            member_list_seconds_to_expiry: Gauge::default(),
            security_events: Counter::default(),
            inspections_served: Family::default(),
            inspections_asked: Family::default(),
            audit_failures: Counter::default(),
            emergencies: Family::default(),
            handshakes_refused: Family::default(),
            lists_refused: Family::default(),
            policy_reloads: Counter::default(),
            policy_reload_failures: Counter::default(),
            peer_requests_limited: Family::default(),
            audit_witness_alarms: Counter::default(),
            audit_witness_checkpoints: Family::default(),
            ready: AtomicBool::new(false),
            failed: AtomicBool::new(false),
        };
        registry.register(
            "notifications_published",
            "Notifications this node published",
            m.published.clone(),
        );
        registry.register(
            "notifications_received",
            "Notifications from other members checked and stored",
            m.received.clone(),
        );
        registry.register(
            "notifications_rejected",
            "Notifications refused, by reason",
            m.rejected_by_reason.clone(),
        );
        registry.register(
            "notifications_fetched_by_sync",
            "Notifications received through catch-up sync",
            m.fetched_by_sync.clone(),
        );
        registry.register(
            "peers_connected",
            "Members connected now",
            m.peers_connected.clone(),
        );
        registry.register(
            "member_list_version",
            "Version of the member list held",
            m.member_list_version.clone(),
        );
        registry.register(
            "member_list_seconds_to_expiry",
            "Seconds until the member list expires; negative when expired",
            m.member_list_seconds_to_expiry.clone(),
        );
        registry.register(
            "security_events",
            "Peers cut off for gossip outside their admitted purposes",
            m.security_events.clone(),
        );
        registry.register(
            "inspections_served",
            "Inspections answered to other members, by action and decision",
            m.inspections_served.clone(),
        );
        registry.register(
            "inspections_asked",
            "Answers from other members, by outcome",
            m.inspections_asked.clone(),
        );
        registry.register(
            "emergency_inspections",
            "Emergency (break-glass) inspections, by side (served, asked) and decision; every one is flagged in both audit logs and announced on the local stream",
            m.emergencies.clone(),
        );
        registry.register(
            "audit_failures",
            "Requests refused because the audit log could not be written; alert on any",
            m.audit_failures.clone(),
        );
        registry.register(
            "peer_handshakes_refused",
            "TLS handshakes refused on the peer listener, by reason",
            m.handshakes_refused.clone(),
        );
        registry.register(
            "policy_reloads",
            "Times a changed policy file was put in force",
            m.policy_reloads.clone(),
        );
        registry.register(
            "policy_reload_failures",
            "Times a changed policy file was refused; the previous policy stays in force",
            m.policy_reload_failures.clone(),
        );
        registry.register(
            "member_lists_refused",
            "Member lists offered and refused, by reason (older, signatures, malformed, inconsistent, wrong_network, expired, not_yet_valid)",
            m.lists_refused.clone(),
        );
        registry.register(
            "peer_requests_limited",
            "Peer API requests refused because their member exceeded its share, by reason (rate, in_flight)",
            m.peer_requests_limited.clone(),
        );
        registry.register(
            "p2p_connections",
            "libp2p connections open now",
            m.p2p_connections.clone(),
        );
        registry.register(
            "p2p_chosen_peers",
            "Members this node chose to dial",
            m.chosen_peers.clone(),
        );
        registry.register(
            "p2p_connections_refused",
            "Incoming libp2p connections refused, by reason (not_a_member, duplicate, limit, denied)",
            m.p2p_connections_refused.clone(),
        );
        registry.register(
            "p2p_members_dialled",
            "Distinct members this node has dialled since it started",
            m.p2p_members_dialled.clone(),
        );
        registry.register(
            "p2p_received_bytes",
            "Bytes received on libp2p connections",
            m.p2p_bytes_received.clone(),
        );
        registry.register(
            "p2p_sent_bytes",
            "Bytes sent on libp2p connections",
            m.p2p_bytes_sent.clone(),
        );
        // Witnessed audit.
        registry.register(
            "audit_witness_alarms",
            "Audit alarms raised: a member's checkpoint did not extend the one held of it; alert on any",
            m.audit_witness_alarms.clone(),
        );
        registry.register(
            "audit_witness_checkpoints",
            "Gossiped audit checkpoints of other members, by outcome (accepted, same, conflict, conflict_repeated, oversized, malformed, unknown_signer, bad_signature, wrong_member, limited, busy, no_list)",
            m.audit_witness_checkpoints.clone(),
        );
        Arc::new(Metrics { registry, ..m })
    }

    /// Counts one gossiped checkpoint of another member.
    pub fn witness_checkpoint(&self, outcome: &str) {
        self.audit_witness_checkpoints
            .get_or_create(&ReasonLabel {
                reason: outcome.into(),
            })
            .inc();
    }

    /// Gossiped checkpoints with one outcome.
    pub fn witness_checkpoints_count(&self, outcome: &str) -> u64 {
        self.audit_witness_checkpoints
            .get_or_create(&ReasonLabel {
                reason: outcome.into(),
            })
            .get()
    }

    /// Counts one refused event.
    pub fn rejected(&self, rejection: Rejection) {
        self.rejected_by_reason
            .get_or_create(&ReasonLabel {
                reason: rejection.label().into(),
            })
            .inc();
    }

    /// All refusals together.
    pub fn rejected_total(&self) -> u64 {
        [
            Rejection::Oversized,
            Rejection::Malformed,
            Rejection::UnknownSource,
            Rejection::BadSignature,
            Rejection::WrongPurpose,
            Rejection::ListExpired,
            Rejection::Duplicate,
        ]
        .into_iter()
        .map(|r| self.rejected_count(r))
        .sum()
    }

    /// Refusals for one reason.
    pub fn rejected_count(&self, rejection: Rejection) -> u64 {
        self.rejected_by_reason
            .get_or_create(&ReasonLabel {
                reason: rejection.label().into(),
            })
            .get()
    }

    /// Counts one inspection answered.
    pub fn inspection_served(&self, action: &str, decision: &str) {
        self.inspections_served
            .get_or_create(&InspectionLabel {
                action: action.into(),
                decision: decision.into(),
            })
            .inc();
    }

    /// Counts one emergency inspection.
    pub fn emergency(&self, side: &str, decision: &str) {
        self.emergencies
            .get_or_create(&EmergencyLabel {
                side: side.into(),
                decision: decision.into(),
            })
            .inc();
    }

    /// Emergency inspections counted for `side` and `decision`.
    pub fn emergency_count(&self, side: &str, decision: &str) -> u64 {
        self.emergencies
            .get_or_create(&EmergencyLabel {
                side: side.into(),
                decision: decision.into(),
            })
            .get()
    }

    /// Counts one answer from another member.
    pub fn inspection_asked(&self, outcome: &str) {
        self.inspections_asked
            .get_or_create(&ReasonLabel {
                reason: outcome.into(),
            })
            .inc();
    }

    /// Counts one refused member list.
    pub fn list_refused(&self, reason: &str) {
        self.lists_refused
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    /// Refused member lists for one reason.
    pub fn lists_refused_count(&self, reason: &str) -> u64 {
        self.lists_refused
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .get()
    }

    /// Counts one request refused for its member's share.
    pub fn peer_request_limited(&self, reason: &str) {
        self.peer_requests_limited
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    /// Counts one refused libp2p connection.
    pub fn p2p_connection_refused(&self, reason: &str) {
        self.p2p_connections_refused
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    /// Refused libp2p connections for one reason.
    pub fn p2p_connections_refused_count(&self, reason: &str) -> u64 {
        self.p2p_connections_refused
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .get()
    }

    /// Counts one refused handshake.
    pub fn handshake_refused(&self, reason: &str) {
        self.handshakes_refused
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    /// Marks the node ready; it stays ready unless a task fails.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Marks the node failed: it is not ready again in this process.
    pub fn set_failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    /// Ready, and no task has failed.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && !self.failed.load(Ordering::Relaxed)
    }

    /// The Prometheus text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Serves `/metrics`, `/live` and `/ready` on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener");
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(&request, &metrics)) }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(request: &Request<hyper::body::Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, body) = match request.uri().path() {
        "/metrics" => (StatusCode::OK, metrics.encode()),
        "/live" => (StatusCode::OK, "live\n".to_string()),
        "/ready" if metrics.is_ready() => (StatusCode::OK, "ready\n".to_string()),
        "/ready" => (StatusCode::SERVICE_UNAVAILABLE, "starting\n".to_string()),
        _ => (
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /live or /ready\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
