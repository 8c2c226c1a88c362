//! Every task of the node is owned here, and a failed one stops the node.
//!
//! Two groups, stopped in order at shutdown:
//!
//! - **servers**: the listeners and the work of each request (local API,
//!   peer API, metrics, subscription streams). They stop *accepting* when
//!   [`Supervisor::stop_accepting`] fires and then drain.
//! - **workers**: the node's own background tasks (the swarm, ingest,
//!   membership, watchers, sweeper, checkpoints). They are cancelled through
//!   [`Supervisor::stop_working`] only once the servers have drained, so no
//!   request finds its worker gone.
//!
//! A critical task that returns an error, panics, or simply ends before
//! shutdown has begun records a [`Failure`] (the first one wins), turns
//! readiness off and starts the shutdown; [`Supervisor::failed`] resolves so
//! the binary can exit non-zero with one line naming the task. Calls
//! `metrics` (readiness) only.

use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;

/// Why the node stopped on its own.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{task} failed: {reason}; the node stops")]
pub struct Failure {
    /// The task that failed.
    pub task: &'static str,
    /// What it said, or that it panicked or ended.
    pub reason: String,
}

/// Which group a task belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// Listeners and per-request work: stopped first, then drained.
    Servers,
    /// Background work: cancelled after the servers drained.
    Workers,
}

/// Owns the node's tasks. Cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    servers: TaskTracker,
    workers: TaskTracker,
    stop_accepting: CancellationToken,
    stop_working: CancellationToken,
    failed: CancellationToken,
    failure: Arc<Mutex<Option<Failure>>>,
    metrics: Arc<Metrics>,
}

