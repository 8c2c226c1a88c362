//! Mutual TLS between members on the peer API: certificates, verifiers, the
//! accepting side and the dialing side.
//!
//! Owns the node's TLS identity (a self-signed X.509 certificate made from the
//! node key, common name = member id), the rules that decide who is on the
//! other end of a connection (the ed25519 key in its certificate, never a CA),
//! and the TLS 1.3 configurations built on them. It calls `handbereik-keys` for
//! the key and the ids, and an [`Admission`] given by the caller for whether a
//! key is a member right now; it knows nothing of the member list itself.
//!
//! Session resumption is switched off on both sides: a resumed session skips
//! the certificate check, and every connection must be admitted against the
//! member list as it is at that moment (revocation takes effect at once).

use std::cell::Cell;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use handbereik_keys::{MemberId, NodeKey, PublicKey};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::OID_SIG_ED25519;
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;

use crate::error::{Error, Result};

/// The only application protocol spoken on the peer listener.
const ALPN_H2: &[u8] = b"h2";

/// Our certificates start a day back, so that a peer whose clock is somewhat
/// behind ours still accepts them.
const NOT_BEFORE_MARGIN_SECS: u64 = 24 * 60 * 60;

/// 9999-12-31T23:59:59Z, RFC 5280's "no well-defined expiration date": trust
/// ends with the member list, not with the certificate.
const NO_EXPIRY_UNIX: i64 = 253_402_300_799;

/// HTTP/2 pings keep an idle connection through NATs and find a dead peer
/// before a request is sent into it.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// After a failed `accept` (typically out of file descriptors) the listener
/// waits this long, so that it does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Who a peer is, as established at the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The ed25519 key in the peer's certificate.
    pub key: PublicKey,
    /// The member that key belongs to, as [`Admission`] said at the handshake.
    pub member_id: MemberId,
}

/// Decides, at each handshake, whether a key may connect and which member it is.
///
/// Implemented by the caller on top of the current member list (active, not in
/// maintenance, not revoked). `claimed` is the certificate's common name.
pub trait Admission: Send + Sync + fmt::Debug + 'static {
    /// The member `key` belongs to, or why it may not connect.
    fn admit(&self, key: &PublicKey, claimed: &str) -> std::result::Result<MemberId, String>;
}

/// The node's TLS identity: certificate DER + key, built once at start.
pub struct TlsIdentity {
    certificate: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    public_key: PublicKey,
    member_id: MemberId,
}

impl TlsIdentity {
    /// Makes the self-signed certificate of `key` with `member_id` as its
    /// common name.
    pub fn new(key: &NodeKey, member_id: &MemberId) -> Result<Self> {
        let pkcs8 = PrivatePkcs8KeyDer::from(key.to_pkcs8_der()?);
        let key_pair =
            rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ED25519)
                .map_err(|e| Error::Tls(format!("the node key cannot sign a certificate: {e}")))?;
        let at = |unix: i64| {
            ASN1Time::from_timestamp(unix)
                .map(|t| t.to_datetime())
                .map_err(|e| Error::Tls(format!("certificate validity: {e}")))
        };
        let since = unix_now()?.saturating_sub(NOT_BEFORE_MARGIN_SECS);
        let mut params = rcgen::CertificateParams::default();
        let mut name = rcgen::DistinguishedName::new();
        name.push(rcgen::DnType::CommonName, member_id.as_str());
        params.distinguished_name = name;
        params.not_before = at(i64::try_from(since).unwrap_or(0))?;
        params.not_after = at(NO_EXPIRY_UNIX)?;
        let certificate = params
            .self_signed(&key_pair)
            .map_err(|e| Error::Tls(format!("cannot make the node certificate: {e}")))?
            .der()
            .clone();
        // Our certificate must pass the same check a peer applies to it; a
        // mismatch here would otherwise show up only as refused handshakes.
        let (public_key, name) = identity_of_certificate(&certificate)?;
        if public_key != key.public_key() || name != member_id.as_str() {
            return Err(Error::Tls(
                "the node certificate does not carry the node key and member id".into(),
            ));
        }
        Ok(TlsIdentity {
            certificate,
            key: pkcs8,
            public_key,
            member_id: member_id.clone(),
        })
    }

    /// The certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        self.certificate.as_ref()
    }

    /// The node's public key, as in the certificate.
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    /// The member id in the certificate's common name.
    pub fn member_id(&self) -> &MemberId {
        &self.member_id
    }
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("member_id", &self.member_id)
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

