//! The ingest pipeline: check events from other nodes in parallel, store them
//! in groups, and report each outcome back to whoever handed it in.
//!
//! Two stages joined by a bounded channel, so that one batch is being checked
//! on all cores while the previous one is being written and flushed:
//!
//! 1. check: take every item waiting (up to a batch), split the batch over
//!    the machine's cores on the blocking pool, run `event::check` on each,
//!    and send the check's verdict at once for items that asked for it
//!    (gossip: a relay forwards on the verdict, so no hop waits for its
//!    node's flush; DESIGN §4 asks validation before forwarding, not
//!    storage);
//! 2. store: hand the events that passed to the store's group-commit writer
//!    in one command, then report every item's outcome (an item that had its
//!    verdict and was refused by the check has nothing more to hear).
//!
//! Both stages belong to the supervisor's workers group.
//!
//! The ticket `T` is opaque here: the p2p layer puts its gossip message id and
//! peer in it, so this module needs no libp2p types.

use std::sync::Arc;

use futures::StreamExt;
use handbereik_keys::{MemberId, Purpose, time};
use tokio::sync::mpsc;

use super::event::{self, Checked, Rejection};
use crate::error::Error;
use crate::membership::{Membership, MembershipView};
use crate::metrics::Metrics;
use crate::store::{Incoming, Outcome, Store};
use crate::supervisor::{Group, Supervisor};
use crate::types::StreamId;

/// Most items taken into one batch.
const BATCH: usize = 1024;

/// An event handed in for checking and storing.
#[derive(Debug)]
pub struct Item<T> {
    /// The signed bytes as they arrived.
    pub bytes: Vec<u8>,
    /// The purpose of the topic it came on, if it came by gossip.
    pub topic_purpose: Option<Purpose>,
    /// Whether the caller wants the check's verdict before the store's
    /// outcome ([`Update::Checked`]).
    pub early_verdict: bool,
    /// What the caller needs back with the report.
    pub ticket: T,
}

/// What the pipeline tells the caller, in this order per item.
#[derive(Debug)]
pub enum Update<T> {
    /// The checks' verdicts of a batch, before its events are stored: a
    /// copy of each ticket handed in with `early_verdict`, and passed or
    /// refused with the reason. One message per batch, so the caller's
    /// task wakes once for all of them.
    Checked(Vec<(T, Result<(), Rejection>)>),
    /// What became of the item in the end.
    Done(Report<T>),
}

/// What became of one item.
#[derive(Debug)]
pub struct Report<T> {
    /// The caller's ticket.
    pub ticket: T,
    /// Stored (with its outcome), or refused (with the reason).
    pub result: Result<(Checked, Outcome), Rejection>,
}

/// The sending side of the pipeline.
pub struct IngestHandle<T> {
    items: mpsc::Sender<Item<T>>,
}

impl<T> Clone for IngestHandle<T> {
    fn clone(&self) -> Self {
        IngestHandle {
            items: self.items.clone(),
        }
    }
}

impl<T> IngestHandle<T> {
    /// Hands in an item without waiting; gives it back when the pipeline is full.
    pub fn try_submit(&self, item: Item<T>) -> Result<(), Item<T>> {
        self.items.try_send(item).map_err(|e| match e {
            mpsc::error::TrySendError::Full(item) | mpsc::error::TrySendError::Closed(item) => item,
        })
    }

    /// Hands in an item, waiting for room.
    pub async fn submit(&self, item: Item<T>) -> bool {
        self.items.send(item).await.is_ok()
    }
}

/// Starts both stages under `supervisor`. The pipeline ends when every
/// handle is dropped (the swarm task holds them).
pub fn spawn<T: Clone + Send + 'static>(
    supervisor: &Supervisor,
    membership: Membership,
    store: Store,
    metrics: Arc<Metrics>,
    reports: mpsc::Sender<Update<T>>,
) -> IngestHandle<T> {
    let (items_tx, items_rx) = mpsc::channel(4 * BATCH);
    let (checked_tx, checked_rx) = mpsc::channel(4);
    let checking_store = store.clone();
    let verdicts = reports.clone();
    supervisor.spawn_critical(Group::Workers, "event checking", async move {
        check_stage(membership, checking_store, items_rx, checked_tx, verdicts).await;
        Ok::<(), Error>(())
    });
    supervisor.spawn_critical(Group::Workers, "event storing", async move {
        store_stage(store, metrics, checked_rx, reports).await;
        Ok::<(), Error>(())
    });
    IngestHandle { items: items_tx }
}

type CheckedBatch<T> = Vec<(Item<T>, Result<Checked, Rejection>)>;

/// Batches being checked at once: while one batch waits for its slowest
/// chunk, the next one keeps the cores busy.
const BATCHES_IN_FLIGHT: usize = 2;

