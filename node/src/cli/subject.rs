//! The `--bsn` / `--pseudonym` pair that names a subject on the command line.

use clap::Args;
use handbereik_proto::v1 as pb;

/// Exactly one of a BSN or a pseudonym.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct SubjectArgs {
    /// The subject's BSN; the node turns it into the pseudonym and forgets it.
    #[arg(long)]
    pub bsn: Option<String>,
    /// The subject's network pseudonym (64 hex characters).
    #[arg(long)]
    pub pseudonym: Option<String>,
}

impl SubjectArgs {
    /// The protobuf form.
    pub fn to_proto(&self) -> Option<pb::Subject> {
        let kind = match (&self.bsn, &self.pseudonym) {
            (Some(b), _) => pb::subject::Kind::Bsn(b.clone()),
            (None, Some(p)) => pb::subject::Kind::Pseudonym(p.clone()),
            (None, None) => return None,
        };
        Some(pb::Subject { kind: Some(kind) })
    }
}

/// Optional form, for listing everything when no subject is given.
#[derive(Args, Debug, Clone)]
#[group(required = false, multiple = false)]
pub struct MaybeSubjectArgs {
    /// The subject's BSN.
    #[arg(long)]
    pub bsn: Option<String>,
    /// The subject's network pseudonym.
    #[arg(long)]
    pub pseudonym: Option<String>,
}

impl MaybeSubjectArgs {
    /// The protobuf form, if a subject was given.
    pub fn to_proto(&self) -> Option<pb::Subject> {
        SubjectArgs {
            bsn: self.bsn.clone(),
            pseudonym: self.pseudonym.clone(),
        }
        .to_proto()
    }
}
