//! The asking node's signed statement of a question (Known, Inspect,
//! Report): who asks, about what, for which purpose, and the acting
//! professional behind it (user, role, on behalf of) and, for an emergency,
//! the reason. Signed with the node key under the
//! `handbereik/inspection-request/v1` prefix (docs/formats.md §10.6), sent
//! with the request, checked by the source against the asker's key from the
//! member list, kept in the source's audit entry as the proof of who asked
//! in which role.
//!
//! Also the rules of an actor and an emergency reason, which both sides
//! apply: the asking node to the back office's fields, the source to what
//! arrived. Calls `handbereik-keys` and `audit` (for the actor type).

use handbereik_keys::canonical;
use handbereik_keys::text::excerpt;
use handbereik_keys::{Domain, MemberList, NodeKey, PublicKey, SignedEnvelope, SingleSigned};
use serde::{Deserialize, Serialize};

use super::policy::Action;
use crate::audit::Actor;
use crate::error::{Error, Result};

/// Largest signed request accepted.
pub const REQUEST_LIMIT: usize = 16 * 1024;
/// Longest user id (and on-behalf-of id).
pub const MAX_USER: usize = 128;
/// Longest emergency reason, in characters.
pub const MAX_REASON: usize = 500;
/// How far the signed time may lie from the source's clock, in seconds.
pub const CLOCK_SKEW_SECS: u64 = 600;

/// The signed body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskBody {
    /// The request id, the same in both audit logs.
    pub request_id: String,
    /// The asking member (the signer).
    pub asker: String,
    /// Subject pseudonym, hex.
    pub subject: String,
    /// The purpose stated.
    pub purpose: String,
    /// `known`, `inspect` or `report`.
    pub action: String,
    /// For Inspect: the categories asked, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Who acts, in what role, for whom; left out when none.
    #[serde(default, skip_serializing_if = "Actor::is_empty")]
    pub actor: Actor,
    /// An emergency (break-glass): its reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency: Option<String>,
    /// When it was signed, seconds since the Unix epoch.
    pub time: u64,
}

impl AskBody {
    /// Signs the body with the node key.
    pub fn sign(&self, key: &NodeKey) -> Result<Vec<u8>> {
        let body = canonical::to_vec(self, "inspection request")?;
        Ok(SignedEnvelope::signed(Domain::InspectionRequest, body, key).encode()?)
    }
}

/// What the plain fields of the request say, which the signed body must
/// agree with.
#[derive(Clone, Copy, Debug)]
pub struct Plain<'a> {
    /// The request id.
    pub request_id: &'a str,
    /// The asking member as TLS established it.
    pub asker: &'a str,
    /// Subject pseudonym, hex.
    pub subject: &'a str,
    /// Purpose.
    pub purpose: &'a str,
    /// Action.
    pub action: Action,
    /// Categories.
    pub categories: &'a [String],
}

/// Checks a signed request as it arrived at the source: the signature by
/// `key` (the asker's key from the member list, the key of its TLS
/// certificate), every field against the plain request, and the time within
/// [`CLOCK_SKEW_SECS`] of `now`. Says what is wrong.
pub fn check(signed: &[u8], key: &PublicKey, plain: &Plain<'_>, now: u64) -> Result<AskBody> {
    let bad = |why: String| Error::InvalidRequest(format!("signed_request: {why}"));
    let envelope = SingleSigned::decode(signed, "inspection request", REQUEST_LIMIT)
        .map_err(|e| bad(e.to_string()))?;
    let verifying = key.verifying_key().map_err(|e| bad(e.to_string()))?;
    envelope
        .verify(Domain::InspectionRequest, &verifying)
        .map_err(|_| bad("not signed by the key of the asking member's certificate".into()))?;
    let body: AskBody = canonical::from_slice(&envelope.body, "inspection request")
        .map_err(|e| bad(e.to_string()))?;
    let fields = [
        ("request_id", body.request_id.as_str(), plain.request_id),
        ("asker", &body.asker, plain.asker),
        ("subject", &body.subject, plain.subject),
        ("purpose", &body.purpose, plain.purpose),
        ("action", &body.action, plain.action.as_str()),
    ];
    for (name, signed, sent) in fields {
        if signed != sent {
            return Err(bad(format!(
                "its {name} is not the {name} of the request; sign the request that is sent"
            )));
        }
    }
    if body.categories != plain.categories {
        return Err(bad(
            "its categories are not those of the request, in order".into()
        ));
    }
    let skew = body.time.abs_diff(now);
    if skew > CLOCK_SKEW_SECS {
        return Err(bad(format!(
            "it was signed {skew} s away from this node's clock (at most {CLOCK_SKEW_SECS} s); check both clocks (NTP)"
        )));
    }
    if body.emergency.is_some() && plain.action != Action::Inspect {
        return Err(bad("only Inspect can be an emergency".into()));
    }
    Ok(body)
}

