//! The Cedar access policy of this source holder: who may ask what, and why.
//!
//! Owns the schema policies are validated against (`policy.cedarschema`,
//! embedded), the model of a question and a decision (this file), compiling
//! and strictly validating a policy file ([`compile`]), deciding
//! ([`authorize`]: deny by default; each decision names the policies that
//! made it) and reloading the file without a restart ([`reload`]). The peer
//! services ask through a [`PolicyHandle`], whose reloads swap the whole
//! policy at once: a request is decided by one version, never by a mix. An
//! invalid file is refused at start (the node does not start) and on reload
//! (the previous policy stays in force).
//!
//! Cedar model: principal `Member::"<OIN>"` (id, name, roles, purposes from
//! the member list); actions `known`, `inspect` (resource
//! `Category::"<name>"` with kind `dat`/`wat` and classification), `task`
//! (resource `TaskType::"<type>"`) and `report` (resource `Report::"audit"`);
//! context `{ purpose, role, actor, emergency }`. A policy's `@id("...")`
//! annotation is its id in decisions, errors and the audit log; without one,
//! Cedar's `policy0`, `policy1`, ... Calls `registry` for the category kind
//! and `metrics` for reload counts.

mod authorize;
mod compile;
mod reload;

use std::fmt;

use handbereik_keys::{Member, Purpose};

pub use compile::Policy;
pub use reload::PolicyHandle;

/// The schema every policy is validated against, in Cedar schema syntax.
pub const SCHEMA: &str = include_str!("policy.cedarschema");

/// The largest policy file that is read, in bytes.
pub const POLICY_LIMIT: usize = 1 << 20;

/// What a member asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `Known(subject, purpose)`: whether the subject is known here (dat).
    Known,
    /// `Inspect(subject, purpose, categories)`: the substance (wat).
    Inspect,
    /// `Task(type, purpose)`: a task (opdracht) of a type for this member.
    Task,
    /// `Report(subject, purpose)`: what this node's audit log holds about a
    /// subject, for a citizen's report across the network.
    Report,
}

impl Action {
    /// The Cedar action name: `known`, `inspect`, `task` or `report`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Known => "known",
            Action::Inspect => "inspect",
            Action::Task => "task",
            Action::Report => "report",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub use crate::registry::Kind;

/// What the policy is asked about: the Cedar resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource<'a> {
    /// A category of the registration (`known`, `inspect`).
    Category(CategoryRef<'a>),
    /// A task type (`task`), such as `nl.samenonderhandbereik.opdracht.onderzoek`.
    TaskType(&'a str),
    /// The audit log (`report`).
    AuditReport,
}

/// What a request says about itself (the Cedar context), signed by the
/// asking node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestContext<'a> {
    /// The purpose stated.
    pub purpose: &'a Purpose,
    /// The acting professional's role (from the network's role vocabulary), or "".
    pub role: &'a str,
    /// The acting professional's pseudonymous id, or "".
    pub actor: &'a str,
    /// Marked as an emergency (break-glass).
    pub emergency: bool,
}

impl<'a> RequestContext<'a> {
    /// A context with only a purpose: no actor, no emergency.
    pub fn purpose_only(purpose: &'a Purpose) -> Self {
        RequestContext {
            purpose,
            role: "",
            actor: "",
            emergency: false,
        }
    }
}

/// One question to the policy.
#[derive(Clone, Copy, Debug)]
pub struct PolicyRequest<'a> {
    /// The asking member, as the member list has it.
    pub member: &'a Member,
    /// What it wants to do.
    pub action: Action,
    /// On what.
    pub resource: Resource<'a>,
    /// And what the request says.
    pub context: RequestContext<'a>,
}

/// A category, as the policy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CategoryRef<'a> {
    /// The category name, the Cedar entity id: `Category::"melding"`.
    pub name: &'a str,
    /// Dat or wat.
    pub kind: Kind,
    /// The classification of the category's entries, e.g. `vertrouwelijk`.
    pub classification: &'a str,
}

/// A decision and the policies that made it.
///
/// `policies` holds policy ids (the `@id` annotation, else Cedar's
/// `policyN`), sorted. For an allow: the permits that applied. For a deny:
/// the forbids that applied and the policies whose evaluation failed; empty
/// means the default deny (no permit applied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// The ids of the policies that made the decision.
    pub policies: Vec<String>,
    /// Evaluation errors; any error makes the decision a deny.
    pub errors: Vec<String>,
}

impl Decision {
    pub(super) fn deny(errors: Vec<String>) -> Decision {
        Decision {
            allowed: false,
            policies: Vec::new(),
            errors,
        }
    }
}

#[cfg(test)]
mod tests;
