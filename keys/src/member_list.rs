//! The member list: who is in the network, with which roles, purposes and keys.
//!
//! Owns the list type and its internal consistency (unique ids and keys, a
//! usable governance set, no revoked key in use). Whether a list may be
//! trusted is `verify`'s concern; how governance edits one is `draft`'s.

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::bytes::PublicKey;
use crate::error::{KeysError, Result};
use crate::ids::{ActorRole, MemberId, Purpose, Role};
use crate::profile;
use crate::text::excerpt;
use crate::time;

/// The largest signed member list read from outside (about 60,000 members).
pub const LIST_LIMIT: usize = 32 * 1024 * 1024;
/// The most governance keys in one set.
pub const MAX_GOVERNANCE_KEYS: usize = 32;
/// The most actor roles in a network profile.
pub const MAX_ACTOR_ROLES: usize = 64;

/// The governance keys and how many of them must sign the next list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GovernanceSet {
    /// The keys, sorted and distinct.
    pub keys: Vec<PublicKey>,
    /// How many distinct keys of `keys` must sign (k of n).
    pub threshold: u32,
}

impl GovernanceSet {
    /// Sorts the keys and checks `1 <= threshold <= n`, keys distinct.
    pub fn new(mut keys: Vec<PublicKey>, threshold: u32) -> Result<Self> {
        keys.sort();
        let set = GovernanceSet { keys, threshold };
        set.check()?;
        Ok(set)
    }

    /// Checks the set as it came from outside.
    pub fn check(&self) -> Result<()> {
        let distinct: BTreeSet<_> = self.keys.iter().collect();
        if distinct.len() != self.keys.len() {
            return Err(KeysError::field("governance keys", "a key is named twice"));
        }
        profile::check_strictly_sorted("governance keys", &self.keys)?;
        if self.keys.is_empty() || self.keys.len() > MAX_GOVERNANCE_KEYS {
            return Err(KeysError::field(
                "governance keys",
                format!("give 1 to {MAX_GOVERNANCE_KEYS} keys"),
            ));
        }
        if self.threshold == 0 || self.threshold as usize > self.keys.len() {
            return Err(KeysError::field(
                "threshold",
                format!(
                    "must be between 1 and the number of keys ({}), got {}",
                    self.keys.len(),
                    self.threshold
                ),
            ));
        }
        Ok(())
    }

    /// The keys as a set.
    pub fn key_set(&self) -> BTreeSet<PublicKey> {
        self.keys.iter().copied().collect()
    }
}

/// One admitted member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// The member's OIN.
    pub member_id: MemberId,
    /// The member's name.
    pub name: String,
    /// Admitted roles.
    pub roles: Vec<Role>,
    /// Admitted purposes (doelbinding).
    pub purposes: Vec<Purpose>,
    /// The node's ed25519 key: its libp2p identity, TLS key and signing key.
    pub node_key: PublicKey,
    /// libp2p multiaddresses to dial.
    pub p2p_addresses: Vec<String>,
    /// `host:port` of the peer gRPC listener.
    pub grpc_endpoint: String,
    /// From when the membership holds, seconds since the Unix epoch.
    pub valid_from: u64,
    /// Until when it holds, if limited.
    pub valid_until: Option<u64>,
    /// True while the member is in maintenance: it stays listed but is not asked.
    pub maintenance: bool,
    /// The regions the member serves, as region codes such as `GM0363`
    /// ([`profile::check_region`]), sorted and distinct; empty when it names
    /// none. An empty list is left out of the encoding, so a list made before
    /// regions existed keeps its bytes (and its signatures).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
}

impl Member {
    /// Whether the membership holds at `now` and the member is not in maintenance.
    pub fn is_active(&self, now: u64) -> bool {
        !self.maintenance && now >= self.valid_from && self.valid_until.is_none_or(|u| now < u)
    }

    /// Whether the member has `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether the member is admitted for `purpose`.
    pub fn has_purpose(&self, purpose: &Purpose) -> bool {
        self.purposes.contains(purpose)
    }

    /// Whether the member names `region` (a code such as `GM0363`) among the
    /// regions it serves. A member that names no regions serves none by this
    /// test; whether a scoped query still asks it is the caller's rule.
    pub fn serves_region(&self, region: &str) -> bool {
        self.regions
            .binary_search_by(|r| r.as_str().cmp(region))
            .is_ok()
    }
}

/// A key that must never be trusted again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// The revoked key.
    pub key: PublicKey,
    /// The member that held it.
    pub member_id: MemberId,
    /// When it was revoked, seconds since the Unix epoch.
    pub revoked_at: u64,
    /// Why, for the record.
    pub reason: String,
}

