//! A member list in the making, passed from governance holder to holder.
//!
//! Owns the governance workflow on one file: start a list (`first`,
//! `continue_from`), `admit` a verified request, `revoke` a member, let each
//! holder `sign` in turn, and `publish` once k distinct holders signed. The
//! version and validity are fixed in the draft before anyone signs, because a
//! signature covers them; any edit re-dates the draft and drops the signatures
//! made so far. Calls `request`, `member_list`, `verify` and `envelope`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::bytes::PublicKey;
use crate::canonical;
use crate::envelope::{Domain, Signature, SignedEnvelope};
use crate::error::{KeysError, Result};
use crate::ids::{ActorRole, MemberId, Purpose, normalized};
use crate::member_list::{
    GovernanceSet, LIST_LIMIT, Member, MemberList, NetworkProfile, Revocation,
};
use crate::node_key::NodeKey;
use crate::profile;
use crate::request::MembershipRequest;
use crate::text::excerpt;
use crate::verify::{Anchor, VerifiedMemberList, verify_member_list};

/// The `format` field of every draft file.
pub const DRAFT_FORMAT: &str = "handbereik/member-list-draft/v1";

/// A member list being prepared and signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Draft {
    /// Always [`DRAFT_FORMAT`]; tells a draft from other files.
    pub format: String,
    /// The governance set that must sign this draft: the set named by the
    /// previous list, or for the first list the set it names itself.
    pub signers: GovernanceSet,
    /// The version of the list this one follows; 0 for the first list.
    pub base_version: u64,
    /// How long the list is valid after it is dated, in seconds.
    pub validity_secs: u64,
    /// The list as it will be published.
    pub list: MemberList,
    /// Signatures over the list's canonical encoding, made so far.
    pub signatures: Vec<Signature>,
}

/// The terms on which [`Draft::admit_with`] admits a partner.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Admission {
    /// Admit only these of the requested purposes; `None` admits all of them.
    pub purposes: Option<Vec<Purpose>>,
    /// End of the membership, seconds since the Unix epoch; `None` for none.
    pub valid_until: Option<u64>,
    /// The regions the member serves (region codes such as `GM0363`, in any
    /// order; sorted and de-duplicated on admission). Empty names none.
    pub regions: Vec<String>,
}

/// What `sign` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignOutcome {
    /// A new signature was added.
    Added,
    /// This key had signed the draft already; nothing changed.
    AlreadySigned,
}

impl Draft {
    /// The first list of a new network, signed by the set it names.
    pub fn first(
        network: &str,
        governance: GovernanceSet,
        validity_secs: u64,
        now: u64,
    ) -> Result<Self> {
        crate::member_list::check_network(network)?;
        check_validity(validity_secs)?;
        governance.check()?;
        let list = MemberList {
            network: network.to_string(),
            version: 1,
            issued_at: now,
            expires_at: expiry(now, validity_secs)?,
            governance: governance.clone(),
            members: Vec::new(),
            revoked: Vec::new(),
            profile: NetworkProfile::default(),
        };
        let draft = Draft {
            format: DRAFT_FORMAT.into(),
            signers: governance,
            base_version: 0,
            validity_secs,
            list,
            signatures: Vec::new(),
        };
        draft.list.check()?;
        Ok(draft)
    }

    /// The next version of a published list, to be signed by the set it names.
    pub fn continue_from(previous: &MemberList, validity_secs: u64, now: u64) -> Result<Self> {
        check_validity(validity_secs)?;
        previous.check()?;
        let mut list = previous.clone();
        list.version = previous.version.checked_add(1).ok_or_else(|| {
            KeysError::field(
                "version",
                "the previous list has the highest version possible",
            )
        })?;
        let mut draft = Draft {
            format: DRAFT_FORMAT.into(),
            signers: previous.governance.clone(),
            base_version: previous.version,
            validity_secs,
            list,
            signatures: Vec::new(),
        };
        draft.redate(now)?;
        Ok(draft)
    }

    /// Names the governance set that must sign the list after this one.
    pub fn set_next_governance(&mut self, next: GovernanceSet, now: u64) -> Result<usize> {
        next.check()?;
        if let Some(k) = next.keys.iter().find(|k| self.list.is_revoked(k)) {
            return Err(KeysError::field(
                "governance keys",
                format!("key {k} is revoked"),
            ));
        }
        self.list.governance = next;
        self.redate(now)
    }

    /// Verifies `request_bytes` (proof of possession) and admits the partner.
    /// `purposes`, if given, narrows the purposes to a subset of those asked.
    /// The same as [`Draft::admit_with`] without regions.
    pub fn admit(
        &mut self,
        request_bytes: &[u8],
        purposes: Option<Vec<Purpose>>,
        valid_until: Option<u64>,
        now: u64,
    ) -> Result<(Member, usize)> {
        let terms = Admission {
            purposes,
            valid_until,
            regions: Vec::new(),
        };
        self.admit_with(request_bytes, terms, now)
    }

