//! Mutual TLS between members (placeholder, being written).
