//! The Cedar access policy of this source holder: who may ask what, and why.
//!
//! Owns the schema policies are validated against (`policy.cedarschema`,
//! embedded), parsing and strictly validating a policy file, the decisions
//! (deny by default; each names the policies that made it) and reloading the
//! file without a restart. The peer service asks [`Policy::authorize`] for
//! every `Known` and `Inspect` through a [`PolicyHandle`], whose reloads swap
//! the whole policy at once: a request is decided by one version, never by a
//! mix. An invalid file is refused at start (the node does not start) and on
//! reload (the previous policy stays in force).
//!
//! Cedar model: principal `Member::"<OIN>"` (id, name, roles, purposes from
//! the member list), action `known` or `inspect`, resource
//! `Category::"<name>"` (kind `dat`/`wat`, classification), context
//! `{ purpose }`. A policy's `@id("...")` annotation is its id in decisions,
//! errors and the audit log; without one, Cedar's `policy0`, `policy1`, ...

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use cedar_policy::ffi::DetailedError;
use cedar_policy::{
    AuthorizationError, Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicyId, PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
};
use handbereik_keys::{Member, Purpose};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// The schema every policy is validated against, in Cedar schema syntax.
pub const SCHEMA: &str = include_str!("policy.cedarschema");

/// The largest policy file that is read, in bytes.
pub const POLICY_LIMIT: usize = 1 << 20;

/// The annotation that names a policy.
const ID_ANNOTATION: &str = "id";

/// What a member asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `Known(subject, purpose)`: whether the subject is known here (dat).
    Known,
    /// `Inspect(subject, purpose, categories)`: the substance (wat).
    Inspect,
}

impl Action {
    /// The Cedar action name: `known` or `inspect`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Known => "known",
            Action::Inspect => "inspect",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub use crate::registry::Kind;

/// What the policy is asked about.
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
    fn deny(errors: Vec<String>) -> Decision {
        Decision {
            allowed: false,
            policies: Vec::new(),
            errors,
        }
    }
}

/// What every policy shares: the validator for the embedded schema and the
/// Cedar names, made once per process.
struct Builtins {
    validator: Validator,
    member: EntityTypeName,
    category: EntityTypeName,
    known: EntityUid,
    inspect: EntityUid,
}

static BUILTINS: LazyLock<std::result::Result<Builtins, String>> = LazyLock::new(Builtins::make);

impl Builtins {
    fn make() -> std::result::Result<Builtins, String> {
        let (schema, _warnings) = Schema::from_cedarschema_str(SCHEMA)
            .map_err(|e| format!("the built-in policy schema is invalid: {e}"))?;
        let name = |n: &str| {
            EntityTypeName::from_str(n).map_err(|e| format!("the Cedar type name {n}: {e}"))
        };
        let action = name("Action")?;
        Ok(Builtins {
            validator: Validator::new(schema),
            member: name("Member")?,
            category: name("Category")?,
            known: EntityUid::from_type_name_and_id(action.clone(), EntityId::new("known")),
            inspect: EntityUid::from_type_name_and_id(action, EntityId::new("inspect")),
        })
    }

    fn get() -> Result<&'static Builtins> {
        BUILTINS.as_ref().map_err(|e| Error::Policy(e.clone()))
    }
}

