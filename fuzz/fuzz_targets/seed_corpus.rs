//! Not a fuzz target: writes the seed corpus (`fuzz/corpus/<target>/`) from
//! real encodings made with the crates' own encoders. Built with the
//! targets so it needs no second build of the dependencies; run with
//! `SEED_CORPUS_DIR=corpus cargo +nightly fuzz run seed_corpus -- -runs=1`
//! (then remove `corpus/seed_corpus/`, which cargo-fuzz creates).
//! `fuzz/ci.sh` leaves it out.
#![no_main]
#![allow(clippy::expect_used, clippy::unwrap_used)]
use handbereik_fuzz::*;
use handbereik_keys::{
    Domain, Draft, GovernanceSet, MemberId, MembershipRequest, Purpose, Role, canonical,
};
use handbereik_node::audit::{Actor, AuditEntry, Decision, Direction, Record};
use handbereik_node::inspect::answer::{AnswerBody, AnswerRecord, CategoryResult};
use handbereik_node::inspect::ask::AskBody;
use handbereik_node::notify::event::{self, Notification};
use handbereik_node::p2p::sync_protocol::{Mark, SyncRequest, SyncResponse};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fn put(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(name), bytes).unwrap();
}

fn request(created_at: u64) -> MembershipRequest {
    MembershipRequest {
        member_id: MemberId::parse(MEMBER_ID).unwrap(),
        name: "Gemeente Fuzz".into(),
        roles: vec![Role::Afnemer, Role::Bronhouder],
        purposes: vec![Purpose::parse("jeugd").unwrap()],
        p2p_addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
        grpc_endpoint: "127.0.0.1:7443".into(),
        node_key: member_key().public_key(),
        created_at,
    }
}

fn notification(sequence: u64, data: &[u8]) -> Notification {
    Notification {
        id: "0190a5b2-0000-7000-8000-000000000001".into(),
        source: event::source_urn(&MemberId::parse(MEMBER_ID).unwrap()),
        specversion: "1.0".into(),
        event_type: "nl.samenonderhandbereik.melding.ontvangen".into(),
        subject: "a3f1".repeat(16),
        time: "2027-01-15T08:00:00Z".into(),
        sequence,
        dataref: "https://example.org/melding/1".into(),
        datacontenttype: "application/json".into(),
        purpose: Purpose::parse("jeugd").unwrap(),
        data: data.to_vec(),
    }
}