/// Checks an actor against the network's role vocabulary in `list`: when
/// the list names actor roles, a user and one of those roles are required;
/// a role it does not name is refused (before any policy is asked), as is a
/// role in a network that names none. Ids are 1 to [`MAX_USER`] visible
/// ASCII characters and never look like a BSN. `field` prefixes the message
/// (`actor` on the local API, `signed_request.actor` at the source).
pub fn check_actor(field: &str, actor: &Actor, list: Option<&MemberList>) -> Result<()> {
    let bad = |why: String| Err(Error::InvalidRequest(format!("{field}: {why}")));
    let vocabulary = list
        .map(|l| l.profile.actor_roles.as_slice())
        .unwrap_or(&[]);
    if actor.is_empty() {
        if vocabulary.is_empty() {
            return Ok(());
        }
        return bad(format!(
            "the member list names actor roles ({}); give the acting professional's user id and role",
            names(vocabulary)
        ));
    }
    check_form(field, actor)?;
    if actor.role.is_empty() {
        if vocabulary.is_empty() {
            return Ok(());
        }
        return bad(format!("role is required: one of {}", names(vocabulary)));
    }
    let known = list.is_some_and(|l| l.has_actor_role(&actor.role));
    if !known {
        if vocabulary.is_empty() {
            return bad(format!(
                "role {} is unknown: the member list names no actor roles; leave the role empty or ask governance to publish the vocabulary",
                excerpt(&actor.role)
            ));
        }
        return bad(format!(
            "role {} is not in the network's role vocabulary ({}); use one of them",
            excerpt(&actor.role),
            names(vocabulary)
        ));
    }
    Ok(())
}

/// The form of a given actor, whatever the vocabulary: a user id (1 to
/// [`MAX_USER`] visible ASCII characters, not a BSN), an optional
/// on-behalf-of id of the same form, and a role, if any, in the form of a
/// role name.
pub fn check_form(field: &str, actor: &Actor) -> Result<()> {
    check_id(&format!("{field}.user"), &actor.user, true)?;
    check_id(&format!("{field}.on_behalf_of"), &actor.on_behalf_of, false)?;
    if !actor.role.is_empty() && handbereik_keys::ActorRole::parse(&actor.role).is_err() {
        return Err(Error::InvalidRequest(format!(
            "{field}.role: {} is not a role name (1 to 64 characters a-z, 0-9 and '-')",
            excerpt(&actor.role)
        )));
    }
    Ok(())
}

/// An emergency reason: 1 to [`MAX_REASON`] characters, no control
/// characters, and not a BSN.
pub fn check_reason(field: &str, reason: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::InvalidRequest(format!("{field}: {why}")));
    let chars = reason.chars().count();
    if reason.trim().is_empty() {
        return bad("an emergency needs a reason: say why the data is needed now");
    }
    if chars > MAX_REASON {
        return bad("at most 500 characters");
    }
    if reason.chars().any(char::is_control) {
        return bad("no control characters (line breaks, tabs)");
    }
    if reason
        .split(|c: char| !c.is_ascii_digit())
        .any(crate::notify::event::looks_like_bsn)
    {
        return bad("it holds what looks like a BSN; a reason never names the citizen");
    }
    Ok(())
}

fn check_id(field: &str, id: &str, required: bool) -> Result<()> {
    if id.is_empty() && !required {
        return Ok(());
    }
    if id.is_empty() || id.len() > MAX_USER || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::InvalidRequest(format!(
            "{field}: give 1 to {MAX_USER} visible ASCII characters: the back office's pseudonymous id of the professional, never a name"
        )));
    }
    if crate::notify::event::looks_like_bsn(id) {
        return Err(Error::InvalidRequest(format!(
            "{field}: that looks like a BSN; use the back office's pseudonymous id of the professional"
        )));
    }
    Ok(())
}

