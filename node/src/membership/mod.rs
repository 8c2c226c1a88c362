//! The member list the node trusts, where it comes from, and what it says.
//!
//! Owns the [`TrustState`] (anchor, held list) and publishes a read-only
//! [`MembershipView`] through a watch channel, so that every other part of
//! the node (gossip validation, the swarm's allow list, the API) sees one
//! consistent list and learns at once when it changes. Lists arrive from the
//! configured file (polled), from gossip and from sync replies; each is
//! verified by `handbereik-keys` and stored durably before it takes effect.
//! Expiry fails closed: an expired list is still held and reported, but
//! `MembershipView::is_expired` makes the node refuse events until a newer
//! list arrives. Calls `store` and `handbereik-keys`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use handbereik_keys::{
    Anchor, GovernanceSet, LIST_LIMIT, Member, MemberId, TrustState, VerifiedMemberList, canonical,
    files, time,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::store::Store;

pub mod url;

const META_LIST: &str = "member_list";
const META_ANCHOR: &str = "member_list_anchor";

/// A read-only snapshot of the member list held.
#[derive(Debug, Default)]
pub struct MembershipView {
    list: Option<VerifiedMemberList>,
    /// Members by raw node key, with the key decoded once per list rather
    /// than once per event.
    by_key: HashMap<[u8; 32], (usize, ed25519_dalek::VerifyingKey)>,
    by_id: HashMap<MemberId, usize>,
}

