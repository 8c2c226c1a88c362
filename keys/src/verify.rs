//! Whether a member list may be trusted, and what a node trusts next.
//!
//! Owns the rules of DESIGN section 3: at least k distinct anchor keys signed
//! the exact bytes (`verify_strict`), the version is higher than the one held,
//! the list is within its validity, it is for this network, and it does not
//! take back a revocation. `TrustState` carries the anchor forward: the list it
//! accepts names the governance set that must sign the next one, which is how
//! governance keys rotate. Calls `envelope`, `canonical` and `member_list`.

use std::collections::{BTreeSet, HashSet};
use std::sync::OnceLock;

use crate::bytes::PublicKey;
use crate::canonical;
use crate::envelope::{Domain, SignedEnvelope};
use crate::error::{KeysError, Result};
use crate::member_list::{GovernanceSet, LIST_LIMIT, MemberList};
use crate::text::excerpt;
use crate::time::rfc3339;

/// How far in the future `issued_at` may lie before a list counts as not yet
/// valid: machines' clocks differ by seconds, not by minutes.
pub const CLOCK_SKEW_SECS: u64 = 300;

/// The governance keys a node trusts and how many must sign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    keys: BTreeSet<PublicKey>,
    threshold: usize,
}

impl Anchor {
    /// An anchor of distinct keys and a threshold `1 <= k <= n`.
    pub fn new(keys: impl IntoIterator<Item = PublicKey>, threshold: usize) -> Result<Self> {
        let keys: Vec<_> = keys.into_iter().collect();
        let set = GovernanceSet::new(keys, u32::try_from(threshold).unwrap_or(u32::MAX))?;
        Ok(Self::from_governance(&set))
    }

    /// The anchor a list names for its successor.
    pub fn from_governance(set: &GovernanceSet) -> Self {
        Anchor {
            keys: set.key_set(),
            threshold: set.threshold as usize,
        }
    }

    /// The keys.
    pub fn keys(&self) -> &BTreeSet<PublicKey> {
        &self.keys
    }

    /// The threshold k.
    pub fn threshold(&self) -> usize {
        self.threshold
    }
}

/// A list that passed verification, with the exact bytes that were verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedMemberList {
    /// The decoded list.
    pub list: MemberList,
    /// The signed envelope as it arrived; store and forward these bytes.
    pub signed_bytes: Vec<u8>,
    /// The distinct anchor keys whose signatures verified.
    pub signers: BTreeSet<PublicKey>,
}

/// Verifies a signed member list against `anchor`, including its validity at `now`.
///
/// `held_version` is the version the caller already trusts, if any; `now` is
/// seconds since the epoch.
pub fn verify_member_list(
    bytes: &[u8],
    anchor: &Anchor,
    held_version: Option<u64>,
    now: u64,
) -> Result<VerifiedMemberList> {
    verify_list(bytes, anchor, held_version, now, &|| None)
}

/// Keys known to be usable, asked for once the signatures passed.
type Checked<'a> = &'a dyn Fn() -> Option<&'a HashSet<[u8; 32]>>;

/// [`verify_member_list`], not checking again the keys that `checked` gives.
fn verify_list(
    bytes: &[u8],
    anchor: &Anchor,
    held_version: Option<u64>,
    now: u64,
    checked: Checked<'_>,
) -> Result<VerifiedMemberList> {
    let verified = signatures_then_body(bytes, anchor, held_version, checked)?;
    let list = &verified.list;
    if list.issued_at > now.saturating_add(CLOCK_SKEW_SECS) {
        return Err(KeysError::NotYetValid {
            version: list.version,
            issued_at: rfc3339(list.issued_at),
        });
    }
    if list.is_expired(now) {
        return Err(KeysError::Expired {
            version: list.version,
            expires_at: rfc3339(list.expires_at),
        });
    }
    Ok(verified)
}

/// Verifies signatures, encoding, consistency and version, but not the
/// validity period: for a list that was valid once, such as the predecessor
/// in a chain of lists being checked after the fact.
pub fn verify_signatures(
    bytes: &[u8],
    anchor: &Anchor,
    held_version: Option<u64>,
) -> Result<VerifiedMemberList> {
    signatures_then_body(bytes, anchor, held_version, &|| None)
}

/// The signatures over the exact bytes first, then the body: decoded (its
/// keys checked unless `checked` gives them), consistent, newer than
/// `held_version`.
fn signatures_then_body(
    bytes: &[u8],
    anchor: &Anchor,
    held_version: Option<u64>,
    checked: Checked<'_>,
) -> Result<VerifiedMemberList> {
    let envelope = SignedEnvelope::decode(bytes, "member list", LIST_LIMIT)?;
    let (signers, invalid) = envelope.valid_signers(Domain::MemberList, &anchor.keys);
    if signers.len() < anchor.threshold {
        let hint = if invalid > 0 {
            format!(
                "; {invalid} signature(s) by governance keys do not verify: the list was altered after signing"
            )
        } else {
            String::new()
        };
        return Err(KeysError::NotEnoughSignatures {
            valid: signers.len(),
            required: anchor.threshold,
            hint,
        });
    }
    // Decoded only now, after the signatures passed; members over the cores.
    let list: MemberList = canonical::from_slice_split(
        &envelope.body,
        "member list",
        checked(),
        "members",
        |list: &mut MemberList, members| list.members = members,
    )?;
    list.check()?;
    if let Some(held) = held_version
        && list.version <= held
    {
        return Err(KeysError::NotNewer {
            got: list.version,
            held,
        });
    }
    Ok(VerifiedMemberList {
        list,
        signed_bytes: bytes.to_vec(),
        signers,
    })
}