fn names(roles: &[handbereik_keys::ActorRole]) -> String {
    let shown: Vec<&str> = roles.iter().take(8).map(|r| r.as_str()).collect();
    let more = roles.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{}, and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> AskBody {
        AskBody {
            request_id: "r1".into(),
            asker: "00000001001234567001".into(),
            subject: "ab".repeat(32),
            purpose: "jeugd".into(),
            action: "inspect".into(),
            categories: vec!["plan".into()],
            actor: Actor {
                user: "u-17".into(),
                role: "casusregisseur".into(),
                on_behalf_of: String::new(),
            },
            emergency: None,
            time: 1_800_000_000,
        }
    }

    fn plain(b: &AskBody) -> Plain<'_> {
        Plain {
            request_id: &b.request_id,
            asker: &b.asker,
            subject: &b.subject,
            purpose: &b.purpose,
            action: Action::Inspect,
            categories: &b.categories,
        }
    }

    #[test]
    fn a_signed_request_checks_only_with_the_askers_key_and_the_same_fields() {
        let key = NodeKey::generate().unwrap();
        let other = NodeKey::generate().unwrap();
        let b = body();
        let signed = b.sign(&key).unwrap();
        let now = b.time + 5;
        assert_eq!(
            check(&signed, &key.public_key(), &plain(&b), now).unwrap(),
            b
        );
        assert!(check(&signed, &other.public_key(), &plain(&b), now).is_err());
        let mut other_subject = b.clone();
        other_subject.subject = "cd".repeat(32);
        let err = check(&signed, &key.public_key(), &plain(&other_subject), now).unwrap_err();
        assert!(err.to_string().contains("subject"), "{err}");
        let mut more = b.clone();
        more.categories.push("melding".into());
        assert!(check(&signed, &key.public_key(), &plain(&more), now).is_err());
        let late = b.time + CLOCK_SKEW_SECS + 1;
        let err = check(&signed, &key.public_key(), &plain(&b), late).unwrap_err();
        assert!(err.to_string().contains("clock"), "{err}");
        let mut tampered = signed.clone();
        let n = tampered.len();
        tampered[n / 2] ^= 1;
        assert!(check(&tampered, &key.public_key(), &plain(&b), now).is_err());
    }

    #[test]
    fn an_emergency_is_for_inspect_only() {
        let key = NodeKey::generate().unwrap();
        let mut b = body();
        b.action = "known".into();
        b.categories.clear();
        b.emergency = Some("acute danger".into());
        let signed = b.sign(&key).unwrap();
        let mut p = plain(&b);
        p.action = Action::Known;
        assert!(check(&signed, &key.public_key(), &p, b.time).is_err());
    }

    #[test]
    fn reasons_are_bounded_and_never_a_bsn() {
        assert!(check_reason("r", "child in acute danger").is_ok());
        assert!(check_reason("r", "  ").is_err());
        assert!(check_reason("r", &"x".repeat(501)).is_err());
        assert!(check_reason("r", "line\nbreak").is_err());
        // 111222333 passes the 11-test.
        let err = check_reason("r", "about 111222333 now").unwrap_err();
        assert!(!err.to_string().contains("111222333"));
    }

    #[test]
    fn without_a_vocabulary_an_actor_is_optional_and_a_role_is_unknown() {
        assert!(check_actor("actor", &Actor::default(), None).is_ok());
        let user_only = Actor {
            user: "u1".into(),
            ..Actor::default()
        };
        assert!(check_actor("actor", &user_only, None).is_ok());
        let with_role = Actor {
            user: "u1".into(),
            role: "casusregisseur".into(),
            on_behalf_of: String::new(),
        };
        let err = check_actor("actor", &with_role, None).unwrap_err();
        assert!(err.to_string().contains("unknown"), "{err}");
        let bsn = Actor {
            user: "111222333".into(),
            ..Actor::default()
        };
        assert!(check_actor("actor", &bsn, None).is_err());
        let long = Actor {
            user: "u".repeat(129),
            ..Actor::default()
        };
        assert!(check_actor("actor", &long, None).is_err());
    }
}
