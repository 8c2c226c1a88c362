//! The partners of a dev network: who they are, the files each node
//! directory holds, and the sample registrations and notification.
//!
//! Pure data and file writing; starting the nodes is `super`'s job, and the
//! samples go in through the local API like a back office's would.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use handbereik_keys::{
    MemberId, NodeKey, Purpose, Role,
    files::{self, Overwrite, Visibility},
};

/// The network id of every dev network.
pub const NETWORK: &str = "dev";

/// The pseudonym key of every dev network. Fixed, so that the pseudonyms in
/// the README walkthrough are the same on every machine; a real network's
/// key is a secret that governance hands out.
pub const DEV_PSEUDONYM_KEY: &str =
    "6465762d6f6e6c792d70736575646f6e796d2d6b65792d6e6f742d7365637265";

/// The example access policy, the same one `deploy/` ships.
pub const POLICY: &str = include_str!("../../../../deploy/policy.cedar");

/// The sample configuration of `deploy/`, whose category catalogue matches [`POLICY`].
const SAMPLE_CONFIG: &str = include_str!("../../../../deploy/handbereik.toml");

/// The `[registry.categories]` table of the sample configuration, so the
/// dev network and the deploy sample cannot drift apart.
fn catalogue() -> &'static str {
    let start = SAMPLE_CONFIG.find("[registry.categories]").unwrap_or(0);
    let rest = &SAMPLE_CONFIG[start..];
    let end = rest.find("\n\n").map_or(rest.len(), |at| at + 1);
    &rest[..end]
}

/// One partner of the dev network.
#[derive(Clone, Debug)]
pub struct Partner {
    /// Its directory name, such as `gemeente`.
    pub slug: String,
    /// Its name in the member list.
    pub name: String,
    /// Its OIN.
    pub member_id: MemberId,
    /// The purposes governance admits it for.
    pub purposes: Vec<Purpose>,
    /// Sample registrations: (BSN, category, legal basis, content).
    pub samples: Vec<Sample>,
}

/// One sample registration.
#[derive(Clone, Debug)]
pub struct Sample {
    /// A BSN that passes the 11-test.
    pub bsn: &'static str,
    /// A category of the catalogue.
    pub category: &'static str,
    /// The legal basis (grondslag).
    pub legal_basis: &'static str,
    /// JSON content.
    pub content: &'static str,
}

/// The BSN the walkthrough asks about: known at the municipality and at Veilig Thuis.
pub const WALKTHROUGH_BSN: &str = "111222333";

/// The `i`-th partner (0-based): a municipality, Veilig Thuis, a youth-care
/// provider, then more youth-care providers.
pub fn partner(i: usize) -> Result<Partner> {
    let purposes = |names: &[&str]| -> Result<Vec<Purpose>> {
        names
            .iter()
            .map(|n| Purpose::parse(n).context("built-in purpose"))
            .collect()
    };
    let sample = |bsn, category, legal_basis, content| Sample {
        bsn,
        category,
        legal_basis,
        content,
    };
    let (slug, name, oin, purposes, samples) = match i {
        0 => (
            "gemeente".to_string(),
            "Gemeente Voorbeeld".to_string(),
            "00000001001234567000".to_string(),
            purposes(&[
                "jeugdbescherming",
                "huiselijk-geweld",
                "zorg-coordinatie",
                "burgerinzage",
            ])?,
            vec![
                sample(
                    WALKTHROUGH_BSN,
                    "betrokkenheid",
                    "Jeugdwet art. 2.3",
                    r#"{"team":"Wijkteam Noord","sinds":"2026-09-01"}"#,
                ),
                sample(
                    WALKTHROUGH_BSN,
                    "melding",
                    "Jeugdwet art. 2.3",
                    r#"{"ontvangen":"2026-09-01","zorg":"schoolverzuim en signalen van onveiligheid thuis"}"#,
                ),
                sample(
                    WALKTHROUGH_BSN,
                    "plan",
                    "Jeugdwet art. 2.3",
                    r#"{"doel":"veilig thuis wonen","casusregisseur":"Wijkteam Noord"}"#,
                ),
                sample(
                    WALKTHROUGH_BSN,
                    "veiligheidsplan",
                    "Wmo 2015 art. 4.1.1",
                    r#"{"verblijf":"adres afgeschermd"}"#,
                ),
            ],
        ),
        1 => (
            "veilig-thuis".to_string(),
            "Veilig Thuis Voorbeeld".to_string(),
            "00000001002345678000".to_string(),
            purposes(&["huiselijk-geweld", "veiligheid", "jeugdbescherming"])?,
            vec![
                sample(
                    WALKTHROUGH_BSN,
                    "betrokkenheid",
                    "Wmo 2015 art. 4.1.1",
                    r#"{"sinds":"2026-10-12"}"#,
                ),
                sample(
                    WALKTHROUGH_BSN,
                    "melding",
                    "Wmo 2015 art. 4.1.1",
                    r#"{"ontvangen":"2026-10-12","melder":"school"}"#,
                ),
                sample(
                    WALKTHROUGH_BSN,
                    "risicotaxatie",
                    "Wmo 2015 art. 4.1.1",
                    r#"{"niveau":"verhoogd"}"#,
                ),
            ],
        ),
        2 => (
            "jeugdhulp".to_string(),
            "Jeugdhulp Voorbeeld".to_string(),
            "00000001003456789000".to_string(),
            purposes(&["jeugdbescherming", "zorg-coordinatie"])?,
            vec![
                sample(
                    "123456782",
                    "betrokkenheid",
                    "Jeugdwet art. 7.3.8",
                    r#"{"sinds":"2026-06-15"}"#,
                ),
                sample(
                    "123456782",
                    "plan",
                    "Jeugdwet art. 7.3.8",
                    r#"{"doel":"dagbesteding"}"#,
                ),
            ],
        ),
        _ => (
            format!("jeugdhulp-{}", i + 1),
            format!("Jeugdhulp Voorbeeld {}", i + 1),
            format!("00000001{:03}000000000", i + 1),
            purposes(&["jeugdbescherming", "zorg-coordinatie"])?,
            Vec::new(),
        ),
    };
    Ok(Partner {
        slug,
        name,
        member_id: MemberId::parse(&oin).context("built-in member id")?,
        purposes,
        samples,
    })
}

