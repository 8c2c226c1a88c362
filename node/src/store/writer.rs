//! The group-commit writer: one OS thread owns every write to the database.
//!
//! It takes all commands waiting in its channel, applies them as one atomic
//! sled batch per tree, flushes once with sled's *blocking* flush on this
//! thread, and only then answers each command. sled 0.34's `flush_async`
//! runs the flush on sled's shared I/O pool, where concurrent flushes (worst
//! with several databases in one process) can wait on each other for ever;
//! a blocking flush from one owner thread per database, with sled's own
//! periodic flusher off, never shares that pool's threads for waiting.
//!
//! The writer also owns the per-stream bookkeeping ([`Streams`]), so
//! deduplication, ordering and gap detection cannot race, and it hands this
//! node's own events to the gossip feed in the order it numbered them, after
//! they are durable. Every commit is timed by [`CommitClock`], so a stuck disk
//! is noticed and the node stops instead of hanging.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use super::audit::{self, BuildEntry, Head};
use super::error::{BuildError, StoreError};
use super::keys;
use super::registry::{self, RegistryWrite};
use super::streams::{Release, Streams};
use crate::types::{Pseudonym, StreamId};

/// How many commands the writer takes into one batch at most.
pub(super) const MAX_BATCH: usize = 4096;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A verified event from another source, ready to store.
#[derive(Clone, Debug)]
pub struct Incoming {
    /// Its stream (source and purpose).
    pub stream: StreamId,
    /// Its sequence number in that stream.
    pub seq: u64,
    /// The signed bytes as they arrived.
    pub bytes: Vec<u8>,
}

/// What happened to one incoming event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stored. `gap` names sequence numbers of the same stream still missing
    /// below it (the event is held out of the inbox until they arrive or the
    /// gap times out).
    Stored {
        /// Missing sequences below this one, if any.
        gap: Option<(u64, u64)>,
    },
    /// Already stored; nothing written.
    Duplicate,
}

/// One of this node's own events, durable, in the order it was numbered.
#[derive(Clone, Debug)]
pub struct Published {
    /// Its stream.
    pub stream: StreamId,
    /// Its sequence number.
    pub seq: u64,
    /// The signed bytes.
    pub bytes: Vec<u8>,
}

/// Builds an own event's signed bytes from its sequence number.
pub type BuildEvent = Box<dyn FnOnce(u64) -> Result<Vec<u8>, BuildError> + Send>;

pub(super) enum Which {
    Subscriptions,
    Meta,
    Audit,
}

pub(super) enum Command {
    Ingest {
        events: Vec<Incoming>,
        reply: Reply<Vec<Outcome>>,
    },
    Append {
        stream: StreamId,
        build: BuildEvent,
        reply: Reply<(u64, Vec<u8>)>,
    },
    Announce {
        stream: StreamId,
        build: BuildEvent,
        reply: Reply<(u64, Vec<u8>)>,
    },
    Put {
        tree: Which,
        entries: Vec<(Vec<u8>, Vec<u8>)>,
        reply: Reply<()>,
    },
    PutVersioned {
        version_key: &'static str,
        version: u64,
        entries: Vec<(Vec<u8>, Vec<u8>)>,
        reply: Reply<()>,
    },
    Registry {
        write: RegistryWrite,
        reply: Reply<u32>,
    },
    Audit {
        subject: Option<Pseudonym>,
        build: BuildEntry,
        reply: Reply<u64>,
    },
    PassGaps {
        timeout: Duration,
        reply: Reply<usize>,
    },
    Close {
        reply: Reply<()>,
    },
}

enum Answer {
    Ingest(Reply<Vec<Outcome>>, Vec<Outcome>),
    Append(Reply<(u64, Vec<u8>)>, Result<(u64, Vec<u8>), StoreError>),
    Done(Reply<()>, Result<(), StoreError>),
    Count(Reply<u32>, Result<u32, StoreError>),
    Audit(Reply<u64>, Result<u64, StoreError>),
    Passed(Reply<usize>, usize),
}