/// A parsed and schema-validated policy set.
pub struct Policy {
    set: PolicySet,
    /// Policy ids in the order of the file.
    ids: Vec<String>,
    origin: String,
    /// The text it was parsed from (`None` for [`Policy::deny_all`]), so
    /// that a reload can tell whether the file changed.
    text: Option<String>,
    authorizer: Authorizer,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("origin", &self.origin)
            .field("policies", &self.ids)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Parses `text` and validates it strictly against the schema.
    ///
    /// `origin` (the file name) starts every error message; each problem
    /// gives the line and column or the policy id where Cedar names one.
    /// Templates (`?principal`, `?resource`) and two policies with the same
    /// `@id` are refused.
    pub fn parse(text: &str, origin: &str) -> Result<Policy> {
        let builtins = Builtins::get()?;
        let parsed = PolicySet::from_str(text).map_err(|errors| {
            let problems: Vec<String> = errors
                .iter()
                .map(|e| describe(text, &DetailedError::from(e)))
                .collect();
            refused(origin, &problems)
        })?;

        let mut problems = Vec::new();
        for template in parsed.templates() {
            problems.push(format!(
                "policy {} is a template (it has ?principal or ?resource); write static policies",
                template
                    .annotation(ID_ANNOTATION)
                    .map_or_else(|| template.id().to_string(), str::to_string)
            ));
        }

        // Cedar numbers the policies of a text policy0, policy1, ... in order;
        // keep that order for policy_ids() and logs.
        let mut policies: Vec<_> = parsed
            .policies()
            .map(|p| {
                let generated = p.id().to_string();
                let index = generated
                    .strip_prefix("policy")
                    .and_then(|n| n.parse::<usize>().ok());
                (index, generated, p)
            })
            .collect();
        policies.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));

        let mut set = PolicySet::new();
        let mut ids: Vec<String> = Vec::with_capacity(policies.len());
        for (_, generated, policy) in policies {
            let id = match policy.annotation(ID_ANNOTATION) {
                Some(id) if id.trim().is_empty() => {
                    problems.push(format!(
                        "policy {generated} has an empty @id; give it a name"
                    ));
                    continue;
                }
                Some(id) => id.to_string(),
                None => generated,
            };
            if ids.contains(&id) {
                problems.push(format!(
                    "two policies have the id {id:?}; give each policy its own @id"
                ));
                continue;
            }
            // With the @id as Cedar's own id, evaluation errors name it too.
            match set.add(policy.new_id(PolicyId::new(&id))) {
                Ok(()) => ids.push(id),
                Err(e) => problems.push(format!("policy {id}: {e}")),
            }
        }
        if !problems.is_empty() {
            return Err(refused(origin, &problems));
        }

        let result = builtins.validator.validate(&set, ValidationMode::Strict);
        for warning in result.validation_warnings() {
            tracing::warn!(
                origin,
                warning = %describe(text, &DetailedError::from(warning)),
                "access policy warning"
            );
        }
        if !result.validation_passed() {
            let problems: Vec<String> = result
                .validation_errors()
                .map(|e| describe(text, &DetailedError::from(e)))
                .collect();
            return Err(refused(origin, &problems));
        }
        Ok(Policy {
            set,
            ids,
            origin: origin.to_string(),
            text: Some(text.to_string()),
            authorizer: Authorizer::new(),
        })
    }

    /// The policy without any policies: every request is denied. Used when
    /// no policy file exists.
    pub fn deny_all() -> Policy {
        Policy {
            set: PolicySet::new(),
            ids: Vec::new(),
            origin: "no policy file (deny all)".to_string(),
            text: None,
            authorizer: Authorizer::new(),
        }
    }

    /// Decides whether `member` may do `action` on `category` for `purpose`.
    ///
    /// Deny by default; an evaluation error denies and is listed.
    pub fn authorize(
        &self,
        member: &Member,
        action: Action,
        category: &CategoryRef<'_>,
        purpose: &Purpose,
    ) -> Decision {
        if self.set.is_empty() {
            return Decision::deny(Vec::new());
        }
        let builtins = match Builtins::get() {
            Ok(b) => b,
            Err(e) => return Decision::deny(vec![e.to_string()]),
        };
        let (request, entities) = match request(builtins, member, action, category, purpose) {
            Ok(r) => r,
            Err(e) => return Decision::deny(vec![e]),
        };
        let response = self
            .authorizer
            .is_authorized(&request, &self.set, &entities);
        let diagnostics = response.diagnostics();
        let mut errors = Vec::new();
        let mut failed = Vec::new();
        for error in diagnostics.errors() {
            let AuthorizationError::PolicyEvaluationError(e) = error;
            failed.push(e.policy_id().to_string());
            errors.push(error.to_string());
        }
        let allowed = response.decision() == cedar_policy::Decision::Allow && errors.is_empty();
        let mut policies: Vec<String> =
            if allowed || response.decision() == cedar_policy::Decision::Deny {
                diagnostics.reason().map(ToString::to_string).collect()
            } else {
                // Cedar allowed, but a policy failed: fail closed.
                Vec::new()
            };
        if !allowed {
            policies.extend(failed);
        }
        policies.sort();
        policies.dedup();
        Decision {
            allowed,
            policies,
            errors,
        }
    }

    /// The ids of the policies, in the order of the file.
    pub fn policy_ids(&self) -> Vec<String> {
        self.ids.clone()
    }

    /// Where the policy came from: the file name given to [`Policy::parse`].
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// Builds the request and the two entities it needs, nothing more.
fn request(
    builtins: &Builtins,
    member: &Member,
    action: Action,
    category: &CategoryRef<'_>,
    purpose: &Purpose,
) -> std::result::Result<(Request, Entities), String> {
    let string = |s: &str| RestrictedExpression::new_string(s.to_string());
    let principal = EntityUid::from_type_name_and_id(
        builtins.member.clone(),
        EntityId::new(member.member_id.as_str()),
    );
    let resource =
        EntityUid::from_type_name_and_id(builtins.category.clone(), EntityId::new(category.name));
    let member_entity = Entity::new(
        principal.clone(),
        HashMap::from([
            ("id".to_string(), string(member.member_id.as_str())),
            ("name".to_string(), string(&member.name)),
            (
                "roles".to_string(),
                RestrictedExpression::new_set(member.roles.iter().map(|r| string(r.as_str()))),
            ),
            (
                "purposes".to_string(),
                RestrictedExpression::new_set(member.purposes.iter().map(|p| string(p.as_str()))),
            ),
        ]),
        HashSet::new(),
    )
    .map_err(|e| format!("member {}: {e}", member.member_id))?;
    let category_entity = Entity::new(
        resource.clone(),
        HashMap::from([
            ("kind".to_string(), string(category.kind.as_str())),
            (
                "classification".to_string(),
                string(category.classification),
            ),
        ]),
        HashSet::new(),
    )
    .map_err(|e| format!("category {}: {e}", category.name))?;
    let entities = Entities::from_entities([member_entity, category_entity], None)
        .map_err(|e| format!("entities: {e}"))?;
    let context = Context::from_pairs([("purpose".to_string(), string(purpose.as_str()))])
        .map_err(|e| format!("context: {e}"))?;
    let action = match action {
        Action::Known => builtins.known.clone(),
        Action::Inspect => builtins.inspect.clone(),
    };
    let request = Request::new(principal, action, resource, context, None)
        .map_err(|e| format!("request: {e}"))?;
    Ok((request, entities))
}

