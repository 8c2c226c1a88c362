//! The `Subject` message: a BSN or a pseudonym, turned into a pseudonym by
//! the registry's [`Subjects`](crate::registry::Subjects). Shared by the
//! Registry, Inspections and Audit services.

use handbereik_proto::v1 as pb;

use crate::error::{Error, Result};
use crate::registry::{Pseudonym, Subjects};

/// The pseudonym of the subject a request names.
pub fn resolve(subjects: &Subjects, subject: Option<&pb::Subject>) -> Result<Pseudonym> {
    match subject.and_then(|s| s.kind.as_ref()) {
        Some(pb::subject::Kind::Bsn(bsn)) => subjects.resolve(Some(bsn), None),
        Some(pb::subject::Kind::Pseudonym(p)) => subjects.resolve(None, Some(p)),
        None => Err(Error::InvalidRequest(
            "give the subject, as a BSN or as a pseudonym".into(),
        )),
    }
}
