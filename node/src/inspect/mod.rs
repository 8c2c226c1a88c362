//! Inspection (inzage): the peer-facing gRPC service, mutual-TLS identity,
//! the Cedar policy, the asking node's signed request with the acting
//! professional, the client side of remote inspection and locate, and the
//! citizen's report across the network ([`report`] answers, [`reporter`]
//! asks every member).
//!
//! Owns the peer listener and the decisions made on it; calls `membership`
//! for who is a member, `registry` for what is held, `audit` to log every
//! decision before an answer leaves (and, for witnessed audit, for the
//! checkpoints held of others: [`witness`] serves them, [`witnesses`] asks
//! for this node's own), and `handbereik-keys` for signatures.

pub mod answer;
pub mod ask;
pub mod channels;
pub mod client;
pub mod policy;
pub mod report;
pub mod reporter;
pub mod serve;
pub mod server;
pub mod source;
pub mod tls;
pub mod witness;
pub mod witnesses;