/// One problem, with its line and column when Cedar gives a location.
fn describe(text: &str, error: &DetailedError) -> String {
    let mut out = String::new();
    if let Some(label) = error.source_locations.first() {
        let (line, column) = line_column(text, label.loc.start);
        out.push_str(&format!("line {line}, column {column}: "));
    }
    out.push_str(&error.message);
    if let Some(help) = &error.help {
        out.push_str(" (");
        out.push_str(help);
        out.push(')');
    }
    out
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text
        .as_bytes()
        .get(..offset.min(text.len()))
        .unwrap_or_default();
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(before.get(start..).unwrap_or_default())
        .chars()
        .count()
        + 1;
    (line, column)
}

fn refused(origin: &str, problems: &[String]) -> Error {
    Error::Policy(format!(
        "{origin} is refused: {}; correct the policy (it must parse as Cedar and validate against the node's policy schema) and save it again",
        problems.join("; ")
    ))
}

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
    reloads: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
}

impl PolicyHandle {
    /// A handle holding `policy`.
    pub fn new(policy: Policy) -> Self {
        let (current, _) = watch::channel(Arc::new(policy));
        PolicyHandle {
            current,
            reloads: Arc::new(AtomicU64::new(0)),
            failures: Arc::new(AtomicU64::new(0)),
        }
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
    pub fn load(path: &Path) -> Result<Self> {
        match read_policy_file(path)? {
            None => {
                tracing::warn!(
                    file = %path.display(),
                    "no access policy file: every peer request is denied until it is written"
                );
                Ok(Self::new(Policy::deny_all()))
            }
            Some(text) => {
                let policy = Policy::parse(&text, &path.display().to_string())?;
                tracing::info!(
                    file = %path.display(),
                    policies = policy.ids.len(),
                    "access policy loaded"
                );
                Ok(Self::new(policy))
            }
        }
    }

    /// How many times a changed file was put in force.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// How many times a changed file was refused (unreadable or invalid).
    pub fn reload_failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
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
                                self.reloads.fetch_add(1, Ordering::Relaxed);
                                refused_text = None;
                                tracing::info!(file = %origin, policies, "access policy reloaded");
                            }
                            Err(e) => {
                                self.failures.fetch_add(1, Ordering::Relaxed);
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
                        self.failures.fetch_add(1, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;
    use handbereik_keys::{MemberId, PublicKey, Role};

    const VEILIG_THUIS: &str = "00000001002345678000";
    const INSTELLING: &str = "00000001003456789000";

    fn member(oin: &str, roles: &[Role], purposes: &[&str]) -> Member {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        Member {
            member_id: MemberId::parse(oin).unwrap(),
            name: "Gecertificeerde Instelling Test".to_string(),
            roles: roles.to_vec(),
            purposes: purposes
                .iter()
                .map(|p| Purpose::parse(p).unwrap())
                .collect(),
            node_key: PublicKey::from_bytes(key.as_bytes()).unwrap(),
            p2p_addresses: Vec::new(),
            grpc_endpoint: "localhost:4100".to_string(),
            valid_from: 0,
            valid_until: None,
            maintenance: false,
            regions: Vec::new(),
        }
    }

    fn afnemer(purposes: &[&str]) -> Member {
        member(INSTELLING, &[Role::Afnemer], purposes)
    }

    fn purpose(p: &str) -> Purpose {
        Purpose::parse(p).unwrap()
    }

    fn cat<'a>(name: &'a str, kind: Kind, classification: &'a str) -> CategoryRef<'a> {
        CategoryRef {
            name,
            kind,
            classification,
        }
    }

    const MELDING: CategoryRef<'static> = CategoryRef {
        name: "melding",
        kind: Kind::Wat,
        classification: "vertrouwelijk",
    };

    const SIMPLE: &str = r#"
        @id("dat-for-admitted-purpose")
        permit (principal, action == Action::"known", resource)
        when { resource.kind == "dat" && principal.purposes.contains(context.purpose) };

        @id("melding-for-jeugdbescherming")
        permit (principal, action == Action::"inspect", resource == Category::"melding")
        when { context.purpose == "jeugdbescherming" };

        @id("no-strikt-vertrouwelijk")
        forbid (principal, action, resource)
        when { resource.classification == "strikt-vertrouwelijk" };
    "#;

    #[test]
    fn schema_is_valid() {
        Builtins::get().unwrap();
    }

    #[test]
    fn allow_names_the_policy() {
        let policy = Policy::parse(SIMPLE, "simple.cedar").unwrap();
        let d = policy.authorize(
            &afnemer(&["jeugdbescherming"]),
            Action::Inspect,
            &MELDING,
            &purpose("jeugdbescherming"),
        );
        assert_eq!(
            d,
            Decision {
                allowed: true,
                policies: vec!["melding-for-jeugdbescherming".to_string()],
                errors: vec![],
            }
        );
        assert_eq!(
            policy.policy_ids(),
            [
                "dat-for-admitted-purpose",
                "melding-for-jeugdbescherming",
                "no-strikt-vertrouwelijk"
            ]
        );
    }

    #[test]
    fn default_deny_names_no_policy() {
        let policy = Policy::parse(SIMPLE, "simple.cedar").unwrap();
        // No permit for inspecting the plan.
        let d = policy.authorize(
            &afnemer(&["jeugdbescherming"]),
            Action::Inspect,
            &cat("plan", Kind::Wat, "vertrouwelijk"),
            &purpose("jeugdbescherming"),
        );
        assert_eq!(d, Decision::deny(vec![]));
        // Known is not Inspect.
        let d = policy.authorize(
            &afnemer(&["jeugdbescherming"]),
            Action::Known,
            &MELDING,
            &purpose("jeugdbescherming"),
        );
        assert_eq!(d, Decision::deny(vec![]));
        // Nothing at all is allowed by deny_all.
        let d = Policy::deny_all().authorize(
            &afnemer(&["jeugdbescherming"]),
            Action::Inspect,
            &MELDING,
            &purpose("jeugdbescherming"),
        );
        assert_eq!(d, Decision::deny(vec![]));
        assert!(Policy::deny_all().policy_ids().is_empty());
    }

    #[test]
    fn generated_ids_without_annotation() {
        let text = r#"permit (principal, action == Action::"known", resource);
                      permit (principal, action == Action::"inspect", resource);"#;
        let policy = Policy::parse(text, "plain.cedar").unwrap();
        assert_eq!(policy.policy_ids(), ["policy0", "policy1"]);
        let d = policy.authorize(
            &afnemer(&["zorg-coordinatie"]),
            Action::Inspect,
            &MELDING,
            &purpose("zorg-coordinatie"),
        );
        assert!(d.allowed);
        assert_eq!(d.policies, ["policy1"]);
    }

    #[test]
    fn forbid_overrides_permit() {
        let policy = Policy::parse(SIMPLE, "simple.cedar").unwrap();
        let d = policy.authorize(
            &afnemer(&["jeugdbescherming"]),
            Action::Inspect,
            &cat("melding", Kind::Wat, "strikt-vertrouwelijk"),
            &purpose("jeugdbescherming"),
        );
        assert!(!d.allowed);
        assert_eq!(d.policies, ["no-strikt-vertrouwelijk"]);
        assert!(d.errors.is_empty());
    }

    #[test]
    fn purpose_not_admitted_is_denied() {
        let policy = Policy::parse(SIMPLE, "simple.cedar").unwrap();
        let contact = cat("contactpersoon", Kind::Dat, "vertrouwelijk");
        let m = afnemer(&["zorg-coordinatie"]);
        let d = policy.authorize(&m, Action::Known, &contact, &purpose("zorg-coordinatie"));
        assert!(d.allowed, "{d:?}");
        assert_eq!(d.policies, ["dat-for-admitted-purpose"]);
        let d = policy.authorize(&m, Action::Known, &contact, &purpose("jeugdbescherming"));
        assert_eq!(d, Decision::deny(vec![]));
    }

    #[test]
    fn evaluation_error_denies_and_is_listed() {
        // Valid against the schema, but the entity named is not part of the
        // request, so reading its attribute fails at evaluation.
        let text = format!(
            r#"@id("always") permit (principal, action, resource);
               @id("reads-other-member") permit (principal, action, resource)
               when {{ Member::"{VEILIG_THUIS}".purposes.contains(context.purpose) }};"#
        );
        let policy = Policy::parse(&text, "errors.cedar").unwrap();
        let d = policy.authorize(
            &afnemer(&["jeugdbescherming"]),
            Action::Inspect,
            &MELDING,
            &purpose("jeugdbescherming"),
        );
        assert!(!d.allowed, "{d:?}");
        assert_eq!(d.policies, ["reads-other-member"]);
        assert_eq!(d.errors.len(), 1, "{d:?}");
        assert!(d.errors[0].contains("reads-other-member"), "{d:?}");
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let text = "@id(\"a\")\npermit (principal, action, resource);\n\npermitt (principal, action, resource);\n";
        let err = Policy::parse(text, "/etc/handbereik/policy.cedar").unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, Error::Policy(_)), "{message}");
        assert!(
            message.contains("/etc/handbereik/policy.cedar"),
            "{message}"
        );
        assert!(message.contains("line 4, column 1"), "{message}");
        assert!(message.contains("correct the policy"), "{message}");
    }

    #[test]
    fn schema_violation_names_the_attribute_and_policy() {
        let text = "@id(\"ok\")\npermit (principal, action, resource);\n@id(\"by-colour\")\npermit (principal, action, resource)\nwhen { resource.colour == \"red\" };\n";
        let message = Policy::parse(text, "colour.cedar").unwrap_err().to_string();
        assert!(message.contains("colour.cedar"), "{message}");
        assert!(message.contains("colour"), "{message}");
        assert!(message.contains("by-colour"), "{message}");
        assert!(message.contains("line 5"), "{message}");

        // A wrong type, an unknown action and an unknown entity type too.
        for bad in [
            r#"permit (principal, action, resource) when { resource.kind == 1 };"#,
            r#"permit (principal, action == Action::"delete", resource);"#,
            r#"permit (principal == User::"x", action, resource);"#,
        ] {
            let e = Policy::parse(bad, "bad.cedar").unwrap_err().to_string();
            assert!(e.starts_with("policy: bad.cedar is refused: "), "{e}");
        }
    }

    #[test]
    fn duplicate_ids_and_templates_are_refused() {
        let text = r#"@id("same") permit (principal, action, resource);
                      @id("same") forbid (principal, action, resource);"#;
        let message = Policy::parse(text, "dup.cedar").unwrap_err().to_string();
        assert!(message.contains("\"same\""), "{message}");
        let text = r#"@id("tpl") permit (principal == ?principal, action, resource);"#;
        let message = Policy::parse(text, "tpl.cedar").unwrap_err().to_string();
        assert!(message.contains("tpl is a template"), "{message}");
    }

    #[test]
    fn kinds_and_actions_print() {
        assert_eq!(Kind::parse("dat"), Some(Kind::Dat));
        assert_eq!(Kind::parse("wat"), Some(Kind::Wat));
        assert_eq!(Kind::Wat.as_str(), "wat");
        assert!(Kind::parse("Dat").is_none());
        assert_eq!(Action::Known.as_str(), "known");
        assert_eq!(Action::Inspect.to_string(), "inspect");
    }

    #[test]
    fn deploy_example_validates_and_decides() {
        let policy = Policy::parse(
            include_str!("../../../deploy/policy.cedar"),
            "deploy/policy.cedar",
        )
        .unwrap();
        assert!(
            policy
                .policy_ids()
                .iter()
                .all(|id| !id.starts_with("policy"))
        );
        let jb = afnemer(&["jeugdbescherming"]);
        let vt = member(
            VEILIG_THUIS,
            &[Role::Afnemer, Role::Bronhouder],
            &["huiselijk-geweld", "veiligheid"],
        );
        let betrokkenheid = cat("betrokkenheid", Kind::Dat, "vertrouwelijk");
        let plan = cat("plan", Kind::Wat, "vertrouwelijk");
        let veiligheidsplan = cat("veiligheidsplan", Kind::Wat, "strikt-vertrouwelijk");
        let check = |m: &Member, a, c: &CategoryRef<'_>, p, allowed, ids: &[&str]| {
            let d = policy.authorize(m, a, c, &purpose(p));
            assert_eq!(
                d.allowed, allowed,
                "{} {a} {} {p}: {d:?}",
                m.member_id, c.name
            );
            assert_eq!(d.policies, ids, "{} {a} {} {p}: {d:?}", m.member_id, c.name);
            assert!(d.errors.is_empty(), "{d:?}");
        };
        use Action::{Inspect, Known};
        check(
            &jb,
            Known,
            &betrokkenheid,
            "jeugdbescherming",
            true,
            &["dat-for-admitted-purpose"],
        );
        check(
            &jb,
            Known,
            &betrokkenheid,
            "veiligheid",
            false,
            &["purpose-must-be-admitted"],
        );
        check(
            &jb,
            Inspect,
            &MELDING,
            "jeugdbescherming",
            true,
            &["jeugdbescherming-inspects-melding-en-risicotaxatie"],
        );
        check(&jb, Inspect, &plan, "jeugdbescherming", false, &[]);
        check(&jb, Inspect, &betrokkenheid, "jeugdbescherming", false, &[]);
        check(
            &vt,
            Inspect,
            &veiligheidsplan,
            "veiligheid",
            true,
            &["veilig-thuis-inspects-wat"],
        );
        check(
            &vt,
            Inspect,
            &veiligheidsplan,
            "huiselijk-geweld",
            false,
            &["strikt-vertrouwelijk-only-for-veiligheid"],
        );
        // The same rights under another OIN give nothing substantive.
        let other = member(
            INSTELLING,
            &[Role::Afnemer],
            &["huiselijk-geweld", "veiligheid"],
        );
        check(&other, Inspect, &MELDING, "veiligheid", false, &[]);
        // A source holder that is not a consumer does not ask.
        let bron = member(INSTELLING, &[Role::Bronhouder], &["jeugdbescherming"]);
        check(
            &bron,
            Known,
            &betrokkenheid,
            "jeugdbescherming",
            false,
            &["only-afnemers-ask"],
        );
    }

    #[test]
    fn load_missing_is_deny_all_and_invalid_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let handle = PolicyHandle::load(&dir.path().join("absent.cedar")).unwrap();
        assert!(handle.current().policy_ids().is_empty());
        let path = dir.path().join("bad.cedar");
        std::fs::write(
            &path,
            "permit (principal, action, resource) when { resource.colour };",
        )
        .unwrap();
        let message = PolicyHandle::load(&path).err().unwrap().to_string();
        assert!(message.contains("bad.cedar"), "{message}");
        std::fs::write(&path, SIMPLE).unwrap();
        let handle = PolicyHandle::load(&path).unwrap();
        assert_eq!(handle.current().policy_ids().len(), 3);
        assert_eq!(handle.current().origin(), path.display().to_string());
    }

    /// Waits up to 20 seconds for `done`.
    async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..2000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn reload_swaps_valid_and_keeps_old_on_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.cedar");
        std::fs::write(&path, SIMPLE).unwrap();
        let handle = PolicyHandle::load(&path).unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(handle.clone().watch_file(
            path.clone(),
            Duration::from_millis(20),
            shutdown.clone(),
        ));
        let m = afnemer(&["jeugdbescherming"]);
        let jb = purpose("jeugdbescherming");
        let allowed = |h: &PolicyHandle| {
            h.current()
                .authorize(&m, Action::Inspect, &MELDING, &jb)
                .allowed
        };
        assert!(allowed(&handle));

        // A new valid policy: the melding is now forbidden.
        std::fs::write(
            &path,
            r#"@id("nothing-substantive") forbid (principal, action == Action::"inspect", resource);"#,
        )
        .unwrap();
        eventually("the reload", || handle.reloads() == 1).await;
        assert!(!allowed(&handle));
        assert_eq!(handle.current().policy_ids(), ["nothing-substantive"]);

        // Back to the first policy, then an invalid one: the first stays.
        std::fs::write(&path, SIMPLE).unwrap();
        eventually("the second reload", || handle.reloads() == 2).await;
        assert!(allowed(&handle));
        std::fs::write(
            &path,
            "permit (principal, action, resource) when { resource.colour };",
        )
        .unwrap();
        eventually("the refusal", || handle.reload_failures() == 1).await;
        assert!(allowed(&handle));
        assert_eq!(handle.current().policy_ids().len(), 3);
        // The same bad content counts once, however often it is polled.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(handle.reload_failures(), 1);
        assert_eq!(handle.reloads(), 2);

        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .unwrap()
            .unwrap();
    }

    /// Rough timing: `cargo test --release -p handbereik-node --lib
    /// inspect::policy -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn authorize_timing() {
        let policy = Policy::parse(
            include_str!("../../../deploy/policy.cedar"),
            "deploy/policy.cedar",
        )
        .unwrap();
        let m = afnemer(&["jeugdbescherming", "zorg-coordinatie"]);
        let p = purpose("jeugdbescherming");
        let n = 100_000;
        let start = std::time::Instant::now();
        let mut allowed = 0;
        for i in 0..n {
            let c = if i % 2 == 0 {
                MELDING
            } else {
                cat("plan", Kind::Wat, "vertrouwelijk")
            };
            allowed += usize::from(policy.authorize(&m, Action::Inspect, &c, &p).allowed);
        }
        let elapsed = start.elapsed();
        assert_eq!(allowed, n / 2);
        println!(
            "authorize: {n} calls in {elapsed:?}, {:.2} µs per call",
            elapsed.as_secs_f64() * 1e6 / n as f64
        );
    }
}