/// Extracts the ed25519 public key and the subject common name from a
/// certificate (DER), and checks that the certificate is self-signed by that
/// key and currently within its validity period. Errors say what is wrong.
pub fn identity_of_certificate(der: &[u8]) -> Result<(PublicKey, String)> {
    identity_at(der, unix_now()?)
}

/// [`identity_of_certificate`] at a given time, so that the verifiers use the
/// time rustls gives them.
fn identity_at(der: &[u8], now: u64) -> Result<(PublicKey, String)> {
    let bad = |reason: String| Error::Tls(format!("certificate refused: {reason}"));
    let (rest, cert) = X509Certificate::from_der(der)
        .map_err(|e| bad(format!("not a DER X.509 certificate ({e})")))?;
    if !rest.is_empty() {
        return Err(bad(format!("{} bytes follow the certificate", rest.len())));
    }
    let spki = cert.public_key();
    if spki.algorithm.algorithm != OID_SIG_ED25519 {
        return Err(bad(format!(
            "its key is not ed25519 (algorithm {})",
            spki.algorithm.algorithm
        )));
    }
    if spki.algorithm.parameters.is_some() || spki.subject_public_key.unused_bits != 0 {
        return Err(bad("malformed ed25519 key".into()));
    }
    let key = PublicKey::from_bytes(&spki.subject_public_key.data)
        .map_err(|e| bad(format!("unusable ed25519 key: {e}")))?;
    if cert.signature_algorithm.algorithm != OID_SIG_ED25519
        || cert.tbs_certificate.signature.algorithm != OID_SIG_ED25519
    {
        return Err(bad(format!(
            "not signed with ed25519 (algorithm {})",
            cert.signature_algorithm.algorithm
        )));
    }
    let signature = <[u8; 64]>::try_from(cert.signature_value.data.as_ref())
        .map(|bytes| ed25519_dalek::Signature::from_bytes(&bytes))
        .map_err(|_| bad("the signature is not 64 bytes".into()))?;
    key.verifying_key()?
        .verify_strict(cert.tbs_certificate.as_ref(), &signature)
        .map_err(|_| bad(format!("not signed by its own key {key}")))?;
    let validity = cert.validity();
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    if now < validity.not_before.timestamp() {
        return Err(bad(format!("not valid before {}", validity.not_before)));
    }
    if now > validity.not_after.timestamp() {
        return Err(bad(format!("expired at {}", validity.not_after)));
    }
    let mut names = cert.subject().iter_common_name();
    let name = match (names.next(), names.next()) {
        (Some(name), None) => name
            .as_str()
            .map_err(|e| bad(format!("unreadable common name ({e})")))?,
        (None, _) => return Err(bad("no common name".into())),
        (Some(_), Some(_)) => return Err(bad("more than one common name".into())),
    };
    Ok((key, name.to_string()))
}

fn unix_now() -> Result<u64> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| Error::Tls("the system clock is before 1970".into()))
}

