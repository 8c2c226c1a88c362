//! The body of an inspection request behind its signature: signed here with
//! the asker's key; the plain request is made to agree with the body where
//! the body decodes, so every field check after the decoder runs too.
#![no_main]
use handbereik_fuzz::{NOW, member_key, sign};
use handbereik_keys::{Domain, NodeKey, PublicKey, canonical};
use handbereik_node::inspect::ask::{self, AskBody, Plain};
use handbereik_node::inspect::policy::Action;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static KEY: LazyLock<NodeKey> = LazyLock::new(member_key);
static PUBLIC: LazyLock<PublicKey> = LazyLock::new(|| member_key().public_key());

fuzz_target!(|data: &[u8]| {
    let signed = sign(Domain::InspectionRequest, data, &KEY);
    let body: Option<AskBody> = canonical::from_slice(data, "inspection request").ok();
    let (request_id, asker, subject, purpose, action, categories) = match &body {
        Some(b) => (
            b.request_id.clone(),
            b.asker.clone(),
            b.subject.clone(),
            b.purpose.clone(),
            b.action.clone(),
            b.categories.clone(),
        ),
        None => Default::default(),
    };
    let action = match action.as_str() {
        "known" => Action::Known,
        "report" => Action::Report,
        "task" => Action::Task,
        _ => Action::Inspect,
    };
    let plain = Plain {
        request_id: &request_id,
        asker: &asker,
        subject: &subject,
        purpose: &purpose,
        action,
        categories: &categories,
    };
    let now = body.as_ref().map_or(NOW, |b| b.time);
    if let Ok(body) = ask::check(&signed, &PUBLIC, &plain, now) {
        let _ = ask::check_form("signed_request.actor", &body.actor);
        let _ = ask::check_actor("signed_request.actor", &body.actor, None);
        if let Some(reason) = &body.emergency {
            let _ = ask::check_reason("signed_request.emergency", reason);
        }
    }
});
