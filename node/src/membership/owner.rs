//! The one task that changes the member list held.
//!
//! Every list offered (from the file, the URL, gossip or a sync reply) goes
//! through one bounded queue to this task, so offers never race: each is
//! verified against the trust state (signatures over the exact bytes before
//! the body is decoded, all on the blocking pool, never on the async
//! workers), stored only if its version is higher than the one stored
//! (checked in the same write), and only then installed. A refused list is
//! logged once, with its reason, and counted by reason every time.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use handbereik_keys::{GovernanceSet, KeysError, TrustState, canonical, time};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::view::MembershipView;
use super::{META_ANCHOR, META_LIST, META_VERSION};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// How many recently refused lists are remembered, so the same bad bytes are
/// neither verified nor logged again.
const REMEMBERED: usize = 64;

/// Where a list came from, for logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The configured file.
    File,
    /// The governance gossip topic.
    Gossip,
    /// A sync reply from a peer.
    Sync,
    /// The configured URL.
    Url,
}

/// Why a list was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// Its version is lower than the one held.
    Older,
    /// Fewer than k anchor keys signed it, or a signature does not verify.
    Signatures,
    /// It is not a signed list in the one canonical encoding.
    Malformed,
    /// It does not hold together (duplicate ids, a revocation taken back, ...).
    Inconsistent,
    /// It is for another network.
    WrongNetwork,
    /// It has expired.
    Expired,
    /// Its `issued_at` lies in the future.
    NotYetValid,
}

impl RefusalReason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            RefusalReason::Older => "older",
            RefusalReason::Signatures => "signatures",
            RefusalReason::Malformed => "malformed",
            RefusalReason::Inconsistent => "inconsistent",
            RefusalReason::WrongNetwork => "wrong_network",
            RefusalReason::Expired => "expired",
            RefusalReason::NotYetValid => "not_yet_valid",
        }
    }

    /// Whether whoever forwarded it did wrong (gossip: reject and penalise),
    /// rather than being merely late or early (ignore).
    pub fn is_forgery(self) -> bool {
        matches!(
            self,
            RefusalReason::Signatures
                | RefusalReason::Malformed
                | RefusalReason::Inconsistent
                | RefusalReason::WrongNetwork
        )
    }

    fn of(error: &KeysError) -> Self {
        match error {
            KeysError::NotNewer { .. } => RefusalReason::Older,
            KeysError::NotEnoughSignatures { .. } | KeysError::BadSignature { .. } => {
                RefusalReason::Signatures
            }
            KeysError::WrongNetwork { .. } => RefusalReason::WrongNetwork,
            KeysError::Expired { .. } => RefusalReason::Expired,
            KeysError::NotYetValid { .. } => RefusalReason::NotYetValid,
            KeysError::InconsistentList(_) | KeysError::Duplicate(_) => RefusalReason::Inconsistent,
            _ => RefusalReason::Malformed,
        }
    }
}

/// What offering a list did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Offered {
    /// The list is newer and valid, stored and now held.
    Installed(u64),
    /// It is the very list held already.
    Held,
    /// It was refused; the message says why in words.
    Refused(RefusalReason, String),
    /// It could not be stored; nothing changed.
    NotStored(String),
}

pub(super) struct Offer {
    pub(super) bytes: Vec<u8>,
    pub(super) origin: Origin,
    pub(super) reply: Option<oneshot::Sender<Offered>>,
}

/// The owner task's state; run it with [`MembershipOwner::run`].
pub struct MembershipOwner {
    pub(super) trust: TrustState,
    pub(super) network: String,
    pub(super) held_hash: Option<[u8; 32]>,
    pub(super) store: Store,
    pub(super) metrics: Arc<Metrics>,
    pub(super) view: watch::Sender<Arc<MembershipView>>,
    pub(super) offers: mpsc::Receiver<Offer>,
    pub(super) refused: HashMap<[u8; 32], (RefusalReason, String)>,
    pub(super) refused_order: VecDeque<[u8; 32]>,
}

