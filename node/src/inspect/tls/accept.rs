//! The accepting side of the peer listener, and why a stranger cannot stall it.
//!
//! Every TCP connection is accepted at once (none waits in the kernel behind
//! a full set of slots) and then goes through two stages, each bounded:
//!
//! 1. **silent**: until its first byte arrives, within [`FIRST_BYTE`] (or the
//!    handshake timeout, if shorter). Silent connections cost no handshake
//!    slot; at most [`AcceptLimits::max_silent`] are kept, and when a new one
//!    comes beyond that, the oldest silent one is closed. Idle sockets can
//!    therefore never hold what members need.
//! 2. **handshake**: the TLS handshake, which takes a slot of at most
//!    [`AcceptLimits::max_handshakes`] at once and at most
//!    [`AcceptLimits::max_per_address`] from one IP address, waiting for one
//!    at most one handshake timeout; the handshake itself then has one
//!    handshake timeout from getting its slot.
//!
//! Refusals are logged at debug with the remote address and counted by label
//! through [`OnRefused`]. Calls [`verify`](super::verify) for the outcome the
//! verifiers record.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::PeerIdentity;
use super::verify::HANDSHAKE_OUTCOME;

/// How long a new connection may stay silent before it is closed: a real
/// client sends its TLS ClientHello at once.
pub const FIRST_BYTE: Duration = Duration::from_secs(1);

/// After a failed `accept` (typically out of file descriptors) the listener
/// waits this long, so that it does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The bounds of the accepting side.
#[derive(Clone, Copy, Debug)]
pub struct AcceptLimits {
    /// How long a handshake may take, first byte included.
    pub handshake_timeout: Duration,
    /// TLS handshakes in progress at once.
    pub max_handshakes: usize,
    /// TLS handshakes in progress at once from one IP address.
    pub max_per_address: usize,
    /// Connections kept while they have sent nothing yet.
    pub max_silent: usize,
}

/// Who is on the other end of a [`PeerStream`]; tonic puts it in each
/// request's extensions.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// The remote TCP address.
    pub remote: SocketAddr,
    /// The admitted member.
    pub peer: PeerIdentity,
}

/// A TLS stream accepted on the peer listener, with its admitted peer.
pub struct PeerStream {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    info: PeerInfo,
}

impl PeerStream {
    /// Who is on the other end.
    pub fn info(&self) -> &PeerInfo {
        &self.info
    }
}

impl fmt::Debug for PeerStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerStream")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl tonic::transport::server::Connected for PeerStream {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Counts a refused connection; given a short label fit for a metric:
/// `silent` (nothing sent in time), `evicted` (silent, and room was needed),
/// `timeout`, `certificate`, `not_admitted`, `handshake`, `unidentified`.
pub type OnRefused = Arc<dyn Fn(&str) + Send + Sync>;

/// Accepts TCP connections and runs TLS handshakes concurrently within
/// `limits` (module doc), yielding finished streams. Ends when `shutdown` is
/// cancelled. Needs a tokio runtime; without one the stream yields one error
/// and ends.
pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    limits: AcceptLimits,
    shutdown: CancellationToken,
    on_refused: OnRefused,
) -> impl futures::Stream<Item = io::Result<PeerStream>> + Send + 'static {
    let (tx, rx) = mpsc::channel(limits.max_handshakes.max(1));
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            let gate = Arc::new(Gate {
                acceptor: tokio_rustls::TlsAcceptor::from(config),
                limits,
                shutdown,
                tx,
                on_refused,
                handshakes: Arc::new(Semaphore::new(limits.max_handshakes.max(1))),
                per_address: Mutex::new(HashMap::new()),
                silent: Mutex::new(BTreeMap::new()),
                next_id: AtomicU64::new(0),
            });
            runtime.spawn(accept_loop(listener, gate));
        }
        Err(e) => {
            let _ = tx.try_send(Err(io::Error::other(format!(
                "the peer listener needs a tokio runtime: {e}"
            ))));
        }
    }
    ReceiverStream::new(rx)
}

/// What every connection's task shares.
struct Gate {
    acceptor: tokio_rustls::TlsAcceptor,
    limits: AcceptLimits,
    shutdown: CancellationToken,
    tx: mpsc::Sender<io::Result<PeerStream>>,
    on_refused: OnRefused,
    handshakes: Arc<Semaphore>,
    per_address: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
    /// Silent connections by arrival order, each with the token that closes it.
    silent: Mutex<BTreeMap<u64, CancellationToken>>,
    next_id: AtomicU64,
}

async fn accept_loop(listener: TcpListener, gate: Arc<Gate>) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = gate.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, remote)) => {
                tokio::spawn(gate.clone().run(tcp, remote));
            }
            Err(e) => {
                tracing::warn!(error = %e, "peer listener: cannot accept a connection");
                tokio::select! {
                    biased;
                    () = gate.shutdown.cancelled() => return,
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                }
            }
        }
    }
}

