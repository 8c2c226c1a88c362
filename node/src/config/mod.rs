//! `handbereik.toml`: the node's configuration file.
//!
//! Owns the shape of the file, the default of every key and the validation
//! that runs before anything else starts, with errors that name the key and
//! say what to do. Relative paths are taken relative to the file's directory,
//! so a node directory can be moved as a whole. Validation produces typed
//! values ([`ValidConfig`]: multiaddresses, the URL, the category catalogue,
//! enums), so no other room parses configuration text again. A leaf: it
//! calls `handbereik-keys` for the rules on member ids, networks and keys and
//! uses the shared [`types`](crate::types), and no room but `node` and `cli`
//! reads it.

use std::path::{Path, PathBuf};

use handbereik_keys::text::excerpt;
use handbereik_keys::{MemberId, PublicKey, check_network};
use hyper::Uri;
use libp2p::Multiaddr;

use crate::types::CategoryKind;

mod overrides;
mod sections;

pub use sections::*;

/// What is wrong with a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("config {path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the key and line.
        message: String,
    },
    /// An environment variable or `--set` flag does not name a key.
    #[error("{source_name}: {reason}")]
    Override {
        /// The variable or flag.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// A key has a value that cannot be used.
    #[error("config key `{key}`: {reason}")]
    Invalid {
        /// The dotted key, such as `governance.threshold`.
        key: &'static str,
        /// What is wrong and what to do.
        reason: String,
    },
}

/// The largest page cache accepted, in MiB (1 TiB), so that its size in
/// bytes cannot overflow.
pub const MAX_CACHE_MB: u64 = 1 << 20;

/// A configuration that passed validation, with paths made absolute.
#[derive(Clone, Debug)]
pub struct ValidConfig {
    /// The configuration as read, paths resolved against the file's directory.
    pub config: Config,
    /// The member id, parsed.
    pub member_id: MemberId,
    /// The anchor keys, parsed.
    pub anchor_keys: Vec<PublicKey>,
    /// `p2p.listen`, parsed.
    pub p2p_listen: Vec<Multiaddr>,
    /// `governance.member_list_url`, parsed.
    pub member_list_url: Option<Uri>,
    /// `registry.categories`: (name, kind, classification), checked.
    pub categories: Vec<(String, CategoryKind, String)>,
}

impl Config {
    /// Reads and validates `path`, without overrides.
    pub fn load(path: &Path) -> Result<ValidConfig, ConfigError> {
        Self::load_with(path, std::iter::empty(), &[])
    }