/// The roles of every dev partner: each both asks and holds.
pub fn roles() -> Vec<Role> {
    vec![Role::Afnemer, Role::Bronhouder]
}

/// The listen addresses a node's config names. Port 0 on the first start;
/// the ports the OS gave are written back, so a restart keeps them and the
/// member list stays right.
#[derive(Clone, Debug)]
pub struct Ports {
    /// libp2p TCP port.
    pub p2p: u16,
    /// Peer API port.
    pub peer: u16,
    /// Local API port.
    pub local: u16,
    /// Metrics port.
    pub metrics: u16,
}

impl Ports {
    /// Every port from the OS.
    pub const ANY: Ports = Ports {
        p2p: 0,
        peer: 0,
        local: 0,
        metrics: 0,
    };
}

/// The files of one node directory.
pub struct NodeDir {
    /// The directory.
    pub dir: PathBuf,
}

impl NodeDir {
    /// `root/slug`.
    pub fn new(root: &Path, partner: &Partner) -> Self {
        NodeDir {
            dir: root.join(&partner.slug),
        }
    }

    /// The config file.
    pub fn config(&self) -> PathBuf {
        self.dir.join("handbereik.toml")
    }

    /// The token file.
    pub fn token(&self) -> PathBuf {
        self.dir.join("api-token")
    }

    /// The member list file the node watches.
    pub fn member_list(&self) -> PathBuf {
        self.dir.join("member-list.cbor")
    }

    /// The node key file.
    pub fn key(&self) -> PathBuf {
        self.dir.join("node.key")
    }

    /// Whether the node was made before.
    pub fn exists(&self) -> bool {
        self.config().exists()
    }

    /// Makes the key, token, pseudonym key, policy and config.
    pub fn create(&self, partner: &Partner, governance: &str) -> Result<NodeKey> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let key = NodeKey::create(&self.key())?;
        files::write_file(
            &self.token(),
            super::super::init::new_token()?.as_bytes(),
            Visibility::Private,
            Overwrite::Refuse,
        )?;
        files::write_file(
            &self.dir.join("pseudonym.key"),
            DEV_PSEUDONYM_KEY.as_bytes(),
            Visibility::Private,
            Overwrite::Refuse,
        )?;
        files::write_file(
            &self.dir.join("policy.cedar"),
            POLICY.as_bytes(),
            Visibility::Public,
            Overwrite::Refuse,
        )?;
        self.write_config(partner, governance, &Ports::ANY)?;
        Ok(key)
    }

    /// Writes the config with `ports`.
    pub fn write_config(&self, partner: &Partner, governance: &str, ports: &Ports) -> Result<()> {
        let text = format!(
            r#"# A node of a `handbereik dev` network ({name}). Written by
# `handbereik dev`; the ports are those the OS gave on the first start.
# Every key is explained in docs/configuration.md.

[node]
member_id = "{member_id}"
network = "{NETWORK}"
key_file = "node.key"
data_dir = "data"

[governance]
anchor_keys = ["{governance}"]
threshold = 1
member_list_file = "member-list.cbor"
member_list_poll_secs = 1

[p2p]
listen = ["/ip4/127.0.0.1/tcp/{p2p}"]

[peer_api]
listen = "127.0.0.1:{peer}"

[local_api]
listen = "127.0.0.1:{local}"
token_file = "api-token"

[metrics]
listen = "127.0.0.1:{metrics}"

[store]
cache_capacity_mb = 16

[policy]
file = "policy.cedar"
reload_secs = 2

[registry]
pseudonym_key_file = "pseudonym.key"

{catalogue}"#,
            catalogue = catalogue(),
            name = partner.name,
            member_id = partner.member_id,
            p2p = ports.p2p,
            peer = ports.peer,
            local = ports.local,
            metrics = ports.metrics,
        );
        files::write_file(
            &self.config(),
            text.as_bytes(),
            Visibility::Public,
            Overwrite::Replace,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partners_have_distinct_ids_and_the_policy_names_veilig_thuis() {
        let partners: Vec<Partner> = (0..12).map(|i| partner(i).unwrap()).collect();
        let mut ids: Vec<&str> = partners.iter().map(|p| p.member_id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 12);
        // The example policy gives Veilig Thuis its own permit by OIN.
        assert!(POLICY.contains(partners[1].member_id.as_str()));
    }

    #[test]
    fn the_catalogue_is_the_deploy_samples() {
        let table = catalogue();
        assert!(table.starts_with("[registry.categories]\n"), "{table}");
        assert!(table.ends_with("strikt-vertrouwelijk\" }\n"), "{table}");
        let parsed: toml::Table = toml::from_str(table).unwrap();
        assert_eq!(
            parsed["registry"]["categories"].as_table().unwrap().len(),
            6
        );
    }

    #[test]
    fn the_dev_pseudonym_key_is_32_bytes_of_hex() {
        assert_eq!(DEV_PSEUDONYM_KEY.len(), 64);
        assert!(hex::decode(DEV_PSEUDONYM_KEY).is_ok());
    }
}
