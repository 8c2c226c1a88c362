//! The one error type of `handbereik-keys`.
//!
//! Every variant says what is wrong and, where the reader can act on it, what
//! to do. Messages are one line, so that the CLIs can print them as they are.

use std::path::PathBuf;

/// What went wrong while reading, checking or writing keys, requests and lists.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    /// A file could not be read or written.
    #[error("{action} {path}: {error}")]
    Io {
        /// What was being done ("cannot read", "cannot write", ...).
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The operating system's error (in the message, so not also a `source`).
        error: std::io::Error,
    },

    /// A file that would be overwritten already exists.
    #[error(
        "{path} already exists; refusing to overwrite it (move it away or choose another path)"
    )]
    AlreadyExists {
        /// The file that exists.
        path: PathBuf,
    },

    /// A private key file is readable by group or others.
    #[error(
        "private key file {path} has mode {mode:04o}, readable by group or others; \
         run `chmod 600 {path}` and check who may have copied it"
    )]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// A private key file is not a PKCS#8 PEM ed25519 key.
    #[error("{path} is not an ed25519 private key in PKCS#8 PEM form: {reason}")]
    KeyFileFormat {
        /// The key file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },

    /// A key, signature or other fixed-size value has the wrong length.
    #[error("{what} must be {expected} bytes, got {found}")]
    WrongLength {
        /// What was being read.
        what: &'static str,
        /// The length it must have.
        expected: usize,
        /// The length it had.
        found: usize,
    },

    /// A hex string could not be decoded.
    #[error("{what} is not valid hex: {reason}")]
    Hex {
        /// What was being read.
        what: &'static str,
        /// What the decoder said.
        reason: String,
    },

    /// A public key is not a valid ed25519 point, or is of small order.
    #[error("public key {key} is {reason}; it cannot be used")]
    BadPublicKey {
        /// The key in hex.
        key: String,
        /// Why it is refused.
        reason: &'static str,
    },

    /// An OIN (member id) is malformed.
    #[error("member id {value} is not an OIN: {reason}")]
    BadMemberId {
        /// What was given, as [`crate::text::excerpt`] shows it (quoted, cut
        /// short, and never shown when it may hold a BSN).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A purpose name is malformed.
    #[error(
        "purpose {value} is not valid: use 1 to 64 characters a-z, 0-9 and '-', starting with a letter"
    )]
    BadPurpose {
        /// What was given, as [`crate::text::excerpt`] shows it.
        value: String,
    },

    /// A field of a request, list or CLI argument is invalid.
    #[error("{field}: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// Bytes that should hold CBOR could not be decoded.
    #[error(
        "cannot decode the {what}; the file is truncated, garbage or of another kind: {reason}"
    )]
    Decode {
        /// The kind of object expected.
        what: &'static str,
        /// What the decoder said.
        reason: String,
    },

    /// Bytes decode, but are not the canonical encoding of what they hold.
    #[error("{what} is not in canonical CBOR encoding; it was not produced by a conforming signer")]
    NotCanonical {
        /// The kind of object.
        what: &'static str,
    },

    /// An input is larger than its limit.
    #[error("{what} is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// The kind of object.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },

    /// A signature does not verify.
    #[error(
        "the signature by {key} on this {what} does not verify: the {what} was altered or signed by another key"
    )]
    BadSignature {
        /// The kind of object.
        what: &'static str,
        /// The signing key in hex.
        key: String,
    },

    /// A membership request is not signed by the key it names.
    #[error(
        "the membership request is not signed by the node key it names ({key}); \
         it was altered after `handbereik init` or made by someone without that key"
    )]
    RequestNotSelfSigned {
        /// The key the request's body names, in hex.
        key: String,
    },

    /// Fewer than the threshold of distinct anchor keys signed a list.
    #[error(
        "member list has {valid} valid signature(s) from distinct governance keys, {required} are required{hint}"
    )]
    NotEnoughSignatures {
        /// Distinct anchor keys with a valid signature.
        valid: usize,
        /// The threshold.
        required: usize,
        /// Why, where it is known (empty, or starting with "; ").
        hint: String,
    },

    /// A list is not newer than the one held.
    #[error(
        "member list version {got} is not newer than the version {held} already held (replayed or stale list)"
    )]
    NotNewer {
        /// The version offered.
        got: u64,
        /// The version held.
        held: u64,
    },

    /// A list has expired.
    #[error(
        "member list version {version} expired at {expires_at}; governance must publish a newer list"
    )]
    Expired {
        /// The version of the list.
        version: u64,
        /// When it expired (RFC 3339).
        expires_at: String,
    },

    /// A list is not valid yet.
    #[error(
        "member list version {version} is issued at {issued_at}, in the future; check this machine's clock"
    )]
    NotYetValid {
        /// The version of the list.
        version: u64,
        /// When it was issued (RFC 3339).
        issued_at: String,
    },

    /// A list is for another network.
    #[error("member list is for network {got}, this node is in network {expected}")]
    WrongNetwork {
        /// The network the list names, as [`crate::text::excerpt`] shows it.
        got: String,
        /// The network expected, as [`crate::text::excerpt`] shows it.
        expected: String,
    },

    /// A timestamp lies past 9999-12-31T23:59:59Z ([`crate::time::MAX_SECS`]),
    /// the latest moment these formats accept; the message names the field.
    #[error("{0}")]
    TimeOutOfRange(String),

    /// A list or draft is internally inconsistent.
    #[error("member list is inconsistent: {0}")]
    InconsistentList(String),

    /// A member id or key is already in the list.
    #[error("{0}")]
    Duplicate(String),

    /// A member id is not in the list.
    #[error("member {0} is not in the list; `handbereik-keys show` lists the members")]
    UnknownMember(String),

    /// A key is not one of those that may sign.
    #[error(
        "key {key} is not one of the governance keys that must sign this draft; use the key of one of: {allowed}"
    )]
    NotASigner {
        /// The key offered, in hex.
        key: String,
        /// The keys that may sign, in hex.
        allowed: String,
    },

    /// A value could not be encoded (a bug, not bad input).
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// The kind of object.
        what: &'static str,
        /// What the encoder said.
        reason: String,
    },
}

/// Shorthand for results in this crate.
pub type Result<T, E = KeysError> = std::result::Result<T, E>;

impl KeysError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        error: std::io::Error,
    ) -> Self {
        KeysError::Io {
            action,
            path: path.into(),
            error,
        }
    }

    /// Refuses a timestamp past [`crate::time::MAX_SECS`]; `field` names it.
    pub(crate) fn check_time(field: &str, secs: u64) -> Result<()> {
        crate::time::check_bounded(field, secs)
            .map(|_| ())
            .map_err(KeysError::TimeOutOfRange)
    }

    pub(crate) fn field(field: &'static str, reason: impl Into<String>) -> Self {
        KeysError::InvalidField {
            field,
            reason: reason.into(),
        }
    }
}