    /// Reads `path`, applies `HANDBEREIK_<SECTION>_<KEY>` variables from `env`
    /// and then `section.key=value` overrides from `sets` (flags), and validates.
    pub fn load_with(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
        sets: &[String],
    ) -> Result<ValidConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let syntax = |message: String| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: message.trim().replace('\n', " "),
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| syntax(e.to_string()))?;
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("HANDBEREIK_") else {
                continue;
            };
            let (section, key) = overrides::split_env(rest).ok_or_else(|| ConfigError::Override {
                source_name: name.clone(),
                reason: format!("not a configuration key; use HANDBEREIK_<SECTION>_<KEY> with a section of {}", overrides::SECTIONS.join(", ")),
            })?;
            overrides::set(&mut table, &section, &key, &value);
        }
        for set in sets {
            let (path_part, value) = set.split_once('=').ok_or_else(|| ConfigError::Override {
                source_name: set.clone(),
                reason: "use --set section.key=value".into(),
            })?;
            let (section, key) =
                path_part
                    .trim()
                    .split_once('.')
                    .ok_or_else(|| ConfigError::Override {
                        source_name: set.clone(),
                        reason: "use --set section.key=value".into(),
                    })?;
            overrides::set(&mut table, section, key, value.trim());
        }
        let config: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| syntax(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve(base).validate()
    }

    fn resolve(mut self, base: &Path) -> Self {
        for p in [
            &mut self.node.key_file,
            &mut self.node.data_dir,
            &mut self.governance.member_list_file,
            &mut self.local_api.token_file,
            &mut self.policy.file,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let Some(p) = &mut self.registry.pseudonym_key_file
            && p.is_relative()
        {
            *p = base.join(&*p);
        }
        self
    }

    /// Checks every key; the first problem found is returned.
    pub fn validate(self) -> Result<ValidConfig, ConfigError> {
        let member_id =
            MemberId::parse(&self.node.member_id).map_err(|e| ConfigError::Invalid {
                key: "node.member_id",
                reason: e.to_string(),
            })?;
        check_network(&self.node.network).map_err(|e| ConfigError::Invalid {
            key: "node.network",
            reason: e.to_string(),
        })?;
        if self.governance.anchor_keys.is_empty() {
            return Err(ConfigError::Invalid {
                key: "governance.anchor_keys",
                reason: "no governance keys given; ask governance for its public keys and list them here".into(),
            });
        }
        let anchor_keys = self
            .governance
            .anchor_keys
            .iter()
            .map(|k| PublicKey::from_hex(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::Invalid {
                key: "governance.anchor_keys",
                reason: e.to_string(),
            })?;
        handbereik_keys::Anchor::new(anchor_keys.iter().copied(), self.governance.threshold)
            .map_err(|e| ConfigError::Invalid {
                key: "governance.threshold",
                reason: e.to_string(),
            })?;
        if !(2..=1024).contains(&self.p2p.max_peers) {
            return Err(ConfigError::Invalid {
                key: "p2p.max_peers",
                reason: "give 2 to 1024 connections".into(),
            });
        }
        if self.p2p.sync_interval_secs == 0 || self.p2p.sync_interval_secs > 3600 {
            return Err(ConfigError::Invalid {
                key: "p2p.sync_interval_secs",
                reason: "give 1 to 3600 seconds".into(),
            });
        }
        if self.governance.member_list_poll_secs == 0
            || self.governance.member_list_poll_secs > 3600
        {
            return Err(ConfigError::Invalid {
                key: "governance.member_list_poll_secs",
                reason: "give 1 to 3600 seconds".into(),
            });
        }
        let member_list_url = match &self.governance.member_list_url {
            Some(url) => Some(parse_url(url).map_err(|reason| ConfigError::Invalid {
                key: "governance.member_list_url",
                reason,
            })?),
            None => None,
        };
        if self.governance.member_list_url_poll_secs == 0
            || self.governance.member_list_url_poll_secs > 86_400
        {
            return Err(ConfigError::Invalid {
                key: "governance.member_list_url_poll_secs",
                reason: "give 1 to 86400 seconds".into(),
            });
        }
        if self.store.cache_capacity_mb == 0 || self.store.cache_capacity_mb > MAX_CACHE_MB {
            return Err(ConfigError::Invalid {
                key: "store.cache_capacity_mb",
                reason: format!("give 1 to {MAX_CACHE_MB} MiB"),
            });
        }
        for (key, value, max) in [
            (
                "registry.sweep_interval_secs",
                self.registry.sweep_interval_secs,
                86_400,
            ),
            ("policy.reload_secs", self.policy.reload_secs, 3600),
            (
                "audit.checkpoint_interval_secs",
                self.audit.checkpoint_interval_secs,
                86_400,
            ),
            (
                "peer_api.handshake_timeout_secs",
                self.peer_api.handshake_timeout_secs,
                60,
            ),
            (
                "peer_api.connect_timeout_ms",
                self.peer_api.connect_timeout_ms,
                60_000,
            ),
            (
                "store.commit_timeout_secs",
                self.store.commit_timeout_secs,
                600,
            ),
            (
                "notify.gap_timeout_secs",
                self.notify.gap_timeout_secs,
                86_400,
            ),
        ] {
            if value == 0 || value > max {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!("give 1 to {max}"),
                });
            }
        }
        for (key, value, max) in [
            (
                "peer_api.max_handshakes",
                self.peer_api.max_handshakes as u64,
                65_536,
            ),
            (
                "peer_api.max_handshakes_per_address",
                self.peer_api.max_handshakes_per_address as u64,
                65_536,
            ),
            (
                "peer_api.member_requests_per_sec",
                u64::from(self.peer_api.member_requests_per_sec),
                1_000_000,
            ),
            (
                "peer_api.member_burst",
                u64::from(self.peer_api.member_burst),
                1_000_000,
            ),
            (
                "peer_api.member_in_flight",
                u64::from(self.peer_api.member_in_flight),
                65_536,
            ),
        ] {
            if value == 0 || value > max {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!("give 1 to {max}"),
                });
            }
        }
        let mut categories = Vec::with_capacity(self.registry.categories.len());
        for (name, spec) in &self.registry.categories {
            let invalid = |reason: String| ConfigError::Invalid {
                key: "registry.categories",
                reason,
            };
            if !handbereik_keys::is_name(name) {
                return Err(invalid(format!(
                    "category {}: a name is 1 to 64 characters: lowercase letters, digits and '-', starting with a letter",
                    excerpt(name)
                )));
            }
            let kind = CategoryKind::parse(&spec.kind).ok_or_else(|| {
                invalid(format!(
                    "category {name:?}: kind {} is not \"dat\" or \"wat\"",
                    excerpt(&spec.kind)
                ))
            })?;
            if !handbereik_keys::is_name(&spec.classification) {
                return Err(invalid(format!(
                    "category {name:?}: classification {} must be 1 to 64 characters: lowercase letters, digits and '-', starting with a letter",
                    excerpt(&spec.classification)
                )));
            }
            categories.push((name.clone(), kind, spec.classification.clone()));
        }
        if self.p2p.listen.is_empty() {
            return Err(ConfigError::Invalid {
                key: "p2p.listen",
                reason: "give at least one multiaddress to listen on".into(),
            });
        }
        let mut p2p_listen = Vec::with_capacity(self.p2p.listen.len());
        for address in &self.p2p.listen {
            let invalid = |reason: String| ConfigError::Invalid {
                key: "p2p.listen",
                reason,
            };
            handbereik_keys::profile::check_p2p_address(address)
                .map_err(|e| invalid(e.to_string()))?;
            p2p_listen.push(address.parse::<Multiaddr>().map_err(|e| {
                invalid(format!("{} is not a multiaddress: {e}", excerpt(address)))
            })?);
        }
        Ok(ValidConfig {
            config: self,
            member_id,
            anchor_keys,
            p2p_listen,
            member_list_url,
            categories,
        })
    }
}

