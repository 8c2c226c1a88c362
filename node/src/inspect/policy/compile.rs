//! Compiling a policy file: Cedar parsing, the house rules on ids and
//! templates, strict validation against the embedded schema, and error
//! messages that give the file, line and column. Calls nothing in the node.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use cedar_policy::ffi::DetailedError;
use cedar_policy::{
    Authorizer, EntityId, EntityTypeName, EntityUid, PolicyId, PolicySet, Schema, ValidationMode,
    Validator,
};

use super::SCHEMA;
use crate::error::{Error, Result};

/// The annotation that names a policy.
const ID_ANNOTATION: &str = "id";

/// What every policy shares: the validator for the embedded schema and the
/// Cedar names, made once per process.
pub(super) struct Builtins {
    pub(super) validator: Validator,
    pub(super) member: EntityTypeName,
    pub(super) category: EntityTypeName,
    pub(super) task_type: EntityTypeName,
    pub(super) report: EntityTypeName,
    pub(super) known: EntityUid,
    pub(super) inspect: EntityUid,
    pub(super) task: EntityUid,
    pub(super) report_action: EntityUid,
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
        let action_uid =
            |a: &str| EntityUid::from_type_name_and_id(action.clone(), EntityId::new(a));
        Ok(Builtins {
            validator: Validator::new(schema),
            member: name("Member")?,
            category: name("Category")?,
            task_type: name("TaskType")?,
            report: name("Report")?,
            known: action_uid("known"),
            inspect: action_uid("inspect"),
            task: action_uid("task"),
            report_action: action_uid("report"),
        })
    }

    pub(super) fn get() -> Result<&'static Builtins> {
        BUILTINS.as_ref().map_err(|e| Error::Policy(e.clone()))
    }
}

/// A parsed and schema-validated policy set.
pub struct Policy {
    pub(super) set: PolicySet,
    /// Policy ids in the order of the file.
    pub(super) ids: Vec<String>,
    origin: String,
    /// The text it was parsed from (`None` for [`Policy::deny_all`]), so
    /// that a reload can tell whether the file changed.
    pub(super) text: Option<String>,
    pub(super) authorizer: Authorizer,
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

    /// The ids of the policies, in the order of the file.
    pub fn policy_ids(&self) -> Vec<String> {
        self.ids.clone()
    }

    /// Where the policy came from: the file name given to [`Policy::parse`].
    pub fn origin(&self) -> &str {
        &self.origin
    }
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
