//! A network of in-process nodes on loopback for the multi-node tests.
//!
//! Every node gets its own directory, key, token and configuration with
//! ports from the OS (port 0). Governance is one key (threshold 1) held by the
//! test; lists are built and signed here and handed to nodes through their
//! member list files, the way an operator would.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use handbereik_keys::{
    Domain, GovernanceSet, Member, MemberId, MemberList, NodeKey, Purpose, Role, SignedEnvelope,
    canonical, time,
};
use handbereik_node::config::Config;
use handbereik_node::node::Node;
use handbereik_proto::v1 as pb;
use pb::audit_client::AuditClient;
use pb::inspections_client::InspectionsClient;
use pb::node_client::NodeClient;
use pb::notifications_client::NotificationsClient;
use pb::registry_client::RegistryClient;
use tonic::transport::Channel;

/// One node of a test network.
pub struct TestNode {
    /// Its directory.
    pub dir: PathBuf,
    /// Its member id.
    pub member_id: MemberId,
    /// Its key.
    pub key: NodeKey,
    /// The purposes it is admitted for.
    pub purposes: Vec<Purpose>,
    /// The running node, if started.
    pub node: Option<Node>,
    /// Its p2p address (fixed after the first start, so lists stay right).
    pub p2p_addr: Option<String>,
    /// Its peer API address (fixed after the first start, likewise).
    pub peer_addr: Option<String>,
    /// More configuration, appended to the file at every (re)write: whole
    /// sections such as `[notify]\ngap_timeout_secs = 1`.
    pub extra_config: String,
    /// More lines for the `[peer_api]` section (which `extra_config` cannot
    /// add to), such as `member_in_flight = 64`.
    pub peer_api_extra: String,
    /// `p2p.max_peers`, if not the default.
    pub max_peers: Option<usize>,
    /// `store.cache_capacity_mb` (8 unless set; the scale harness runs
    /// hundreds of nodes in one process and sets it lower).
    pub cache_capacity_mb: u64,
    /// Use the deployment defaults for the local timers (member list and
    /// policy polls, audit checkpoints, retention sweep) instead of the
    /// tests' one-second ones, so that idle figures are a deployment's.
    pub default_timers: bool,
    token: String,
    sync_secs: u64,
    gov: String,
}

/// A whole test network.
pub struct TestNet {
    /// Keeps the directories.
    pub tmp: tempfile::TempDir,
    /// Governance's key.
    pub gov: NodeKey,
    /// The nodes.
    pub nodes: Vec<TestNode>,
    /// The version of the last list made.
    pub version: u64,
}

/// The category catalogue of every test node.
pub const CATALOGUE: &str = r#"[registry.categories]
betrokkenheid = { kind = "dat", classification = "basis" }
melding = { kind = "wat", classification = "vertrouwelijk" }
plan = { kind = "wat", classification = "vertrouwelijk" }
veiligheidsplan = { kind = "wat", classification = "strikt-vertrouwelijk" }
"#;

/// The policy of every test node unless a test writes another: any member
/// admitted for the purpose may ask `known`; `inspect` of `melding` and
/// `plan` is allowed for jeugdbescherming only, never of strikt-vertrouwelijk.
pub const TEST_POLICY: &str = r#"
@id("known-for-admitted-purpose")
permit (principal, action == Action::"known", resource)
when { principal.purposes.contains(context.purpose) && resource.kind == "dat" };

@id("inspect-jeugdbescherming")
permit (principal, action == Action::"inspect", resource)
when { context.purpose == "jeugdbescherming" && principal.purposes.contains(context.purpose)
       && (resource == Category::"melding" || resource == Category::"plan") };

@id("never-strictly-confidential")
forbid (principal, action == Action::"inspect", resource)
when { resource.classification == "strikt-vertrouwelijk" };
"#;

/// The network's pseudonym key in the tests.
pub const PSEUDONYM_KEY: [u8; 32] = [7; 32];

/// The purpose every test node is admitted for unless told otherwise.
pub fn jeugd() -> Purpose {
    Purpose::parse("jeugdbescherming").expect("valid purpose")
}

