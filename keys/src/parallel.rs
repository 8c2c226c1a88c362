//! Work spread over the machine's cores, for the few jobs in this crate large
//! enough to gain from it: checking the keys of a large member list, and
//! verifying its signatures over a large body.
//!
//! Threads are scoped (they end before the call returns) and at most one a
//! core, at most [`MAX_THREADS`]. When the system refuses a thread, its part
//! runs on the calling thread instead: slower, never wrong. Calls `std` only.

use std::num::NonZeroUsize;
use std::sync::OnceLock;

/// The most threads one call starts.
pub(crate) const MAX_THREADS: usize = 8;

/// How many threads can run at once here (asked once: on Linux the answer
/// comes from the scheduler and the cgroup files).
pub(crate) fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
}

/// Splits `items` into chunks of at least `min_chunk` items, one a thread,
/// applies `f` to each chunk, and returns the results in the chunks' order.
pub(crate) fn map_chunks<T: Sync, R: Send>(
    items: &[T],
    min_chunk: usize,
    f: impl Fn(&[T]) -> R + Sync,
) -> Vec<R> {
    let threads = cores()
        .min(MAX_THREADS)
        .min(items.len() / min_chunk.max(1))
        .max(1);
    if threads == 1 {
        return vec![f(items)];
    }
    let size = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let f = &f;
        let spawned: Vec<_> = items
            .chunks(size)
            .map(|chunk| {
                let handle = std::thread::Builder::new()
                    .name("handbereik-keys".into())
                    .spawn_scoped(scope, move || f(chunk));
                (chunk, handle)
            })
            .collect();
        spawned
            .into_iter()
            .map(|(chunk, handle)| match handle {
                Ok(handle) => handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(_) => f(chunk),
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_order_and_cover_every_item() {
        let items: Vec<u64> = (0..10_000).collect();
        let sums = map_chunks(&items, 100, |chunk| (chunk[0], chunk.iter().sum::<u64>()));
        assert!(sums.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(sums.iter().map(|s| s.1).sum::<u64>(), items.iter().sum());
        // Few items: one chunk, on this thread.
        assert_eq!(map_chunks(&items[..10], 100, <[u64]>::len), vec![10]);
        assert_eq!(map_chunks(&[] as &[u64], 100, <[u64]>::len), vec![0]);
    }
}
