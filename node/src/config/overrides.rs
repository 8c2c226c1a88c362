//! Overrides of single keys from the environment and from `--set` flags.

/// The sections of `handbereik.toml`, longest first where one prefixes another.
pub(super) const SECTIONS: [&str; 12] = [
    "governance",
    "notify",
    "registry",
    "policy",
    "audit",
    "local_api",
    "peer_api",
    "metrics",
    "store",
    "node",
    "p2p",
    "log",
];

/// Splits `P2P_SYNC_INTERVAL_SECS` into (`p2p`, `sync_interval_secs`).
pub(super) fn split_env(rest: &str) -> Option<(String, String)> {
    let lower = rest.to_ascii_lowercase();
    SECTIONS.iter().find_map(|section| {
        let key = lower.strip_prefix(section)?.strip_prefix('_')?;
        (!key.is_empty()).then(|| (section.to_string(), key.to_string()))
    })
}

/// Sets `section.key` to `value`, read as a TOML value when it is one
/// (`2`, `true`, `["a", "b"]`) and as a string otherwise.
pub(super) fn set(table: &mut toml::Table, section: &str, key: &str, value: &str) {
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let entry = table
        .entry(section.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(section) = entry {
        section.insert(key.to_string(), parsed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_split_on_known_sections() {
        assert_eq!(
            split_env("P2P_SYNC_INTERVAL_SECS"),
            Some(("p2p".into(), "sync_interval_secs".into()))
        );
        assert_eq!(
            split_env("LOCAL_API_LISTEN"),
            Some(("local_api".into(), "listen".into()))
        );
        assert_eq!(
            split_env("NODE_MEMBER_ID"),
            Some(("node".into(), "member_id".into()))
        );
        assert_eq!(split_env("UNKNOWN_X"), None);
        assert_eq!(split_env("NODE_"), None);
    }

    #[test]
    fn values_are_toml_or_strings() {
        let mut t = toml::Table::new();
        set(&mut t, "p2p", "sync_interval_secs", "3");
        set(&mut t, "local_api", "listen", "127.0.0.1:1");
        set(&mut t, "p2p", "listen", r#"["/ip4/127.0.0.1/tcp/0"]"#);
        assert_eq!(t["p2p"]["sync_interval_secs"].as_integer(), Some(3));
        assert_eq!(t["local_api"]["listen"].as_str(), Some("127.0.0.1:1"));
        assert!(t["p2p"]["listen"].is_array());
    }
}