/// Polls `check` every 50 ms until it holds or `limit` passes.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl TestNet {
    /// `n` nodes, each admitted for `purposes`, not started.
    pub fn new(n: usize, purposes: &[Purpose], sync_secs: u64) -> Result<Self> {
        Self::new_in(&std::env::temp_dir(), n, purposes, sync_secs)
    }

    /// Like [`TestNet::new`], with the network's directory made under `parent`.
    pub fn new_in(parent: &Path, n: usize, purposes: &[Purpose], sync_secs: u64) -> Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix("handbereik-net-")
            .tempdir_in(parent)?;
        let gov = NodeKey::generate()?;
        let mut nodes = Vec::new();
        for i in 0..n {
            nodes.push(TestNode::create(
                tmp.path(),
                i,
                purposes.to_vec(),
                sync_secs,
                &gov,
            )?);
        }
        Ok(TestNet {
            tmp,
            gov,
            nodes,
            version: 0,
        })
    }

    /// Starts every node that is not running.
    pub async fn start_all(&mut self) -> Result<()> {
        for node in &mut self.nodes {
            if node.node.is_none() {
                node.start().await?;
            }
        }
        Ok(())
    }

    /// A signed list of the nodes for which `include` holds, valid for `validity` seconds.
    pub fn list(&mut self, include: impl Fn(usize) -> bool, validity: u64) -> Result<Vec<u8>> {
        self.list_with(include, validity, |_| {})
    }

    /// Like [`TestNet::list`], with `tweak` applied to the list before it is
    /// signed (to revoke a key, put a member in maintenance, ...).
    pub fn list_with(
        &mut self,
        include: impl Fn(usize) -> bool,
        validity: u64,
        tweak: impl FnOnce(&mut MemberList),
    ) -> Result<Vec<u8>> {
        self.version += 1;
        let now = time::now();
        let mut members: Vec<Member> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| include(*i))
            .map(|(_, n)| n.member(now))
            .collect::<Result<_>>()?;
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        let mut list = MemberList {
            network: "test".into(),
            version: self.version,
            issued_at: now,
            expires_at: now + validity,
            governance: GovernanceSet::new(vec![self.gov.public_key()], 1)?,
            members,
            revoked: Vec::new(),
            profile: Default::default(),
        };
        tweak(&mut list);
        list.check()?;
        let body = canonical::to_vec(&list, "member list")?;
        Ok(SignedEnvelope::signed(Domain::MemberList, body, &self.gov).encode()?)
    }

    /// Writes a list to the member list file of the nodes for which `to` holds.
    pub fn hand_out(&self, list: &[u8], to: impl Fn(usize) -> bool) -> Result<()> {
        for (i, node) in self.nodes.iter().enumerate() {
            if to(i) {
                let tmp = node.dir.join("member-list.cbor.tmp");
                std::fs::write(&tmp, list)?;
                std::fs::rename(&tmp, node.dir.join("member-list.cbor"))?;
            }
        }
        Ok(())
    }

    /// Starts all nodes, hands every node a list of all, and waits until every
    /// running node is connected to every other.
    pub async fn up(&mut self) -> Result<()> {
        self.start_all().await?;
        let list = self.list(|_| true, 3600)?;
        self.hand_out(&list, |_| true)?;
        self.wait_connected(Duration::from_secs(30)).await
    }

    /// Waits until each of `nodes` is connected to all the others of `nodes`.
    pub async fn wait_connected_among(&self, nodes: &[usize], limit: Duration) -> Result<()> {
        for &i in nodes {
            let client = self.nodes[i].node_client().await?;
            wait_until(limit, "the listed nodes are connected", || {
                let mut client = client.clone();
                async move {
                    client
                        .status(pb::StatusRequest {})
                        .await
                        .map(|s| s.into_inner().connected_peers.len() + 1 >= nodes.len())
                        .unwrap_or(false)
                }
            })
            .await?;
        }
        Ok(())
    }

    /// Waits until every running node is connected to every other running node.
    pub async fn wait_connected(&self, limit: Duration) -> Result<()> {
        let running = self.nodes.iter().filter(|n| n.node.is_some()).count();
        for node in self.nodes.iter().filter(|n| n.node.is_some()) {
            let mut client = node.node_client().await?;
            wait_until(limit, "every node is connected to every other", || {
                let mut client = client.clone();
                async move {
                    client
                        .status(pb::StatusRequest {})
                        .await
                        .map(|s| s.into_inner().connected_peers.len() + 1 >= running)
                        .unwrap_or(false)
                }
            })
            .await?;
            let _ = &mut client;
        }
        Ok(())
    }
}

