//! The dialing side: a lazily connecting tonic channel to another member's
//! peer API over mutual TLS, with HTTP/2 keep-alive.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// HTTP/2 pings keep an idle connection through NATs and find a dead peer
/// before a request is sent into it.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A lazily connecting tonic channel to `endpoint` ("host:port", as in the
/// member list) over mutual TLS with `config`. `connect_timeout` covers the
/// TCP connect and the TLS handshake together.
///
/// Needs a tokio runtime (the channel runs a task); without one it is an error.
pub fn channel(
    endpoint: &str,
    config: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
) -> Result<tonic::transport::Channel> {
    let bad = |reason: String| Error::Tls(format!("peer endpoint {endpoint:?}: {reason}"));
    let target = tonic::transport::Endpoint::from_shared(format!("http://{endpoint}"))
        .map_err(|e| bad(format!("not host:port ({e})")))?
        .connect_timeout(connect_timeout)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    let uri = target.uri();
    if uri.port_u16().is_none() || uri.path() != "/" || uri.query().is_some() {
        return Err(bad("expected host:port".into()));
    }
    let host = uri
        .host()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .unwrap_or_default();
    // Only sent as SNI: the server is recognised by its key, not its name.
    let server_name =
        ServerName::try_from(host.to_string()).map_err(|e| bad(format!("host {host:?}: {e}")))?;
    tokio::runtime::Handle::try_current()
        .map_err(|e| bad(format!("a channel needs a tokio runtime: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let address = endpoint.to_string();
    Ok(
        target.connect_with_connector_lazy(tower::service_fn(move |_: tonic::transport::Uri| {
            let connector = connector.clone();
            let server_name = server_name.clone();
            let address = address.clone();
            async move {
                let tcp = TcpStream::connect(address.as_str()).await?;
                tcp.set_nodelay(true)?;
                let tls = connector.connect(server_name, tcp).await?;
                Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        })),
    )
}
