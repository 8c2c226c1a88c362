//! The swarm's transport: TCP, Noise, Yamux, DNS, with every byte on the
//! wire counted (before encryption and multiplexing, so the figures are what
//! the network carries).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Transport;
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::{Swarm, noise, yamux};
use prometheus_client::metrics::counter::Counter;

use super::behaviour::{self, Behaviour};
use crate::error::{Error, Result};

/// How long a connection without any protocol in use is kept.
const IDLE_CONNECTION: Duration = Duration::from_secs(600);

/// The counters the transport adds to.
#[derive(Clone, Debug)]
pub struct WireCounters {
    /// Bytes received.
    pub received: Counter,
    /// Bytes sent.
    pub sent: Counter,
}

/// Builds the swarm for `keypair` in `network`, keeping at most `max_peers`
/// connections.
pub fn swarm(
    keypair: Keypair,
    network: &str,
    max_peers: u32,
    counters: WireCounters,
) -> Result<Swarm<Behaviour>> {
    let bad = |e: &dyn std::fmt::Display| Error::P2p(e.to_string());
    Ok(libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(|key| {
            let tcp =
                libp2p::tcp::tokio::Transport::new(libp2p::tcp::Config::default().nodelay(true))
                    .map(move |stream, _| Counted {
                        inner: stream,
                        counters: counters.clone(),
                    });
            let noise = noise::Config::new(key)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                tcp.upgrade(Version::V1Lazy)
                    .authenticate(noise)
                    .multiplex(yamux::Config::default())
                    .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer))),
            )
        })
        .map_err(|e| bad(&e))?
        .with_dns()
        .map_err(|e| bad(&e))?
        .with_behaviour(|key| behaviour::build(key, network, max_peers))
        .map_err(|e| bad(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION))
        .build())
}

/// A stream that counts what passes through it.
struct Counted<S> {
    inner: S,
    counters: WireCounters,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let polled = Pin::new(&mut me.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            me.counters.received.inc_by(*n as u64);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let polled = Pin::new(&mut me.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            me.counters.sent.inc_by(*n as u64);
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}