async fn check_stage<T: Clone + Send + 'static>(
    membership: Membership,
    store: Store,
    mut items: mpsc::Receiver<Item<T>>,
    out: mpsc::Sender<CheckedBatch<T>>,
    verdicts: mpsc::Sender<Update<T>>,
) {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut in_flight = futures::stream::FuturesOrdered::new();
    let mut open = true;
    while open || !in_flight.is_empty() {
        let mut batch = Vec::with_capacity(BATCH);
        tokio::select! {
            Some(checked) = in_flight.next(), if !in_flight.is_empty() => {
                let early = early_verdicts(&checked);
                if !early.is_empty() && verdicts.send(Update::Checked(early)).await.is_err() {
                    return;
                }
                if out.send(checked).await.is_err() {
                    return;
                }
            }
            received = items.recv_many(&mut batch, BATCH), if open && in_flight.len() < BATCHES_IN_FLIGHT => {
                if received == 0 {
                    open = false;
                } else {
                    in_flight.push_back(check_batch(batch, membership.view(), store.clone(), workers));
                }
            }
        }
    }
}

/// The verdicts of the items in `batch` that asked for one early.
fn early_verdicts<T: Clone>(batch: &CheckedBatch<T>) -> Vec<(T, Result<(), Rejection>)> {
    batch
        .iter()
        .filter(|(item, _)| item.early_verdict)
        .map(|(item, result)| {
            let verdict = result.as_ref().map(|_| ()).map_err(|rejection| *rejection);
            (item.ticket.clone(), verdict)
        })
        .collect()
}

/// Checks one batch, split over `workers` blocking threads; keeps the order.
async fn check_batch<T: Send + 'static>(
    items: Vec<Item<T>>,
    view: Arc<MembershipView>,
    store: Store,
    workers: usize,
) -> CheckedBatch<T> {
    let now = time::now();
    let chunk = items.len().div_ceil(workers).max(16);
    let mut jobs = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let tail = rest.split_off(chunk.min(rest.len()));
        let part = std::mem::replace(&mut rest, tail);
        let view = view.clone();
        let store = store.clone();
        jobs.push(tokio::task::spawn_blocking(move || {
            // Only a shortcut past the signature work: on a read error the
            // event is checked in full, and the writer deduplicates anyway.
            let is_stored = |source: &MemberId, purpose: &Purpose, seq: u64| {
                let stream = StreamId::new(source.clone(), purpose.clone());
                match store.contains(&stream, seq) {
                    Ok(stored) => stored,
                    Err(e) => {
                        tracing::warn!(error = %crate::error::chain(&e), "reading the store to skip a duplicate failed");
                        false
                    }
                }
            };
            part.into_iter()
                .map(|item| {
                    let result = event::check(
                        &item.bytes,
                        &view,
                        item.topic_purpose.as_ref(),
                        now,
                        is_stored,
                    );
                    (item, result)
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut checked = Vec::new();
    for job in jobs {
        match job.await {
            Ok(part) => checked.extend(part),
            Err(e) => tracing::error!(error = %e, "an event check panicked"),
        }
    }
    checked
}

async fn store_stage<T: Send + 'static>(
    store: Store,
    metrics: Arc<Metrics>,
    mut batches: mpsc::Receiver<CheckedBatch<T>>,
    reports: mpsc::Sender<Update<T>>,
) {
    while let Some(batch) = batches.recv().await {
        let incoming: Vec<Incoming> = batch
            .iter()
            .filter_map(|(item, result)| {
                result.as_ref().ok().map(|c| Incoming {
                    stream: StreamId::new(c.source.clone(), c.purpose.clone()),
                    seq: c.sequence,
                    bytes: item.bytes.clone(),
                })
            })
            .collect();
        let outcomes = if incoming.is_empty() {
            Ok(Vec::new())
        } else {
            store.ingest(incoming).await
        };
        let mut outcomes = match outcomes {
            Ok(outcomes) => outcomes.into_iter(),
            Err(e) => {
                // Not the sender's fault: drop the reports so nothing more is
                // done with them (a gossip verdict, already given, stands:
                // the events were valid); sync will bring them again.
                tracing::error!(error = %crate::error::chain(&e), "storing received events failed");
                continue;
            }
        };
        for (item, result) in batch {
            let refused_by_check = result.is_err();
            let result = match result {
                Ok(checked) => match outcomes.next() {
                    Some(Outcome::Duplicate) => Err(Rejection::Duplicate),
                    Some(outcome) => {
                        metrics.received.inc();
                        Ok((checked, outcome))
                    }
                    None => continue,
                },
                Err(rejection) => Err(rejection),
            };
            if let Err(rejection) = &result {
                metrics.rejected(*rejection);
            }
            if item.early_verdict && refused_by_check {
                // Its verdict said all there is to say.
                continue;
            }
            if reports
                .send(Update::Done(Report {
                    ticket: item.ticket,
                    result,
                }))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
