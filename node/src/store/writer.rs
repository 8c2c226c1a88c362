//! The group-commit writer: one task owns every write to the database.
//!
//! It takes all commands waiting in its channel, turns them into one atomic
//! sled batch per tree, flushes once, and only then answers each command.
//! It also owns the per-source sequence bookkeeping (high-water marks and
//! events stored above a gap), so deduplication and gap detection cannot race.

use std::collections::{BTreeSet, HashMap, HashSet};

use tokio::sync::{mpsc, oneshot, watch};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::audit::{self, BuildEntry, Head};
use super::registry::{self, Pseudonym, RegistryWrite};
use super::{MAX_BATCH, Stream, keys};
use crate::error::{Error, Result};

/// A verified event from another source, ready to store.
#[derive(Clone, Debug)]
pub struct Incoming {
    /// Its stream (source and purpose).
    pub stream: Stream,
    /// Its sequence number in that stream.
    pub seq: u64,
    /// The signed bytes as they arrived.
    pub bytes: Vec<u8>,
}

/// What happened to one incoming event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stored and appended to the inbox at `position`. `gap` names sequence
    /// numbers of the same stream that are still missing below it.
    Stored {
        /// Inbox position.
        position: u64,
        /// Missing sequences below this one, if any.
        gap: Option<(u64, u64)>,
    },
    /// Already stored; nothing written.
    Duplicate,
}

pub(super) enum Which {
    Subscriptions,
    Meta,
    Audit,
}

pub(super) enum Command {
    Ingest {
        events: Vec<Incoming>,
        reply: oneshot::Sender<Result<Vec<Outcome>>>,
    },
    Append {
        stream: Stream,
        build: Box<dyn FnOnce(u64) -> Result<Vec<u8>> + Send>,
        reply: oneshot::Sender<Result<(u64, Vec<u8>)>>,
    },
    Put {
        tree: Which,
        entries: Vec<(Vec<u8>, Vec<u8>)>,
        reply: oneshot::Sender<Result<()>>,
    },
    Registry {
        write: RegistryWrite,
        reply: oneshot::Sender<Result<u32>>,
    },
    Audit {
        subject: Option<Pseudonym>,
        build: BuildEntry,
        reply: oneshot::Sender<Result<u64>>,
    },
}

#[derive(Default)]
struct SourceState {
    /// Every sequence up to here is stored.
    mark: u64,
    /// Sequences stored above a gap.
    above: BTreeSet<u64>,
}

enum Reply {
    Ingest(oneshot::Sender<Result<Vec<Outcome>>>, Vec<Outcome>),
    Append(
        oneshot::Sender<Result<(u64, Vec<u8>)>>,
        Result<(u64, Vec<u8>)>,
    ),
    Put(oneshot::Sender<Result<()>>),
    Count(oneshot::Sender<Result<u32>>, Result<u32>),
    Audit(oneshot::Sender<Result<u64>>, Result<u64>),
}

pub(super) struct Writer {
    db: sled::Db,
    notify: sled::Tree,
    subscriptions: sled::Tree,
    meta: sled::Tree,
    registry: sled::Tree,
    audit: sled::Tree,
    audit_head: Head,
    audit_fault: Arc<AtomicBool>,
    sources: HashMap<Stream, SourceState>,
    next_position: u64,
    broken: Option<String>,
}

