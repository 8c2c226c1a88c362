//! Who is on the other end of a handshake: the verifiers of both sides and
//! the TLS 1.3 configurations built on them.
//!
//! The server checks a client's certificate ([`identity_at`]) and asks an
//! [`Admission`] (the member list, given by the caller) whether that key may
//! connect now; the client pins the server's key from the member list. No
//! CA, no server name check. Session resumption is off on both sides, so
//! every connection is admitted against the member list as it is then.

use std::cell::Cell;
use std::io;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};

use super::identity::{TlsIdentity, identity_at};
use super::{ALPN_H2, Admission, PeerIdentity};
use crate::error::{Error, Result};
use handbereik_keys::PublicKey;

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
pub(super) struct Refusal {
    pub(super) label: &'static str,
    pub(super) reason: String,
}

tokio::task_local! {
    // rustls gives a verifier no way to attach what it found to the
    // connection, so the verifier leaves the outcome here, in the task that
    // runs that one handshake (see `handshake`). Outside such a task nothing
    // is recorded, and no stream is ever yielded without an identity.
    pub(super) static HANDSHAKE_OUTCOME: Cell<Option<std::result::Result<PeerIdentity, Refusal>>>;
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