/// How long the commit in progress has been running, and whether the store
/// broke: the node's watchdog reads it.
#[derive(Debug)]
pub struct CommitClock {
    epoch: Instant,
    /// Milliseconds since `epoch` when the running commit started, plus one;
    /// zero while idle.
    started: AtomicU64,
    broken: std::sync::OnceLock<Arc<sled::Error>>,
}

impl CommitClock {
    pub(super) fn new() -> Self {
        CommitClock {
            epoch: Instant::now(),
            started: AtomicU64::new(0),
            broken: std::sync::OnceLock::new(),
        }
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn begin(&self) {
        self.started
            .store(self.millis().saturating_add(1), Ordering::Release);
    }

    fn end(&self) {
        self.started.store(0, Ordering::Release);
    }

    /// How long the commit in progress has run, or `None` while idle.
    pub fn running_for(&self) -> Option<Duration> {
        let started = self.started.load(Ordering::Acquire);
        (started != 0).then(|| Duration::from_millis(self.millis().saturating_sub(started - 1)))
    }

    /// The first write failure, if one happened: the store takes no more.
    pub fn broken(&self) -> Option<Arc<sled::Error>> {
        self.broken.get().cloned()
    }
}

pub(super) struct Writer {
    pub(super) db: sled::Db,
    pub(super) notify: sled::Tree,
    pub(super) subscriptions: sled::Tree,
    pub(super) meta: sled::Tree,
    pub(super) registry: sled::Tree,
    pub(super) audit: sled::Tree,
    pub(super) audit_head: Head,
    pub(super) audit_fault: Arc<AtomicBool>,
    pub(super) streams: Streams,
    pub(super) next_position: u64,
    pub(super) published: Option<mpsc::Sender<Published>>,
    pub(super) broken: Option<Arc<sled::Error>>,
    /// The last change number given to a stream whose mark moved.
    pub(super) change_seq: u64,
    /// Each stream's latest change number.
    pub(super) changes: std::collections::HashMap<StreamId, u64>,
}

/// Writes prepared in one group commit, applied together at its end.
#[derive(Default)]
struct Pending {
    notify: sled::Batch,
    subscriptions: sled::Batch,
    meta: sled::Batch,
    audit: sled::Batch,
    /// Streams whose marks or delivery changed, to write once per commit.
    touched: HashSet<StreamId>,
    /// Streams whose mark moved, for the change log.
    moved: HashSet<StreamId>,
    /// Own events numbered in this commit, for the gossip feed.
    published: Vec<Published>,
    /// Versions written by versioned puts in this commit, not yet applied.
    versions: std::collections::HashMap<&'static str, u64>,
}

impl Writer {
    pub(super) fn inbox_head(&self) -> u64 {
        self.next_position - 1
    }

