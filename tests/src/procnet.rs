//! A network of partners as real processes, for the fault suite.
//!
//! Every partner directory is made the way an operator makes one:
//! `handbereik init`, then governance runs `handbereik-keys init`, `new`,
//! `admit` (one request per partner), `sign` and `publish`, and the signed
//! list is put beside each node. Each node is a `handbereik run` child
//! process, killed when its [`Partner`] drops, with its stderr captured so
//! that a failing test can show the last lines of every run.
//!
//! The ports are chosen before `init`, so the membership requests, the
//! member list and the listeners all name the same addresses and stay right
//! across restarts: random ports below the kernel's ephemeral range (which
//! port-0 listeners and outgoing connections use), checked free by binding.
//!
//! Calls [`crate::proc`] for processes, [`crate::localapi`] for the local
//! API, and [`crate::stored`] (read-only, on a stopped node) to check what
//! was durably kept.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tonic::transport::Endpoint;

pub use crate::localapi::{Api, Bearer, CALL, within};
use crate::net::{CATALOGUE, PSEUDONYM_KEY, TEST_POLICY};
use crate::proc::{Log, clean_env, cli, cli_of, field, kill, signal, wait_child};
pub use crate::stored::StoredStream;

/// How long a node may take to start on a busy machine.
pub const START: Duration = Duration::from_secs(60);
/// How long one CLI command may take.
pub const CLI: Duration = Duration::from_secs(60);
/// The purpose every partner is admitted for.
pub const PURPOSE: &str = "jeugdbescherming";
/// The event type the tests publish.
pub const EVENT_TYPE: &str = "nl.samenonderhandbereik.melding.ontvangen";

/// The four listening ports of a node.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    /// libp2p.
    pub p2p: u16,
    /// The mutual-TLS peer API.
    pub peer: u16,
    /// The local API.
    pub local: u16,
    /// Prometheus metrics.
    pub metrics: u16,
}

/// Ports handed out by this process, so that two networks in one test
/// binary never get the same one.
static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Four free ports on `host`, below the ephemeral range. `check` binds each
/// first (not possible for an address of another namespace, which is empty).
fn choose_ports(host: &str, check: bool) -> Result<Ports> {
    let mut out = Vec::new();
    let mut taken = TAKEN.lock().unwrap();
    let taken = taken.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let port = 20_000 + (random % 12_000) as u16;
        if taken.contains(&port) {
            continue;
        }
        if check && std::net::TcpListener::bind((host, port)).is_err() {
            continue;
        }
        taken.insert(port);
        out.push(port);
        if out.len() == 4 {
            return Ok(Ports {
                p2p: out[0],
                peer: out[1],
                local: out[2],
                metrics: out[3],
            });
        }
    }
    bail!("found no four free ports on {host} between 20000 and 32000")
}

/// What kind of partner to make.
#[derive(Clone, Debug)]
pub struct PartnerSpec {
    /// Directory name and display name.
    pub name: String,
    /// The address every listener binds and the member list names.
    pub host: String,
    /// Run the node inside this network namespace (`ip netns exec`).
    pub netns: Option<String>,
    /// The data directory, if not `<dir>/data` (for a small file system).
    pub data_dir: Option<PathBuf>,
}

impl PartnerSpec {
    /// A partner on loopback.
    pub fn loopback(name: &str) -> Self {
        PartnerSpec {
            name: name.into(),
            host: "127.0.0.1".into(),
            netns: None,
            data_dir: None,
        }
    }
}

/// Settings written into every node's configuration.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// `p2p.sync_interval_secs`.
    pub sync_secs: u64,
    /// `notify.gap_timeout_secs`.
    pub gap_timeout_secs: u64,
    /// `store.commit_timeout_secs`.
    pub commit_timeout_secs: u64,
    /// `audit.checkpoint_interval_secs`.
    pub checkpoint_secs: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            sync_secs: 2,
            gap_timeout_secs: 30,
            commit_timeout_secs: 30,
            checkpoint_secs: 2,
        }
    }
}

/// A running `handbereik run`.
struct NodeProc {
    child: Child,
    log: Arc<Log>,
}

