//! Inspection (inzage): the peer-facing gRPC service, mutual-TLS identity,
//! the Cedar policy, and the client side of remote inspection and locate.
//!
//! Owns the peer listener and the decisions made on it; calls `membership`
//! for who is a member, `registry` for what is held, `audit` to log every
//! decision before an answer leaves (and, for witnessed audit, for the
//! checkpoints held of others: [`witness`] serves them, [`witnesses`] asks
//! for this node's own), and `handbereik-keys` for signatures.

pub mod answer;
pub mod client;
pub mod policy;
pub mod serve;
pub mod server;
pub mod source;
pub mod tls;
pub mod witness;
pub mod witnesses;
