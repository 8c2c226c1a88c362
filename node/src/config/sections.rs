//! The sections of `handbereik.toml` as they are read: one struct per
//! `[section]`, every key's default written once (the `default_*`
//! functions, used by serde and by `Default`), `deny_unknown_fields`
//! everywhere so that a misspelt key is an error, not a silent default.
//!
//! Only shapes and defaults live here; the rules between keys and the typed
//! values are the validation's (`super`). Calls nothing of the node but the
//! shared [`types`](crate::types).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[node]`: who this node is and where it keeps its state.
    pub node: NodeSection,
    /// `[governance]`: whose signatures make a member list valid.
    pub governance: GovernanceSection,
    /// `[p2p]`: the libp2p listener.
    #[serde(default)]
    pub p2p: P2pSection,
    /// `[peer_api]`: the mutual-TLS gRPC listener for other members.
    #[serde(default)]
    pub peer_api: PeerApiSection,
    /// `[local_api]`: the gRPC listener for the partner's own back office.
    #[serde(default)]
    pub local_api: LocalApiSection,
    /// `[metrics]`: the Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsSection,
    /// `[store]`: the database.
    #[serde(default)]
    pub store: StoreSection,
    /// `[notify]`: delivery of notifications to the back office.
    #[serde(default)]
    pub notify: NotifySection,
    /// `[registry]`: the source registration and its category catalogue.
    #[serde(default)]
    pub registry: RegistrySection,
    /// `[policy]`: the Cedar access policy.
    #[serde(default)]
    pub policy: PolicySection,
    /// `[audit]`: the audit log.
    #[serde(default)]
    pub audit: AuditSection,
    /// `[log]`: what the node writes to its log.
    #[serde(default)]
    pub log: LogSection,
}

/// `[store]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// sled's page cache in MiB. Default 32.
    #[serde(default = "default_cache_mb")]
    pub cache_capacity_mb: u64,
    /// How long one group commit (write and flush) may take before the node
    /// stops rather than hang, in seconds. Default 30.
    #[serde(default = "default_commit_timeout_secs")]
    pub commit_timeout_secs: u64,
}

/// `[notify]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySection {
    /// How long a notification waits for a missing one before it in its
    /// stream (to be fetched by sync) before it is delivered anyway, with the
    /// gap reported, in seconds. Default 30.
    #[serde(default = "default_gap_timeout_secs")]
    pub gap_timeout_secs: u64,
}

/// `[registry]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    /// File with the network's pseudonym key (64 hex characters, mode 0600),
    /// which turns a BSN into the network pseudonym. Default: none, and then
    /// subjects can only be given as pseudonyms.
    #[serde(default)]
    pub pseudonym_key_file: Option<PathBuf>,
    /// How often expired entries are removed, in seconds. Default 3600.
    #[serde(default = "default_sweep_secs")]
    pub sweep_interval_secs: u64,
    /// The categories this source holds: name → kind (`dat` or `wat`) and
    /// classification. Registrations must use one of them; the policy decides
    /// on them. Default: none. An override replaces the whole table.
    #[serde(default)]
    pub categories: std::collections::BTreeMap<String, CategorySpec>,
}

/// One category of the catalogue.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CategorySpec {
    /// `dat` (that-information) or `wat` (substance).
    pub kind: String,
    /// A classification the policy can use, such as `vertrouwelijk`.
    pub classification: String,
}

/// `[policy]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// The Cedar policy file. Default `policy.cedar`; if it does not exist,
    /// every request of another member is denied.
    #[serde(default = "default_policy_file")]
    pub file: PathBuf,
    /// How often the file is checked for changes, in seconds. Default 2.
    #[serde(default = "default_poll_secs")]
    pub reload_secs: u64,
}

/// `[audit]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// How often the chain's head is signed as a checkpoint, in seconds. Default 300.
    #[serde(default = "default_checkpoint_secs")]
    pub checkpoint_interval_secs: u64,
}

/// `[log]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `human` or `json`. Default `human`.
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter such as `info` or `handbereik_node=debug`. Default `info`.
    #[serde(default = "default_log_level")]
    pub level: String,
}

/// How the log is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Text lines for people (the default).
    #[default]
    Human,
    /// One JSON object per line, for log shippers; span fields included.
    Json,
}

/// `[node]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// This partner's OIN, as admitted by governance. No default.
    pub member_id: String,
    /// The network id, as in the member list. No default.
    pub network: String,
    /// The node's private key file (mode 0600). Default `node.key`.
    #[serde(default = "default_key_file")]
    pub key_file: PathBuf,
    /// Directory of the sled database. Default `data`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
}

/// `[governance]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GovernanceSection {
    /// Governance public keys in hex that may sign the member list. No default.
    pub anchor_keys: Vec<String>,
    /// How many distinct anchor keys must sign. No default.
    pub threshold: usize,
    /// The signed member list file. Default `member-list.cbor`.
    #[serde(default = "default_member_list_file")]
    pub member_list_file: PathBuf,
    /// How often the member list file is checked for a new list, in seconds. Default 2.
    #[serde(default = "default_poll_secs")]
    pub member_list_poll_secs: u64,
    /// An http(s) URL where governance publishes the list, polled as well. Default: none.
    #[serde(default)]
    pub member_list_url: Option<String>,
    /// How often the URL is fetched, in seconds. Default 300.
    #[serde(default = "default_url_poll_secs")]
    pub member_list_url_poll_secs: u64,
}

