//! The pipeline's contract with the gossip layer: an item that asks for an
//! early verdict hears the check's verdict before the store's outcome, and
//! nothing more when the check refused it; other items hear only the
//! outcome.

use std::time::Duration;

use handbereik_keys::{MemberId, NodeKey, Purpose, time};

use super::*;
use crate::membership::test_lists::{member_id, signed_list};
use crate::membership::{Membership, Offered, Origin};
use crate::notify::event::{Draft, sign_own};
use crate::store::Outcome;
use crate::supervisor::Supervisor;

fn jeugd() -> Purpose {
    Purpose::parse("jeugd").unwrap()
}

fn event(key: &NodeKey, source: &MemberId, seq: u64) -> Vec<u8> {
    let draft = Draft {
        event_type: "nl.samenonderhandbereik.melding.ontvangen".into(),
        purpose: jeugd(),
        subject: format!("p-{seq}"),
        dataref: format!("https://bron.example.nl/inzage/{seq}"),
        datacontenttype: "application/json".into(),
        data: b"{}".to_vec(),
    };
    sign_own(key, source, &draft, seq, time::rfc3339(time::now())).unwrap()
}

fn item(bytes: Vec<u8>, early_verdict: bool, ticket: u32) -> Item<u32> {
    Item {
        bytes,
        topic_purpose: Some(jeugd()),
        early_verdict,
        ticket,
    }
}

async fn next(updates: &mut mpsc::Receiver<Update<u32>>) -> Update<u32> {
    tokio::time::timeout(Duration::from_secs(20), updates.recv())
        .await
        .expect("an update within 20 s")
        .expect("the pipeline runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_verdict_comes_before_the_outcome_and_a_refusal_ends_there() {
    let dir = tempfile::tempdir().unwrap();
    let key = NodeKey::from_seed([7; 32]);
    let source = member_id(1);
    let (list, anchor) = signed_list(&[(1, &key)]);
    let opened = Store::open(dir.path(), 1 << 20).unwrap();
    let metrics = Metrics::new();
    let (membership, owner) =
        Membership::load("test", anchor, opened.store.clone(), metrics.clone())
            .await
            .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(owner.run(stop.clone()));
    let offered = membership.offer(list, Origin::File).await.unwrap();
    assert!(matches!(offered, Offered::Installed(_)), "{offered:?}");

    let supervisor = Supervisor::new(metrics.clone());
    let (tx, mut updates) = mpsc::channel(64);
    let ingest = spawn(&supervisor, membership, opened.store.clone(), metrics, tx);
    // One batch: a valid event wanting a verdict, a forgery wanting one,
    // and a valid event (as from sync) wanting only the outcome.
    let mut forged = event(&key, &source, 2);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    for it in [
        item(event(&key, &source, 1), true, 1),
        item(forged, true, 2),
        item(event(&key, &source, 3), false, 3),
    ] {
        assert!(ingest.submit(it).await);
    }

    // Items may fall into one batch or several; per item the order holds.
    let mut seen = Vec::new();
    while seen.len() < 4 {
        match next(&mut updates).await {
            Update::Checked(verdicts) => {
                assert!(!verdicts.is_empty(), "no empty verdict messages");
                for (ticket, verdict) in verdicts {
                    seen.push((ticket, "checked", verdict.is_ok()));
                }
            }
            Update::Done(report) => {
                if let Ok((_, outcome)) = &report.result {
                    assert!(matches!(outcome, Outcome::Stored { .. }), "{outcome:?}");
                }
                seen.push((report.ticket, "done", report.result.is_ok()));
            }
        }
    }
    let of = |ticket: u32| -> Vec<(&str, bool)> {
        seen.iter()
            .filter(|(t, _, _)| *t == ticket)
            .map(|(_, what, ok)| (*what, *ok))
            .collect()
    };
    assert_eq!(of(1), [("checked", true), ("done", true)], "{seen:?}");
    assert_eq!(of(2), [("checked", false)], "{seen:?}");
    assert_eq!(of(3), [("done", true)], "{seen:?}");
    // Nothing more: the forgery's verdict was all there was to say of it.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), updates.recv())
            .await
            .is_err(),
        "no outcome after a refused verdict: {seen:?}"
    );
    stop.cancel();
}
