//! The sync worker: answers peers' sync requests and compares their marks
//! with this node's, off the swarm task.
//!
//! The swarm task hands every inbound request (with the channel to answer
//! on) and every answer about changes to this worker through a bounded
//! queue; the worker reads the store on the blocking pool, a few jobs at a
//! time, and hands back what to send. Each member's requests are within its
//! share ([`Limiter`]): beyond it the answer is `Busy` with a retry hint.
//! Calls `store`, `membership` and [`protocol`](super::protocol).

use std::sync::Arc;

use handbereik_keys::MemberId;
use libp2p::PeerId;
use libp2p::request_response::ResponseChannel;
use tokio::sync::{Semaphore, mpsc};

use super::protocol::{self, Mark, PAGE_BYTES, PAGE_EVENTS, PAGE_MARKS, SyncRequest, SyncResponse};
use crate::error::Error;
use crate::limits::{Busy, Limiter};
use crate::membership::{Membership, MembershipView};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::supervisor::{Group, Supervisor};
use crate::types::StreamId;

/// Jobs waiting for the worker; beyond it the swarm task answers `Busy`
/// itself.
pub const QUEUE: usize = 256;
/// Jobs run at once.
const AT_ONCE: usize = 4;

/// Work for the sync worker.
pub enum Job {
    /// Answer a peer's request.
    Answer {
        /// The member the asking peer is.
        member: MemberId,
        /// What it asks.
        request: SyncRequest,
        /// Where the answer goes.
        channel: ResponseChannel<SyncResponse>,
    },
    /// Compare marks a peer answered with this node's.
    Compare {
        /// The peer that answered.
        peer: PeerId,
        /// Its marks.
        marks: Vec<Mark>,
    },
}

/// What the worker hands back to the swarm task.
pub enum Done {
    /// Send this answer.
    Answer(ResponseChannel<SyncResponse>, SyncResponse),
    /// Fetch these ranges from `peer`: (stream, from, to).
    Fetch(PeerId, Vec<(StreamId, u64, u64)>),
}

/// Milliseconds to tell a busy asker.
pub fn retry_ms(busy: Busy) -> u32 {
    u32::try_from(busy.retry_after().as_millis().max(1)).unwrap_or(u32::MAX)
}

/// Starts the worker under `supervisor`.
pub fn spawn(
    supervisor: &Supervisor,
    own: MemberId,
    store: Store,
    membership: Membership,
    limiter: Arc<Limiter>,
    metrics: Arc<Metrics>,
) -> (mpsc::Sender<Job>, mpsc::Receiver<Done>) {
    let (jobs_tx, mut jobs) = mpsc::channel::<Job>(QUEUE);
    let (done_tx, done) = mpsc::channel::<Done>(QUEUE);
    let slots = Arc::new(Semaphore::new(AT_ONCE));
    let jobs_owner = supervisor.clone();
    supervisor.spawn_critical(Group::Workers, "sync worker", async move {
        while let Some(job) = jobs.recv().await {
            let permit = match &job {
                Job::Answer { member, .. } => match limiter.admit(member) {
                    Ok(permit) => Some(permit),
                    Err(busy) => {
                        metrics.peer_request_limited(busy.label());
                        if let Job::Answer { channel, .. } = job {
                            let busy = SyncResponse::Busy {
                                retry_after_ms: retry_ms(busy),
                            };
                            if done_tx.send(Done::Answer(channel, busy)).await.is_err() {
                                break;
                            }
                        }
                        continue;
                    }
                },
                Job::Compare { .. } => None,
            };
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            let (store, view, own, done) = (
                store.clone(),
                membership.view(),
                own.clone(),
                done_tx.clone(),
            );
            jobs_owner.spawn_job("sync job", async move {
                let out = tokio::task::spawn_blocking(move || run(job, &store, &view, &own)).await;
                drop(permit);
                drop(slot);
                match out {
                    Ok(Some(out)) => {
                        let _ = done.send(out).await;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "a sync job panicked"),
                }
            });
        }
        Ok::<(), Error>(())
    });
    (jobs_tx, done)
}

/// Does one job on the blocking pool.
fn run(job: Job, store: &Store, view: &MembershipView, own: &MemberId) -> Option<Done> {
    match job {
        Job::Answer {
            member,
            request,
            channel,
        } => Some(Done::Answer(channel, answer(store, view, &member, request))),
        Job::Compare { peer, marks } => {
            let me = view.member(own);
            let may_hold = |p: &handbereik_keys::Purpose| me.is_some_and(|m| m.has_purpose(p));
            let ours = |s: &StreamId| store.mark(s).unwrap_or(u64::MAX);
            let behind = protocol::behind(ours, &marks, may_hold);
            (!behind.is_empty()).then_some(Done::Fetch(peer, behind))
        }
    }
}

/// Answers one request of `asker`: only streams of its purposes.
pub fn answer(
    store: &Store,
    view: &MembershipView,
    asker: &MemberId,
    request: SyncRequest,
) -> SyncResponse {
    let admitted = |purpose: &handbereik_keys::Purpose| {
        view.member(asker).is_some_and(|m| m.has_purpose(purpose))
    };
    let unreadable = |e: crate::store::StoreError| SyncResponse::Refused {
        reason: format!("the store cannot be read: {}", crate::error::chain(&e)),
    };
    match request {
        SyncRequest::Changes {
            epoch,
            since,
            list_version: _,
        } => {
            // A cursor into another epoch's log means nothing here: from the start.
            let since = if epoch == store.sync_epoch() {
                since
            } else {
                0
            };
            match store.changes_since(since, PAGE_MARKS) {
                Ok(changes) => SyncResponse::Changes {
                    epoch: store.sync_epoch(),
                    marks: changes
                        .marks
                        .into_iter()
                        .filter(|(stream, mark)| {
                            *mark > 0 && !stream.is_local() && admitted(&stream.purpose)
                        })
                        .map(|(stream, mark)| Mark {
                            source: stream.source.to_string(),
                            purpose: stream.purpose.to_string(),
                            mark,
                        })
                        .collect(),
                    next: changes.next,
                    more: changes.more,
                    list_version: view.version(),
                },
                Err(e) => unreadable(e),
            }
        }
        SyncRequest::Fetch {
            source,
            purpose,
            from,
            to,
        } => {
            let Some(stream) = protocol::parse_stream(&source, &purpose) else {
                return SyncResponse::Refused {
                    reason: "malformed stream".into(),
                };
            };
            // A node's local stream is for its own back office alone.
            if stream.is_local() || !admitted(&stream.purpose) {
                return SyncResponse::Refused {
                    reason: format!("not admitted for {}", stream.purpose),
                };
            }
            if from == 0 || to < from {
                return SyncResponse::Refused {
                    reason: "empty range".into(),
                };
            }
            match store.events_from(&stream, from, to, PAGE_EVENTS, PAGE_BYTES) {
                Ok(events) => SyncResponse::Events {
                    events: events.into_iter().map(serde_bytes::ByteBuf::from).collect(),
                },
                Err(e) => unreadable(e),
            }
        }
        SyncRequest::MemberList => SyncResponse::MemberList {
            bytes: serde_bytes::ByteBuf::from(
                view.list()
                    .map(|l| l.signed_bytes.clone())
                    .unwrap_or_default(),
            ),
        },
    }
}
