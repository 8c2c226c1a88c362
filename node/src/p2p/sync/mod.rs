//! Catch-up: the sync protocol's messages, the worker that answers and
//! compares off the swarm task, and the per-stream fetch chains.

pub mod chains;
pub mod protocol;
pub mod server;

pub use protocol::{SyncRequest, SyncResponse};