    /// The writer thread: runs until [`Command::Close`] or until every
    /// sender is gone, then flushes one last time.
    pub(super) fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        inbox: watch::Sender<u64>,
        clock: Arc<CommitClock>,
    ) {
        let mut commands = Vec::with_capacity(MAX_BATCH);
        loop {
            let Some(first) = rx.blocking_recv() else {
                break;
            };
            commands.push(first);
            while commands.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(command) => commands.push(command),
                    Err(_) => break,
                }
            }
            let closing = commands.iter().any(|c| matches!(c, Command::Close { .. }));
            clock.begin();
            self.commit(std::mem::take(&mut commands), &inbox);
            clock.end();
            if let Some(e) = &self.broken {
                let _ = clock.broken.set(e.clone());
            }
            if closing {
                // Later senders find the channel closed: `StoreError::Closed`.
                rx.close();
                while let Ok(command) = rx.try_recv() {
                    refuse(command, &StoreError::Closed);
                }
                return;
            }
        }
        if self.broken.is_none()
            && let Err(e) = self.db.flush()
        {
            tracing::error!(error = %e, "final flush of the store failed");
        }
    }

    fn commit(&mut self, commands: Vec<Command>, inbox: &watch::Sender<u64>) {
        let _span = crate::trace::group_commit(commands.len()).entered();
        if let Some(broken) = &self.broken {
            let error = StoreError::Broken(broken.clone());
            for command in commands {
                refuse(command, &error);
            }
            return;
        }
        let audit_head = self.audit_head;
        let mut pending = Pending::default();
        let mut answers = Vec::with_capacity(commands.len());
        // Gap passing runs every second on every node; when it passes
        // nothing, the commit writes nothing and needs no flush (the idle
        // cost of a node is mostly this flush otherwise).
        let only_gap_passing = commands
            .iter()
            .all(|c| matches!(c, Command::PassGaps { .. }));
        for command in commands {
            answers.push(self.prepare(command, &mut pending));
        }
        if only_gap_passing && pending.touched.is_empty() {
            answers.into_iter().for_each(Answer::send);
            return;
        }
        for stream in &pending.touched {
            pending.notify.insert(
                keys::mark(stream),
                &self.streams.mark(stream).to_be_bytes()[..],
            );
            pending.notify.insert(
                keys::delivered(stream),
                &self.streams.delivered(stream).to_be_bytes()[..],
            );
        }
        let change_seq = self.change_seq;
        let mut old_changes = Vec::new();
        for stream in std::mem::take(&mut pending.moved) {
            self.change_seq += 1;
            if let Some(old) = self.changes.insert(stream.clone(), self.change_seq) {
                pending.notify.remove(&keys::change(old)[..]);
                old_changes.push((stream.clone(), old));
            }
            pending
                .notify
                .insert(&keys::change(self.change_seq)[..], keys::stream(&stream));
            pending
                .notify
                .insert(keys::change_of(&stream), &self.change_seq.to_be_bytes()[..]);
        }
        let Pending {
            notify,
            subscriptions,
            meta,
            audit,
            published,
            ..
        } = pending;
        let written = (|| {
            self.notify.apply_batch(notify)?;
            self.subscriptions.apply_batch(subscriptions)?;
            self.meta.apply_batch(meta)?;
            self.audit.apply_batch(audit)?;
            self.db.flush()?;
            Ok::<_, sled::Error>(())
        })();
        match written {
            Ok(()) => {
                // The durable head moves before anyone hears of the commit, so
                // a position a caller learns of is never beyond it.
                inbox.send_replace(self.inbox_head());
                answers.into_iter().for_each(Answer::send);
                self.feed(published);
            }
            Err(e) => {
                // The in-memory bookkeeping may now be ahead of the disk; refuse
                // every later write rather than acknowledge on a broken store.
                self.audit_head = audit_head;
                self.change_seq = change_seq;
                for (stream, old) in old_changes {
                    self.changes.insert(stream, old);
                }
                let e = Arc::new(e);
                tracing::error!(error = %e, "store: a write failed; the store accepts no more writes");
                let error = StoreError::Broken(e.clone());
                for answer in answers {
                    answer.fail(&error);
                }
                self.broken = Some(e);
            }
        }
    }

    /// Hands own events to gossip in the order they were numbered. The feed
    /// never makes the writer wait: if gossip is that far behind, peers get
    /// the events by sync instead.
    fn feed(&self, published: Vec<Published>) {
        let Some(feed) = &self.published else { return };
        for event in published {
            if feed.try_send(event).is_err() {
                tracing::debug!("gossip feed full or closed; sync delivers the event");
            }
        }
    }

    fn prepare(&mut self, command: Command, pending: &mut Pending) -> Answer {
        match command {
            Command::Ingest { events, reply } => {
                let now = Instant::now();
                let outcomes = events
                    .into_iter()
                    .map(|e| self.ingest_one(e, now, pending))
                    .collect();
                Answer::Ingest(reply, outcomes)
            }
            Command::Append {
                stream,
                build,
                reply,
            } => Answer::Append(reply, self.append_one(stream, build, pending)),
            Command::Announce {
                stream,
                build,
                reply,
            } => Answer::Append(reply, self.announce_one(stream, build, pending)),
            Command::Put {
                tree,
                entries,
                reply,
            } => {
                let batch = match tree {
                    Which::Subscriptions => &mut pending.subscriptions,
                    Which::Meta => &mut pending.meta,
                    Which::Audit => &mut pending.audit,
                };
                for (key, value) in entries {
                    batch.insert(key, value);
                }
                Answer::Done(reply, Ok(()))
            }
            Command::PutVersioned {
                version_key,
                version,
                entries,
                reply,
            } => {
                let result = self.put_versioned(version_key, version, entries, pending);
                Answer::Done(reply, result)
            }
            Command::Registry { write, reply } => {
                // Applied at once (each write is atomic on its own), so a
                // later command in this group sees it; durable with the
                // flush, and answered only after it.
                Answer::Count(reply, registry::apply(&self.registry, write))
            }
            Command::Audit {
                subject,
                build,
                reply,
            } => {
                let result = if self.audit_fault.load(Ordering::Relaxed) {
                    Err(StoreError::Build(
                        "the audit log refused the write (write failure injected)".into(),
                    ))
                } else {
                    audit::append(&mut self.audit_head, subject, build, &mut pending.audit)
                };
                Answer::Audit(reply, result)
            }
            Command::PassGaps { timeout, reply } => {
                let passed = self.streams.pass_gaps(Instant::now(), timeout);
                let count = passed.len();
                for (stream, releases) in passed {
                    self.release(&stream, &releases, pending);
                }
                Answer::Passed(reply, count)
            }
            Command::Close { reply } => Answer::Done(reply, Ok(())),
        }
    }

    /// A version-checked write: `entries` are stored only if `version` is
    /// higher than the one stored under `version_key`, all in one batch, so
    /// what is on disk never goes back (a restart cannot forget a revocation).
    fn put_versioned(
        &mut self,
        version_key: &'static str,
        version: u64,
        entries: Vec<(Vec<u8>, Vec<u8>)>,
        pending: &mut Pending,
    ) -> Result<(), StoreError> {
        let on_disk = self
            .meta
            .get(version_key)
            .map_err(StoreError::Read)?
            .and_then(|v| keys::u64_at(&v, 0))
            .unwrap_or(0);
        // An earlier command of this same commit may have written a version
        // that is not applied yet: compare with that too.
        let stored = on_disk.max(pending.versions.get(version_key).copied().unwrap_or(0));
        if version <= stored {
            return Err(StoreError::NotNewer {
                stored,
                offered: version,
            });
        }
        pending.versions.insert(version_key, version);
        pending
            .meta
            .insert(version_key.as_bytes(), &version.to_be_bytes()[..]);
        for (key, value) in entries {
            pending.meta.insert(key, value);
        }
        Ok(())
    }

    fn ingest_one(&mut self, event: Incoming, now: Instant, pending: &mut Pending) -> Outcome {
        let before = self.streams.mark(&event.stream);
        let Some(stored) = self.streams.ingest(&event.stream, event.seq, now) else {
            return Outcome::Duplicate;
        };
        if self.streams.mark(&event.stream) != before {
            pending.moved.insert(event.stream.clone());
        }
        pending
            .notify
            .insert(keys::event(&event.stream, event.seq), event.bytes);
        self.release(&event.stream, &stored.releases, pending);
        pending.touched.insert(event.stream);
        Outcome::Stored { gap: stored.gap }
    }

    /// Appends released events to the inbox, in order.
    fn release(&mut self, stream: &StreamId, releases: &[Release], pending: &mut Pending) {
        for release in releases {
            let position = self.next_position;
            self.next_position += 1;
            pending.notify.insert(
                &keys::inbox(position)[..],
                keys::inbox_value(stream, release.seq, release.note),
            );
        }
        if !releases.is_empty() {
            pending.touched.insert(stream.clone());
        }
    }

    fn append_one(
        &mut self,
        stream: StreamId,
        build: BuildEvent,
        pending: &mut Pending,
    ) -> Result<(u64, Vec<u8>), StoreError> {
        // Recorded only once built: a failed build uses up no number.
        let seq = self.streams.next_own(&stream);
        let bytes = build(seq).map_err(StoreError::Build)?;
        self.streams.append_own(&stream, seq);
        pending.moved.insert(stream.clone());
        pending
            .notify
            .insert(keys::event(&stream, seq), bytes.clone());
        pending.published.push(Published {
            stream: stream.clone(),
            seq,
            bytes: bytes.clone(),
        });
        pending.touched.insert(stream);
        Ok((seq, bytes))
    }

    /// An announcement on this node's local stream: numbered like an own
    /// event, but it enters this node's inbox and nothing else (no change
    /// log, so sync never offers it; no gossip feed).
    fn announce_one(
        &mut self,
        stream: StreamId,
        build: BuildEvent,
        pending: &mut Pending,
    ) -> Result<(u64, Vec<u8>), StoreError> {
        let seq = self.streams.next_own(&stream);
        let bytes = build(seq).map_err(StoreError::Build)?;
        self.streams.append_own(&stream, seq);
        pending
            .notify
            .insert(keys::event(&stream, seq), bytes.clone());
        let position = self.next_position;
        self.release(
            &stream,
            &[Release {
                seq,
                note: super::streams::Note::InOrder,
            }],
            pending,
        );
        Ok((position, bytes))
    }
}