impl MembershipView {
    fn new(list: Option<VerifiedMemberList>) -> Self {
        let mut view = MembershipView {
            list,
            ..Default::default()
        };
        if let Some(list) = &view.list {
            for (i, m) in list.list.members.iter().enumerate() {
                if let Ok(key) = m.node_key.verifying_key() {
                    view.by_key.insert(*m.node_key.as_bytes(), (i, key));
                }
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

    /// All members.
    pub fn members(&self) -> &[Member] {
        self.list.as_ref().map_or(&[], |l| &l.list.members)
    }

    /// The member with this id.
    pub fn member(&self, id: &MemberId) -> Option<&Member> {
        self.by_id.get(id).and_then(|i| self.members().get(*i))
    }

    /// The member with this node key (and the decoded key), if its
    /// membership holds at `now`. Members in maintenance still send
    /// notifications.
    pub fn active_member_by_key(
        &self,
        key: &[u8; 32],
        now: u64,
    ) -> Option<(&Member, &ed25519_dalek::VerifyingKey)> {
        let (index, verifying) = self.by_key.get(key)?;
        let member = self.members().get(*index)?;
        let valid = now >= member.valid_from && member.valid_until.is_none_or(|u| now < u);
        valid.then_some((member, verifying))
    }
}

/// Where a list came from, for logs.
#[derive(Clone, Copy, Debug)]
pub enum Origin {
    /// The configured file.
    File,
    /// The governance gossip topic.
    Gossip,
    /// A sync reply from a peer.
    Sync,
    /// The configured URL.
    Url,
    /// The node's own store, at start.
    Store,
}

/// What offering a list did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offered {
    /// The list is newer and valid, and now held.
    Installed(u64),
    /// The list is the one held, or older.
    NotNewer,
}

/// The node's membership: trust state, store, and the view it publishes.
#[derive(Clone)]
pub struct Membership {
    network: String,
    trust: Arc<Mutex<TrustState>>,
    store: Store,
    view: watch::Sender<Arc<MembershipView>>,
}

impl Membership {
    /// Starts from the list in the store, if any, else from the configured anchor.
    pub fn load(network: &str, anchor: Anchor, store: Store) -> Result<Self> {
        let stored = store.meta(META_LIST)?;
        let stored_anchor = store.meta(META_ANCHOR)?;
        let (trust, list) = match (stored, stored_anchor) {
            (Some(bytes), Some(anchor_bytes)) => {
                let set: GovernanceSet = canonical::from_slice(&anchor_bytes, "stored anchor")?;
                let trust = TrustState::resume(network, Anchor::from_governance(&set), &bytes)?;
                let list = trust.current().cloned();
                (trust, list)
            }
            _ => (TrustState::new(network, anchor), None),
        };
        let (view, _) = watch::channel(Arc::new(MembershipView::new(list)));
        Ok(Membership {
            network: network.to_string(),
            trust: Arc::new(Mutex::new(trust)),
            store,
            view,
        })
    }

    /// The current view.
    pub fn view(&self) -> Arc<MembershipView> {
        self.view.borrow().clone()
    }

    /// Follows the view as it changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MembershipView>> {
        self.view.subscribe()
    }

    /// The network id.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// Verifies `bytes` as the next list; if valid and newer, stores it
    /// durably and then installs it.
    pub async fn offer(&self, bytes: &[u8], origin: Origin) -> Result<Offered> {
        let (verified, signing_set) = {
            let trust = self
                .trust
                .lock()
                .map_err(|_| Error::Store("membership lock poisoned".into()))?;
            let held = trust.current().map(|c| c.list.version);
            // Cheap refusal of the list already held or an older one, before any signature work.
            if let Some(held) = held
                && let Ok(version) = peek_version(bytes)
                && version <= held
            {
                return Ok(Offered::NotNewer);
            }
            let mut next = trust.clone();
            let signing_set = anchor_as_set(next.anchor());
            let verified = next.accept(bytes, time::now())?.clone();
            (verified, (next, signing_set))
        };
        let (next_trust, set) = signing_set;
        // One atomic write: a list is only ever stored with the anchor it was
        // accepted under, so a restart can always verify it again.
        self.store
            .put_meta(vec![
                (META_ANCHOR, canonical::to_vec(&set, "anchor")?),
                (META_LIST, bytes.to_vec()),
            ])
            .await?;
        let version = verified.list.version;
        {
            let mut trust = self
                .trust
                .lock()
                .map_err(|_| Error::Store("membership lock poisoned".into()))?;
            // Another offer may have installed a newer list meanwhile; keep the newest.
            if trust.current().is_some_and(|c| c.list.version >= version) {
                return Ok(Offered::NotNewer);
            }
            *trust = next_trust;
        }
        tracing::info!(
            version,
            members = verified.list.members.len(),
            ?origin,
            "member list installed"
        );
        self.view
            .send_replace(Arc::new(MembershipView::new(Some(verified))));
        Ok(Offered::Installed(version))
    }

    /// Polls `path` every `interval` and offers the list when the file changes.
    pub async fn watch_file(self, path: PathBuf, interval: Duration, shutdown: CancellationToken) {
        let mut last: Option<(std::time::SystemTime, u64)> = None;
        loop {
            if let Ok(meta) = std::fs::metadata(&path) {
                let stamp = (meta.modified().unwrap_or(std::time::UNIX_EPOCH), meta.len());
                if last != Some(stamp) {
                    last = Some(stamp);
                    match files::read_file(&path, "member list", LIST_LIMIT) {
                        Ok(bytes) => match self.offer(&bytes, Origin::File).await {
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(file = %path.display(), error = %e, "member list file refused")
                            }
                        },
                        Err(e) => tracing::warn!(error = %e, "cannot read the member list file"),
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

fn anchor_as_set(anchor: &Anchor) -> GovernanceSet {
    GovernanceSet {
        keys: anchor.keys().iter().copied().collect(),
        threshold: u32::try_from(anchor.threshold()).unwrap_or(u32::MAX),
    }
}

/// The version of a list without verifying it, to skip work on lists already held.
fn peek_version(bytes: &[u8]) -> Result<u64> {
    let envelope = handbereik_keys::SignedEnvelope::decode(bytes, "member list", LIST_LIMIT)?;
    let list: handbereik_keys::MemberList = canonical::from_slice(&envelope.body, "member list")?;
    Ok(list.version)
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("network", &self.network)
            .field("version", &self.view().version())
            .finish()
    }
}
