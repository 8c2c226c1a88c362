//! Polling the member list from an HTTP(S) URL, for networks whose governance
//! publishes the list on a web server.
//!
//! HTTPS is checked against the Mozilla root certificates (webpki-roots), so
//! the node needs no system trust store; the list's own signatures are what
//! makes it trusted, TLS only keeps the transfer private and on time.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

use super::{Membership, Offered, Origin};
use handbereik_keys::LIST_LIMIT;

/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

type HttpsClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<Bytes>,
>;

fn client() -> Result<HttpsClient, String> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| format!("TLS set-up: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

async fn fetch(client: &HttpsClient, url: &hyper::Uri) -> Result<Vec<u8>, String> {
    let response = tokio::time::timeout(FETCH_TIMEOUT, client.get(url.clone()))
        .await
        .map_err(|_| format!("no answer within {FETCH_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("the server answered {}", response.status()));
    }
    let body = tokio::time::timeout(
        FETCH_TIMEOUT,
        Limited::new(response.into_body(), LIST_LIMIT).collect(),
    )
    .await
    .map_err(|_| format!("the list did not arrive within {FETCH_TIMEOUT:?}"))?
    .map_err(|e| format!("reading the list: {e}"))?;
    Ok(body.to_bytes().to_vec())
}

/// Fetches `url` now and every `interval`, and offers what it gets. Each
/// fetch is raced against `stop`, so shutdown never waits for a slow server.
pub async fn watch(
    membership: Membership,
    url: hyper::Uri,
    interval: Duration,
    stop: CancellationToken,
) -> crate::error::Result<()> {
    let client = client().map_err(|reason| {
        crate::error::Error::InvalidRequest(format!(
            "member list URL: cannot build an HTTP client: {reason}"
        ))
    })?;
    loop {
        let fetched = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            fetched = fetch(&client, &url) => fetched,
        };
        match fetched {
            Ok(bytes) => {
                if let Offered::Refused(reason, _) = membership.offer(bytes, Origin::Url).await? {
                    tracing::warn!(%url, reason = reason.label(), "the member list from the URL was not taken");
                }
            }
            Err(e) => tracing::warn!(%url, error = %e, "cannot fetch the member list"),
        }
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(interval) => {}
        }
    }
}
