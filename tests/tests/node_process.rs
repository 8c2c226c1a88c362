//! The built `handbereik` binary as an operator runs it: `init`, a signed
//! member list, `run` as a real process (ports from the OS), SIGTERM, a
//! restart on the same data directory, a second process on a locked data
//! directory, the client commands `status`, `publish` and `subscribe` against
//! two running nodes, and gRPC health and reflection without a token.
//!
//! Every wait is bounded and every child process is killed when its guard is
//! dropped, so a failing test leaves nothing running.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use handbereik_keys::{
    Domain, GovernanceSet, Member, MemberList, MembershipRequest, NodeKey, SignedEnvelope,
    canonical, time,
};
use handbereik_tests::Run;
use handbereik_tests::proc::{KillOnDrop, Log, cli, command, field, kill, signal, wait_child};

/// Generous: the machine may be busy with other tests and builds.
const START: Duration = Duration::from_secs(30);
const CLI: Duration = Duration::from_secs(30);
const EXIT: Duration = Duration::from_secs(15);

const EVENT_TYPE: &str = "nl.samenonderhandbereik.melding.ontvangen";

/// The flags that put every listener of a node on a port from the OS.
const PORTS_FROM_OS: [&str; 5] = [
    "p2p.listen=[\"/ip4/127.0.0.1/tcp/0\"]",
    "peer_api.listen=127.0.0.1:0",
    "local_api.listen=127.0.0.1:0",
    "metrics.listen=127.0.0.1:0",
    "governance.member_list_poll_secs=1",
];

// ---------------------------------------------------------------------------
// Processes

/// A running `handbereik run`; killed when dropped.
struct NodeProc {
    child: Child,
    log: Arc<Log>,
    local_api: String,
    metrics: String,
    p2p: String,
}

