//! A read-only snapshot of the member list held, with the indexes the rest of
//! the node looks things up by.
//!
//! Built once per list by the membership owner. Keys are decoded lazily (the
//! first event or answer of a member decodes its key once), so installing a
//! list of 20,000 members costs no point decompression at all.

use std::collections::HashMap;
use std::sync::OnceLock;

use handbereik_keys::{Member, MemberId, VerifiedMemberList, time};

/// A read-only snapshot of the member list held.
#[derive(Debug, Default)]
pub struct MembershipView {
    list: Option<VerifiedMemberList>,
    /// Members by raw node key.
    by_key: HashMap<[u8; 32], usize>,
    by_id: HashMap<MemberId, usize>,
    /// Each member's decoded key, filled on first use.
    keys: Vec<OnceLock<Option<ed25519_dalek::VerifyingKey>>>,
}

/// Why this node cannot act as a member now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// A current, active member.
    Member,
    /// No list is held yet.
    NoList,
    /// The list held has expired.
    Expired,
    /// The node's key is revoked.
    Revoked,
    /// The list does not name this member id (dropped, or never admitted).
    NotListed,
    /// Listed, but outside its validity period.
    OutsideValidity,
}

impl MembershipView {
    pub(super) fn new(list: Option<VerifiedMemberList>) -> Self {
        let mut view = MembershipView {
            list,
            ..Default::default()
        };
        if let Some(list) = &view.list {
            let n = list.list.members.len();
            view.by_key.reserve(n);
            view.by_id.reserve(n);
            view.keys = (0..n).map(|_| OnceLock::new()).collect();
            for (i, m) in list.list.members.iter().enumerate() {
                view.by_key.insert(*m.node_key.as_bytes(), i);
                view.by_id.insert(m.member_id.clone(), i);
            }
        }
        view
    }

    /// A view of one verified list (for tools and benchmarks that check
    /// events without running a node).
    pub fn from_list(list: VerifiedMemberList) -> Self {
        Self::new(Some(list))
    }

    /// The verified list, if any.
    pub fn list(&self) -> Option<&VerifiedMemberList> {
        self.list.as_ref()
    }

    /// The version held, or 0.
    pub fn version(&self) -> u64 {
        self.list.as_ref().map_or(0, |l| l.list.version)
    }

    /// True when no list is held or the list has expired: fail closed.
    pub fn is_expired(&self, now: u64) -> bool {
        self.list.as_ref().is_none_or(|l| l.list.is_expired(now))
    }

    /// Why the node refuses events, or `None` when it does not.
    pub fn refusal(&self, now: u64) -> Option<String> {
        match &self.list {
            None => Some("no member list: the node waits for governance's signed list".into()),
            Some(l) if l.list.is_expired(now) => Some(format!(
                "member list expired: version {} expired at {}; governance must publish a newer list",
                l.list.version,
                time::rfc3339(l.list.expires_at)
            )),
            Some(_) => None,
        }
    }

    /// Where `own` stands in the list held at `now`.
    pub fn standing(&self, own: &MemberId, now: u64) -> Standing {
        let Some(list) = &self.list else {
            return Standing::NoList;
        };
        if list.list.is_expired(now) {
            return Standing::Expired;
        }
        let Some(member) = self.member(own) else {
            return Standing::NotListed;
        };
        if list.list.is_revoked(&member.node_key) {
            return Standing::Revoked;
        }
        let valid = now >= member.valid_from && member.valid_until.is_none_or(|u| now < u);
        if valid {
            Standing::Member
        } else {
            Standing::OutsideValidity
        }
    }

    /// Why this node (`own`) cannot act as a member now, in words for status
    /// and refusals; `None` when it can.
    pub fn own_refusal(&self, own: &MemberId, now: u64) -> Option<String> {
        let version = self.version();
        match self.standing(own, now) {
            Standing::Member => None,
            Standing::NoList | Standing::Expired => self.refusal(now),
            Standing::Revoked => Some(format!(
                "this node ({own}) is no longer a member: member list version {version} revokes its key; ask governance"
            )),
            Standing::NotListed => Some(format!(
                "this node ({own}) is no longer a member: member list version {version} does not list it (governance dropped it, or never admitted it); ask governance"
            )),
            Standing::OutsideValidity => Some(format!(
                "this node ({own}) is not a member at this moment: member list version {version} admits it only outside now (valid_from/valid_until); ask governance"
            )),
        }
    }

    /// All members.
    pub fn members(&self) -> &[Member] {
        self.list.as_ref().map_or(&[], |l| &l.list.members)
    }

    /// The member with this id.
    pub fn member(&self, id: &MemberId) -> Option<&Member> {
        self.by_id.get(id).and_then(|i| self.members().get(*i))
    }

    /// The member with this raw node key, whatever its standing.
    pub fn member_by_key(&self, key: &[u8; 32]) -> Option<&Member> {
        self.by_key.get(key).and_then(|i| self.members().get(*i))
    }

    /// The member with this node key (and the decoded key), if its
    /// membership holds at `now`. Members in maintenance still send
    /// notifications.
    pub fn active_member_by_key(
        &self,
        key: &[u8; 32],
        now: u64,
    ) -> Option<(&Member, &ed25519_dalek::VerifyingKey)> {
        let index = *self.by_key.get(key)?;
        let member = self.members().get(index)?;
        let valid = now >= member.valid_from && member.valid_until.is_none_or(|u| now < u);
        if !valid {
            return None;
        }
        let verifying = self
            .keys
            .get(index)?
            .get_or_init(|| member.node_key.verifying_key().ok())
            .as_ref()?;
        Some((member, verifying))
    }
}
