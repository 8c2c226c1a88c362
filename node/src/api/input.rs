//! Reading fields of the back office's requests: each parse names the field
//! and the rule, and shows at most a short, safe excerpt of what was given
//! (never a long value, never something that may be a BSN).

use handbereik_keys::text::excerpt;
use handbereik_keys::{MemberId, Purpose};

use crate::error::Error;

/// A purpose (doelbinding): 1 to 64 characters a-z, 0-9 and '-'.
pub fn purpose(field: &str, text: &str) -> Result<Purpose, Error> {
    Purpose::parse(text).map_err(|_| {
        Error::InvalidRequest(format!(
            "{field}: {} is not a purpose (1 to 64 characters a-z, 0-9 and '-', starting with a letter)",
            excerpt(text)
        ))
    })
}

/// A member id: the member's OIN, 20 digits.
pub fn member_id(field: &str, text: &str) -> Result<MemberId, Error> {
    MemberId::parse(text).map_err(|e| {
        let reason = match e {
            handbereik_keys::KeysError::BadMemberId { reason, .. } => reason,
            _ => "it is not 20 digits",
        };
        Error::InvalidRequest(format!(
            "{field}: {} is not an OIN: {reason}; the Members call lists the members",
            excerpt(text)
        ))
    })
}

/// Region codes of a scoped query: at most 64, each like `GM0363`.
pub fn regions(field: &str, regions: &[String]) -> Result<Vec<String>, Error> {
    if regions.len() > 64 {
        return Err(Error::InvalidRequest(format!(
            "{field}: at most 64 regions (got {})",
            regions.len()
        )));
    }
    for r in regions {
        handbereik_keys::profile::check_region(r).map_err(|_| {
            Error::InvalidRequest(format!(
                "{field}: {} is not a region code: two capital letters and 2 to 4 digits, such as GM0363",
                excerpt(r)
            ))
        })?;
    }
    Ok(regions.to_vec())
}

/// An optional filter: empty, or what `parse` accepts.
pub fn optional<T>(
    field: &str,
    text: &str,
    parse: impl Fn(&str, &str) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    if text.is_empty() {
        Ok(None)
    } else {
        parse(field, text).map(Some)
    }
}

/// The acting professional as the back office gave it; its rules (the
/// network's role vocabulary) are checked where the question is asked.
pub fn actor(actor: Option<&handbereik_proto::v1::Actor>) -> crate::audit::Actor {
    actor
        .map(|a| crate::audit::Actor {
            user: a.user.clone(),
            role: a.role.clone(),
            on_behalf_of: a.on_behalf_of.clone(),
        })
        .unwrap_or_default()
}

/// An emergency reason: empty means none.
pub fn emergency(reason: &str) -> Option<String> {
    (!reason.is_empty()).then(|| reason.to_string())
}