impl Answer {
    fn send(self) {
        // A receiver that went away (a cancelled request) needs no answer.
        match self {
            Answer::Ingest(tx, outcomes) => drop(tx.send(Ok(outcomes))),
            Answer::Append(tx, result) => drop(tx.send(result)),
            Answer::Done(tx, result) => drop(tx.send(result)),
            Answer::Count(tx, result) => drop(tx.send(result)),
            Answer::Audit(tx, result) => drop(tx.send(result)),
            Answer::Passed(tx, count) => drop(tx.send(Ok(count))),
        }
    }

    fn fail(self, error: &StoreError) {
        let err = || copy_of(error);
        match self {
            Answer::Ingest(tx, _) => drop(tx.send(Err(err()))),
            Answer::Append(tx, _) => drop(tx.send(Err(err()))),
            Answer::Done(tx, _) => drop(tx.send(Err(err()))),
            Answer::Count(tx, _) => drop(tx.send(Err(err()))),
            Answer::Audit(tx, _) => drop(tx.send(Err(err()))),
            Answer::Passed(tx, _) => drop(tx.send(Err(err()))),
        }
    }
}

/// The two errors every waiting command may get, once more for each.
fn copy_of(error: &StoreError) -> StoreError {
    match error {
        StoreError::Broken(e) => StoreError::Broken(e.clone()),
        _ => StoreError::Closed,
    }
}

fn refuse(command: Command, error: &StoreError) {
    let err = || copy_of(error);
    match command {
        Command::Ingest { reply, .. } => drop(reply.send(Err(err()))),
        Command::Append { reply, .. } | Command::Announce { reply, .. } => {
            drop(reply.send(Err(err())))
        }
        Command::Put { reply, .. } | Command::PutVersioned { reply, .. } => {
            drop(reply.send(Err(err())))
        }
        Command::Registry { reply, .. } => drop(reply.send(Err(err()))),
        Command::Audit { reply, .. } => drop(reply.send(Err(err()))),
        Command::PassGaps { reply, .. } => drop(reply.send(Err(err()))),
        Command::Close { reply } => drop(reply.send(Ok(()))),
    }
}
