//! `handbereik init`: everything a partner makes before it is admitted.
//!
//! Writes, into one directory: the node key (mode 0600), a membership request
//! signed by that key, a bearer token for the local API (mode 0600) and a
//! starter `handbereik.toml` with every key commented. Refuses to run if any
//! of these files exists, so a second `init` never replaces a node's identity,
//! and checks every argument before it writes anything.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use handbereik_keys::{
    MemberId, MembershipRequest, NodeKey, PublicKey, Purpose, Role, check_network,
    files::{self, Overwrite, Visibility},
    time,
};

/// Arguments of `handbereik init`.
#[derive(Args, Debug, Clone)]
pub struct InitArgs {
    /// Directory to write into (created if missing).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// The network id that governance announced, such as `demo`.
    #[arg(long)]
    pub network: String,
    /// This partner's OIN (20 digits).
    #[arg(long, value_name = "OIN")]
    pub member_id: MemberId,
    /// This partner's name, as other members will see it.
    #[arg(long)]
    pub name: String,
    /// Roles to ask for: bronhouder, afnemer (comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    pub roles: Vec<Role>,
    /// Purposes (doelbinding) to ask for, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub purposes: Vec<Purpose>,
    /// A libp2p address at which other members reach this node (repeat for more).
    #[arg(long = "p2p-address", value_name = "MULTIADDR", required = true)]
    pub p2p_addresses: Vec<String>,
    /// host:port at which other members reach this node's peer gRPC listener.
    #[arg(long, value_name = "HOST:PORT")]
    pub grpc_endpoint: String,
}

/// What `init` wrote.
#[derive(Debug, Clone)]
pub struct InitOutput {
    /// The private key file.
    pub key_file: PathBuf,
    /// The node's public key.
    pub public_key: PublicKey,
    /// The signed membership request.
    pub request_file: PathBuf,
    /// The local API token file.
    pub token_file: PathBuf,
    /// The starter configuration.
    pub config_file: PathBuf,
}

/// The file names `init` writes inside its directory.
pub const KEY_FILE: &str = "node.key";
/// See [`KEY_FILE`].
pub const REQUEST_FILE: &str = "membership-request.cbor";
/// See [`KEY_FILE`].
pub const TOKEN_FILE: &str = "api-token";
/// See [`KEY_FILE`].
pub const CONFIG_FILE: &str = "handbereik.toml";

/// Writes the key, request, token and config into `args.dir`.
pub fn init(args: &InitArgs) -> Result<InitOutput> {
    check_network(&args.network).context("--network")?;
    let key_file = args.dir.join(KEY_FILE);
    let request_file = args.dir.join(REQUEST_FILE);
    let token_file = args.dir.join(TOKEN_FILE);
    let config_file = args.dir.join(CONFIG_FILE);
    for path in [&key_file, &request_file, &token_file, &config_file] {
        if path.exists() {
            bail!(
                "{} already exists: this directory holds a node already; use another --dir, \
                 or move the old files away if you really mean to make a new identity",
                path.display()
            );
        }
    }
    // Check the request before any file is written, so bad arguments leave nothing behind.
    let key = NodeKey::generate()?;
    let request = MembershipRequest {
        member_id: args.member_id.clone(),
        name: args.name.clone(),
        roles: args.roles.clone(),
        purposes: args.purposes.clone(),
        p2p_addresses: args.p2p_addresses.clone(),
        grpc_endpoint: args.grpc_endpoint.clone(),
        node_key: key.public_key(),
        created_at: time::now(),
    }
    .normalize_and_check()?;
    let request_bytes = request.sign(&key)?;

    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create directory {}", args.dir.display()))?;
    key.write(&key_file)?;
    files::write_file(
        &request_file,
        &request_bytes,
        Visibility::Public,
        Overwrite::Refuse,
    )?;
    files::write_file(
        &token_file,
        new_token()?.as_bytes(),
        Visibility::Private,
        Overwrite::Refuse,
    )?;
    files::write_file(
        &config_file,
        starter_config(args).as_bytes(),
        Visibility::Public,
        Overwrite::Refuse,
    )?;
    Ok(InitOutput {
        key_file,
        public_key: key.public_key(),
        request_file,
        token_file,
        config_file,
    })
}

pub(crate) fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("cannot read random bytes: {e}"))?;
    Ok(format!("{}\n", hex::encode(bytes)))
}