impl TestNode {
    fn create(
        root: &Path,
        i: usize,
        purposes: Vec<Purpose>,
        sync_secs: u64,
        gov: &NodeKey,
    ) -> Result<Self> {
        let dir = root.join(format!("node{i}"));
        std::fs::create_dir_all(&dir)?;
        let key = NodeKey::create(&dir.join("node.key"))?;
        let token = format!("{:064}", i + 1);
        handbereik_keys::files::write_file(
            &dir.join("api-token"),
            token.as_bytes(),
            handbereik_keys::files::Visibility::Private,
            handbereik_keys::files::Overwrite::Refuse,
        )?;
        let member_id = MemberId::parse(&format!("0000000100{:010}", 1000 + i))?;
        handbereik_keys::files::write_file(
            &dir.join("pseudonym.key"),
            hex_encode(&PSEUDONYM_KEY).as_bytes(),
            handbereik_keys::files::Visibility::Private,
            handbereik_keys::files::Overwrite::Refuse,
        )?;
        std::fs::write(dir.join("policy.cedar"), TEST_POLICY)?;
        let node = TestNode {
            dir,
            member_id,
            key,
            purposes,
            node: None,
            p2p_addr: None,
            peer_addr: None,
            extra_config: String::new(),
            peer_api_extra: String::new(),
            max_peers: None,
            cache_capacity_mb: 8,
            default_timers: false,
            token,
            sync_secs,
            gov: gov.public_key().to_string(),
        };
        node.write_config("/ip4/127.0.0.1/tcp/0", "127.0.0.1:0")?;
        Ok(node)
    }