/// `[p2p]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P2pSection {
    /// Multiaddresses to listen on. Default `["/ip4/0.0.0.0/tcp/4001"]`.
    #[serde(default = "default_p2p_listen")]
    pub listen: Vec<String>,
    /// How often a few peers are asked what changed since last time, in
    /// seconds. Default 10.
    #[serde(default = "default_sync_secs")]
    pub sync_interval_secs: u64,
    /// The most libp2p connections the node keeps; it dials half of them
    /// itself. Default 32.
    #[serde(default = "default_max_peers")]
    pub max_peers: usize,
}

/// `[peer_api]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerApiSection {
    /// Address of the mutual-TLS listener. Default `0.0.0.0:7443`.
    #[serde(default = "default_peer_listen")]
    pub listen: SocketAddr,
    /// How long a TLS handshake may take, in seconds, from the connection's
    /// first byte. Default 3.
    #[serde(default = "default_handshake_secs")]
    pub handshake_timeout_secs: u64,
    /// How many handshakes may run at once. Default 256.
    #[serde(default = "default_max_handshakes")]
    pub max_handshakes: usize,
    /// How many handshakes may run at once from one IP address. Default 32.
    #[serde(default = "default_max_handshakes_per_address")]
    pub max_handshakes_per_address: usize,
    /// How many requests a second one member may make on average. Default 200.
    #[serde(default = "default_member_requests_per_sec")]
    pub member_requests_per_sec: u32,
    /// How many requests one member may make at once above its average. Default 400.
    #[serde(default = "default_member_burst")]
    pub member_burst: u32,
    /// How many requests of one member may be in progress at once. Default 32.
    #[serde(default = "default_member_in_flight")]
    pub member_in_flight: u32,
    /// How long this node waits to connect to another member, in milliseconds. Default 1000.
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
}

/// `[local_api]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalApiSection {
    /// Address of the back-office listener. Default `127.0.0.1:7400`.
    #[serde(default = "default_local_listen")]
    pub listen: SocketAddr,
    /// File with the bearer token (mode 0600). Default `api-token`.
    #[serde(default = "default_token_file")]
    pub token_file: PathBuf,
}

/// `[metrics]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Address of the Prometheus endpoint. Default `127.0.0.1:9464`.
    #[serde(default = "default_metrics_listen")]
    pub listen: SocketAddr,
}

fn default_key_file() -> PathBuf {
    "node.key".into()
}
fn default_data_dir() -> PathBuf {
    "data".into()
}
fn default_member_list_file() -> PathBuf {
    "member-list.cbor".into()
}
fn default_p2p_listen() -> Vec<String> {
    vec!["/ip4/0.0.0.0/tcp/4001".into()]
}
fn default_peer_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 7443))
}
fn default_local_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7400))
}
fn default_token_file() -> PathBuf {
    "api-token".into()
}
fn default_metrics_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}
fn default_cache_mb() -> u64 {
    32
}
fn default_commit_timeout_secs() -> u64 {
    30
}
fn default_gap_timeout_secs() -> u64 {
    30
}
fn default_log_level() -> String {
    "info".into()
}
fn default_poll_secs() -> u64 {
    2
}
fn default_url_poll_secs() -> u64 {
    300
}
fn default_sync_secs() -> u64 {
    10
}
fn default_max_peers() -> usize {
    32
}
fn default_sweep_secs() -> u64 {
    3600
}
fn default_policy_file() -> PathBuf {
    "policy.cedar".into()
}
fn default_checkpoint_secs() -> u64 {
    300
}
fn default_handshake_secs() -> u64 {
    3
}
fn default_max_handshakes_per_address() -> usize {
    32
}
fn default_member_requests_per_sec() -> u32 {
    200
}
fn default_member_burst() -> u32 {
    400
}
fn default_member_in_flight() -> u32 {
    32
}
fn default_max_handshakes() -> usize {
    256
}
fn default_connect_ms() -> u64 {
    1000
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            cache_capacity_mb: default_cache_mb(),
            commit_timeout_secs: default_commit_timeout_secs(),
        }
    }
}
impl Default for NotifySection {
    fn default() -> Self {
        NotifySection {
            gap_timeout_secs: default_gap_timeout_secs(),
        }
    }
}
impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: LogFormat::default(),
            level: default_log_level(),
        }
    }
}

impl Default for P2pSection {
    fn default() -> Self {
        P2pSection {
            listen: default_p2p_listen(),
            sync_interval_secs: default_sync_secs(),
            max_peers: default_max_peers(),
        }
    }
}
impl Default for PeerApiSection {
    fn default() -> Self {
        PeerApiSection {
            listen: default_peer_listen(),
            handshake_timeout_secs: default_handshake_secs(),
            max_handshakes: default_max_handshakes(),
            max_handshakes_per_address: default_max_handshakes_per_address(),
            member_requests_per_sec: default_member_requests_per_sec(),
            member_burst: default_member_burst(),
            member_in_flight: default_member_in_flight(),
            connect_timeout_ms: default_connect_ms(),
        }
    }
}
impl Default for RegistrySection {
    fn default() -> Self {
        RegistrySection {
            pseudonym_key_file: None,
            sweep_interval_secs: default_sweep_secs(),
            categories: Default::default(),
        }
    }
}
impl Default for PolicySection {
    fn default() -> Self {
        PolicySection {
            file: default_policy_file(),
            reload_secs: default_poll_secs(),
        }
    }
}
impl Default for AuditSection {
    fn default() -> Self {
        AuditSection {
            checkpoint_interval_secs: default_checkpoint_secs(),
        }
    }
}
impl Default for LocalApiSection {
    fn default() -> Self {
        LocalApiSection {
            listen: default_local_listen(),
            token_file: default_token_file(),
        }
    }
}
impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            listen: default_metrics_listen(),
        }
    }
}
