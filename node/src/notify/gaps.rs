//! Passing gaps that stay open: a stream's events above a gap are held out of
//! the inbox until the gap is filled by sync, but not for ever. Every second
//! this task asks the store to pass gaps older than the configured timeout;
//! the first event after a passed gap carries the gap in its delivery.
//! Calls `store`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::store::Store;

/// How often open gaps are looked at.
const EVERY: Duration = Duration::from_secs(1);

/// Passes gaps older than `timeout` every second until `stop`.
pub async fn pass_every(store: Store, timeout: Duration, stop: CancellationToken) -> Result<()> {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let passed = store.pass_gaps(timeout).await?;
        if passed > 0 {
            tracing::warn!(
                streams = passed,
                timeout_secs = timeout.as_secs(),
                "events delivered past a gap that sync could not fill in time"
            );
        }
    }
}