/// What governance sets for the whole network rather than for one member.
///
/// A separate map rather than more top-level fields of [`MemberList`], so
/// that the list's top level stays the list itself (who is in, who signs
/// next) and a later network-wide vocabulary is one more optional key in
/// here. Left out of the encoding when empty, like every field in it, so
/// lists signed before it existed keep their bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkProfile {
    /// The actor roles of the network: the vocabulary from which every call
    /// that reaches another member names the role of the professional acting
    /// (`melder`, `casusregisseur`, ...). Sorted and distinct. Not to be
    /// confused with a member's [`Role`]s (`bronhouder`, `afnemer`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actor_roles: Vec<ActorRole>,
}

impl NetworkProfile {
    /// Whether nothing is set (then the list leaves the profile out).
    pub fn is_empty(&self) -> bool {
        self.actor_roles.is_empty()
    }

    /// Checks the profile as it came from outside: at most
    /// [`MAX_ACTOR_ROLES`] actor roles, strictly ascending.
    pub fn check(&self) -> Result<()> {
        if self.actor_roles.len() > MAX_ACTOR_ROLES {
            return Err(KeysError::field(
                "actor_roles",
                format!("give at most {MAX_ACTOR_ROLES} actor roles"),
            ));
        }
        profile::check_strictly_sorted("actor_roles", &self.actor_roles)
    }
}

/// The member list that governance signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberList {
    /// The network's id; also part of gossip topic names.
    pub network: String,
    /// Strictly increasing with every list governance publishes.
    pub version: u64,
    /// When the list was made, seconds since the Unix epoch.
    pub issued_at: u64,
    /// After this moment the list is no longer valid (fail closed).
    pub expires_at: u64,
    /// The keys and threshold that must sign the *next* list (rotation).
    pub governance: GovernanceSet,
    /// The members, sorted by member id.
    pub members: Vec<Member>,
    /// Revoked keys, sorted by key; never shrinks from one list to the next.
    pub revoked: Vec<Revocation>,
    /// Network-wide settings: the actor-role vocabulary. Absent from the
    /// encoding when empty.
    #[serde(default, skip_serializing_if = "NetworkProfile::is_empty")]
    pub profile: NetworkProfile,
}

impl MemberList {
    /// Checks that the list holds together; says what does not.
    pub fn check(&self) -> Result<()> {
        check_network(&self.network)?;
        let inconsistent = |m: String| Err(KeysError::InconsistentList(m));
        if self.version == 0 {
            return inconsistent("version must be 1 or higher".into());
        }
        self.check_times()?;
        if self.expires_at <= self.issued_at {
            return inconsistent("expires_at must be after issued_at".into());
        }
        self.governance.check()?;
        let ids: Vec<_> = self.members.iter().map(|m| &m.member_id).collect();
        profile::check_strictly_sorted("members (by member id)", &ids)
            .map_err(|e| KeysError::InconsistentList(e.to_string()))?;
        let revoked_keys: Vec<_> = self.revoked.iter().map(|r| r.key).collect();
        profile::check_strictly_sorted("revoked (by key)", &revoked_keys)
            .map_err(|e| KeysError::InconsistentList(e.to_string()))?;
        // Strictly sorted (checked above), so no key is revoked twice.
        let revoked: BTreeSet<_> = self.revoked.iter().map(|r| r.key).collect();
        if let Some(k) = self.governance.keys.iter().find(|k| revoked.contains(k)) {
            return inconsistent(format!("governance key {k} is revoked"));
        }
        // What each member says of itself is checked over the cores (lists
        // hold thousands); the first member refused there is `described`.
        let described = first_undescribed(&self.members);
        // `members` is strictly sorted by id (checked above), so no id occurs
        // twice; keys are looked up in a hash set. Members before `described`
        // are checked here in order, so that the first refusal in array order
        // is the one reported, as if each member were checked in turn.
        let mut keys: HashSet<PublicKey> =
            HashSet::with_capacity(self.members.len() + self.governance.keys.len());
        keys.extend(self.governance.keys.iter().copied());
        let checked_in_turn = described.as_ref().map_or(self.members.len(), |(i, _)| *i);
        for m in &self.members[..checked_in_turn] {
            if revoked.contains(&m.node_key) {
                return inconsistent(format!("member {} uses a revoked key", m.member_id));
            }
            if !keys.insert(m.node_key) {
                return inconsistent(format!(
                    "key {} is used twice (by member {} and another member or governance)",
                    m.node_key, m.member_id
                ));
            }
            if m.valid_until.is_some_and(|u| u <= m.valid_from) {
                return inconsistent(format!(
                    "member {}: valid_until is not after valid_from",
                    m.member_id
                ));
            }
        }
        if let Some((_, error)) = described {
            return Err(error);
        }
        self.profile
            .check()
            .map_err(|e| KeysError::InconsistentList(format!("profile: {e}")))
    }