fn starter_config(args: &InitArgs) -> String {
    let p2p_port = args
        .p2p_addresses
        .first()
        .and_then(|a| a.rsplit('/').next())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(4001);
    let grpc_port = args
        .grpc_endpoint
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .unwrap_or(7443);
    format!(
        r#"# handbereik node configuration, written by `handbereik init`.
# Relative paths are relative to the directory of this file.

[node]
# This partner's OIN, as in the membership request.
member_id = "{member_id}"
# The network id; it must match the member list.
network = "{network}"
# The node's private key (ed25519, PKCS#8 PEM). Must be mode 0600; never copy it.
key_file = "{KEY_FILE}"
# Directory of the node's database.
data_dir = "data"

[governance]
# The governance public keys (64 hex digits each) that sign the member list.
# Governance gives you these; the node trusts a list only if `threshold` of
# them signed it.
anchor_keys = []
threshold = 1
# The signed member list that governance published.
member_list_file = "member-list.cbor"

[p2p]
# Where the libp2p listener binds; the addresses in the request must reach it.
listen = ["/ip4/0.0.0.0/tcp/{p2p_port}"]

[peer_api]
# The mutual-TLS gRPC listener for other members (grpc_endpoint in the request).
listen = "0.0.0.0:{grpc_port}"

[local_api]
# The gRPC listener for this partner's own back office; keep it on loopback.
listen = "127.0.0.1:7400"
# The bearer token the back office sends (mode 0600).
token_file = "{TOKEN_FILE}"

[metrics]
# Prometheus metrics; keep it on loopback or behind your monitoring network.
listen = "127.0.0.1:9464"
"#,
        member_id = args.member_id,
        network = args.network,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigError};
    use std::os::unix::fs::PermissionsExt;

    fn args(dir: PathBuf) -> InitArgs {
        InitArgs {
            dir,
            network: "demo".into(),
            member_id: MemberId::parse("00000001234567890000").unwrap(),
            name: "Gemeente Voorbeeld".into(),
            roles: vec![Role::Afnemer, Role::Bronhouder],
            purposes: vec![Purpose::parse("jeugdbescherming").unwrap()],
            p2p_addresses: vec!["/ip4/127.0.0.1/tcp/4101".into()],
            grpc_endpoint: "127.0.0.1:7543".into(),
        }
    }

    fn mode(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn init_writes_a_verifiable_request_and_private_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = init(&args(dir.path().join("node"))).unwrap();
        assert_eq!(mode(&out.key_file), 0o600);
        assert_eq!(mode(&out.token_file), 0o600);
        let key = NodeKey::load(&out.key_file).unwrap();
        assert_eq!(key.public_key(), out.public_key);
        let request =
            MembershipRequest::verify(&std::fs::read(&out.request_file).unwrap()).unwrap();
        assert_eq!(request.node_key, out.public_key);
        assert_eq!(request.member_id.as_str(), "00000001234567890000");
        assert_eq!(request.grpc_endpoint, "127.0.0.1:7543");
    }

    #[test]
    fn the_starter_config_parses_and_asks_for_the_anchor() {
        let dir = tempfile::tempdir().unwrap();
        let out = init(&args(dir.path().to_path_buf())).unwrap();
        let err = Config::load(&out.config_file).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    key: "governance.anchor_keys",
                    ..
                }
            ),
            "{err}"
        );
        // Filled in as the comments say, it validates.
        let gov = NodeKey::from_seed([9; 32]).public_key();
        let text = std::fs::read_to_string(&out.config_file)
            .unwrap()
            .replace("anchor_keys = []", &format!("anchor_keys = [\"{gov}\"]"));
        std::fs::write(&out.config_file, text).unwrap();
        let valid = Config::load(&out.config_file).unwrap();
        assert_eq!(valid.anchor_keys, vec![gov]);
        assert_eq!(valid.config.node.key_file, dir.path().join("node.key"));
        assert_eq!(valid.config.peer_api.listen.port(), 7543);
        assert_eq!(
            valid.config.p2p.listen,
            vec!["/ip4/0.0.0.0/tcp/4101".to_string()]
        );
    }

    #[test]
    fn a_second_init_replaces_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let first = init(&args(dir.path().to_path_buf())).unwrap();
        let err = init(&args(dir.path().to_path_buf())).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(
            NodeKey::load(&first.key_file).unwrap().public_key(),
            first.public_key
        );
    }

    #[test]
    fn bad_arguments_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut bad = args(dir.path().join("node"));
        bad.grpc_endpoint = "no-port".into();
        let err = init(&bad).unwrap_err();
        assert!(err.to_string().contains("grpc_endpoint"), "{err}");
        assert!(!dir.path().join("node").exists());
        let mut bad = args(dir.path().join("node"));
        bad.network = "Bad Network".into();
        assert!(init(&bad).is_err());
        assert!(!dir.path().join("node").exists());
    }
}