/// One partner: its directory, addresses and, when started, its process.
pub struct Partner {
    /// Its name.
    pub name: String,
    /// Its directory (config, key, token, list).
    pub dir: PathBuf,
    /// Its OIN.
    pub member_id: String,
    /// The address its listeners bind.
    pub host: String,
    /// Its ports.
    pub ports: Ports,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The node's `RUST_LOG` (a tracing filter) from its next start; `info`
    /// unless a test wants more.
    pub log_filter: String,
    netns: Option<String>,
    token: String,
    running: Option<NodeProc>,
    /// Tails of the logs of earlier runs, newest last.
    past: Vec<String>,
    runs: usize,
}

/// A whole network of partners.
pub struct ProcNet {
    /// The partners, in the order of their specs.
    pub partners: Vec<Partner>,
    /// Where governance keeps its key, draft and list.
    pub governance_dir: PathBuf,
    _tmp: tempfile::TempDir,
}

fn path_arg(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_string)
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

impl ProcNet {
    /// Makes the partners of `specs` with the CLIs and one governance key
    /// that admits all of them; starts none.
    pub fn create(specs: &[PartnerSpec], tuning: &Tuning) -> Result<ProcNet> {
        let tmp = tempfile::tempdir()?;
        let gov_dir = tmp.path().join("governance");
        std::fs::create_dir_all(&gov_dir)?;
        let gov_key = path_arg(&gov_dir.join("gov.key"))?;
        let draft = path_arg(&gov_dir.join("draft.cbor"))?;
        let list = gov_dir.join("member-list.cbor");
        cli_of("handbereik-keys", &["init", "--out", &gov_key], CLI)?.ok()?;
        let gov_pub = std::fs::read_to_string(format!("{gov_key}.pub"))?
            .trim()
            .to_string();
        cli_of(
            "handbereik-keys",
            &[
                "new",
                "--draft",
                &draft,
                "--network",
                "test",
                "--governance",
                &format!("{gov_key}.pub"),
                "--threshold",
                "1",
                "--valid-for",
                "1day",
            ],
            CLI,
        )?
        .ok()?;

        let mut partners = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let partner = Partner::init(tmp.path(), i, spec, &gov_pub, tuning)?;
            let request = path_arg(&partner.dir.join("membership-request.cbor"))?;
            cli_of(
                "handbereik-keys",
                &["admit", &request, "--draft", &draft],
                CLI,
            )?
            .ok()?;
            partners.push(partner);
        }
        cli_of(
            "handbereik-keys",
            &["sign", "--draft", &draft, "--key", &gov_key],
            CLI,
        )?
        .ok()?;
        cli_of(
            "handbereik-keys",
            &["publish", "--draft", &draft, "--out", &path_arg(&list)?],
            CLI,
        )?
        .ok()?;
        for partner in &partners {
            std::fs::copy(&list, partner.dir.join("member-list.cbor"))?;
        }
        Ok(ProcNet {
            partners,
            governance_dir: gov_dir,
            _tmp: tmp,
        })
    }

    /// Starts every partner that is not running.
    pub fn start_all(&mut self) -> Result<()> {
        for partner in &mut self.partners {
            if !partner.is_running() {
                partner.start()?;
            }
        }
        Ok(())
    }

    /// Waits until each partner in `which` sees every other one in `which`
    /// as connected.
    pub async fn wait_connected(&self, which: &[usize], limit: Duration) -> Result<()> {
        for &i in which {
            let want: Vec<&str> = which
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| self.partners[j].member_id.as_str())
                .collect();
            let api = self.partners[i].api().await?;
            let what = format!("{} is connected to {want:?}", self.partners[i].name);
            crate::net::wait_until(limit, &what, || {
                let api = api.clone();
                let want = want.clone();
                async move {
                    api.connected()
                        .await
                        .is_ok_and(|got| want.iter().all(|w| got.iter().any(|g| g == w)))
                }
            })
            .await?;
        }
        Ok(())
    }

    /// Gives partner `i`, which must be stopped, a new node key the way its
    /// operator and governance would: `handbereik init` in a new directory
    /// for the key and its membership request, that key put in place of the
    /// old one, and a next list (`new --from`, `revoke`, `admit`, `sign`,
    /// `publish`) handed to every partner. Answers the new public key (hex).
    pub fn rotate_key(&mut self, i: usize) -> Result<String> {
        let gov = self.governance_dir.clone();
        let list = gov.join("member-list.cbor");
        let next = path_arg(&gov.join(format!("rotate-{i}.cbor")))?;
        let gov_key = path_arg(&gov.join("gov.key"))?;
        let partner = &self.partners[i];
        if partner.is_running() {
            bail!("stop {} before giving it a new key", partner.name);
        }
        let scratch = gov.join(format!("rotate-{}", partner.name));
        let host = &partner.host;
        cli(
            &[
                "init",
                "--dir",
                &path_arg(&scratch)?,
                "--network",
                "test",
                "--member-id",
                &partner.member_id,
                "--name",
                &partner.name,
                "--roles",
                "afnemer,bronhouder",
                "--purposes",
                PURPOSE,
                "--p2p-address",
                &format!("/ip4/{host}/tcp/{}", partner.ports.p2p),
                "--grpc-endpoint",
                &format!("{host}:{}", partner.ports.peer),
            ],
            CLI,
        )?
        .ok()?;
        std::fs::remove_file(partner.dir.join("node.key"))?;
        std::fs::copy(scratch.join("node.key"), partner.dir.join("node.key"))?;
        let keys = |args: &[&str]| cli_of("handbereik-keys", args, CLI)?.ok();
        keys(&["new", "--draft", &next, "--from", &path_arg(&list)?])?;
        keys(&[
            "revoke",
            &partner.member_id,
            "--draft",
            &next,
            "--reason",
            "node key rotation",
        ])?;
        keys(&[
            "admit",
            &path_arg(&scratch.join("membership-request.cbor"))?,
            "--draft",
            &next,
        ])?;
        keys(&["sign", "--draft", &next, "--key", &gov_key])?;
        keys(&["publish", "--draft", &next, "--out", &path_arg(&list)?])?;
        for partner in &self.partners {
            let tmp = partner.dir.join("member-list.cbor.tmp");
            std::fs::copy(&list, &tmp)?;
            std::fs::rename(&tmp, partner.dir.join("member-list.cbor"))?;
        }
        Ok(handbereik_keys::NodeKey::load(&scratch.join("node.key"))?
            .public_key()
            .to_hex())
    }

    /// The tails of every node's logs, this run and earlier ones.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for p in &self.partners {
            for (n, past) in p.past.iter().enumerate() {
                out.push_str(&format!(
                    "\n----- {} (earlier run {}) -----\n{past}\n",
                    p.name,
                    n + 1
                ));
            }
            if let Some(running) = &p.running {
                out.push_str(&format!(
                    "\n----- {} (current run) -----\n{}\n",
                    p.name,
                    running.log.tail(40)
                ));
            }
        }
        out
    }

    /// `result`, with the nodes' log tails added to an error.
    pub fn explain<T>(&self, result: Result<T>) -> Result<T> {
        result.map_err(|e| anyhow::anyhow!("{e:#}\n\nnode logs (tails):{}", self.logs()))
    }
}

