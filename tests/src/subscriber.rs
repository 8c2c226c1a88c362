//! A back office's bookkeeping of one durable subscription, for the fault
//! tests: it reads with `Subscribe`, acknowledges every delivery with `Ack`,
//! and counts what arrived how often, before and after it was acknowledged.
//! When the node goes away mid-stream it subscribes again until a deadline.
//!
//! Calls the local API through [`crate::procnet::Api`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use handbereik_proto::v1 as pb;

use crate::procnet::{Api, CALL, within};

/// What one subscription saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// How often each notification id was delivered.
    pub delivered: HashMap<String, u32>,
    /// Ids whose delivery an `Ack` answered as acknowledged.
    pub acked: HashSet<String>,
    /// Deliveries of an id already delivered but not yet acknowledged:
    /// allowed by at-least-once delivery.
    pub redelivered_unacked: u64,
    /// Deliveries of an id that was acknowledged before: never allowed.
    pub redelivered_acked: u64,
    /// Deliveries with a gap reported before them.
    pub gaps: u64,
    /// How many times the stream was opened.
    pub subscribes: u64,
    /// Delivered and not yet acknowledged: (position, id).
    pending: Vec<(u64, String)>,
}

impl Tally {
    /// A new, shared tally.
    pub fn shared() -> Arc<Mutex<Tally>> {
        Arc::new(Mutex::new(Tally::default()))
    }

    /// Whether every id of `want` was delivered and acknowledged.
    pub fn has_all(&self, want: &HashSet<String>) -> bool {
        want.iter().all(|id| self.acked.contains(id))
    }

    /// One line of figures.
    pub fn summary(&self) -> String {
        format!(
            "delivered {} distinct, acknowledged {}, redelivered before ack {}, \
             redelivered after ack {}, gaps {}, subscribes {}",
            self.delivered.len(),
            self.acked.len(),
            self.redelivered_unacked,
            self.redelivered_acked,
            self.gaps,
            self.subscribes
        )
    }

    fn record(&mut self, position: u64, id: String, gap: bool) {
        let count = self.delivered.entry(id.clone()).or_insert(0);
        *count += 1;
        if self.acked.contains(&id) {
            self.redelivered_acked += 1;
        } else if *count > 1 {
            self.redelivered_unacked += 1;
        }
        if gap {
            self.gaps += 1;
        }
        self.pending.push((position, id));
    }

    fn acknowledged(&mut self, upto: u64) {
        let (done, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(p, _)| *p <= upto);
        self.pending = rest;
        self.acked.extend(done.into_iter().map(|(_, id)| id));
    }
}

/// Follows subscription `name` at `api`, acknowledging each delivery, until
/// `done` holds for the tally or `limit` passes (an error then). A broken
/// stream or a failed call (the node is down) is retried every 200 ms.
pub async fn follow(
    api: &Api,
    name: &str,
    tally: &Arc<Mutex<Tally>>,
    limit: Duration,
    done: impl Fn(&Tally) -> bool,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut last_problem = String::from("none");
    loop {
        if done(&tally.lock().unwrap()) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let t = tally.lock().unwrap();
            bail!(
                "subscription {name} was not complete after {limit:?}: {}; last problem: {last_problem}",
                t.summary()
            );
        }
        match follow_once(api, name, tally, deadline, &done).await {
            Ok(()) => {}
            Err(e) => {
                last_problem = format!("{e:#}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// One stream, until it breaks, `done` holds or the deadline passes.
async fn follow_once(
    api: &Api,
    name: &str,
    tally: &Arc<Mutex<Tally>>,
    deadline: tokio::time::Instant,
    done: &impl Fn(&Tally) -> bool,
) -> Result<()> {
    let mut client = api.notifications();
    let request = pb::SubscribeRequest {
        name: name.into(),
        ..Default::default()
    };
    let mut stream = within(CALL, "Subscribe", client.subscribe(request))
        .await??
        .into_inner();
    tally.lock().unwrap().subscribes += 1;
    loop {
        if done(&tally.lock().unwrap()) || tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
        // Wake up now and then to look at the deadline and `done`.
        let next = match tokio::time::timeout(Duration::from_millis(500), stream.message()).await {
            Err(_) => continue,
            Ok(next) => next?,
        };
        let Some(delivery) = next else {
            bail!("the stream ended");
        };
        let id = delivery
            .notification
            .as_ref()
            .map(|n| n.id.clone())
            .unwrap_or_default();
        tally
            .lock()
            .unwrap()
            .record(delivery.position, id, delivery.gap_before.is_some());
        let ack = pb::AckRequest {
            name: name.into(),
            position: delivery.position,
        };
        let acked = within(CALL, "Ack", client.ack(ack))
            .await??
            .into_inner()
            .acked;
        tally.lock().unwrap().acknowledged(acked);
    }
}
