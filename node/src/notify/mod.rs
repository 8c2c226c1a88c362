//! Notifications: the envelope, signing, checking, publishing, the ingest
//! pipeline, the inbox's gaps and durable subscriptions.
//!
//! Owns the rules for events; asks `membership` who may send what and
//! `store` to keep them. Knows nothing of libp2p: the p2p layer hands events
//! in through [`ingest`] and hears back through the reports it sends, and it
//! takes this node's own events from the store's feed.

pub mod announce;
pub mod event;
pub mod gaps;
pub mod ingest;
pub mod publish;
pub mod subscriptions;