/// Server side: TLS 1.3 only, ALPN "h2", client certificate mandatory; the
/// client certificate verifier calls [`identity_of_certificate`] and then
/// `admission.admit(..)`; a refusal fails the handshake.
pub fn server_config(
    identity: &TlsIdentity,
    admission: Arc<dyn Admission>,
) -> Result<Arc<rustls::ServerConfig>> {
    let provider = provider();
    let verifier = Arc::new(MemberVerifier {
        admission,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(format!("server configuration: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![identity.certificate.clone()],
            PrivateKeyDer::Pkcs8(identity.key.clone_key()),
        )
        .map_err(|e| Error::Tls(format!("server configuration: {e}")))?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// Client side: TLS 1.3 only, ALPN "h2", presents our certificate, and accepts
/// the server only if its certificate key equals `expected` (the key the
/// member list gives for that member): key pinning, no CA, the server name is
/// not checked.
pub fn client_config(
    identity: &TlsIdentity,
    expected: PublicKey,
) -> Result<Arc<rustls::ClientConfig>> {
    let provider = provider();
    let verifier = Arc::new(PinnedServer {
        expected,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(format!("client configuration: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(
            vec![identity.certificate.clone()],
            PrivateKeyDer::Pkcs8(identity.key.clone_key()),
        )
        .map_err(|e| Error::Tls(format!("client configuration: {e}")))?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// An explicit provider, so that library code depends on no process-wide
/// default being installed.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A refused certificate as rustls carries it: the reason reaches the log of
/// the side that refused (the other side only sees an alert).
fn certificate_refused(reason: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
        io::Error::other(reason),
    ))))
}

/// The handshake signature, with ed25519 as the only scheme either side offers.
fn verify_ed25519_handshake(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    algorithms: &WebPkiSupportedAlgorithms,
) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
    if dss.scheme != SignatureScheme::ED25519 {
        return Err(rustls::Error::PeerMisbehaved(
            rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
        ));
    }
    rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
}

fn no_tls12() -> rustls::Error {
    rustls::Error::General("TLS 1.2 is not spoken between members".into())
}

/// Why a handshake was refused: a label for metrics and a reason for the log.
#[derive(Debug)]
struct Refusal {
    label: &'static str,
    reason: String,
}

tokio::task_local! {
    // rustls gives a verifier no way to attach what it found to the
    // connection, so the verifier leaves the outcome here, in the task that
    // runs that one handshake (see `handshake`). Outside such a task nothing
    // is recorded, and no stream is ever yielded without an identity.
    static HANDSHAKE_OUTCOME: Cell<Option<std::result::Result<PeerIdentity, Refusal>>>;
}

fn record(outcome: std::result::Result<PeerIdentity, Refusal>) {
    let _ = HANDSHAKE_OUTCOME.try_with(|slot| slot.set(Some(outcome)));
}

/// Checks client certificates against the member list through [`Admission`].
#[derive(Debug)]
struct MemberVerifier {
    admission: Arc<dyn Admission>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for MemberVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        let refuse = |label: &'static str, reason: String| {
            record(Err(Refusal {
                label,
                reason: reason.clone(),
            }));
            certificate_refused(reason)
        };
        if !intermediates.is_empty() {
            return Err(refuse(
                "certificate",
                "a member presents one self-signed certificate, not a chain".into(),
            ));
        }
        let (key, claimed) = identity_at(end_entity.as_ref(), now.as_secs())
            .map_err(|e| refuse("certificate", e.to_string()))?;
        let member_id = self
            .admission
            .admit(&key, &claimed)
            .map_err(|reason| refuse("not_admitted", format!("key {key}: {reason}")))?;
        record(Ok(PeerIdentity { key, member_id }));
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        Err(no_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_ed25519_handshake(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// Accepts exactly one server key: the one the member list gives.
#[derive(Debug)]
struct PinnedServer {
    expected: PublicKey,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if !intermediates.is_empty() {
            return Err(certificate_refused(
                "a member presents one self-signed certificate, not a chain".into(),
            ));
        }
        let (key, _name) = identity_at(end_entity.as_ref(), now.as_secs())
            .map_err(|e| certificate_refused(e.to_string()))?;
        if key != self.expected {
            return Err(certificate_refused(format!(
                "the server presents key {key}, the member list gives {}",
                self.expected
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        Err(no_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_ed25519_handshake(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
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

/// Counts a refused handshake; given a short label (`timeout`, `certificate`,
/// `not_admitted`, `handshake`, `unidentified`) fit for a metric.
pub type OnRefused = Arc<dyn Fn(&str) + Send + Sync>;

/// Accepts TCP connections and runs TLS handshakes concurrently (each in its
/// own task, each within `handshake_timeout`, at most `max_handshakes` at
/// once), yielding finished streams. Ends when `shutdown` is cancelled.
/// Failed handshakes are logged at debug with the remote address and reason
/// and counted through `on_refused`.
///
/// Needs a tokio runtime; without one the stream yields one error and ends.
pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    handshake_timeout: Duration,
    max_handshakes: usize,
    shutdown: CancellationToken,
    on_refused: OnRefused,
) -> impl futures::Stream<Item = io::Result<PeerStream>> + Send + 'static {
    let limit = max_handshakes.max(1);
    let (tx, rx) = mpsc::channel(limit);
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            let handshakes = Handshakes {
                acceptor: tokio_rustls::TlsAcceptor::from(config),
                timeout: handshake_timeout,
                shutdown,
                tx,
                on_refused,
            };
            runtime.spawn(accept_loop(
                listener,
                Arc::new(Semaphore::new(limit)),
                handshakes,
            ));
        }
        Err(e) => {
            let _ = tx.try_send(Err(io::Error::other(format!(
                "the peer listener needs a tokio runtime: {e}"
            ))));
        }
    }
    ReceiverStream::new(rx)
}

/// What each handshake task needs.
#[derive(Clone)]
struct Handshakes {
    acceptor: tokio_rustls::TlsAcceptor,
    timeout: Duration,
    shutdown: CancellationToken,
    tx: mpsc::Sender<io::Result<PeerStream>>,
    on_refused: OnRefused,
}

async fn accept_loop(listener: TcpListener, slots: Arc<Semaphore>, handshakes: Handshakes) {
    loop {
        // A slot is taken before accepting, so that beyond the limit new
        // connections wait in the kernel's backlog rather than in memory.
        let slot = tokio::select! {
            biased;
            () = handshakes.shutdown.cancelled() => return,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            biased;
            () = handshakes.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, remote)) => {
                tokio::spawn(handshakes.clone().run(tcp, remote, slot));
            }
            Err(e) => {
                drop(slot);
                tracing::warn!(error = %e, "peer listener: cannot accept a connection");
                tokio::select! {
                    biased;
                    () = handshakes.shutdown.cancelled() => return,
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                }
            }
        }
    }
}

impl Handshakes {
    async fn run(
        self,
        tcp: TcpStream,
        remote: SocketAddr,
        slot: tokio::sync::OwnedSemaphorePermit,
    ) {
        // Small gRPC frames should not wait for Nagle; failing to set it only
        // costs latency.
        let _ = tcp.set_nodelay(true);
        let acceptor = self.acceptor.clone();
        let attempt = HANDSHAKE_OUTCOME.scope(Cell::new(None), async move {
            let result = acceptor.accept(tcp).await;
            let outcome = HANDSHAKE_OUTCOME.try_with(Cell::take).ok().flatten();
            (result, outcome)
        });
        let finished = tokio::select! {
            biased;
            () = self.shutdown.cancelled() => return,
            finished = tokio::time::timeout(self.timeout, attempt) => finished,
        };
        drop(slot);
        let refused = |label: &str, reason: &str| {
            tracing::debug!(%remote, reason, "peer handshake refused");
            (self.on_refused)(label);
        };
        let stream = match finished {
            Err(_) => {
                let reason = format!("no TLS handshake within {:?}", self.timeout);
                return refused("timeout", &reason);
            }
            Ok((_, Some(Err(refusal)))) => return refused(refusal.label, &refusal.reason),
            Ok((Err(e), _)) => return refused("handshake", &e.to_string()),
            Ok((Ok(_), None)) => {
                return refused(
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use tokio::io::AsyncReadExt;
    use tonic::service::interceptor::InterceptedService;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;

    /// Generous: the machine running the tests may be busy.
    const PATIENCE: Duration = Duration::from_secs(60);

    struct Member {
        id: MemberId,
        tls: TlsIdentity,
    }

    fn member(n: u8) -> Member {
        let key = NodeKey::from_seed([n; 32]);
        let id = MemberId::parse(&format!("{:020}", 1_000 + u32::from(n))).unwrap();
        let tls = TlsIdentity::new(&key, &id).unwrap();
        Member { id, tls }
    }

    /// A member list in miniature, which remembers what it was asked.
    #[derive(Debug, Default)]
    struct TestAdmission {
        members: HashMap<PublicKey, MemberId>,
        asked: Mutex<Vec<(PublicKey, String)>>,
    }

    impl TestAdmission {
        fn of(members: &[&Member]) -> Arc<Self> {
            Arc::new(TestAdmission {
                members: members
                    .iter()
                    .map(|m| (m.tls.public_key(), m.id.clone()))
                    .collect(),
                asked: Mutex::default(),
            })
        }

        fn asked(&self) -> Vec<(PublicKey, String)> {
            self.asked.lock().unwrap().clone()
        }
    }

    impl Admission for TestAdmission {
        fn admit(&self, key: &PublicKey, claimed: &str) -> std::result::Result<MemberId, String> {
            self.asked.lock().unwrap().push((*key, claimed.to_string()));
            let member = self.members.get(key).ok_or("not a member")?;
            if member.as_str() != claimed {
                return Err(format!("claims {claimed}, the key belongs to {member}"));
            }
            Ok(member.clone())
        }
    }

    struct TestServer {
        addr: SocketAddr,
        shutdown: CancellationToken,
        seen: Arc<Mutex<Vec<PeerInfo>>>,
        refused: Arc<Mutex<Vec<String>>>,
        served: tokio::task::JoinHandle<()>,
    }

    impl TestServer {
        async fn start(
            server: &Member,
            admission: Arc<TestAdmission>,
            handshake_timeout: Duration,
            max_handshakes: usize,
        ) -> TestServer {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let shutdown = CancellationToken::new();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let refused = Arc::new(Mutex::new(Vec::new()));
            let counted = refused.clone();
            let on_refused: OnRefused =
                Arc::new(move |label: &str| counted.lock().unwrap().push(label.to_string()));
            let stream = incoming(
                listener,
                server_config(&server.tls, admission).unwrap(),
                handshake_timeout,
                max_handshakes,
                shutdown.clone(),
                on_refused,
            );
            let (_reporter, health) = tonic_health::server::health_reporter();
            let recorder = seen.clone();
            let service = InterceptedService::new(health, move |request: tonic::Request<()>| {
                if let Some(info) = request.extensions().get::<PeerInfo>() {
                    recorder.lock().unwrap().push(info.clone());
                }
                Ok(request)
            });
            let stop = shutdown.clone();
            let served = tokio::spawn(async move {
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming_shutdown(stream, stop.cancelled_owned())
                    .await
                    .unwrap();
            });
            TestServer {
                addr,
                shutdown,
                seen,
                refused,
                served,
            }
        }

        fn seen(&self) -> Vec<PeerInfo> {
            self.seen.lock().unwrap().clone()
        }

        /// Waits until a refusal with `label` was counted.
        async fn refused_with(&self, label: &str) {
            tokio::time::timeout(PATIENCE, async {
                while !self.refused.lock().unwrap().iter().any(|l| l == label) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no {label:?} refusal counted; got {:?}",
                    self.refused.lock().unwrap()
                )
            });
        }

        async fn stop(self) {
            self.shutdown.cancel();
            tokio::time::timeout(PATIENCE, self.served)
                .await
                .expect("the server stops on shutdown")
                .unwrap();
        }
    }

    /// A health check from `client` to `addr`, pinning `expected` as the server key.
    async fn check(
        addr: SocketAddr,
        client: &Member,
        expected: PublicKey,
    ) -> std::result::Result<(), tonic::Status> {
        let config = client_config(&client.tls, expected).unwrap();
        let channel = channel(&addr.to_string(), config, Duration::from_secs(20)).unwrap();
        let request = HealthCheckRequest {
            service: String::new(),
        };
        let answer = tokio::time::timeout(PATIENCE, HealthClient::new(channel).check(request))
            .await
            .expect("an answer or an error in time")?;
        assert_eq!(answer.into_inner().status, ServingStatus::Serving as i32);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn member_call_succeeds_and_the_service_sees_who_called() {
        let (server, client) = (member(1), member(2));
        let admission = TestAdmission::of(&[&server, &client]);
        let running =
            TestServer::start(&server, admission.clone(), Duration::from_secs(30), 8).await;
        check(running.addr, &client, server.tls.public_key())
            .await
            .unwrap();
        let seen = running.seen();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(
            seen[0].peer,
            PeerIdentity {
                key: client.tls.public_key(),
                member_id: client.id.clone(),
            }
        );
        assert_eq!(seen[0].remote.ip(), running.addr.ip());
        assert_eq!(
            admission.asked(),
            vec![(client.tls.public_key(), client.id.to_string())]
        );
        running.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_key_admission_refuses_fails_the_handshake() {
        let (server, outsider) = (member(1), member(3));
        let admission = TestAdmission::of(&[&server]);
        let running =
            TestServer::start(&server, admission.clone(), Duration::from_secs(30), 8).await;
        assert!(
            check(running.addr, &outsider, server.tls.public_key())
                .await
                .is_err()
        );
        running.refused_with("not_admitted").await;
        assert!(running.seen().is_empty());
        assert_eq!(admission.asked()[0].0, outsider.tls.public_key());
        running.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_refuses_a_server_with_another_key_than_pinned() {
        let (server, client, other) = (member(1), member(2), member(4));
        let admission = TestAdmission::of(&[&server, &client]);
        let running = TestServer::start(&server, admission, Duration::from_secs(30), 8).await;
        assert!(
            check(running.addr, &client, other.tls.public_key())
                .await
                .is_err()
        );
        running.refused_with("handshake").await;
        assert!(running.seen().is_empty());
        running.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn admission_gets_the_claimed_name_and_may_refuse_a_mismatch() {
        let (server, client, impersonated) = (member(1), member(2), member(5));
        let key = NodeKey::from_seed([2; 32]);
        let liar = Member {
            id: client.id.clone(),
            tls: TlsIdentity::new(&key, &impersonated.id).unwrap(),
        };
        let admission = TestAdmission::of(&[&server, &client, &impersonated]);
        let running =
            TestServer::start(&server, admission.clone(), Duration::from_secs(30), 8).await;
        assert!(
            check(running.addr, &liar, server.tls.public_key())
                .await
                .is_err()
        );
        running.refused_with("not_admitted").await;
        assert_eq!(
            admission.asked(),
            vec![(client.tls.public_key(), impersonated.id.to_string())]
        );
        assert!(running.seen().is_empty());
        running.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_client_holds_up_no_one_and_is_dropped_after_the_timeout() {
        let (server, client) = (member(1), member(2));
        let admission = TestAdmission::of(&[&server, &client]);

        // A timeout far beyond the test: the call can only succeed if the
        // stalled handshakes run beside it rather than before it.
        let patient = TestServer::start(&server, admission.clone(), PATIENCE * 5, 4).await;
        let mut stalled = Vec::new();
        for _ in 0..2 {
            stalled.push(TcpStream::connect(patient.addr).await.unwrap());
        }
        check(patient.addr, &client, server.tls.public_key())
            .await
            .unwrap();
        let mut buf = [0u8; 16];
        for stream in &stalled {
            let open = stream.try_read(&mut buf);
            assert!(
                matches!(&open, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
                "{open:?}"
            );
        }
        patient.stop().await;

        let strict = TestServer::start(&server, admission, Duration::from_millis(300), 4).await;
        let mut stalled = TcpStream::connect(strict.addr).await.unwrap();
        let closed = tokio::time::timeout(PATIENCE, stalled.read(&mut buf))
            .await
            .expect("the stalled connection is closed");
        assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
        strict.refused_with("timeout").await;
        check(strict.addr, &client, server.tls.public_key())
            .await
            .unwrap();
        strict.stop().await;
    }

    fn ed25519_key_pair(seed: u8) -> rcgen::KeyPair {
        let der = PrivatePkcs8KeyDer::from(NodeKey::from_seed([seed; 32]).to_pkcs8_der().unwrap());
        rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_ED25519).unwrap()
    }

    fn certificate_with(key_pair: &rcgen::KeyPair, name: &str, years: (i32, i32)) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.not_before = rcgen::date_time_ymd(years.0, 1, 1);
        params.not_after = rcgen::date_time_ymd(years.1, 1, 1);
        params.self_signed(key_pair).unwrap().der().to_vec()
    }

    fn refusal(der: &[u8]) -> String {
        identity_of_certificate(der).unwrap_err().to_string()
    }

    #[test]
    fn identity_of_our_certificate_is_the_key_and_member_id() {
        let m = member(7);
        let (key, name) = identity_of_certificate(m.tls.certificate_der()).unwrap();
        assert_eq!(key, NodeKey::from_seed([7; 32]).public_key());
        assert_eq!(name, m.id.as_str());
    }

    #[test]
    fn identity_of_certificate_refuses_garbage() {
        assert!(refusal(b"not a certificate").contains("not a DER X.509"));
        assert!(refusal(&[]).contains("not a DER X.509"));
        let mut trailing = member(7).tls.certificate_der().to_vec();
        trailing.push(0);
        assert!(refusal(&trailing).contains("follow the certificate"));
    }

    #[test]
    fn identity_of_certificate_refuses_a_key_that_is_not_ed25519() {
        let p256 = rcgen::KeyPair::generate().unwrap();
        let der = certificate_with(&p256, "00000000000000001007", (2020, 4000));
        assert!(refusal(&der).contains("not ed25519"), "{}", refusal(&der));
    }

    #[test]
    fn identity_of_certificate_refuses_altered_signatures_and_names() {
        let m = member(7);
        let mut signature = m.tls.certificate_der().to_vec();
        if let Some(last) = signature.last_mut() {
            *last ^= 1;
        }
        assert!(refusal(&signature).contains("not signed by its own key"));

        // The same key under another member's name: the signature covers the name.
        let der = m.tls.certificate_der();
        let id = m.id.as_str().as_bytes();
        let mut renamed = der.to_vec();
        let places: Vec<usize> = (0..der.len().saturating_sub(id.len()))
            .filter(|&i| &der[i..i + id.len()] == id)
            .collect();
        assert_eq!(places.len(), 2, "the member id is issuer and subject");
        for at in places {
            renamed[at + id.len() - 1] ^= 0x01;
        }
        assert_eq!(
            X509Certificate::from_der(&renamed)
                .unwrap()
                .1
                .subject()
                .to_string(),
            "CN=00000000000000001006"
        );
        assert!(refusal(&renamed).contains("not signed by its own key"));
    }

    #[test]
    fn identity_of_certificate_refuses_expired_and_future_certificates() {
        let key_pair = ed25519_key_pair(7);
        let expired = certificate_with(&key_pair, "00000000000000001007", (2000, 2001));
        assert!(
            refusal(&expired).contains("expired"),
            "{}",
            refusal(&expired)
        );
        let future = certificate_with(&key_pair, "00000000000000001007", (3000, 3001));
        assert!(refusal(&future).contains("not valid before"));
        let current = certificate_with(&key_pair, "00000000000000001007", (2000, 4000));
        assert!(identity_of_certificate(&current).is_ok());
    }

    #[test]
    fn channel_refuses_endpoints_that_are_not_host_and_port() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let m = member(1);
        let config = client_config(&m.tls, m.tls.public_key()).unwrap();
        for bad in ["no port", "example.org", "example.org:443/path", ""] {
            assert!(
                channel(bad, config.clone(), Duration::from_secs(1)).is_err(),
                "{bad:?}"
            );
        }
        // Outside a runtime the channel cannot run; that is an error, not a panic.
        assert!(channel("127.0.0.1:1", config, Duration::from_secs(1)).is_err());
    }
}
