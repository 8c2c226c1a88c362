//! The dev network's governance: one key (threshold 1) in
//! `DIR/governance/`, and a member list made the way `handbereik-keys` makes
//! one: from each node's signed membership request, through a draft that the
//! governance key signs and that is verified before it is handed out.
//!
//! Calls only `handbereik-keys`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use handbereik_keys::{
    Anchor, Draft, GovernanceSet, MembershipRequest, NodeKey, files, time, verify_signatures,
    write_public_key,
};

use super::partners::{NodeDir, Partner, roles};

/// How long a dev member list is valid. A dev network restarted with the
/// same `--dir` gets a fresh list every start.
const VALIDITY_SECS: u64 = 7 * 24 * 3600;

/// The governance directory of a dev network.
pub struct Governance {
    dir: PathBuf,
    key: NodeKey,
}

/// One partner to admit.
pub struct Admission<'a> {
    /// Who.
    pub partner: &'a Partner,
    /// Its directory, which gets the list.
    pub dir: &'a NodeDir,
    /// Its node key, which signs its membership request.
    pub key: &'a NodeKey,
    /// Where it is reached.
    pub reach: &'a Reach,
}

/// Where a started node is reached; goes into its membership request.
pub struct Reach {
    /// Its libp2p address.
    pub p2p_address: String,
    /// host:port of its peer API.
    pub grpc_endpoint: String,
}

impl Governance {
    /// Opens `root/governance`, making the key on the first start.
    pub fn open_or_create(root: &Path) -> Result<Self> {
        let dir = root.join("governance");
        let key_file = dir.join("governance.key");
        let key = if key_file.exists() {
            NodeKey::load(&key_file)?
        } else {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let key = NodeKey::create(&key_file)?;
            write_public_key(&dir.join("governance.key.pub"), &key.public_key())?;
            key
        };
        Ok(Governance { dir, key })
    }

    /// The public key, as the nodes' `anchor_keys` name it.
    pub fn public_key(&self) -> String {
        self.key.public_key().to_string()
    }

    /// The published list file.
    pub fn list_file(&self) -> PathBuf {
        self.dir.join("member-list.cbor")
    }

    /// Makes the next list with every partner in `nodes` admitted at its
    /// current address, signs and verifies it, and writes it to the
    /// governance directory and into every node directory. Returns its version.
    pub fn publish(&self, nodes: &[Admission<'_>]) -> Result<u64> {
        let now = time::now();
        let set = GovernanceSet::new(vec![self.key.public_key()], 1)?;
        let anchor = Anchor::from_governance(&set);
        // Continue from the last list so versions only go up, but admit
        // everyone afresh: addresses may have changed and members been added.
        let previous = match std::fs::read(self.list_file()) {
            Ok(bytes) => Some(verify_signatures(&bytes, &anchor, None)?.list),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read {}", self.list_file().display()));
            }
        };
        let mut draft = match previous {
            Some(mut list) => {
                list.members.clear();
                Draft::continue_from(&list, VALIDITY_SECS, now)?
            }
            None => Draft::first(super::partners::NETWORK, set, VALIDITY_SECS, now)?,
        };
        for Admission {
            partner,
            key,
            reach,
            ..
        } in nodes
        {
            let request = MembershipRequest {
                member_id: partner.member_id.clone(),
                name: partner.name.clone(),
                roles: roles(),
                purposes: partner.purposes.clone(),
                p2p_addresses: vec![reach.p2p_address.clone()],
                grpc_endpoint: reach.grpc_endpoint.clone(),
                node_key: key.public_key(),
                created_at: now,
            }
            .normalize_and_check()?;
            draft.admit(&request.sign(key)?, None, None, now)?;
        }
        draft.set_actor_roles(actor_roles()?, now)?;
        draft.sign(&self.key)?;
        let published = draft.publish(now)?;
        let version = published.list.version;
        files::write_file(
            &self.list_file(),
            &published.signed_bytes,
            files::Visibility::Public,
            files::Overwrite::Replace,
        )?;
        for Admission { dir, .. } in nodes {
            files::write_file(
                &dir.member_list(),
                &published.signed_bytes,
                files::Visibility::Public,
                files::Overwrite::Replace,
            )?;
        }
        Ok(version)
    }
}

/// The dev network's role vocabulary (from the programme's "werking"): every
/// call that reaches another member names one of these as the role of the
/// professional acting.
pub const ACTOR_ROLES: [&str; 5] = [
    "burgerportaal",
    "casusregisseur",
    "deelnemer",
    "melder",
    "procesregisseur",
];

fn actor_roles() -> Result<Vec<handbereik_keys::ActorRole>> {
    ACTOR_ROLES
        .iter()
        .map(|r| handbereik_keys::ActorRole::parse(r).context("built-in actor role"))
        .collect()
}