impl Partner {
    fn init(
        root: &Path,
        i: usize,
        spec: &PartnerSpec,
        gov_pub: &str,
        tuning: &Tuning,
    ) -> Result<Partner> {
        let dir = root.join(&spec.name);
        let member_id = format!("0000000100{:010}", 2000 + i);
        let ports = choose_ports(&spec.host, spec.netns.is_none())?;
        let host = &spec.host;
        cli(
            &[
                "init",
                "--dir",
                &path_arg(&dir)?,
                "--network",
                "test",
                "--member-id",
                &member_id,
                "--name",
                &spec.name,
                "--roles",
                "afnemer,bronhouder",
                "--purposes",
                PURPOSE,
                "--p2p-address",
                &format!("/ip4/{host}/tcp/{}", ports.p2p),
                "--grpc-endpoint",
                &format!("{host}:{}", ports.peer),
            ],
            CLI,
        )?
        .ok()?;
        let data_dir = spec.data_dir.clone().unwrap_or_else(|| dir.join("data"));
        let config = dir.join("handbereik.toml");
        let text = std::fs::read_to_string(&config)?;
        let replacements = [
            (
                "anchor_keys = []".to_string(),
                format!("anchor_keys = [\"{gov_pub}\"]"),
            ),
            (
                "data_dir = \"data\"".to_string(),
                format!("data_dir = {:?}", path_arg(&data_dir)?),
            ),
            (
                format!("listen = [\"/ip4/0.0.0.0/tcp/{}\"]", ports.p2p),
                format!(
                    "listen = [\"/ip4/{host}/tcp/{}\"]\nsync_interval_secs = {}",
                    ports.p2p, tuning.sync_secs
                ),
            ),
            (
                format!("listen = \"0.0.0.0:{}\"", ports.peer),
                format!("listen = \"{host}:{}\"", ports.peer),
            ),
            (
                "listen = \"127.0.0.1:7400\"".to_string(),
                format!("listen = \"{host}:{}\"", ports.local),
            ),
            (
                "listen = \"127.0.0.1:9464\"".to_string(),
                format!("listen = \"{host}:{}\"", ports.metrics),
            ),
            (
                "member_list_file = \"member-list.cbor\"".to_string(),
                "member_list_file = \"member-list.cbor\"\nmember_list_poll_secs = 1".to_string(),
            ),
        ];
        let mut text = text;
        for (from, to) in replacements {
            if !text.contains(&from) {
                bail!("the starter config of `handbereik init` has no line {from:?}:\n{text}");
            }
            text = text.replacen(&from, &to, 1);
        }
        text.push_str(&format!(
            "\n[store]\ncache_capacity_mb = 16\ncommit_timeout_secs = {}\n\
             \n[notify]\ngap_timeout_secs = {}\n\
             \n[policy]\nreload_secs = 1\n\
             \n[audit]\ncheckpoint_interval_secs = {}\n\
             \n[registry]\npseudonym_key_file = \"pseudonym.key\"\n{CATALOGUE}",
            tuning.commit_timeout_secs, tuning.gap_timeout_secs, tuning.checkpoint_secs
        ));
        std::fs::write(&config, text)?;
        std::fs::write(dir.join("policy.cedar"), TEST_POLICY)?;
        let hex: String = PSEUDONYM_KEY.iter().map(|b| format!("{b:02x}")).collect();
        handbereik_keys::files::write_file(
            &dir.join("pseudonym.key"),
            hex.as_bytes(),
            handbereik_keys::files::Visibility::Private,
            handbereik_keys::files::Overwrite::Refuse,
        )?;
        let token = std::fs::read_to_string(dir.join("api-token"))?
            .trim()
            .to_string();
        Ok(Partner {
            name: spec.name.clone(),
            dir,
            member_id,
            host: spec.host.clone(),
            ports,
            data_dir,
            netns: spec.netns.clone(),
            token,
            running: None,
            past: Vec::new(),
            runs: 0,
            log_filter: "info".into(),
        })
    }

