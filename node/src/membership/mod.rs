//! The member list the node trusts, where it comes from, and what it says.
//!
//! One task, the [`MembershipOwner`], holds the [`TrustState`] (anchor, held
//! list) and alone changes it; everyone else offers lists through a bounded
//! queue ([`Membership::offer`], [`Membership::try_offer`]) and reads the
//! current [`MembershipView`] from a watch channel, so gossip validation, the
//! swarm's allow list and the API all see one consistent list and learn at
//! once when it changes. Lists arrive from the configured file (polled), an
//! HTTP(S) URL ([`url`]), gossip and sync replies; each is verified by
//! `handbereik-keys` and stored durably before it takes effect. Expiry fails
//! closed: an expired list is still held and reported, but
//! [`MembershipView::is_expired`] makes the node refuse events until a newer
//! list arrives. Calls `store`, `metrics` and `handbereik-keys`.

mod owner;
#[cfg(test)]
pub(crate) mod test_lists;
pub mod url;
mod view;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use handbereik_keys::{Anchor, GovernanceSet, LIST_LIMIT, TrustState, canonical, files};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::store::Store;

pub use owner::{MembershipOwner, Offered, Origin, RefusalReason};
pub use view::{MembershipView, Standing};

const META_LIST: &str = "member_list";
const META_ANCHOR: &str = "member_list_anchor";
const META_VERSION: &str = "member_list_version";

/// How many offers may wait for the owner. Gossip offers beyond it are
/// ignored (not penalised): a flood of lists cannot queue up work.
const OFFER_QUEUE: usize = 16;

/// The node's membership: the current view and the way to offer a list.
/// Cheap to clone.
#[derive(Clone)]
pub struct Membership {
    network: Arc<str>,
    view: watch::Receiver<Arc<MembershipView>>,
    offers: mpsc::Sender<owner::Offer>,
}

impl Membership {
    /// Starts from the list in the store, if any, else from the configured
    /// anchor. Answers the handle and the owner task to run.
    pub async fn load(
        network: &str,
        anchor: Anchor,
        store: Store,
        metrics: Arc<Metrics>,
    ) -> Result<(Membership, MembershipOwner)> {
        let stored = store.meta(META_LIST)?;
        let stored_anchor = store.meta(META_ANCHOR)?;
        let name = network.to_string();
        // Re-verifying a stored list of tens of thousands of members is CPU
        // work: off the async workers.
        let (trust, held_hash, view) = tokio::task::spawn_blocking(move || {
            let resumed = match (stored, stored_anchor) {
                (Some(bytes), Some(anchor_bytes)) => {
                    let set: GovernanceSet = canonical::from_slice(&anchor_bytes, "stored anchor")?;
                    let trust = TrustState::resume(&name, Anchor::from_governance(&set), &bytes)?;
                    let hash: [u8; 32] = Sha256::digest(&bytes).into();
                    (trust, Some(hash))
                }
                _ => (TrustState::new(&name, anchor), None),
            };
            let view = MembershipView::new(resumed.0.current().cloned());
            Ok::<_, Error>((resumed.0, resumed.1, view))
        })
        .await
        .map_err(|source| Error::TaskPanicked {
            what: "loading the stored member list",
            source,
        })??;
        metrics
            .member_list_version
            .set(i64::try_from(view.version()).unwrap_or(i64::MAX));
        let (view_tx, view_rx) = watch::channel(Arc::new(view));
        let (offers_tx, offers_rx) = mpsc::channel(OFFER_QUEUE);
        let owner = MembershipOwner {
            trust,
            network: network.to_string(),
            held_hash,
            store,
            metrics,
            view: view_tx,
            offers: offers_rx,
            refused: HashMap::new(),
            refused_order: VecDeque::new(),
        };
        Ok((
            Membership {
                network: network.into(),
                view: view_rx,
                offers: offers_tx,
            },
            owner,
        ))
    }

    /// The current view.
    pub fn view(&self) -> Arc<MembershipView> {
        self.view.borrow().clone()
    }

    /// Follows the view as it changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MembershipView>> {
        self.view.clone()
    }

    /// The network id.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// Offers a list and waits for the owner's verdict.
    pub async fn offer(&self, bytes: Vec<u8>, origin: Origin) -> Result<Offered> {
        let (reply, answer) = oneshot::channel();
        self.offers
            .send(owner::Offer {
                bytes,
                origin,
                reply: Some(reply),
            })
            .await
            .map_err(|_| Error::ShuttingDown)?;
        answer.await.map_err(|_| Error::ShuttingDown)
    }

    /// Offers a list without waiting: the verdict comes on the receiver.
    /// `None` when the queue is full (the offer is dropped).
    pub fn try_offer(&self, bytes: Vec<u8>, origin: Origin) -> Option<oneshot::Receiver<Offered>> {
        let (reply, answer) = oneshot::channel();
        self.offers
            .try_send(owner::Offer {
                bytes,
                origin,
                reply: Some(reply),
            })
            .ok()
            .map(|()| answer)
    }

    /// Polls `path` every `interval` and offers the list when the file
    /// changes. Every refusal is logged by the owner with its reason; a file
    /// that cannot be read is logged here once per change.
    pub async fn watch_file(
        self,
        path: PathBuf,
        interval: Duration,
        stop: CancellationToken,
    ) -> Result<()> {
        let mut last: Option<(std::time::SystemTime, u64)> = None;
        loop {
            if let Ok(meta) = std::fs::metadata(&path) {
                let stamp = (meta.modified().unwrap_or(std::time::UNIX_EPOCH), meta.len());
                if last != Some(stamp) {
                    last = Some(stamp);
                    match files::read_file(&path, "member list", LIST_LIMIT) {
                        Ok(bytes) => {
                            if let Offered::Refused(reason, _) =
                                self.offer(bytes, Origin::File).await?
                            {
                                tracing::warn!(file = %path.display(), reason = reason.label(), "the member list file was not taken; the node keeps the list it holds");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot read the member list file"),
                    }
                }
            }
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("network", &self.network)
            .field("version", &self.view().version())
            .finish()
    }
}

#[cfg(test)]
mod tests;