    /// Verifies `request_bytes` (proof of possession) and admits the partner
    /// on `terms`. Refuses, and changes nothing, when the request or the terms
    /// do not pass; returns the member and how many signatures were dropped.
    pub fn admit_with(
        &mut self,
        request_bytes: &[u8],
        terms: Admission,
        now: u64,
    ) -> Result<(Member, usize)> {
        let Admission {
            purposes,
            valid_until,
            regions,
        } = terms;
        let regions = normalized(regions);
        profile::check_regions(&regions)?;
        let request = MembershipRequest::verify(request_bytes)?;
        if let Some(existing) = self.list.member(&request.member_id) {
            return Err(KeysError::Duplicate(format!(
                "member id {} is already admitted (as {}); revoke it first to admit it with a new key",
                request.member_id,
                excerpt(&existing.name)
            )));
        }
        if let Some(existing) = self.list.member_by_key(&request.node_key) {
            return Err(KeysError::Duplicate(format!(
                "node key {} is already admitted for member {}; every node needs its own key",
                request.node_key, existing.member_id
            )));
        }
        if self.list.is_revoked(&request.node_key) {
            return Err(KeysError::Duplicate(format!(
                "node key {} was revoked; the partner must make a new key with `handbereik init`",
                request.node_key
            )));
        }
        if self.is_governance_key(&request.node_key) {
            return Err(KeysError::Duplicate(format!(
                "node key {} is a governance key; a node needs a key of its own",
                request.node_key
            )));
        }
        let purposes = match purposes {
            None => request.purposes.clone(),
            Some(chosen) => {
                let chosen = normalized(chosen);
                if let Some(p) = chosen.iter().find(|p| !request.purposes.contains(p)) {
                    return Err(KeysError::field(
                        "purposes",
                        format!(
                            "{p} was not requested by {}; admit only purposes it asked for",
                            request.member_id
                        ),
                    ));
                }
                chosen
            }
        };
        if let Some(p) = purposes.iter().find(|p| p.is_reserved()) {
            return Err(KeysError::field(
                "purposes",
                format!(
                    "{p} is reserved (the node's own announcements and the network's gossip topics use {}); the partner must ask for other purposes",
                    Purpose::RESERVED.join(", ")
                ),
            ));
        }
        if let Some(until) = valid_until {
            KeysError::check_time("valid-until", until)?;
            if until <= now {
                return Err(KeysError::field("valid-until", "must lie in the future"));
            }
        }
        let member = Member {
            member_id: request.member_id,
            name: request.name,
            roles: request.roles,
            purposes,
            node_key: request.node_key,
            p2p_addresses: request.p2p_addresses,
            grpc_endpoint: request.grpc_endpoint,
            valid_from: now,
            valid_until,
            maintenance: false,
            regions,
        };
        self.list.members.push(member.clone());
        self.list
            .members
            .sort_by(|a, b| a.member_id.cmp(&b.member_id));
        self.list.check()?;
        Ok((member, self.redate(now)?))
    }

    /// Removes a member and revokes its key.
    pub fn revoke(
        &mut self,
        member_id: &MemberId,
        reason: &str,
        now: u64,
    ) -> Result<(Revocation, usize)> {
        let position = self
            .list
            .members
            .iter()
            .position(|m| &m.member_id == member_id)
            .ok_or_else(|| KeysError::UnknownMember(member_id.to_string()))?;
        let member = self.list.members.remove(position);
        let revocation = Revocation {
            key: member.node_key,
            member_id: member.member_id,
            revoked_at: now,
            reason: reason.to_string(),
        };
        self.list.revoked.push(revocation.clone());
        self.list.revoked.sort_by_key(|r| r.key);
        self.list.check()?;
        Ok((revocation, self.redate(now)?))
    }

    /// Sets maintenance on or off for a member.
    pub fn set_maintenance(&mut self, member_id: &MemberId, on: bool, now: u64) -> Result<usize> {
        let member = self
            .list
            .members
            .iter_mut()
            .find(|m| &m.member_id == member_id)
            .ok_or_else(|| KeysError::UnknownMember(member_id.to_string()))?;
        member.maintenance = on;
        self.redate(now)
    }

    /// Replaces the network's actor roles (sorted and de-duplicated here);
    /// an empty list clears them. Returns how many signatures were dropped.
    pub fn set_actor_roles(&mut self, roles: Vec<ActorRole>, now: u64) -> Result<usize> {
        let profile = NetworkProfile {
            actor_roles: normalized(roles),
        };
        profile.check()?;
        self.list.profile = profile;
        self.redate(now)
    }

