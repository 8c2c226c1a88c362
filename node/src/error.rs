//! The one error type of the node library, and its mapping to gRPC statuses.
//!
//! Each variant is a boundary the node crosses (configuration, keys, storage,
//! the network, a request from the back office); messages say what happened
//! and, where the operator can act, what to do.

use crate::config::ConfigError;
use crate::store::StoreError;
use crate::supervisor::Failure;

/// What went wrong in the node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// A key, request or member list was refused.
    #[error(transparent)]
    Keys(#[from] handbereik_keys::KeysError),

    /// The database could not be opened, read or written.
    #[error(transparent)]
    Store(#[from] StoreError),

    /// The network pseudonym key file cannot be used.
    #[error("registry.pseudonym_key_file {}: {reason}", path.display())]
    PseudonymKey {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },

    /// A task of the node failed, so the node stopped.
    #[error(transparent)]
    Failed(#[from] Failure),

    /// A listener could not be bound.
    #[error(
        "cannot listen on {address} for the {what}: {reason}; is the port in use by another process?"
    )]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        address: String,
        /// The operating system's reason.
        reason: String,
    },

    /// The p2p layer failed.
    #[error("p2p: {0}")]
    P2p(String),

    /// Mutual TLS with another member could not be set up or was refused.
    #[error("tls: {0}")]
    Tls(String),

    /// The access policy could not be read, parsed or validated.
    #[error("policy: {0}")]
    Policy(String),

    /// What a request names does not exist.
    #[error("{0}")]
    NotFound(String),

    /// What a request would create exists already.
    #[error("{0}")]
    AlreadyExists(String),

    /// The policy or the member list refuses the request.
    #[error("{0}")]
    Denied(String),

    /// The audit log cannot be written, so nothing is answered (fail closed).
    #[error("the audit log cannot be written, so the request is refused")]
    AuditUnavailable(#[source] StoreError),

    /// A request from the back office is invalid.
    #[error("{0}")]
    InvalidRequest(String),

    /// The node refuses because the member list is missing or expired.
    #[error("{0}")]
    NotAvailable(String),

    /// Something that cannot happen did; the message names it.
    #[error("internal error: {0}")]
    Internal(&'static str),

    /// CPU work handed to the blocking pool panicked.
    #[error("{what} panicked")]
    TaskPanicked {
        /// What was being done.
        what: &'static str,
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },

    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its chain of causes on one line: `what: why: deeper why`.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        let message = chain(&e);
        match e {
            Error::InvalidRequest(_) | Error::Keys(_) => tonic::Status::invalid_argument(message),
            Error::NotAvailable(_) => tonic::Status::failed_precondition(message),
            Error::NotFound(_) => tonic::Status::not_found(message),
            Error::AlreadyExists(_) => tonic::Status::already_exists(message),
            Error::Denied(_) => tonic::Status::permission_denied(message),
            Error::AuditUnavailable(_) => tonic::Status::unavailable(message),
            Error::ShuttingDown => tonic::Status::unavailable(message),
            Error::Store(ref s) if s.is_fatal() => tonic::Status::unavailable(message),
            _ => tonic::Status::internal(message),
        }
    }
}