impl Writer {
    /// Rebuilds the bookkeeping from what is on disk.
    pub(super) fn load(
        db: sled::Db,
        trees: &super::Trees,
        audit_fault: Arc<AtomicBool>,
    ) -> Result<Self> {
        let notify = trees.notify.clone();
        let mut sources: HashMap<Stream, SourceState> = HashMap::new();
        for item in notify.scan_prefix([keys::MARK]) {
            let (key, value) = item?;
            if let (Some((stream, _)), Some(mark)) =
                (keys::parse_stream(&key[1..]), keys::u64_at(&value, 0))
            {
                sources.entry(stream).or_default().mark = mark;
            }
        }
        // Events stored above a gap: every stream's events past its mark.
        for item in notify.scan_prefix([keys::EVENT]) {
            let (key, _) = item?;
            let Some((stream, seq)) = keys::parse_event_key(&key) else {
                continue;
            };
            let state = sources.entry(stream).or_default();
            if seq > state.mark {
                state.above.insert(seq);
            }
        }
        let next_position = match notify.scan_prefix([keys::INBOX]).next_back() {
            Some(item) => keys::u64_at(&item?.0, 1).unwrap_or(0) + 1,
            None => 1,
        };
        Ok(Writer {
            db,
            notify,
            subscriptions: trees.subscriptions.clone(),
            meta: trees.meta.clone(),
            registry: trees.registry.clone(),
            audit_head: audit::load_head(&trees.audit)?,
            audit: trees.audit.clone(),
            audit_fault,
            sources,
            next_position,
            broken: None,
        })
    }

    pub(super) fn inbox_head(&self) -> u64 {
        self.next_position - 1
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Command>, inbox: watch::Sender<u64>) {
        let mut commands = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut commands, MAX_BATCH).await > 0 {
            self.commit(std::mem::take(&mut commands)).await;
            inbox.send_replace(self.inbox_head());
        }
        if let Err(e) = self.db.flush_async().await {
            tracing::error!(error = %e, "final flush of the store failed");
        }
    }

    async fn commit(&mut self, commands: Vec<Command>) {
        if let Some(broken) = &self.broken {
            fail_all(commands, broken);
            return;
        }
        let mut notify = sled::Batch::default();
        let mut subscriptions = sled::Batch::default();
        let mut meta = sled::Batch::default();
        let mut audit_batch = sled::Batch::default();
        let audit_head = self.audit_head;
        let mut replies = Vec::with_capacity(commands.len());
        let mut touched = HashSet::new();
        for command in commands {
            match command {
                Command::Ingest { events, reply } => {
                    let outcomes = events
                        .into_iter()
                        .map(|e| self.ingest_one(e, &mut notify, &mut touched))
                        .collect();
                    replies.push(Reply::Ingest(reply, outcomes));
                }
                Command::Append {
                    stream,
                    build,
                    reply,
                } => {
                    let result = self.append_one(stream, build, &mut notify, &mut touched);
                    replies.push(Reply::Append(reply, result));
                }
                Command::Put {
                    tree,
                    entries,
                    reply,
                } => {
                    let batch = match tree {
                        Which::Subscriptions => &mut subscriptions,
                        Which::Meta => &mut meta,
                        Which::Audit => &mut audit_batch,
                    };
                    for (key, value) in entries {
                        batch.insert(key, value);
                    }
                    replies.push(Reply::Put(reply));
                }
                Command::Registry { write, reply } => {
                    // Applied at once (each write is atomic on its own), so a
                    // later command in this group sees it; durable with the
                    // flush below, and answered only after it.
                    let result = registry::apply(&self.registry, write);
                    replies.push(Reply::Count(reply, result));
                }
                Command::Audit {
                    subject,
                    build,
                    reply,
                } => {
                    let result = if self.audit_fault.load(Ordering::Relaxed) {
                        Err(Error::AuditUnavailable(
                            "the audit log refused the write (write failure injected)".into(),
                        ))
                    } else {
                        audit::append(&mut self.audit_head, subject, build, &mut audit_batch)
                    };
                    replies.push(Reply::Audit(reply, result));
                }
            }
        }
        for stream in touched {
            if let Some(state) = self.sources.get(&stream) {
                notify.insert(keys::mark(&stream), &state.mark.to_be_bytes()[..]);
            }
        }
        let written = async {
            self.notify.apply_batch(notify)?;
            self.subscriptions.apply_batch(subscriptions)?;
            self.meta.apply_batch(meta)?;
            self.audit.apply_batch(audit_batch)?;
            self.db.flush_async().await?;
            Ok::<_, sled::Error>(())
        }
        .await;
        match written {
            Ok(()) => replies.into_iter().for_each(Reply::send),
            Err(e) => {
                // The in-memory bookkeeping may now be ahead of the disk; refuse
                // every later write rather than acknowledge on a broken store.
                self.audit_head = audit_head;
                let message = format!("write failed, the node must be restarted: {e}");
                tracing::error!(%message, "store");
                for reply in replies {
                    reply.fail(&message);
                }
                self.broken = Some(message);
            }
        }
    }

    fn ingest_one(
        &mut self,
        event: Incoming,
        batch: &mut sled::Batch,
        touched: &mut HashSet<Stream>,
    ) -> Outcome {
        let state = self.sources.entry(event.stream.clone()).or_default();
        if event.seq <= state.mark || state.above.contains(&event.seq) || event.seq == 0 {
            return Outcome::Duplicate;
        }
        batch.insert(keys::event(&event.stream, event.seq), event.bytes);
        let gap = advance(state, event.seq);
        let position = self.next_position;
        self.next_position += 1;
        batch.insert(
            &keys::inbox(position)[..],
            keys::event_ref(&event.stream, event.seq),
        );
        touched.insert(event.stream);
        Outcome::Stored { position, gap }
    }

    fn append_one(
        &mut self,
        stream: Stream,
        build: Box<dyn FnOnce(u64) -> Result<Vec<u8>> + Send>,
        batch: &mut sled::Batch,
        touched: &mut HashSet<Stream>,
    ) -> Result<(u64, Vec<u8>)> {
        let state = self.sources.entry(stream.clone()).or_default();
        let seq = state.mark.max(state.above.last().copied().unwrap_or(0)) + 1;
        let bytes = build(seq)?;
        batch.insert(keys::event(&stream, seq), bytes.clone());
        advance(state, seq);
        touched.insert(stream);
        Ok((seq, bytes))
    }
}

