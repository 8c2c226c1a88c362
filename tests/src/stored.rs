//! What a stopped node durably kept, read straight from its data directory
//! the way `handbereik audit verify --offline` does: the fault tests compare
//! it with what the node acknowledged.
//!
//! Calls the node's `store` (open, marks, ranges) and `notify::event`
//! (decoding a stored event); writes nothing.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use handbereik_keys::{MemberId, Purpose};

/// One stream as a node stored it.
#[derive(Debug, Default)]
pub struct StoredStream {
    /// The contiguous high-water mark: every sequence up to here is stored.
    pub mark: u64,
    /// Sequence and id of every stored event from 1 to `mark`.
    pub events: Vec<(u64, String)>,
}

/// The stream of `source` for `purpose` in the store in `data_dir`, which
/// no node may have open.
pub async fn read_stream(data_dir: &Path, source: &str, purpose: &str) -> Result<StoredStream> {
    use handbereik_node::store::{Opened, Store};
    let stream =
        handbereik_node::types::StreamId::new(MemberId::parse(source)?, Purpose::parse(purpose)?);
    let Opened { store, writer, .. } = Store::open(data_dir, 8 << 20)?;
    let read = || -> Result<StoredStream> {
        let mark = store.mark(&stream)?;
        let mut events = Vec::new();
        let mut from = 1;
        while from <= mark {
            let page = store.events_from(&stream, from, mark, 1000, usize::MAX)?;
            if page.is_empty() {
                bail!("the store says it holds up to {mark} but gives nothing at {from}");
            }
            for bytes in page {
                let n = handbereik_node::notify::event::decode_stored(&bytes)
                    .with_context(|| format!("stored event {from} does not decode"))?;
                events.push((n.sequence, n.id));
                from += 1;
            }
        }
        Ok(StoredStream { mark, events })
    };
    let result = read();
    let _ = store.close().await;
    let _ = writer.join(Duration::from_secs(30)).await;
    drop(store);
    result
}