fn write_all(dir: &Path) {
    let list = list();
    let body = canonical::to_vec(&list, "member list").unwrap();
    put(dir, "member_list", "list-v1", &signed_list());
    put(dir, "member_list_body", "list-v1", &body);
    let mut two = list.clone();
    two.version = 2;
    let mut m2 = two.members[0].clone();
    m2.member_id = MemberId::parse("00000001001000000002").unwrap();
    m2.node_key = handbereik_keys::NodeKey::from_seed([3; 32]).public_key();
    m2.valid_until = Some(NOW + 86_400);
    m2.regions = vec!["GM0363".into()];
    two.members.push(m2);
    let body2 = canonical::to_vec(&two, "member list").unwrap();
    put(
        dir,
        "member_list",
        "list-v2",
        &sign(Domain::MemberList, &body2, &governance_key()),
    );
    put(dir, "member_list_body", "list-v2", &body2);

    let key = member_key();
    for (name, at) in [("request", NOW), ("request-old", 1_700_000_000)] {
        let r = request(at);
        put(dir, "membership_request", name, &r.sign(&key).unwrap());
        put(
            dir,
            "membership_request_body",
            name,
            &canonical::to_vec(&r, "membership request").unwrap(),
        );
    }

    for (name, seq, data) in [("event-1", 1, &b"{\"a\":1}"[..]), ("event-2", 2, &b""[..])] {
        let n = notification(seq, data);
        let nb = canonical::to_vec(&n, "notification").unwrap();
        put(
            dir,
            "notification",
            name,
            &sign(Domain::Notification, &nb, &key),
        );
        put(dir, "notification_body", name, &nb);
    }

    let requests = [
        SyncRequest::Changes {
            epoch: 7,
            since: 12,
            list_version: 1,
        },
        SyncRequest::Fetch {
            source: MEMBER_ID.into(),
            purpose: "jeugd".into(),
            from: 1,
            to: 512,
        },
        SyncRequest::MemberList,
    ];
    for (i, r) in requests.iter().enumerate() {
        put(dir, "sync_request", &format!("request-{i}"), &cbor(r));
    }
    let event = sign(
        Domain::Notification,
        &canonical::to_vec(&notification(1, b"x"), "notification").unwrap(),
        &key,
    );
    let responses = [
        SyncResponse::Changes {
            epoch: 7,
            marks: vec![Mark {
                source: MEMBER_ID.into(),
                purpose: "jeugd".into(),
                mark: 9,
            }],
            next: 13,
            more: false,
            list_version: 1,
        },
        SyncResponse::Events {
            events: vec![serde_bytes::ByteBuf::from(event)],
        },
        SyncResponse::MemberList {
            bytes: serde_bytes::ByteBuf::from(signed_list()),
        },
        SyncResponse::Refused {
            reason: "not admitted for jeugd".into(),
        },
        SyncResponse::Busy {
            retry_after_ms: 250,
        },
    ];
    for (i, r) in responses.iter().enumerate() {
        put(dir, "sync_response", &format!("response-{i}"), &cbor(r));
    }

    let asks = [
        AskBody {
            request_id: "0190a5b2-0000-7000-8000-000000000002".into(),
            asker: MEMBER_ID.into(),
            subject: "a3f1".repeat(16),
            purpose: "jeugd".into(),
            action: "inspect".into(),
            categories: vec!["melding".into(), "veiligheidsplan".into()],
            actor: Actor {
                user: "medewerker-17".into(),
                role: "jeugdconsulent".into(),
                on_behalf_of: String::new(),
            },
            emergency: None,
            time: NOW,
        },
        AskBody {
            request_id: "r2".into(),
            asker: MEMBER_ID.into(),
            subject: "00".into(),
            purpose: "jeugd".into(),
            action: "known".into(),
            categories: Vec::new(),
            actor: Actor::default(),
            emergency: Some("acute onveiligheid".into()),
            time: NOW,
        },
    ];
    for (i, a) in asks.iter().enumerate() {
        put(
            dir,
            "inspection_request",
            &format!("ask-{i}"),
            &a.sign(&key).unwrap(),
        );
        put(
            dir,
            "inspection_request_body",
            &format!("ask-{i}"),
            &canonical::to_vec(a, "inspection request").unwrap(),
        );
    }

    let answer = AnswerBody {
        request_id: "r".into(),
        source: MEMBER_ID.into(),
        asker: MEMBER_ID.into(),
        subject: "00".into(),
        purpose: "jeugd".into(),
        action: "inspect".into(),
        time: NOW,
        decision: "allowed".into(),
        reason: String::new(),
        policies: vec!["jeugd-melding".into()],
        categories: vec![
            CategoryResult {
                category: "melding".into(),
                decision: "allowed".into(),
                policies: vec!["jeugd-melding".into()],
                records: vec![AnswerRecord {
                    category: "melding".into(),
                    kind: "wat".into(),
                    classification: "vertrouwelijk".into(),
                    legal_basis: "Jeugdwet art. 7.4.0".into(),
                    content_type: "application/json".into(),
                    content: b"{\"melding\":\"zorg\"}".to_vec(),
                    registered_at: NOW - 86_400,
                    updated_at: NOW - 3600,
                    retain_until: NOW + 365 * 86_400,
                }],
            },
            CategoryResult {
                category: "veiligheidsplan".into(),
                decision: "refused".into(),
                policies: Vec::new(),
                records: Vec::new(),
            },
        ],
    };
    let mut denied = answer.clone();
    denied.decision = "denied".into();
    denied.reason = "not admitted for jeugd".into();
    denied.categories.clear();
    for (name, a) in [("answer-allowed", &answer), ("answer-denied", &denied)] {
        put(dir, "inspection_answer", name, &a.sign(&key).unwrap());
        put(
            dir,
            "inspection_answer_body",
            name,
            &canonical::to_vec(a, "inspection response").unwrap(),
        );
    }

    let record = Record {
        direction: Direction::Served,
        peer: MEMBER_ID.into(),
        purpose: "jeugd".into(),
        subject: "a3f1".repeat(16),
        action: "inspect".into(),
        asked: vec!["melding".into()],
        given: vec!["melding".into()],
        decision: Decision::Allowed,
        policies: vec!["jeugd-melding".into()],
        request_id: "r".into(),
        actor: Actor {
            user: "medewerker-17".into(),
            role: "jeugdconsulent".into(),
            on_behalf_of: String::new(),
        },
        emergency: Some("acute onveiligheid".into()),
        signed_request: asks[0].sign(&key).unwrap(),
    };
    let e1 = AuditEntry::new(record.clone(), 1, NOW * 1000, [0; 32]);
    put(dir, "audit_entry", "entry-1", &e1.encode().unwrap());
    let mut plain = record;
    plain.direction = Direction::Asked;
    plain.decision = Decision::Denied;
    plain.actor = Actor::default();
    plain.emergency = None;
    plain.signed_request = Vec::new();
    plain.given = Vec::new();
    let e2 = AuditEntry::new(plain, 2, NOW * 1000 + 5, [7; 32]);
    put(dir, "audit_entry", "entry-2", &e2.encode().unwrap());

    let gov = governance_key();
    let set = GovernanceSet::new(vec![gov.public_key()], 1).unwrap();
    let mut draft = Draft::first("fuzz", set, 30 * 86_400, NOW).unwrap();
    put(dir, "draft", "draft-empty", &draft.encode().unwrap());
    let req = request(NOW).sign(&key).unwrap();
    draft.admit(&req, None, None, NOW).unwrap();
    put(dir, "draft", "draft-admitted", &draft.encode().unwrap());
    draft.sign(&gov).unwrap();
    put(dir, "draft", "draft-signed", &draft.encode().unwrap());

    for (name, text) in [
        ("rfc3339", "2027-12-31T00:00:00Z"),
        ("max", "9999-12-31T23:59:59Z"),
        ("fraction", "2027-01-15T08:00:00.5Z"),
        ("space", "2027-01-15 08:00:00"),
        ("duration", "30days"),
        ("durations", "1year 2months 3h 4min"),
    ] {
        put(dir, "cli_time", name, text.as_bytes());
    }
}

/// As the libp2p CBOR codec writes a message.
fn cbor<T: serde::Serialize>(v: &T) -> Vec<u8> {
    cbor4ii::serde::to_vec(Vec::new(), v).unwrap()
}

fuzz_target!(|_data: &[u8]| {
    let dir = std::env::var("SEED_CORPUS_DIR").unwrap_or_else(|_| "corpus".into());
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| write_all(Path::new(&dir)));
});