impl NodeProc {
    /// Starts `handbereik run` for the node in `dir` with every listener on a
    /// port from the OS, and waits until it has started and listens on p2p.
    fn start(dir: &Path) -> Result<NodeProc> {
        let child = spawn_run(dir)?;
        let mut node = NodeProc {
            child,
            log: Arc::new(Log::default()),
            local_api: String::new(),
            metrics: String::new(),
            p2p: String::new(),
        };
        let stderr = node.child.stderr.take().context("no stderr pipe")?;
        node.log = Log::follow(stderr);
        let started = node
            .log
            .wait_for(START, "\"node started\"", |l| l.contains("node started"))?;
        node.local_api = field(&started, "local_api")
            .context("no local_api= in the start line")?
            .to_string();
        node.metrics = field(&started, "metrics")
            .context("no metrics= in the start line")?
            .to_string();
        let listening = node
            .log
            .wait_for(START, "\"p2p listening\"", |l| l.contains("p2p listening"))?;
        node.p2p = field(&listening, "address")
            .context("no address= in the p2p listening line")?
            .to_string();
        Ok(node)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    fn terminate(&self) -> Result<()> {
        signal(self.pid(), "TERM")
    }

    /// Waits up to `limit` for the process to exit; returns its status and all of stderr.
    fn wait_exit(&mut self, limit: Duration) -> Result<(ExitStatus, String)> {
        let status = wait_child(&mut self.child, limit)?;
        Ok((status, self.log.all(Duration::from_secs(5))))
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

fn spawn_run(dir: &Path) -> Result<Child> {
    let config = dir.join("handbereik.toml");
    let mut cmd = command("handbereik")?;
    cmd.arg("run").arg("--config").arg(&config);
    for set in PORTS_FROM_OS {
        cmd.args(["--set", set]);
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting handbereik run")
}

// ---------------------------------------------------------------------------
// Partners and governance

/// A partner directory made by `handbereik init`.
struct Partner {
    dir: PathBuf,
    member_id: String,
}

impl Partner {
    /// `handbereik init` in `root/name`, then the governance key filled in as
    /// the starter config's comments say.
    fn init(root: &Path, name: &str, member_id: &str, gov: &NodeKey) -> Result<Partner> {
        let dir = root.join(name);
        let dir_arg = dir.to_string_lossy().into_owned();
        let out = cli(
            &[
                "init",
                "--dir",
                &dir_arg,
                "--network",
                "test",
                "--member-id",
                member_id,
                "--name",
                name,
                "--roles",
                "afnemer,bronhouder",
                "--purposes",
                "jeugdbescherming",
                // Replaced in the member list by the address the node really listens on.
                "--p2p-address",
                "/ip4/127.0.0.1/tcp/4001",
                "--grpc-endpoint",
                "127.0.0.1:7443",
            ],
            CLI,
        )?
        .ok()?;
        assert!(out.stdout.contains("public key"), "{}", out.stdout);
        let path = dir.join("handbereik.toml");
        let text = std::fs::read_to_string(&path)?;
        assert!(text.contains("anchor_keys = []"), "{text}");
        assert!(text.contains("threshold = 1"), "{text}");
        let text = text.replace(
            "anchor_keys = []",
            &format!("anchor_keys = [\"{}\"]", gov.public_key()),
        );
        std::fs::write(&path, text)?;
        Ok(Partner {
            dir,
            member_id: member_id.to_string(),
        })
    }

    fn token_file(&self) -> String {
        self.dir.join("api-token").to_string_lossy().into_owned()
    }

    /// This partner as a member, from its membership request, reachable at `p2p`.
    fn member(&self, p2p: &str, now: u64) -> Result<Member> {
        let request =
            MembershipRequest::verify(&std::fs::read(self.dir.join("membership-request.cbor"))?)?;
        Ok(Member {
            member_id: request.member_id,
            name: request.name,
            roles: request.roles,
            purposes: request.purposes,
            node_key: request.node_key,
            p2p_addresses: vec![p2p.to_string()],
            grpc_endpoint: request.grpc_endpoint,
            valid_from: now.saturating_sub(60),
            valid_until: None,
            maintenance: false,
            regions: Vec::new(),
        })
    }
}

/// A member list of `members` signed by `gov` alone (threshold 1).
fn signed_list(gov: &NodeKey, version: u64, mut members: Vec<Member>) -> Result<Vec<u8>> {
    let now = time::now();
    members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    let list = MemberList {
        network: "test".into(),
        version,
        issued_at: now,
        expires_at: now + 3600,
        governance: GovernanceSet::new(vec![gov.public_key()], 1)?,
        members,
        revoked: Vec::new(),
        profile: Default::default(),
    };
    list.check()?;
    let body = canonical::to_vec(&list, "member list")?;
    Ok(SignedEnvelope::signed(Domain::MemberList, body, gov).encode()?)
}

/// Puts `list` where the node in `dir` polls for it, in one rename.
fn hand_out(dir: &Path, list: &[u8]) -> Result<()> {
    let tmp = dir.join("member-list.cbor.tmp");
    std::fs::write(&tmp, list)?;
    std::fs::rename(&tmp, dir.join("member-list.cbor"))?;
    Ok(())
}

/// `GET path` on the metrics endpoint; returns the status line.
fn http_get(address: &str, path: &str) -> Result<String> {
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.lines().next().unwrap_or_default().to_string())
}

fn api_args<'a>(node: &'a NodeProc, partner: &'a Partner) -> Vec<String> {
    vec![
        "--api".into(),
        node.local_api.clone(),
        "--token-file".into(),
        partner.token_file(),
    ]
}

fn cli_with(command: &[&str], api: &[String]) -> Result<Run> {
    let mut args: Vec<&str> = command.to_vec();
    args.extend(api.iter().map(String::as_str));
    cli(&args, CLI)
}

fn publish(api: &[String], subject: &str) -> Result<Run> {
    cli_with(
        &[
            "publish",
            "--type",
            EVENT_TYPE,
            "--purpose",
            "jeugdbescherming",
            "--subject",
            subject,
            "--data",
            "{}",
        ],
        api,
    )
}

/// Runs `handbereik status` until a line satisfies `done`, bounded by `limit`.
fn status_until(
    api: &[String],
    limit: Duration,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> Result<Run> {
    let deadline = Instant::now() + limit;
    loop {
        let out = cli_with(&["status"], api)?;
        if out.code == 0 && out.stdout.lines().any(&done) {
            return Ok(out);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {limit:?} waiting until {what}; last status: {out:?}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn sigterm_shuts_the_node_down_cleanly() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let gov = NodeKey::generate()?;
    let partner = Partner::init(tmp.path(), "gemeente", "00000001001234567000", &gov)?;

    let mut node = NodeProc::start(&partner.dir)?;
    let list = signed_list(&gov, 1, vec![partner.member(&node.p2p, time::now())?])?;
    hand_out(&partner.dir, &list)?;
    node.log
        .wait_for(START, "the member list is installed", |l| {
            l.contains("member list installed")
        })?;
    assert!(
        http_get(&node.metrics, "/ready")?.contains("200"),
        "the metrics endpoint at {} is not ready",
        node.metrics
    );
    let api = api_args(&node, &partner);
    let out = publish(&api, "p-1")?.ok()?;
    assert!(out.stdout.contains("sequence 1"), "{}", out.stdout);

    // A second node on the same data directory is refused with one line.
    let mut second = KillOnDrop(spawn_run(&partner.dir)?);
    let stderr = Log::follow(second.0.stderr.take().context("no stderr")?);
    let status = wait_child(&mut second.0, START)
        .context("a second node on the same data directory did not exit")?;
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: stderr.all(Duration::from_secs(5)),
    }
    .refused("locked by another process")?;

    // SIGTERM: exit 0, in order.
    node.terminate()?;
    let (status, stderr) = node.wait_exit(EXIT)?;
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
    assert!(
        stderr.lines().last().is_some_and(|l| l.contains("stopped")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("ERROR"), "{stderr}");
    drop(node);

    // Again on the same data directory: the store reopens with the list and
    // the stream's sequence.
    let mut node = NodeProc::start(&partner.dir)?;
    let api = api_args(&node, &partner);
    status_until(&api, START, "the stored member list is loaded", |l| {
        l.starts_with("member list  version 1,")
    })?;
    let out = publish(&api, "p-2")?.ok()?;
    assert!(out.stdout.contains("sequence 2"), "{}", out.stdout);
    node.terminate()?;
    let (status, stderr) = node.wait_exit(EXIT)?;
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    Ok(())
}

#[test]
fn cli_publish_subscribe_and_status() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let gov = NodeKey::generate()?;
    let a = Partner::init(tmp.path(), "gemeente", "00000001001234567000", &gov)?;
    let b = Partner::init(tmp.path(), "veilig-thuis", "00000001002345678000", &gov)?;
    let node_a = NodeProc::start(&a.dir)?;
    let node_b = NodeProc::start(&b.dir)?;

    let now = time::now();
    let list = signed_list(
        &gov,
        1,
        vec![a.member(&node_a.p2p, now)?, b.member(&node_b.p2p, now)?],
    )?;
    hand_out(&a.dir, &list)?;
    hand_out(&b.dir, &list)?;

    let api_a = api_args(&node_a, &a);
    let api_b = api_args(&node_b, &b);
    let status = status_until(&api_a, START, "A is connected to B", |l| {
        l.trim_end() == "peers        1"
    })?;
    assert!(status.stdout.contains(&a.member_id), "{}", status.stdout);
    assert!(status.stdout.contains(&b.member_id), "{}", status.stdout);
    assert!(
        status.stdout.contains("member list  version 1,"),
        "{}",
        status.stdout
    );

    let out = publish(&api_a, "p-1")?.ok()?;
    assert!(out.stdout.contains("sequence 1"), "{}", out.stdout);
    assert!(out.stdout.contains(EVENT_TYPE), "{}", out.stdout);

    let out = cli_with(&["subscribe", "backoffice", "--count", "1"], &api_b)?.ok()?;
    let line = out.stdout.trim_end();
    assert_eq!(line.lines().count(), 1, "{}", out.stdout);
    assert!(line.contains(EVENT_TYPE), "{line}");
    assert!(line.contains("sequence 1"), "{line}");
    assert!(line.contains(&format!("from {}", a.member_id)), "{line}");
    assert!(line.contains("subject p-1"), "{line}");

    // A token that is not this node's.
    let wrong = tmp.path().join("wrong-token");
    std::fs::write(&wrong, format!("{}\n", "ab".repeat(32)))?;
    cli(
        &[
            "status",
            "--api",
            &node_a.local_api,
            "--token-file",
            &wrong.to_string_lossy(),
        ],
        CLI,
    )?
    .refused("token")?;

    // Nothing listening.
    let out = cli(
        &[
            "status",
            "--api",
            "127.0.0.1:1",
            "--token-file",
            &a.token_file(),
        ],
        CLI,
    )?
    .refused("cannot reach the node")?;
    assert!(out.stderr.contains("is the node running"), "{}", out.stderr);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_need_no_token() -> Result<()> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let tmp = tempfile::tempdir()?;
    let gov = NodeKey::generate()?;
    let partner = Partner::init(tmp.path(), "gemeente", "00000001001234567000", &gov)?;
    let dir = partner.dir.clone();
    let node = tokio::task::spawn_blocking(move || NodeProc::start(&dir)).await??;

    let channel = tokio::time::timeout(
        Duration::from_secs(20),
        tonic::transport::Channel::from_shared(format!("http://{}", node.local_api))?.connect(),
    )
    .await
    .context("connecting to the local API")??;

    let mut health = HealthClient::new(channel.clone());
    for service in ["", "handbereik.v1.Notifications", "handbereik.v1.Node"] {
        let response = tokio::time::timeout(
            Duration::from_secs(20),
            health.check(HealthCheckRequest {
                service: service.into(),
            }),
        )
        .await
        .context("health check")??
        .into_inner();
        assert_eq!(
            response.status,
            ServingStatus::Serving as i32,
            "service {service:?}"
        );
    }

    // The token is still required for the services themselves.
    let mut client = handbereik_proto::v1::node_client::NodeClient::new(channel.clone());
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        client.status(handbereik_proto::v1::StatusRequest {}),
    )
    .await
    .context("status without a token")?
    .expect_err("status without a token must be refused");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");

    // Reflection lists the services.
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = tokio::time::timeout(
        Duration::from_secs(20),
        reflection.server_reflection_info(tonic::codegen::tokio_stream::once(request)),
    )
    .await
    .context("reflection")??
    .into_inner();
    let response = tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .context("reflection answer")??
        .context("reflection stream ended")?;
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "handbereik.v1.Notifications",
        "handbereik.v1.Node",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&expected), "{expected} not in {names:?}");
    }
    drop(node);
    Ok(())
}
