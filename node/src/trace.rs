//! Tracing spans: one per local RPC, one per peer request, one per group
//! commit, one around the events of a libp2p connection, so that every log
//! line inside them carries the call it belongs to, and one inspection can
//! be followed across the asking node's log and the source's log by its
//! request id (docs/operator.md, "Following one request").
//!
//! A leaf: the servers in `api` and `inspect` build their spans here, the
//! domain code records what it learns (the request id it made or was sent,
//! the asking member, the purpose) into the span it runs in. Calls nothing
//! of this crate but the `text` excerpt of `handbereik-keys` for the method
//! name, which comes from outside.

use handbereik_keys::text::excerpt;
use tonic::codegen::http;
use tracing::Span;
use tracing::field::{Empty, display};

/// The most characters of a method name shown as it is.
const METHOD_CHARS: usize = 96;

/// The gRPC method a request names (`/handbereik.v1.Source/Inspect`), as
/// the client sent it when it has that shape; anything else (long, other
/// characters, a run of digits that could be a BSN) as an excerpt. The
/// span is made before the bearer token is checked, so the path is outside
/// input.
fn method(request: &http::Request<()>) -> String {
    let path = request.uri().path();
    if is_method_shaped(path) {
        path.to_string()
    } else {
        excerpt(path)
    }
}

/// Short, only letters, digits and `/._-`, and no more than two digits in a
/// row (`v1` is a method's; nine in a row could be a BSN).
fn is_method_shaped(path: &str) -> bool {
    let mut digits = 0;
    path.len() <= METHOD_CHARS
        && path.chars().all(|c| {
            digits = if c.is_ascii_digit() { digits + 1 } else { 0 };
            digits <= 2 && (c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'))
        })
}

/// The span of one call on the local API: its method, and the request id
/// once the call has one (an inspection's, made by this node).
pub fn local_rpc(request: &http::Request<()>) -> Span {
    tracing::info_span!("rpc", method = %method(request), request_id = Empty)
}

/// The span of one request from another member on the peer API: its method,
/// and, once the request has been read, the asking member, the purpose and
/// the request id the asker chose.
pub fn peer_rpc(request: &http::Request<()>) -> Span {
    tracing::info_span!(
        "peer_rpc",
        method = %method(request),
        member = Empty,
        purpose = Empty,
        request_id = Empty
    )
}

/// Records the request id of the call in the span the caller runs in.
pub fn record_request_id(request_id: &str) {
    Span::current().record("request_id", display(request_id));
}

/// Records who asks, and for what, in the span of a peer request.
pub fn record_peer(member: &str, purpose: &str) {
    let span = Span::current();
    span.record("member", display(member));
    span.record("purpose", display(purpose));
}

/// The span of the events of one libp2p connection: the member behind it
/// (empty when the list no longer names it) and its peer id.
pub fn connection(member: &str, peer: &impl std::fmt::Display) -> Span {
    tracing::info_span!("connection", member = %member, peer = %peer)
}

/// The span of one group commit of the store's writer.
pub fn group_commit(commands: usize) -> Span {
    tracing::debug_span!("group_commit", commands)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A log writer into memory, for one test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn json_log(run: impl FnOnce()) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, run);
        let bytes = captured.0.lock().expect("log buffer").clone();
        String::from_utf8(bytes).expect("the log is UTF-8")
    }

    fn request(path: &str) -> http::Request<()> {
        http::Request::builder()
            .uri(path)
            .body(())
            .expect("a request")
    }

    #[test]
    fn a_line_inside_a_peer_request_carries_member_purpose_and_request_id() {
        let log = json_log(|| {
            let span = peer_rpc(&request("/handbereik.v1.Source/Inspect"));
            let _entered = span.enter();
            record_peer("00000001002000000001", "jeugdbescherming");
            record_request_id("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
            tracing::info!("answered");
        });
        let line: serde_json::Value =
            serde_json::from_str(log.lines().next().expect("one line")).expect("JSON");
        let span = &line["span"];
        assert_eq!(span["name"], "peer_rpc");
        assert_eq!(span["method"], "/handbereik.v1.Source/Inspect");
        assert_eq!(span["member"], "00000001002000000001");
        assert_eq!(span["purpose"], "jeugdbescherming");
        assert_eq!(span["request_id"], "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    }

    #[test]
    fn a_local_call_names_its_method_and_a_long_path_is_cut() {
        let long = format!("/{}", "x".repeat(5_000));
        let log = json_log(|| {
            let short = local_rpc(&request("/handbereik.v1.Inspections/Inspect"));
            short.in_scope(|| tracing::info!("one"));
            let cut = local_rpc(&request(&long));
            cut.in_scope(|| tracing::info!("two"));
        });
        let mut lines = log.lines();
        let first: serde_json::Value =
            serde_json::from_str(lines.next().expect("line")).expect("JSON");
        assert_eq!(first["span"]["name"], "rpc");
        assert_eq!(
            first["span"]["method"],
            "/handbereik.v1.Inspections/Inspect"
        );
        let second = lines.next().expect("a second line");
        assert!(
            second.len() < 1_000,
            "a long path is not repeated: {} bytes",
            second.len()
        );
    }

    #[test]
    fn a_path_with_a_long_number_is_not_shown() {
        let log = json_log(|| {
            local_rpc(&request("/handbereik.v1.Registry/111222333"))
                .in_scope(|| tracing::info!("x"));
        });
        assert!(
            !log.contains("111222333"),
            "a possible BSN in the log: {log}"
        );
        assert!(log.contains("long number"), "the excerpt says why: {log}");
    }

    #[test]
    fn a_group_commit_span_counts_its_commands() {
        let log = json_log(|| {
            group_commit(3).in_scope(|| tracing::debug!("flushed"));
        });
        let line: serde_json::Value =
            serde_json::from_str(log.lines().next().expect("line")).expect("JSON");
        assert_eq!(line["span"]["name"], "group_commit");
        assert_eq!(line["span"]["commands"], 3);
    }
}
