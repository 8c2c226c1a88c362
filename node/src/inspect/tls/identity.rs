//! The node's TLS identity: a self-signed X.509 certificate made from the
//! node key (common name = member id), and the check every certificate of a
//! peer must pass (ed25519, self-signed by its own key, within validity, one
//! common name). Calls `handbereik-keys` for keys and ids.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use handbereik_keys::{MemberId, NodeKey, PublicKey};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::OID_SIG_ED25519;
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;

use crate::error::{Error, Result};

/// Our certificates start a day back, so that a peer whose clock is somewhat
/// behind ours still accepts them.
const NOT_BEFORE_MARGIN_SECS: u64 = 24 * 60 * 60;

/// 9999-12-31T23:59:59Z, RFC 5280's "no well-defined expiration date": trust
/// ends with the member list, not with the certificate.
const NO_EXPIRY_UNIX: i64 = 253_402_300_799;

/// The node's TLS identity: certificate DER + key, built once at start.
pub struct TlsIdentity {
    pub(super) certificate: CertificateDer<'static>,
    pub(super) key: PrivatePkcs8KeyDer<'static>,
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
pub(super) fn identity_at(der: &[u8], now: u64) -> Result<(PublicKey, String)> {
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