impl MembershipOwner {
    /// Takes offers until `stop` fires or every handle is gone.
    pub async fn run(mut self, stop: CancellationToken) -> Result<()> {
        loop {
            let offer = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                offer = self.offers.recv() => match offer {
                    Some(offer) => offer,
                    None => return Ok(()),
                },
            };
            let outcome = self.handle(&offer.bytes, offer.origin).await?;
            if let Some(reply) = offer.reply {
                let _ = reply.send(outcome);
            }
        }
    }

    async fn handle(&mut self, bytes: &[u8], origin: Origin) -> Result<Offered> {
        let hash: [u8; 32] = Sha256::digest(bytes).into();
        if self.held_hash == Some(hash) {
            return Ok(Offered::Held);
        }
        if let Some((reason, message)) = self.refused.get(&hash) {
            // Seen and refused already: counted, not verified or logged again.
            self.metrics.list_refused(reason.label());
            return Ok(Offered::Refused(*reason, message.clone()));
        }
        // Verification is CPU work (k signatures over up to 32 MiB, decoding
        // tens of thousands of members): the trust state moves to the
        // blocking pool and back.
        let placeholder = TrustState::new(self.network.clone(), self.trust.anchor().clone());
        let trust = std::mem::replace(&mut self.trust, placeholder);
        let owned = bytes.to_vec();
        let (trust, checked) = tokio::task::spawn_blocking(move || {
            let checked = trust.check_next(&owned, time::now());
            (trust, checked)
        })
        .await
        .map_err(|source| Error::TaskPanicked {
            what: "member list verification",
            source,
        })?;
        self.trust = trust;
        let verified = match checked {
            Ok(verified) => verified,
            Err(e) => return Ok(self.refuse(hash, origin, &e)),
        };
        let version = verified.list.version;
        let anchor = anchor_as_set(self.trust.anchor());
        let anchor = canonical::to_vec(&anchor, "anchor")?;
        // One version-checked, atomic write: the list only ever lands with
        // the anchor it was accepted under, and never over a newer one.
        let stored = self
            .store
            .put_meta_versioned(
                META_VERSION,
                version,
                vec![(META_ANCHOR, anchor), (META_LIST, bytes.to_vec())],
            )
            .await;
        match stored {
            Ok(()) => {}
            Err(StoreError::NotNewer { stored, .. }) => {
                let e = KeysError::NotNewer {
                    got: version,
                    held: stored,
                };
                return Ok(self.refuse(hash, origin, &e));
            }
            Err(e) => {
                let message = crate::error::chain(&e);
                tracing::error!(?origin, version, error = %message, "member list could not be stored; it is not installed");
                return Ok(Offered::NotStored(message));
            }
        }
        let members = verified.list.members.len();
        self.trust.install(verified.clone());
        self.held_hash = Some(hash);
        let view = tokio::task::spawn_blocking(move || MembershipView::new(Some(verified)))
            .await
            .map_err(|source| Error::TaskPanicked {
                what: "member list index",
                source,
            })?;
        self.view.send_replace(Arc::new(view));
        self.metrics
            .member_list_version
            .set(i64::try_from(version).unwrap_or(i64::MAX));
        tracing::info!(version, members, ?origin, "member list installed");
        Ok(Offered::Installed(version))
    }

    fn refuse(&mut self, hash: [u8; 32], origin: Origin, error: &KeysError) -> Offered {
        let reason = RefusalReason::of(error);
        let message = error.to_string();
        self.metrics.list_refused(reason.label());
        let level_warn = reason != RefusalReason::Older || origin != Origin::Gossip;
        if level_warn {
            tracing::warn!(?origin, reason = reason.label(), error = %message, "member list refused");
        } else {
            tracing::info!(?origin, reason = reason.label(), error = %message, "member list refused");
        }
        if self.refused_order.len() >= REMEMBERED
            && let Some(oldest) = self.refused_order.pop_front()
        {
            self.refused.remove(&oldest);
        }
        self.refused_order.push_back(hash);
        self.refused.insert(hash, (reason, message.clone()));
        Offered::Refused(reason, message)
    }
}

pub(super) fn anchor_as_set(anchor: &handbereik_keys::Anchor) -> GovernanceSet {
    GovernanceSet {
        keys: anchor.keys().iter().copied().collect(),
        threshold: u32::try_from(anchor.threshold()).unwrap_or(u32::MAX),
    }
}