/// Records `seq` as stored; returns the gap below it, if any.
fn advance(state: &mut SourceState, seq: u64) -> Option<(u64, u64)> {
    if seq == state.mark + 1 {
        state.mark = seq;
        while state.above.remove(&(state.mark + 1)) {
            state.mark += 1;
        }
        None
    } else {
        state.above.insert(seq);
        Some((state.mark + 1, seq - 1))
    }
}

impl Reply {
    fn send(self) {
        // A receiver that went away (a cancelled request) needs no answer.
        match self {
            Reply::Ingest(tx, outcomes) => drop(tx.send(Ok(outcomes))),
            Reply::Append(tx, result) => drop(tx.send(result)),
            Reply::Put(tx) => drop(tx.send(Ok(()))),
            Reply::Count(tx, result) => drop(tx.send(result)),
            Reply::Audit(tx, result) => drop(tx.send(result)),
        }
    }

    fn fail(self, message: &str) {
        let err = || Error::Store(message.to_string());
        match self {
            Reply::Ingest(tx, _) => drop(tx.send(Err(err()))),
            Reply::Append(tx, _) => drop(tx.send(Err(err()))),
            Reply::Put(tx) => drop(tx.send(Err(err()))),
            Reply::Count(tx, _) => drop(tx.send(Err(err()))),
            Reply::Audit(tx, _) => drop(tx.send(Err(Error::AuditUnavailable(message.into())))),
        }
    }
}

fn fail_all(commands: Vec<Command>, message: &str) {
    let err = || Error::Store(message.to_string());
    for command in commands {
        match command {
            Command::Ingest { reply, .. } => drop(reply.send(Err(err()))),
            Command::Append { reply, .. } => drop(reply.send(Err(err()))),
            Command::Put { reply, .. } => drop(reply.send(Err(err()))),
            Command::Registry { reply, .. } => drop(reply.send(Err(err()))),
            Command::Audit { reply, .. } => {
                drop(reply.send(Err(Error::AuditUnavailable(message.into()))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_advance_over_filled_gaps() {
        let mut s = SourceState::default();
        assert_eq!(advance(&mut s, 1), None);
        assert_eq!(advance(&mut s, 4), Some((2, 3)));
        assert_eq!(advance(&mut s, 3), Some((2, 2)));
        assert_eq!(s.mark, 1);
        assert_eq!(advance(&mut s, 2), None);
        assert_eq!(s.mark, 4);
        assert!(s.above.is_empty());
    }
}