/// Every key a verified list holds: each was checked when it was decoded.
fn checked_keys(verified: &VerifiedMemberList) -> HashSet<[u8; 32]> {
    let list = &verified.list;
    list.members
        .iter()
        .map(|m| m.node_key)
        .chain(list.governance.keys.iter().copied())
        .chain(list.revoked.iter().map(|r| r.key))
        .chain(verified.signers.iter().copied())
        .map(|k| *k.as_bytes())
        .collect()
}

/// What a node trusts: its network, the anchor for the next list, the list it holds.
#[derive(Clone, Debug)]
pub struct TrustState {
    network: String,
    anchor: Anchor,
    current: Option<VerifiedMemberList>,
    /// Every key of `current`, made when a next list first needs it.
    current_keys: OnceLock<HashSet<[u8; 32]>>,
}

impl TrustState {
    /// Starts from the anchor in the node's configuration, holding no list.
    pub fn new(network: impl Into<String>, anchor: Anchor) -> Self {
        TrustState {
            network: network.into(),
            anchor,
            current: None,
            current_keys: OnceLock::new(),
        }
    }

    /// Resumes from a list accepted earlier (as a node does after a restart):
    /// `anchor` is the one that list was accepted under. Signatures and
    /// consistency are checked again; validity in time is not, because an
    /// expired list is still what the node holds (and reports) until a newer
    /// one arrives.
    pub fn resume(network: impl Into<String>, anchor: Anchor, bytes: &[u8]) -> Result<Self> {
        let network = network.into();
        let verified = verify_signatures(bytes, &anchor, None)?;
        if verified.list.network != network {
            return Err(KeysError::WrongNetwork {
                got: excerpt(&verified.list.network),
                expected: excerpt(&network),
            });
        }
        Ok(TrustState {
            network,
            anchor: Anchor::from_governance(&verified.list.governance),
            current: Some(verified),
            current_keys: OnceLock::new(),
        })
    }

    /// The anchor that the next list must satisfy.
    pub fn anchor(&self) -> &Anchor {
        &self.anchor
    }

    /// The list held, if any.
    pub fn current(&self) -> Option<&VerifiedMemberList> {
        self.current.as_ref()
    }

    /// Verifies `bytes` as the next list and, if it passes, holds it and takes
    /// its governance set as the anchor for the list after it.
    pub fn accept(&mut self, bytes: &[u8], now: u64) -> Result<&VerifiedMemberList> {
        let verified = self.check_next(bytes, now)?;
        self.anchor = Anchor::from_governance(&verified.list.governance);
        self.current_keys = OnceLock::new();
        Ok(self.current.insert(verified))
    }

    /// Verifies `bytes` as the next list without changing what is held: a
    /// pure function of this state, so a caller can run it on any thread and
    /// store the list durably before [`TrustState::install`] makes it current.
    ///
    /// Keys that the list held already names were checked when it was
    /// accepted and are not checked again: a new list mostly repeats the
    /// members of the one before.
    pub fn check_next(&self, bytes: &[u8], now: u64) -> Result<VerifiedMemberList> {
        let held = self.current.as_ref().map(|c| c.list.version);
        let checked = || {
            let current = self.current.as_ref()?;
            Some(self.current_keys.get_or_init(|| checked_keys(current)))
        };
        let verified = verify_list(bytes, &self.anchor, held, now, &checked)?;
        if verified.list.network != self.network {
            return Err(KeysError::WrongNetwork {
                got: excerpt(&verified.list.network),
                expected: excerpt(&self.network),
            });
        }
        // `revoked` of a verified list is strictly sorted by key.
        let revoked = &verified.list.revoked;
        if let Some(current) = &self.current
            && let Some(r) = current
                .list
                .revoked
                .iter()
                .find(|r| revoked.binary_search_by(|n| n.key.cmp(&r.key)).is_err())
        {
            return Err(KeysError::InconsistentList(format!(
                "it takes back the revocation of key {} (member {}); a revoked key stays revoked",
                r.key, r.member_id
            )));
        }
        Ok(verified)
    }

    /// Holds a list that [`TrustState::check_next`] passed, and takes its
    /// governance set as the anchor for the list after it. Answers false, and
    /// changes nothing, when the list is no newer than the one held (another
    /// list was installed since it was checked).
    pub fn install(&mut self, verified: VerifiedMemberList) -> bool {
        let newer = self
            .current
            .as_ref()
            .is_none_or(|c| verified.list.version > c.list.version);
        if newer {
            self.anchor = Anchor::from_governance(&verified.list.governance);
            self.current = Some(verified);
            self.current_keys = OnceLock::new();
        }
        newer
    }
}