    /// The node key file.
    pub fn key_file(&self) -> PathBuf {
        self.dir.join("node.key")
    }

    /// The node's current public key (from its key file).
    pub fn public_key(&self) -> Result<String> {
        Ok(handbereik_keys::NodeKey::load(&self.key_file())?
            .public_key()
            .to_hex())
    }

    /// The configuration file.
    pub fn config(&self) -> PathBuf {
        self.dir.join("handbereik.toml")
    }

    /// Whether the process was started and has not been reaped.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// The process id of the running node.
    pub fn pid(&self) -> Result<u32> {
        Ok(self
            .running
            .as_ref()
            .context("the node is not running")?
            .child
            .id())
    }

    /// The running node's log.
    pub fn log(&self) -> Result<Arc<Log>> {
        Ok(self
            .running
            .as_ref()
            .context("the node is not running")?
            .log
            .clone())
    }

    /// How many times the node was started.
    pub fn runs(&self) -> usize {
        self.runs
    }

    /// Starts `handbereik run` and waits for its "node started" line. A port
    /// that another process took meanwhile is retried a few times.
    pub fn start(&mut self) -> Result<()> {
        if self.running.is_some() {
            bail!("{} is running already", self.name);
        }
        let mut last = String::new();
        let began = std::time::Instant::now();
        for _ in 0..5 {
            let bin = crate::bin("handbereik")?;
            let mut cmd = match &self.netns {
                Some(ns) => {
                    let mut cmd = std::process::Command::new("ip");
                    cmd.args(["netns", "exec", ns]).arg(bin);
                    cmd
                }
                None => std::process::Command::new(bin),
            };
            clean_env(&mut cmd);
            cmd.env("RUST_LOG", &self.log_filter);
            cmd.arg("run")
                .arg("--config")
                .arg(self.config())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().context("starting handbereik run")?;
            let stderr = child.stderr.take().context("no stderr pipe")?;
            let mut node = NodeProc {
                child,
                log: Log::follow(stderr),
            };
            self.runs += 1;
            match node
                .log
                .wait_for(START, "\"node started\"", |l| l.contains("node started"))
            {
                Ok(line) => {
                    if field(&line, "local_api").is_none() {
                        bail!("no local_api= in the start line: {line}");
                    }
                    self.running = Some(node);
                    eprintln!(
                        "{} started (run {}) in {:.1} s",
                        self.name,
                        self.runs,
                        began.elapsed().as_secs_f64()
                    );
                    return Ok(());
                }
                Err(e) => {
                    kill(&mut node.child);
                    last = format!("{e:#}");
                    self.past.push(node.log.tail(40));
                    if !last.contains("in use") {
                        break;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        bail!("{} did not start: {last}", self.name)
    }

    fn retire(&mut self, node: NodeProc) {
        self.past.push(node.log.tail(40));
        if self.past.len() > 3 {
            self.past.remove(0);
        }
    }

    /// `kill -9`: SIGKILL, reaped at once.
    pub fn kill9(&mut self) -> Result<()> {
        let mut node = self.running.take().context("the node is not running")?;
        let _ = node.child.kill();
        wait_child(&mut node.child, Duration::from_secs(10))?;
        self.retire(node);
        Ok(())
    }

    /// SIGTERM, then waits up to `limit` for the exit; returns its status and
    /// all of the node's stderr. The process is killed if it does not exit.
    pub fn terminate(&mut self, limit: Duration) -> Result<(ExitStatus, String)> {
        let node = self.running.as_ref().context("the node is not running")?;
        signal(node.child.id(), "TERM")?;
        self.wait_exit(limit)
    }

    /// Waits up to `limit` for the node to exit by itself; returns its status
    /// and all of its stderr. Killed (and an error) if it does not exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Result<(ExitStatus, String)> {
        let mut node = self.running.take().context("the node is not running")?;
        let status = wait_child(&mut node.child, limit);
        if status.is_err() {
            kill(&mut node.child);
        }
        let all = node.log.all(Duration::from_secs(5));
        self.retire(node);
        Ok((status?, all))
    }

    /// Whether the process exited by itself; then it is reaped and its
    /// status and stderr returned.
    pub fn exited(&mut self) -> Result<Option<(ExitStatus, String)>> {
        let node = self.running.as_mut().context("the node is not running")?;
        match node.child.try_wait()? {
            None => Ok(None),
            Some(_) => self.wait_exit(Duration::from_secs(5)).map(Some),
        }
    }

    /// SIGSTOP.
    pub fn pause(&self) -> Result<()> {
        signal(self.pid()?, "STOP")
    }

    /// SIGCONT.
    pub fn resume(&self) -> Result<()> {
        signal(self.pid()?, "CONT")
    }

    /// A client of the local API with this node's token. Connects lazily,
    /// and again after a restart.
    pub async fn api(&self) -> Result<Api> {
        let endpoint = Endpoint::from_shared(format!("http://{}:{}", self.host, self.ports.local))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        Ok(Api::new(endpoint.connect_lazy(), &self.token))
    }

    /// The value of one metric (`handbereik_...`) on the metrics endpoint.
    pub fn metric(&self, name: &str) -> Result<f64> {
        let address = format!("{}:{}", self.host, self.ports.metrics);
        let addr: std::net::SocketAddr = address.parse()?;
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let line = response
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .with_context(|| format!("no metric {name} at {address}"))?;
        line.split_whitespace()
            .nth(1)
            .context("a metric line without a value")?
            .parse()
            .with_context(|| format!("the value of {name}: {line}"))
    }

    /// The events of this node's store in the stream of `source` for
    /// [`PURPOSE`], read from the data directory of the stopped node.
    pub async fn stored_stream(&self, source: &str) -> Result<StoredStream> {
        if self.running.is_some() {
            bail!("stop {} before reading its store", self.name);
        }
        crate::stored::read_stream(&self.data_dir, source, PURPOSE).await
    }
}

impl Drop for Partner {
    fn drop(&mut self) {
        if let Some(node) = &mut self.running {
            // A stopped process cannot die until it is continued.
            let _ = signal(node.child.id(), "CONT");
            kill(&mut node.child);
        }
    }
}

/// `HANDBEREIK_FAULT_SCALE` (default 1): the multiplier of cycles and
/// events, for the larger runs whose figures docs/reliability.md reports.
pub fn scale() -> u64 {
    std::env::var("HANDBEREIK_FAULT_SCALE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&v| (1..=1000).contains(&v))
        .unwrap_or(1)
}