impl Gate {
    fn refused(&self, remote: SocketAddr, label: &str, reason: &str) {
        tracing::debug!(%remote, reason, "peer connection refused");
        (self.on_refused)(label);
    }

    /// Registers a silent connection; closes the oldest one if there are too many.
    fn enter_silent(&self) -> (u64, CancellationToken) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        if let Ok(mut silent) = self.silent.lock() {
            while silent.len() >= self.limits.max_silent.max(1) {
                match silent.pop_first() {
                    Some((_, oldest)) => oldest.cancel(),
                    None => break,
                }
            }
            silent.insert(id, token.clone());
        }
        (id, token)
    }

    fn leave_silent(&self, id: u64) {
        if let Ok(mut silent) = self.silent.lock() {
            silent.remove(&id);
        }
    }

    fn address_slots(&self, ip: IpAddr) -> Arc<Semaphore> {
        let mut map = match self.per_address.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Forget addresses with no handshake in progress, so the map stays small.
        if map.len() > 4 * self.limits.max_handshakes.max(1) {
            let full = self.limits.max_per_address.max(1);
            map.retain(|_, s| s.available_permits() < full);
        }
        map.entry(ip)
            .or_insert_with(|| Arc::new(Semaphore::new(self.limits.max_per_address.max(1))))
            .clone()
    }

    async fn run(self: Arc<Self>, tcp: TcpStream, remote: SocketAddr) {
        let started = Instant::now();
        // Small gRPC frames should not wait for Nagle; failing to set it only
        // costs latency.
        let _ = tcp.set_nodelay(true);

        // Stage 1: silent until the first byte.
        let (id, evicted) = self.enter_silent();
        let first_byte = started + FIRST_BYTE.min(self.limits.handshake_timeout);
        // `peek` waits for a byte really to be there (readiness alone can be
        // reported for a socket that has sent nothing).
        let mut first = [0u8; 1];
        let spoke = tokio::select! {
            biased;
            () = self.shutdown.cancelled() => None,
            () = evicted.cancelled() => Some(Err("evicted")),
            () = tokio::time::sleep_until(first_byte) => Some(Err("silent")),
            peeked = tcp.peek(&mut first) => Some(match peeked {
                Ok(0) | Err(_) => Err("handshake"),
                Ok(_) => Ok(()),
            }),
        };
        self.leave_silent(id);
        match spoke {
            None => return,
            Some(Err(label)) => {
                return self.refused(remote, label, "sent nothing in time, or room was needed");
            }
            Some(Ok(())) => {}
        }

        // Stage 2: a slot (waited for within one handshake timeout), then
        // the handshake (within one handshake timeout from getting the slot,
        // so a queue of slow strangers ahead does not eat a member's time).
        let address = self.address_slots(remote.ip());
        let slots = async {
            let mine = address.acquire_owned().await.ok()?;
            let any = self.handshakes.clone().acquire_owned().await.ok()?;
            Some((mine, any))
        };
        let permits: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> = tokio::select! {
            biased;
            () = self.shutdown.cancelled() => return,
            got = tokio::time::timeout(self.limits.handshake_timeout, slots) => got.ok().flatten(),
        };
        let Some(_permits) = permits else {
            return self.refused(
                remote,
                "timeout",
                "no handshake slot within the handshake timeout",
            );
        };
        let deadline = Instant::now() + self.limits.handshake_timeout;
        let acceptor = self.acceptor.clone();
        let attempt = HANDSHAKE_OUTCOME.scope(Cell::new(None), async move {
            let result = acceptor.accept(tcp).await;
            let outcome = HANDSHAKE_OUTCOME.try_with(Cell::take).ok().flatten();
            (result, outcome)
        });
        let finished = tokio::select! {
            biased;
            () = self.shutdown.cancelled() => return,
            finished = tokio::time::timeout_at(deadline, attempt) => finished,
        };
        drop(_permits);
        let stream = match finished {
            Err(_) => {
                let reason = format!(
                    "no TLS handshake within {:?}",
                    self.limits.handshake_timeout
                );
                return self.refused(remote, "timeout", &reason);
            }
            Ok((_, Some(Err(refusal)))) => {
                return self.refused(remote, refusal.label, &refusal.reason);
            }
            Ok((Err(e), _)) => return self.refused(remote, "handshake", &e.to_string()),
            Ok((Ok(_), None)) => {
                return self.refused(
                    remote,
                    "unidentified",
                    "the handshake ended without an admitted client certificate",
                );
            }
            Ok((Ok(inner), Some(Ok(peer)))) => PeerStream {
                inner,
                info: PeerInfo { remote, peer },
            },
        };
        tracing::debug!(%remote, member = %stream.info.peer.member_id, "peer connected");
        // If the server is gone the stream is dropped here, closing the connection.
        tokio::select! {
            biased;
            () = self.shutdown.cancelled() => {}
            _ = self.tx.send(Ok(stream)) => {}
        }
    }
}