    /// Whether `role` is one of the network's actor roles (its profile's
    /// vocabulary): the check a node makes on the role an acting
    /// professional names. A list without a profile has none.
    pub fn has_actor_role(&self, role: &str) -> bool {
        self.profile
            .actor_roles
            .binary_search_by(|r| r.as_str().cmp(role))
            .is_ok()
    }

    /// Checks that every timestamp in the list lies at or before
    /// [`crate::time::MAX_SECS`] (9999-12-31T23:59:59Z): `issued_at`,
    /// `expires_at`, each member's `valid_from` and `valid_until`, and each
    /// revocation's `revoked_at`. So no arithmetic or formatting on them can
    /// overflow later. Part of [`MemberList::check`]; drafts run it on reading.
    pub fn check_times(&self) -> Result<()> {
        // The field is named only when it is refused: lists hold thousands.
        let bounded = |field: &dyn Fn() -> String, secs: u64| {
            if secs <= time::MAX_SECS {
                return Ok(());
            }
            time::check_bounded(&field(), secs)
                .map(|_| ())
                .map_err(KeysError::InconsistentList)
        };
        bounded(&|| "issued_at".into(), self.issued_at)?;
        bounded(&|| "expires_at".into(), self.expires_at)?;
        for m in &self.members {
            let id = &m.member_id;
            bounded(&|| format!("member {id}: valid_from"), m.valid_from)?;
            if let Some(until) = m.valid_until {
                bounded(&|| format!("member {id}: valid_until"), until)?;
            }
        }
        for r in &self.revoked {
            let key = r.key;
            bounded(
                &|| format!("revocation of key {key}: revoked_at"),
                r.revoked_at,
            )?;
        }
        Ok(())
    }

    /// The member with this id.
    pub fn member(&self, id: &MemberId) -> Option<&Member> {
        self.members.iter().find(|m| &m.member_id == id)
    }

    /// The member whose node key this is.
    pub fn member_by_key(&self, key: &PublicKey) -> Option<&Member> {
        self.members.iter().find(|m| &m.node_key == key)
    }

    /// Whether `key` is revoked.
    pub fn is_revoked(&self, key: &PublicKey) -> bool {
        self.revoked.iter().any(|r| &r.key == key)
    }

    /// Whether the list has expired at `now`.
    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.expires_at
    }
}

/// Below this many members a thread checks their self-descriptions alone.
const MEMBERS_PER_THREAD: usize = 2048;

/// The first member (index and error) whose name, roles, purposes, addresses,
/// endpoint or regions do not pass [`profile`], checked over the cores.
fn first_undescribed(members: &[Member]) -> Option<(usize, KeysError)> {
    let first = |offset: usize, chunk: &[Member]| {
        chunk.iter().enumerate().find_map(|(i, m)| {
            profile::check(
                &m.name,
                &m.roles,
                &m.purposes,
                &m.p2p_addresses,
                &m.grpc_endpoint,
            )
            .and_then(|()| profile::check_regions(&m.regions))
            .err()
            .map(|e| {
                let error = KeysError::InconsistentList(format!("member {}: {e}", m.member_id));
                (offset + i, error)
            })
        })
    };
    if members.len() < 2 * MEMBERS_PER_THREAD {
        return first(0, members);
    }
    // Chunks keep their order, so the first refusal found is the first in the list.
    let indices: Vec<usize> = (0..members.len()).step_by(MEMBERS_PER_THREAD).collect();
    crate::parallel::map_chunks(&indices, 1, |starts| {
        starts.iter().find_map(|&start| {
            let end = (start + MEMBERS_PER_THREAD).min(members.len());
            first(start, &members[start..end])
        })
    })
    .into_iter()
    .flatten()
    .next()
}

/// A network id: 1 to 64 characters `a-z`, `0-9`, `-`, starting with a letter.
pub fn check_network(network: &str) -> Result<()> {
    // Same alphabet as purposes: both appear in topic names.
    Purpose::parse(network).map(|_| ()).map_err(|_| {
        KeysError::field(
            "network",
            format!(
                "{} is not valid: use 1 to 64 characters a-z, 0-9 and '-', starting with a letter",
                excerpt(network)
            ),
        )
    })
}