impl Supervisor {
    /// A supervisor with no tasks yet.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Supervisor {
            servers: TaskTracker::new(),
            workers: TaskTracker::new(),
            stop_accepting: CancellationToken::new(),
            stop_working: CancellationToken::new(),
            failed: CancellationToken::new(),
            failure: Arc::new(Mutex::new(None)),
            metrics,
        }
    }

    /// Fires when the servers must stop accepting (shutdown or failure).
    pub fn stop_accepting(&self) -> CancellationToken {
        self.stop_accepting.clone()
    }

    /// Fires when background work must end (after the servers drained).
    pub fn stop_working(&self) -> CancellationToken {
        self.stop_working.clone()
    }

    /// Starts the shutdown: servers stop accepting.
    pub fn shutdown(&self) {
        self.stop_accepting.cancel();
    }

    /// Whether the shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.stop_accepting.is_cancelled()
    }

    /// A task that must run until shutdown. Ending early, returning an error
    /// or panicking records a failure and stops the node.
    pub fn spawn_critical<F, E>(&self, group: Group, name: &'static str, task: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        let me = self.clone();
        let tracker = self.tracker(group);
        tracker.spawn(async move {
            let outcome = AssertUnwindSafe(task).catch_unwind().await;
            let reason = match outcome {
                Ok(Ok(())) if me.ended_in_time(group) => return,
                Ok(Err(e)) if me.ended_in_time(group) => {
                    // An error while the node stops is a consequence of stopping.
                    tracing::debug!(task = name, error = %e, "task ended with an error during shutdown");
                    return;
                }
                Ok(Ok(())) => "it ended while the node was running".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(panic) => format!("it panicked: {}", panic_message(&panic)),
            };
            me.fail(name, reason);
        });
    }

    /// A task that serves one request or stream: owned, so shutdown waits for
    /// it, but its end is its own business. A panic is logged, not fatal.
    pub fn spawn_request<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.servers.spawn(async move {
            if let Err(panic) = AssertUnwindSafe(task).catch_unwind().await {
                tracing::error!(task = name, reason = %panic_message(&panic), "a request task panicked");
            }
        });
    }

    /// A short job of the node's own background work (one sync request, say):
    /// owned by the workers group, so shutdown waits for it; a panic is
    /// logged, not fatal.
    pub fn spawn_job<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.workers.spawn(async move {
            if let Err(panic) = AssertUnwindSafe(task).catch_unwind().await {
                tracing::error!(task = name, reason = %panic_message(&panic), "a job panicked");
            }
        });
    }

    /// A blocking job on tokio's blocking pool, owned by the workers group.
    pub fn spawn_blocking_worker<F>(&self, name: &'static str, job: F)
    where
        F: FnOnce() + Send + 'static,
    {
        let me = self.clone();
        self.workers.spawn(async move {
            if let Err(e) = tokio::task::spawn_blocking(job).await {
                me.fail(name, format!("it panicked: {e}"));
            }
        });
    }

    fn tracker(&self, group: Group) -> &TaskTracker {
        match group {
            Group::Servers => &self.servers,
            Group::Workers => &self.workers,
        }
    }

    fn ended_in_time(&self, group: Group) -> bool {
        match group {
            Group::Servers => self.stop_accepting.is_cancelled(),
            Group::Workers => {
                self.stop_working.is_cancelled() || self.stop_accepting.is_cancelled()
            }
        }
    }

    /// Records that `task` failed and stops the node; only the first failure
    /// is kept.
    pub fn fail(&self, task: &'static str, reason: String) {
        let first = match self.failure.lock() {
            Ok(mut slot) if slot.is_none() => {
                *slot = Some(Failure {
                    task,
                    reason: reason.clone(),
                });
                true
            }
            _ => false,
        };
        if first {
            tracing::error!(task, %reason, "a node task failed; the node stops");
            self.metrics.set_failed();
            self.failed.cancel();
        }
        self.stop_accepting.cancel();
    }

    /// The failure that stopped the node, if any.
    pub fn failure(&self) -> Option<Failure> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    /// Resolves when a task has failed.
    pub async fn failed(&self) {
        self.failed.cancelled().await;
    }

    /// Waits for the servers to drain, up to `deadline`; then cancels the
    /// workers and waits for them, up to `deadline` again. Answers the names
    /// of the groups that did not end in time.
    pub async fn drain(&self, deadline: Duration) -> Vec<&'static str> {
        let mut late = Vec::new();
        self.stop_accepting.cancel();
        self.servers.close();
        if tokio::time::timeout(deadline, self.servers.wait())
            .await
            .is_err()
        {
            late.push("servers");
        }
        self.stop_working.cancel();
        self.workers.close();
        if tokio::time::timeout(deadline, self.workers.wait())
            .await
            .is_err()
        {
            late.push("workers");
        }
        late
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_fails_stops_the_node_and_is_named() {
        let metrics = Metrics::new();
        metrics.set_ready();
        let s = Supervisor::new(metrics.clone());
        s.spawn_critical(Group::Workers, "store writer", async {
            Err::<(), _>("the disk is gone")
        });
        tokio::time::timeout(Duration::from_secs(10), s.failed())
            .await
            .expect("the failure is seen");
        let failure = s.failure().unwrap();
        assert_eq!(failure.task, "store writer");
        assert!(
            failure.to_string().contains("the disk is gone"),
            "{failure}"
        );
        assert!(!metrics.is_ready());
        assert!(s.is_shutting_down());
    }

    #[tokio::test]
    async fn a_panic_and_an_early_end_are_failures_too() {
        let s = Supervisor::new(Metrics::new());
        s.spawn_critical(Group::Workers, "sweeper", async {
            if true {
                panic!("boom");
            }
            Ok::<(), String>(())
        });
        tokio::time::timeout(Duration::from_secs(10), s.failed())
            .await
            .unwrap();
        assert!(s.failure().unwrap().reason.contains("boom"));

        let s = Supervisor::new(Metrics::new());
        s.spawn_critical(Group::Workers, "gossip", async { Ok::<(), String>(()) });
        tokio::time::timeout(Duration::from_secs(10), s.failed())
            .await
            .unwrap();
        assert!(s.failure().unwrap().reason.contains("ended"));
    }

    #[tokio::test]
    async fn shutdown_drains_servers_before_workers_stop() {
        let s = Supervisor::new(Metrics::new());
        let (tx, mut rx) = tokio::sync::mpsc::channel::<&'static str>(4);
        let accepting = s.stop_accepting();
        let server_tx = tx.clone();
        s.spawn_critical(Group::Servers, "api", async move {
            accepting.cancelled().await;
            server_tx.send("server drained").await.ok();
            Ok::<(), String>(())
        });
        let working = s.stop_working();
        s.spawn_critical(Group::Workers, "p2p", async move {
            working.cancelled().await;
            tx.send("worker stopped").await.ok();
            Ok::<(), String>(())
        });
        s.shutdown();
        assert!(s.drain(Duration::from_secs(10)).await.is_empty());
        assert_eq!(rx.recv().await, Some("server drained"));
        assert_eq!(rx.recv().await, Some("worker stopped"));
        assert!(
            s.failure().is_none(),
            "a task that ends at shutdown did not fail"
        );
    }
}
