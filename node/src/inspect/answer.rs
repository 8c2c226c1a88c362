//! The source's signed answer to `Known` and `Inspect`: its body, signing it
//! on the serving side, and checking it on the asking side.
//!
//! The body is canonical CBOR, signed with the node key under the
//! `handbereik/inspection-response/v1` prefix (docs/formats.md). The asker
//! checks the signature against the key the member list gives for the member
//! it asked, and that the answer is about exactly what it asked, before it
//! believes a word. Calls `handbereik-keys`.

use handbereik_keys::{Domain, NodeKey, SignedEnvelope, SingleSigned, canonical};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest signed answer accepted (records hold at most 64 KiB each).
pub const ANSWER_LIMIT: usize = 8 * 1024 * 1024;

/// `allowed`, `refused` or `unknown-category`, per category.
pub const ALLOWED: &str = "allowed";
/// The policy refused the category.
pub const REFUSED: &str = "refused";
/// The category is not in the source's catalogue.
pub const UNKNOWN_CATEGORY: &str = "unknown-category";

/// One disclosed entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerRecord {
    /// Category.
    pub category: String,
    /// `dat` or `wat`.
    pub kind: String,
    /// Classification.
    pub classification: String,
    /// Legal basis.
    pub legal_basis: String,
    /// Media type of the content.
    pub content_type: String,
    /// Content.
    #[serde(with = "serde_bytes")]
    pub content: Vec<u8>,
    /// Seconds since the Unix epoch.
    pub registered_at: u64,
    /// Seconds since the Unix epoch.
    pub updated_at: u64,
    /// Seconds since the Unix epoch.
    pub retain_until: u64,
}

/// The decision on one category.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryResult {
    /// Category.
    pub category: String,
    /// [`ALLOWED`], [`REFUSED`] or [`UNKNOWN_CATEGORY`].
    pub decision: String,
    /// Policies that made the decision.
    pub policies: Vec<String>,
    /// What is held, when allowed.
    pub records: Vec<AnswerRecord>,
}

/// The signed body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerBody {
    /// The asker's request id.
    pub request_id: String,
    /// The source (signer).
    pub source: String,
    /// The asking member.
    pub asker: String,
    /// Subject pseudonym, hex.
    pub subject: String,
    /// Purpose.
    pub purpose: String,
    /// `known` or `inspect`.
    pub action: String,
    /// Seconds since the Unix epoch.
    pub time: u64,
    /// `allowed` if the policy allowed anything, else `denied`.
    pub decision: String,
    /// Why, when denied as a whole (such as not admitted for the purpose).
    pub reason: String,
    /// Policies that made the decision.
    pub policies: Vec<String>,
    /// Per category.
    pub categories: Vec<CategoryResult>,
}

impl AnswerBody {
    /// Whether any record was given.
    pub fn has_records(&self) -> bool {
        self.categories.iter().any(|c| !c.records.is_empty())
    }

    /// Categories with at least one record.
    pub fn given(&self) -> Vec<String> {
        self.categories
            .iter()
            .filter(|c| !c.records.is_empty())
            .map(|c| c.category.clone())
            .collect()
    }

    /// Signs the body with the node key.
    pub fn sign(&self, key: &NodeKey) -> Result<Vec<u8>> {
        let body = canonical::to_vec(self, "inspection response")?;
        Ok(SignedEnvelope::signed(Domain::InspectionResponse, body, key).encode()?)
    }
}

/// What the asker expects an answer to be about.
#[derive(Clone, Debug)]
pub struct Expected<'a> {
    /// Request id sent.
    pub request_id: &'a str,
    /// Member asked.
    pub source: &'a str,
    /// This node.
    pub asker: &'a str,
    /// Subject asked about.
    pub subject: &'a str,
    /// Purpose stated.
    pub purpose: &'a str,
    /// Action asked.
    pub action: &'a str,
    /// For Inspect: the categories asked, which the answer must give one
    /// result each for, in the same order.
    pub categories: Option<&'a [String]>,
}

/// Checks a signed answer: signature by `key` (the asked member's key from
/// the member list) and every field against what was asked.
pub fn check(
    signed: &[u8],
    key: &ed25519_dalek::VerifyingKey,
    expected: &Expected<'_>,
) -> Result<AnswerBody> {
    let bad = |why: String| {
        Error::P2p(format!(
            "the answer of {} is refused: {why}",
            expected.source
        ))
    };
    let envelope = SingleSigned::decode(signed, "inspection response", ANSWER_LIMIT)
        .map_err(|e| bad(e.to_string()))?;
    envelope
        .verify(Domain::InspectionResponse, key)
        .map_err(|e| bad(e.to_string()))?;
    let body: AnswerBody = canonical::from_slice(&envelope.body, "inspection response")
        .map_err(|e| bad(e.to_string()))?;
    let fields = [
        ("request_id", &body.request_id, expected.request_id),
        ("source", &body.source, expected.source),
        ("asker", &body.asker, expected.asker),
        ("subject", &body.subject, expected.subject),
        ("purpose", &body.purpose, expected.purpose),
        ("action", &body.action, expected.action),
    ];
    for (name, got, want) in fields {
        if got != want {
            return Err(bad(format!("it is about another {name} than asked")));
        }
    }
    // Dates from another node are bounded before anything formats or adds to them.
    let mut dates = vec![("time", body.time)];
    for record in body.categories.iter().flat_map(|c| &c.records) {
        dates.push(("registered_at", record.registered_at));
        dates.push(("updated_at", record.updated_at));
        dates.push(("retain_until", record.retain_until));
    }
    for (field, secs) in dates {
        handbereik_keys::time::check_bounded(field, secs).map_err(bad)?;
    }
    if let Some(asked) = expected.categories {
        let answered = body.categories.iter().map(|c| &c.category);
        if !answered.eq(asked.iter()) {
            return Err(bad(
                "it does not answer the categories asked, in order".into()
            ));
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> AnswerBody {
        AnswerBody {
            request_id: "r".into(),
            source: "00000001001234567000".into(),
            asker: "00000001001234567001".into(),
            subject: "ab".repeat(32),
            purpose: "jeugd".into(),
            action: "known".into(),
            time: 1,
            decision: "allowed".into(),
            reason: String::new(),
            policies: vec!["p".into()],
            categories: vec![],
        }
    }

    fn expected(b: &AnswerBody) -> Expected<'_> {
        Expected {
            request_id: &b.request_id,
            source: &b.source,
            asker: &b.asker,
            subject: &b.subject,
            purpose: &b.purpose,
            action: &b.action,
            categories: None,
        }
    }

    #[test]
    fn a_signed_answer_checks_only_with_the_sources_key_and_the_same_question() {
        let key = NodeKey::generate().unwrap();
        let other = NodeKey::generate().unwrap();
        let b = body();
        let signed = b.sign(&key).unwrap();
        let vk = key.public_key().verifying_key().unwrap();
        assert_eq!(check(&signed, &vk, &expected(&b)).unwrap(), b);
        let wrong = other.public_key().verifying_key().unwrap();
        assert!(check(&signed, &wrong, &expected(&b)).is_err());
        let mut other_subject = b.clone();
        other_subject.subject = "cd".repeat(32);
        assert!(check(&signed, &vk, &expected(&other_subject)).is_err());
        let mut tampered = signed.clone();
        let n = tampered.len();
        tampered[n / 2] ^= 1;
        assert!(check(&tampered, &vk, &expected(&b)).is_err());
    }
}
