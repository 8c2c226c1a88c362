//! Tests of the TLS identity, the verifiers, the accepting side and dialing.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::io::AsyncReadExt;
use tonic::service::interceptor::InterceptedService;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::*;
use handbereik_keys::NodeKey;
use rustls::pki_types::PrivatePkcs8KeyDer;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

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
        let limits = AcceptLimits {
            handshake_timeout,
            max_handshakes,
            max_per_address: max_handshakes,
            max_silent: 4 * max_handshakes,
        };
        Self::start_with(server, admission, limits).await
    }

    async fn start_with(
        server: &Member,
        admission: Arc<TestAdmission>,
        limits: AcceptLimits,
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
            limits,
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
    let running = TestServer::start(&server, admission.clone(), Duration::from_secs(30), 8).await;
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
    let running = TestServer::start(&server, admission.clone(), Duration::from_secs(30), 8).await;
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
    let running = TestServer::start(&server, admission.clone(), Duration::from_secs(30), 8).await;
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
async fn idle_sockets_take_no_handshake_slot_and_are_closed() {
    let (server, client) = (member(1), member(2));
    let admission = TestAdmission::of(&[&server, &client]);
    // Four slots and room for eight silent connections; a handshake timeout
    // far beyond the test, so only the silent rules can free anything.
    let limits = AcceptLimits {
        handshake_timeout: PATIENCE * 5,
        max_handshakes: 4,
        max_per_address: 4,
        max_silent: 8,
    };
    let running = TestServer::start_with(&server, admission, limits).await;
    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(TcpStream::connect(running.addr).await.unwrap());
    }
    // Sixty-four idle sockets from the same address as the member: its
    // handshake goes through all the same.
    check(running.addr, &client, server.tls.public_key())
        .await
        .unwrap();
    running.refused_with("evicted").await;
    // And the idle ones are closed: nothing was sent within the first second.
    let mut buf = [0u8; 16];
    for stream in idle.iter_mut().rev().take(4) {
        let closed = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("an idle connection is closed");
        assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    }
    running.refused_with("silent").await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handshake_gives_its_slot_back_at_the_timeout() {
    let (server, client) = (member(1), member(2));
    let admission = TestAdmission::of(&[&server, &client]);
    let limits = AcceptLimits {
        handshake_timeout: Duration::from_millis(500),
        max_handshakes: 2,
        max_per_address: 2,
        max_silent: 16,
    };
    let running = TestServer::start_with(&server, admission, limits).await;
    // Two connections that start a TLS record and then stall take both slots.
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(running.addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stream, &[0x16])
            .await
            .unwrap();
        slow.push(stream);
    }
    // Their slots come back at the timeout, though they keep the sockets
    // open, and then a member gets in.
    running.refused_with("timeout").await;
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(PATIENCE, slow[0].read(&mut buf))
        .await
        .expect("the stalled connection is closed");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    check(running.addr, &client, server.tls.public_key())
        .await
        .unwrap();
    running.stop().await;
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