    /// Replaces the node's policy file (the node reloads it within a second).
    pub fn set_policy(&self, text: &str) -> Result<()> {
        let tmp = self.dir.join("policy.cedar.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, self.dir.join("policy.cedar"))?;
        Ok(())
    }

    fn write_config(&self, listen: &str, peer_listen: &str) -> Result<()> {
        let config = format!(
            r#"[node]
member_id = "{member}"
network = "test"
[governance]
anchor_keys = ["{gov}"]
threshold = 1
member_list_poll_secs = {list_poll}
[p2p]
listen = ["{listen}"]
sync_interval_secs = {sync}
{max_peers}
[peer_api]
listen = "{peer_listen}"
{peer_api_extra}
[local_api]
listen = "127.0.0.1:0"
[metrics]
listen = "127.0.0.1:0"
[store]
cache_capacity_mb = {cache}
[policy]
reload_secs = {policy_reload}
[audit]
checkpoint_interval_secs = {checkpoint}
[registry]
pseudonym_key_file = "pseudonym.key"
sweep_interval_secs = {sweep}
{CATALOGUE}
{extra}"#,
            member = self.member_id,
            gov = self.gov,
            sync = self.sync_secs,
            extra = self.extra_config,
            peer_api_extra = self.peer_api_extra,
            cache = self.cache_capacity_mb,
            list_poll = if self.default_timers { 2 } else { 1 },
            policy_reload = if self.default_timers { 2 } else { 1 },
            checkpoint = if self.default_timers { 300 } else { 1 },
            sweep = if self.default_timers { 3600 } else { 1 },
            max_peers = self
                .max_peers
                .map(|n| format!("max_peers = {n}"))
                .unwrap_or_default(),
        );
        std::fs::write(self.dir.join("handbereik.toml"), config)?;
        Ok(())
    }

    /// Starts the node; after the first start it keeps its p2p port.
    pub async fn start(&mut self) -> Result<()> {
        if !self.extra_config.is_empty()
            || !self.peer_api_extra.is_empty()
            || self.max_peers.is_some()
            || self.cache_capacity_mb != 8
            || self.default_timers
        {
            // Written again so that `extra_config`, `peer_api_extra`, `max_peers`, the cache
            // and the timers take effect; a test that edits the file itself
            // leaves them unset.
            let p2p = self
                .p2p_addr
                .clone()
                .unwrap_or_else(|| "/ip4/127.0.0.1/tcp/0".into());
            let peer = self
                .peer_addr
                .clone()
                .unwrap_or_else(|| "127.0.0.1:0".into());
            self.write_config(&p2p, &peer)?;
        }
        let config = Config::load(&self.dir.join("handbereik.toml"))?;
        let node = Node::start(config).await?;
        let addrs = tokio::time::timeout(Duration::from_secs(10), node.p2p_addrs())
            .await
            .context("the node did not start listening")?;
        let addr = addrs.first().context("no listen address")?.to_string();
        let peer = node.peer_api().to_string();
        if self.p2p_addr.is_none() {
            // Pin the ports, so that the addresses in the list stay right after a restart.
            self.write_config(&addr, &peer)?;
        }
        self.p2p_addr = Some(addr);
        self.peer_addr = Some(peer);
        self.node = Some(node);
        Ok(())
    }

    /// Stops the node and waits until its store is flushed.
    pub async fn stop(&mut self) {
        if let Some(node) = self.node.take() {
            node.stop().await;
        }
    }

    fn member(&self, now: u64) -> Result<Member> {
        let mut purposes = self.purposes.clone();
        purposes.sort();
        Ok(Member {
            member_id: self.member_id.clone(),
            name: format!("Test partner {}", self.member_id),
            roles: vec![Role::Afnemer, Role::Bronhouder],
            purposes,
            node_key: self.key.public_key(),
            p2p_addresses: vec![
                self.p2p_addr
                    .clone()
                    .context("start the node before listing it")?,
            ],
            grpc_endpoint: self
                .peer_addr
                .clone()
                .context("start the node before listing it")?,
            valid_from: now.saturating_sub(60),
            valid_until: None,
            maintenance: false,
            regions: Vec::new(),
        })
    }

    fn running(&self) -> Result<&Node> {
        self.node.as_ref().context("node not running")
    }

    async fn channel(&self) -> Result<Channel> {
        let addr = self.running()?.local_api();
        Ok(Channel::from_shared(format!("http://{addr}"))?
            .connect()
            .await?)
    }

    /// The bearer header value.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// A Notifications client with the token.
    pub async fn notifications(
        &self,
    ) -> Result<NotificationsClient<tonic::service::interceptor::InterceptedService<Channel, Auth>>>
    {
        Ok(NotificationsClient::with_interceptor(
            self.channel().await?,
            Auth(self.bearer()),
        ))
    }

    /// A Node client with the token.
    pub async fn node_client(
        &self,
    ) -> Result<NodeClient<tonic::service::interceptor::InterceptedService<Channel, Auth>>> {
        Ok(NodeClient::with_interceptor(
            self.channel().await?,
            Auth(self.bearer()),
        ))
    }

    /// A Registry client with the token.
    pub async fn registry(
        &self,
    ) -> Result<RegistryClient<tonic::service::interceptor::InterceptedService<Channel, Auth>>>
    {
        Ok(RegistryClient::with_interceptor(
            self.channel().await?,
            Auth(self.bearer()),
        ))
    }

    /// An Inspections client with the token.
    pub async fn inspections(
        &self,
    ) -> Result<InspectionsClient<tonic::service::interceptor::InterceptedService<Channel, Auth>>>
    {
        Ok(InspectionsClient::with_interceptor(
            self.channel().await?,
            Auth(self.bearer()),
        ))
    }

    /// An Audit client with the token.
    pub async fn audit(
        &self,
    ) -> Result<AuditClient<tonic::service::interceptor::InterceptedService<Channel, Auth>>> {
        Ok(AuditClient::with_interceptor(
            self.channel().await?,
            Auth(self.bearer()),
        ))
    }

    /// The node's metrics.
    pub fn metrics(&self) -> Result<&std::sync::Arc<handbereik_node::metrics::Metrics>> {
        Ok(self.running()?.metrics())
    }

    /// The running node.
    pub fn handle(&self) -> Result<&Node> {
        self.running()
    }
}

/// Adds the bearer token to every call.
#[derive(Clone)]
pub struct Auth(String);

impl tonic::service::Interceptor for Auth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let value = self
            .0
            .parse()
            .map_err(|_| tonic::Status::internal("bad token"))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A subject given by BSN.
pub fn bsn(number: &str) -> Option<pb::Subject> {
    Some(pb::Subject {
        kind: Some(pb::subject::Kind::Bsn(number.into())),
    })
}

/// A subject given by pseudonym.
pub fn pseudonym(text: &str) -> Option<pb::Subject> {
    Some(pb::Subject {
        kind: Some(pb::subject::Kind::Pseudonym(text.into())),
    })
}

/// An entry in `category`, kept for an hour from now.
pub fn entry(category: &str, content: &str) -> Option<pb::EntryInput> {
    Some(pb::EntryInput {
        category: category.into(),
        legal_basis: "Jeugdwet art. 7.1.1.1".into(),
        retain_until: time::now() + 3600,
        content_type: String::new(),
        content: content.as_bytes().to_vec(),
    })
}

/// A publish request for `purpose` about `subject`.
pub fn publish_request(purpose: &Purpose, subject: &str) -> pb::PublishRequest {
    pb::PublishRequest {
        r#type: "nl.samenonderhandbereik.melding.ontvangen".into(),
        purpose: purpose.to_string(),
        subject: subject.into(),
        dataref: String::new(),
        datacontenttype: String::new(),
        data: br#"{"urgentie":"hoog"}"#.to_vec(),
    }
}
