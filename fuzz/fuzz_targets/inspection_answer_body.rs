//! The body of an answer behind its signature: signed here with the
//! source's key; what is expected is made to agree with the body where it
//! decodes, so the date and category checks after the decoder run too.
#![no_main]
use ed25519_dalek::VerifyingKey;
use handbereik_fuzz::{member_key, sign};
use handbereik_keys::{Domain, NodeKey, canonical};
use handbereik_node::inspect::answer::{self, AnswerBody, Expected};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static KEY: LazyLock<NodeKey> = LazyLock::new(member_key);
#[allow(clippy::expect_used)]
static VERIFYING: LazyLock<VerifyingKey> = LazyLock::new(|| {
    member_key()
        .public_key()
        .verifying_key()
        .expect("a valid point")
});

fuzz_target!(|data: &[u8]| {
    let signed = sign(Domain::InspectionResponse, data, &KEY);
    let body: Option<AnswerBody> = canonical::from_slice(data, "inspection response").ok();
    let b = body.unwrap_or_else(|| AnswerBody {
        request_id: String::new(),
        source: String::new(),
        asker: String::new(),
        subject: String::new(),
        purpose: String::new(),
        action: String::new(),
        time: 0,
        decision: String::new(),
        reason: String::new(),
        policies: Vec::new(),
        categories: Vec::new(),
    });
    let asked: Vec<String> = b.categories.iter().map(|c| c.category.clone()).collect();
    let expected = Expected {
        request_id: &b.request_id,
        source: &b.source,
        asker: &b.asker,
        subject: &b.subject,
        purpose: &b.purpose,
        action: &b.action,
        categories: Some(&asked),
    };
    if let Ok(checked) = answer::check(&signed, &VERIFYING, &expected) {
        let _ = checked.has_records();
        let _ = checked.given();
    }
});
