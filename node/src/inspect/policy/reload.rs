//! The policy in force and its file: loading at start, polling for changes,
//! swapping a valid new version in at once, keeping the old one when a new
//! file is refused (and saying why, once per content). Counts reloads in
//! `metrics`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{POLICY_LIMIT, Policy};
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// Reads a policy file; `None` when it does not exist.
fn read_policy_file(path: &Path) -> Result<Option<String>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Policy(format!(
                "cannot read {}: {e}; check the file's permissions",
                path.display()
            )));
        }
    };
    let mut bytes = Vec::new();
    file.take(POLICY_LIMIT as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Policy(format!("cannot read {}: {e}", path.display())))?;
    if bytes.len() > POLICY_LIMIT {
        return Err(Error::Policy(format!(
            "{} is larger than {POLICY_LIMIT} bytes; is it the right file?",
            path.display()
        )));
    }
    String::from_utf8(bytes).map(Some).map_err(|e| {
        Error::Policy(format!(
            "{} is not UTF-8 text ({e}); save it as UTF-8",
            path.display()
        ))
    })
}

/// The current policy, swapped atomically on reload; cheap to clone.
///
/// Readers take an `Arc` of the policy in force and keep deciding with it;
/// a reload parses and validates outside any lock and then replaces the
/// pointer, so readers never wait for a reload.
#[derive(Clone)]
pub struct PolicyHandle {
    current: watch::Sender<Arc<Policy>>,
    metrics: Arc<Metrics>,
}

impl PolicyHandle {
    /// A handle holding `policy`; reloads are counted in `metrics`.
    pub fn new(policy: Policy, metrics: Arc<Metrics>) -> Self {
        let (current, _) = watch::channel(Arc::new(policy));
        PolicyHandle { current, metrics }
    }

    /// The policy in force.
    pub fn current(&self) -> Arc<Policy> {
        self.current.borrow().clone()
    }

    /// Puts `policy` in force for every later request.
    pub fn replace(&self, policy: Policy) {
        self.current.send_replace(Arc::new(policy));
    }

    /// Loads `path` at start. A missing file gives [`Policy::deny_all`] and a
    /// warning; an invalid one is an error (the node does not start with an
    /// invalid policy).
    pub fn load(path: &Path, metrics: Arc<Metrics>) -> Result<Self> {
        match read_policy_file(path)? {
            None => {
                tracing::warn!(
                    file = %path.display(),
                    "no access policy file: every peer request is denied until it is written"
                );
                Ok(Self::new(Policy::deny_all(), metrics))
            }
            Some(text) => {
                let policy = Policy::parse(&text, &path.display().to_string())?;
                tracing::info!(
                    file = %path.display(),
                    policies = policy.ids.len(),
                    "access policy loaded"
                );
                Ok(Self::new(policy, metrics))
            }
        }
    }

    /// How many times a changed file was put in force.
    pub fn reloads(&self) -> u64 {
        self.metrics.policy_reloads.get()
    }

    /// How many times a changed file was refused (unreadable or invalid).
    pub fn reload_failures(&self) -> u64 {
        self.metrics.policy_reload_failures.get()
    }

    /// Polls `path` every `every`. When its content changes and is valid it
    /// is put in force; when it is invalid the policy in force stays and a
    /// warning says why (once per content). A file that disappears leaves
    /// the policy in force; write an empty file to deny everything. Ends
    /// when `shutdown` is cancelled.
    pub async fn watch_file(self, path: PathBuf, every: Duration, shutdown: CancellationToken) {
        let origin = path.display().to_string();
        // The content last refused, so that one bad save counts and warns once.
        let mut refused_text: Option<String> = None;
        let mut read_error: Option<String> = None;
        let mut missing_reported = self.current().text.is_none();
        loop {
            match read_policy_file(&path) {
                Ok(Some(text)) => {
                    missing_reported = false;
                    read_error = None;
                    if self.current().text.as_deref() == Some(text.as_str()) {
                        refused_text = None;
                    } else if refused_text.as_deref() != Some(text.as_str()) {
                        match Policy::parse(&text, &origin) {
                            Ok(policy) => {
                                let policies = policy.ids.len();
                                self.replace(policy);
                                self.metrics.policy_reloads.inc();
                                refused_text = None;
                                tracing::info!(file = %origin, policies, "access policy reloaded");
                            }
                            Err(e) => {
                                self.metrics.policy_reload_failures.inc();
                                refused_text = Some(text);
                                tracing::warn!(
                                    file = %origin,
                                    error = %e,
                                    "access policy file refused; the previous policy stays in force"
                                );
                            }
                        }
                    }
                }
                Ok(None) => {
                    if !missing_reported {
                        missing_reported = true;
                        tracing::warn!(
                            file = %origin,
                            "access policy file is gone; the policy in force stays"
                        );
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    if read_error.as_deref() != Some(message.as_str()) {
                        self.metrics.policy_reload_failures.inc();
                        tracing::warn!(
                            file = %origin,
                            error = %message,
                            "cannot read the access policy file; the previous policy stays in force"
                        );
                        read_error = Some(message);
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }
}
