//! Deciding one request: the Cedar request and the entities it needs,
//! built from the member list's entry of the asking member and the
//! resource, and the decision with the policies that made it. Deny by
//! default; an evaluation error denies and is listed. Calls nothing in the
//! node.

use std::collections::{HashMap, HashSet};

use cedar_policy::{
    AuthorizationError, Context, Entities, Entity, EntityId, EntityUid, Request,
    RestrictedExpression,
};
use handbereik_keys::{Member, Purpose};

use super::compile::{Builtins, Policy};
use super::{Action, CategoryRef, Decision, PolicyRequest, RequestContext, Resource};

impl Policy {
    /// Decides whether `member` may do `action` on `category` for `purpose`,
    /// with no actor and no emergency: [`Policy::decide`] in short.
    pub fn authorize(
        &self,
        member: &Member,
        action: Action,
        category: &CategoryRef<'_>,
        purpose: &Purpose,
    ) -> Decision {
        self.decide(&PolicyRequest {
            member,
            action,
            resource: Resource::Category(*category),
            context: RequestContext::purpose_only(purpose),
        })
    }

    /// Decides one request. Deny by default; an evaluation error denies and
    /// is listed.
    pub fn decide(&self, ask: &PolicyRequest<'_>) -> Decision {
        if self.set.is_empty() {
            return Decision::deny(Vec::new());
        }
        let builtins = match Builtins::get() {
            Ok(b) => b,
            Err(e) => return Decision::deny(vec![e.to_string()]),
        };
        let (request, entities) = match request(builtins, ask) {
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
}

/// Builds the request and the two entities it needs, nothing more.
fn request(
    builtins: &Builtins,
    ask: &PolicyRequest<'_>,
) -> std::result::Result<(Request, Entities), String> {
    let string = |s: &str| RestrictedExpression::new_string(s.to_string());
    let member = ask.member;
    let principal = EntityUid::from_type_name_and_id(
        builtins.member.clone(),
        EntityId::new(member.member_id.as_str()),
    );
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
    let (resource, resource_entity) = resource(builtins, &ask.resource)?;
    let entities = Entities::from_entities([member_entity, resource_entity], None)
        .map_err(|e| format!("entities: {e}"))?;
    let context = context(&ask.context)?;
    let action = match ask.action {
        Action::Known => builtins.known.clone(),
        Action::Inspect => builtins.inspect.clone(),
        Action::Task => builtins.task.clone(),
        Action::Report => builtins.report_action.clone(),
    };
    let request = Request::new(principal, action, resource, context, None)
        .map_err(|e| format!("request: {e}"))?;
    Ok((request, entities))
}

fn resource(
    builtins: &Builtins,
    resource: &Resource<'_>,
) -> std::result::Result<(EntityUid, Entity), String> {
    let string = |s: &str| RestrictedExpression::new_string(s.to_string());
    match resource {
        Resource::Category(category) => {
            let uid = EntityUid::from_type_name_and_id(
                builtins.category.clone(),
                EntityId::new(category.name),
            );
            let entity = Entity::new(
                uid.clone(),
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
            Ok((uid, entity))
        }
        Resource::TaskType(task_type) => {
            let uid = EntityUid::from_type_name_and_id(
                builtins.task_type.clone(),
                EntityId::new(*task_type),
            );
            fixed(uid, "task", "task")
        }
        Resource::AuditReport => {
            let uid =
                EntityUid::from_type_name_and_id(builtins.report.clone(), EntityId::new("audit"));
            fixed(uid, "report", "audit")
        }
    }
}

/// A resource with a category's attributes at fixed values (see the schema).
fn fixed(
    uid: EntityUid,
    kind: &str,
    classification: &str,
) -> std::result::Result<(EntityUid, Entity), String> {
    let string = |s: &str| RestrictedExpression::new_string(s.to_string());
    let entity = Entity::new(
        uid.clone(),
        HashMap::from([
            ("kind".to_string(), string(kind)),
            ("classification".to_string(), string(classification)),
        ]),
        HashSet::new(),
    )
    .map_err(|e| format!("resource {uid}: {e}"))?;
    Ok((uid, entity))
}

fn context(context: &RequestContext<'_>) -> std::result::Result<Context, String> {
    let string = |s: &str| RestrictedExpression::new_string(s.to_string());
    Context::from_pairs([
        ("purpose".to_string(), string(context.purpose.as_str())),
        ("role".to_string(), string(context.role)),
        ("actor".to_string(), string(context.actor)),
        (
            "emergency".to_string(),
            RestrictedExpression::new_bool(context.emergency),
        ),
    ])
    .map_err(|e| format!("context: {e}"))
}