/// Checks a member list URL: http or https, with a host.
pub fn parse_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("{} is not a URL: {e}", excerpt(url)))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(uri),
        _ => Err(format!(
            "{} must be an http:// or https:// URL with a host",
            excerpt(url)
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_http_and_https_urls() {
        use super::parse_url;
        assert!(parse_url("https://stelsel.example.nl/member-list.cbor").is_ok());
        assert!(parse_url("http://127.0.0.1:8080/list").is_ok());
        assert!(parse_url("ftp://x/list").is_err());
        assert!(parse_url("/just/a/path").is_err());
        assert!(parse_url("not a url").is_err());
    }

    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("handbereik.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn sample() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/handbereik.toml"
        ))
        .unwrap()
    }

    #[test]
    fn the_sample_in_deploy_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let valid = Config::load(&write(dir.path(), &sample())).unwrap();
        assert_eq!(valid.member_id.as_str(), "00000001001234567000");
        assert_eq!(valid.anchor_keys.len(), 3);
        assert_eq!(valid.config.node.data_dir, dir.path().join("data"));
    }

    #[test]
    fn errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "member_id = \"00000001001234567000\"",
                "member_id = \"123\"",
                "node.member_id",
            ),
            ("threshold = 2", "threshold = 4", "governance.threshold"),
            (
                "network = \"demo\"",
                "network = \"Demo Net\"",
                "node.network",
            ),
            (
                "listen = [\"/ip4/0.0.0.0/tcp/4001\"]",
                "listen = []",
                "p2p.listen",
            ),
        ];
        for (from, to, key) in cases {
            let text = sample().replace(from, to);
            assert_ne!(text, sample(), "{from}");
            let err = Config::load(&write(dir.path(), &text)).unwrap_err();
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
        let text = sample().replace("ba614e84", "zz614e84");
        let err = Config::load(&write(dir.path(), &text)).unwrap_err();
        assert!(err.to_string().contains("governance.anchor_keys"), "{err}");
    }

    #[test]
    fn environment_and_flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &sample());
        let env = vec![
            (
                "HANDBEREIK_P2P_SYNC_INTERVAL_SECS".to_string(),
                "3".to_string(),
            ),
            (
                "HANDBEREIK_LOCAL_API_LISTEN".to_string(),
                "127.0.0.1:7999".to_string(),
            ),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let valid = Config::load_with(
            &path,
            env.clone(),
            &["p2p.sync_interval_secs=4".to_string()],
        )
        .unwrap();
        assert_eq!(
            valid.config.p2p.sync_interval_secs, 4,
            "flags come after the environment"
        );
        assert_eq!(valid.config.local_api.listen.port(), 7999);
        let err = Config::load_with(&path, vec![("HANDBEREIK_NOPE_X".into(), "1".into())], &[])
            .unwrap_err();
        assert!(err.to_string().contains("HANDBEREIK_NOPE_X"), "{err}");
        let err = Config::load_with(
            &path,
            vec![("HANDBEREIK_P2P_SYNC_INTERVALL".into(), "1".into())],
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("sync_intervall"), "{err}");
        let err = Config::load_with(&path, env, &["no-equals".to_string()]).unwrap_err();
        assert!(err.to_string().contains("--set section.key=value"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_syntax_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let text = sample().replace("[metrics]", "[metrics]\nlisten_port = 1");
        let err = Config::load(&write(dir.path(), &text)).unwrap_err();
        assert!(err.to_string().contains("listen_port"), "{err}");
        let err = Config::load(&write(dir.path(), "[node\n")).unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
        let err = Config::load(&dir.path().join("absent.toml")).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }
}
