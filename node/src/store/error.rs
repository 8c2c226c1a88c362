//! What can go wrong in the store, in the store's own words.
//!
//! These errors speak of storage (a locked directory, a failed write, a
//! damaged record), never of the API verb that led to them; the domain
//! modules turn the conditional ones (`KeyExists`, `KeyMissing`) into their
//! own messages.

use std::path::PathBuf;
use std::sync::Arc;

/// An error from a value builder the writer runs inside a group commit (for
/// instance signing an event or encoding an audit entry).
pub type BuildError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process holds the database.
    #[error(
        "the data directory {} is locked by another process; is another handbereik node running with this data_dir?",
        dir.display()
    )]
    Locked {
        /// The data directory.
        dir: PathBuf,
    },

    /// The database could not be opened or created.
    #[error("cannot open the database in {}", dir.display())]
    Open {
        /// The data directory.
        dir: PathBuf,
        /// What sled or the operating system said.
        #[source]
        source: sled::Error,
    },

    /// The data directory could not be created.
    #[error("cannot create the data directory {}", dir.display())]
    CreateDir {
        /// The data directory.
        dir: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// Reading the database failed.
    #[error("cannot read the database")]
    Read(#[source] sled::Error),

    /// A write failed, so the store refuses every later write: what is in
    /// memory may be ahead of the disk, and nothing may be acknowledged on it.
    #[error(
        "the store cannot write to its data directory, so it accepts nothing more; free space or fix the disk, then restart the node"
    )]
    Broken(#[source] Arc<sled::Error>),

    /// A group commit did not finish within its deadline.
    #[error(
        "a group commit has not finished for {secs} s (the disk or the database is stuck); the node stops rather than hang"
    )]
    Stalled {
        /// How long it has been running.
        secs: u64,
    },

    /// A stored record does not have the layout the store writes.
    #[error(
        "a damaged record in the {what}; run `handbereik audit verify` and restore from a backup"
    )]
    Damaged {
        /// Which record.
        what: &'static str,
    },

    /// A conditional insert found a value already there.
    #[error("a value is already stored under this key")]
    KeyExists,

    /// A conditional change found no value.
    #[error("no value is stored under this key")]
    KeyMissing,

    /// A newer value is stored already (version-checked writes).
    #[error("version {stored} is stored already; {offered} is not newer")]
    NotNewer {
        /// The version on disk.
        stored: u64,
        /// The version offered.
        offered: u64,
    },

    /// The builder of a value failed; nothing of its command was written.
    #[error("the value could not be built")]
    Build(#[source] BuildError),

    /// The operating system gave no random bytes (for the sync epoch).
    #[error("the operating system gave no random bytes")]
    Randomness(#[source] getrandom::Error),

    /// The writer thread could not be started.
    #[error("cannot start the store writer thread")]
    Thread(#[source] std::io::Error),

    /// The store was closed (the node is shutting down).
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// Whether the store can take no more writes (broken, stalled or closed).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            StoreError::Broken(_) | StoreError::Stalled { .. } | StoreError::Closed
        )
    }
}
