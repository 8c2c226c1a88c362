//! The retention sweeper: removes expired entries on a fixed interval.
//! Calls only [`Registry::sweep`].

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Registry;

/// Sweeps every `every` until `shutdown`; a failed sweep is logged and tried
/// again next time (expired entries are never disclosed meanwhile: reads
/// filter on the retention date).
pub async fn sweep_every(registry: Registry, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match registry.sweep(handbereik_keys::time::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "retention sweep removed expired entries"),
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; will try again"),
        }
    }
}