    /// Replaces the regions a member serves (sorted and de-duplicated here);
    /// an empty list clears them. Returns how many signatures were dropped.
    pub fn set_regions(
        &mut self,
        member_id: &MemberId,
        regions: Vec<String>,
        now: u64,
    ) -> Result<usize> {
        let regions = normalized(regions);
        profile::check_regions(&regions)?;
        let member = self
            .list
            .members
            .iter_mut()
            .find(|m| &m.member_id == member_id)
            .ok_or_else(|| KeysError::UnknownMember(member_id.to_string()))?;
        member.regions = regions;
        self.redate(now)
    }

    /// Dates the list from `now` and drops the signatures, which no longer
    /// cover it; returns how many were dropped. Refuses, and changes nothing,
    /// when `now + validity_secs` would lie past 9999-12-31T23:59:59Z.
    pub fn redate(&mut self, now: u64) -> Result<usize> {
        let expires_at = expiry(now, self.validity_secs)?;
        self.list.issued_at = now;
        self.list.expires_at = expires_at;
        Ok(std::mem::take(&mut self.signatures).len())
    }

    /// The bytes that are signed: the list's canonical encoding.
    pub fn body(&self) -> Result<Vec<u8>> {
        canonical::to_vec(&self.list, "member list")
    }

    /// Adds `key`'s signature; the key must be one of the signers.
    pub fn sign(&mut self, key: &NodeKey) -> Result<SignOutcome> {
        self.list.check()?;
        let public = key.public_key();
        if !self.signers.keys.contains(&public) {
            return Err(KeysError::NotASigner {
                key: public.to_hex(),
                allowed: hex_list(&self.signers.keys),
            });
        }
        if self.valid_signers()?.contains(&public) {
            return Ok(SignOutcome::AlreadySigned);
        }
        let body = self.body()?;
        self.signatures.retain(|s| s.key != public);
        self.signatures.push(Signature {
            key: public,
            sig: key.sign(Domain::MemberList, &body),
        });
        Ok(SignOutcome::Added)
    }

    /// The distinct signers whose signatures cover the draft as it is.
    pub fn valid_signers(&self) -> Result<BTreeSet<PublicKey>> {
        let envelope = self.envelope()?;
        Ok(envelope
            .valid_signers(Domain::MemberList, &self.signers.key_set())
            .0)
    }

    /// Checks the threshold, version and validity, and returns the signed list.
    pub fn publish(&self, now: u64) -> Result<VerifiedMemberList> {
        let bytes = self.envelope()?.encode()?;
        let held = (self.base_version > 0).then_some(self.base_version);
        verify_member_list(&bytes, &Anchor::from_governance(&self.signers), held, now)
    }

    /// Encodes the draft for the next holder.
    pub fn encode(&self) -> Result<Vec<u8>> {
        canonical::to_vec(self, "member list draft")
    }

    /// Decodes a draft file.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > LIST_LIMIT {
            return Err(KeysError::TooLarge {
                what: "member list draft",
                size: bytes.len(),
                limit: LIST_LIMIT,
            });
        }
        let draft: Draft = canonical::from_slice(bytes, "member list draft")?;
        if draft.format != DRAFT_FORMAT {
            return Err(KeysError::field(
                "format",
                format!("{} is not {DRAFT_FORMAT:?}", excerpt(&draft.format)),
            ));
        }
        draft.signers.check()?;
        check_validity(draft.validity_secs)?;
        draft.list.check_times()?;
        Ok(draft)
    }

    fn envelope(&self) -> Result<SignedEnvelope> {
        Ok(SignedEnvelope {
            body: self.body()?,
            signatures: self.signatures.clone(),
        })
    }

    fn is_governance_key(&self, key: &PublicKey) -> bool {
        self.signers.keys.contains(key) || self.list.governance.keys.contains(key)
    }
}

fn check_validity(validity_secs: u64) -> Result<()> {
    const DAY: u64 = 24 * 3600;
    if !(3600..=366 * DAY).contains(&validity_secs) {
        return Err(KeysError::field(
            "valid-for",
            "a list must be valid for between 1 hour and 366 days",
        ));
    }
    Ok(())
}

/// `now + validity_secs`, refused past 9999-12-31T23:59:59Z (and so never
/// overflowing): the list's `expires_at`.
fn expiry(now: u64, validity_secs: u64) -> Result<u64> {
    KeysError::check_time("issued_at (now)", now)?;
    // Saturates to u64::MAX, which the bound then refuses.
    let expires_at = now.saturating_add(validity_secs);
    KeysError::check_time("expires_at (now + valid-for)", expires_at)?;
    Ok(expires_at)
}

fn hex_list(keys: &[PublicKey]) -> String {
    keys.iter()
        .map(PublicKey::to_hex)
        .collect::<Vec<_>>()
        .join(", ")
}
