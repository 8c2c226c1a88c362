//! Notifications: the envelope, signing, checking, the ingest pipeline, the
//! inbox and durable subscriptions.
//!
//! Owns the rules for events; asks `membership` who may send what and
//! `store` to keep them. Knows nothing of libp2p: the p2p layer hands events
//! in through [`ingest`] and hears back through the reports it sends.

pub mod event;
pub mod ingest;
pub mod subscriptions;
