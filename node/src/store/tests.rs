//! Tests of the store through its public handle: group commit, ordering of
//! the inbox, reopen, close, versioned writes, and many databases at once.

use std::time::Duration;

use handbereik_keys::{MemberId, Purpose};

use super::*;

fn stream(purpose: &str) -> StreamId {
    StreamId::new(
        MemberId::parse("00000001001234567000").unwrap(),
        Purpose::parse(purpose).unwrap(),
    )
}

fn incoming(s: &StreamId, seq: u64) -> Incoming {
    Incoming {
        stream: s.clone(),
        seq,
        bytes: format!("event {seq}").into_bytes(),
    }
}

fn open(dir: &Path) -> Opened {
    Store::open(dir, 1 << 20).unwrap()
}

fn seqs(store: &Store) -> Vec<(u64, u64)> {
    store
        .inbox_after(0, 100)
        .unwrap()
        .iter()
        .map(|e| (e.position, e.seq))
        .collect()
}

#[tokio::test]
async fn duplicates_gaps_hold_back_and_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let s = stream("jeugd");
    {
        let Opened { store, writer, .. } = open(dir.path());
        let out = store
            .ingest(vec![incoming(&s, 1), incoming(&s, 1), incoming(&s, 4)])
            .await
            .unwrap();
        assert_eq!(out[0], Outcome::Stored { gap: None });
        assert_eq!(out[1], Outcome::Duplicate, "a duplicate within one batch");
        assert_eq!(out[2], Outcome::Stored { gap: Some((2, 3)) });
        assert_eq!(store.mark(&s).unwrap(), 1);
        assert_eq!(seqs(&store), [(1, 1)], "4 is held until 2 and 3 arrive");
        store.close().await.unwrap();
        assert!(writer.join(Duration::from_secs(30)).await);
    }
    // Reopened: the mark, the held event and the inbox are all remembered.
    let Opened { store, .. } = open(dir.path());
    assert_eq!(store.mark(&s).unwrap(), 1);
    assert_eq!(
        store.ingest(vec![incoming(&s, 4)]).await.unwrap(),
        vec![Outcome::Duplicate]
    );
    store
        .ingest(vec![incoming(&s, 3), incoming(&s, 2)])
        .await
        .unwrap();
    assert_eq!(store.mark(&s).unwrap(), 4, "the gap is filled");
    assert_eq!(
        seqs(&store),
        [(1, 1), (2, 2), (3, 3), (4, 4)],
        "delivered in sequence order, not in arrival order"
    );
    let page = store.events_from(&s, 1, 10, 100, 1 << 20).unwrap();
    assert_eq!(page.len(), 4);
    assert_eq!(page[3], b"event 4");
}

#[tokio::test]
async fn a_gap_that_stays_open_is_passed_with_the_gap_noted() {
    let dir = tempfile::tempdir().unwrap();
    let Opened { store, .. } = open(dir.path());
    let s = stream("jeugd");
    store
        .ingest(vec![incoming(&s, 1), incoming(&s, 3)])
        .await
        .unwrap();
    assert_eq!(store.pass_gaps(Duration::from_secs(3600)).await.unwrap(), 0);
    assert_eq!(store.pass_gaps(Duration::ZERO).await.unwrap(), 1);
    let inbox = store.inbox_after(0, 10).unwrap();
    assert_eq!(inbox[1].seq, 3);
    assert_eq!(inbox[1].note, Note::AfterGap { from: 2, to: 2 });
    store.ingest(vec![incoming(&s, 2)]).await.unwrap();
    let inbox = store.inbox_after(2, 10).unwrap();
    assert_eq!((inbox[0].seq, inbox[0].note), (2, Note::Late));
}

#[tokio::test]
async fn own_events_are_numbered_per_stream_fed_in_order_and_kept_out_of_the_inbox() {
    let dir = tempfile::tempdir().unwrap();
    let Opened {
        store,
        mut published,
        ..
    } = open(dir.path());
    let a = stream("jeugd");
    let b = stream("zorg");
    let mut calls = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        let a = a.clone();
        calls.push(tokio::spawn(async move {
            store
                .append_own(a, Box::new(|seq| Ok(seq.to_be_bytes().to_vec())))
                .await
                .unwrap()
        }));
    }
    for call in calls {
        call.await.unwrap();
    }
    let (seq, _) = store
        .append_own(b.clone(), Box::new(|seq| Ok(vec![seq as u8])))
        .await
        .unwrap();
    assert_eq!(seq, 1, "each purpose has its own sequence");
    let fed: Vec<u64> = (0..20)
        .map(|_| published.try_recv().unwrap())
        .filter(|p| p.stream == a)
        .map(|p| p.seq)
        .collect();
    assert_eq!(
        fed,
        (1..=20).collect::<Vec<_>>(),
        "gossiped in numbering order"
    );
    assert_eq!(*store.inbox_head().borrow(), 0);
    assert_eq!(store.marks().unwrap().len(), 2);
    let failed = store
        .append_own(a.clone(), Box::new(|_| Err("cannot sign".into())))
        .await;
    assert!(matches!(failed, Err(StoreError::Build(_))), "{failed:?}");
    let (seq, _) = store
        .append_own(a, Box::new(|seq| Ok(vec![seq as u8])))
        .await
        .unwrap();
    assert_eq!(seq, 21, "a failed build uses up no number");
}

#[tokio::test]
async fn versioned_writes_never_go_back() {
    let dir = tempfile::tempdir().unwrap();
    let Opened { store, .. } = open(dir.path());
    store
        .put_meta_versioned("v", 2, vec![("list", b"two".to_vec())])
        .await
        .unwrap();
    let older = store
        .put_meta_versioned("v", 1, vec![("list", b"one".to_vec())])
        .await;
    assert!(
        matches!(
            older,
            Err(StoreError::NotNewer {
                stored: 2,
                offered: 1
            })
        ),
        "{older:?}"
    );
    // Two offers in one group commit: only the newer one lands.
    let (a, b) = tokio::join!(
        store.put_meta_versioned("v", 4, vec![("list", b"four".to_vec())]),
        store.put_meta_versioned("v", 3, vec![("list", b"three".to_vec())]),
    );
    assert!(a.is_ok() || b.is_ok());
    assert_eq!(store.meta("list").unwrap().unwrap(), b"four");
}

#[tokio::test]
async fn a_closed_store_refuses_writes_and_has_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let s = stream("jeugd");
    let Opened { store, writer, .. } = open(dir.path());
    store.ingest(vec![incoming(&s, 1)]).await.unwrap();
    let clone = store.clone();
    store.close().await.unwrap();
    assert!(matches!(
        clone.ingest(vec![incoming(&s, 2)]).await,
        Err(StoreError::Closed)
    ));
    store.close().await.unwrap();
    assert!(writer.join(Duration::from_secs(30)).await);
    // The clone is still alive, yet the database can be opened again: closed means released.
    drop(store);
    drop(clone);
    let Opened { store, .. } = open(dir.path());
    assert_eq!(store.mark(&s).unwrap(), 1);
}

#[tokio::test]
async fn the_change_log_names_each_moved_stream_once_at_its_latest_change() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (stream("a"), stream("b"), stream("c"));
    let epoch;
    {
        let Opened { store, writer, .. } = open(dir.path());
        epoch = store.sync_epoch();
        assert_ne!(epoch, 0);
        store
            .ingest(vec![incoming(&a, 1), incoming(&b, 1)])
            .await
            .unwrap();
        let first = store.changes_since(0, 100).unwrap();
        assert_eq!(first.marks.len(), 2);
        assert!(!first.more);
        // Only a moves now; c gets an event above a gap (its mark stays 0).
        store
            .ingest(vec![incoming(&a, 2), incoming(&c, 5)])
            .await
            .unwrap();
        let later = store.changes_since(first.next, 100).unwrap();
        assert_eq!(later.marks, vec![(a.clone(), 2)], "only what moved since");
        let all = store.changes_since(0, 100).unwrap();
        assert_eq!(
            all.marks.len(),
            2,
            "a stream appears once, at its latest change"
        );
        let paged = store.changes_since(0, 1).unwrap();
        assert_eq!(paged.marks.len(), 1);
        assert!(paged.more);
        store.close().await.unwrap();
        assert!(writer.join(Duration::from_secs(30)).await);
    }
    let Opened { store, .. } = open(dir.path());
    assert_eq!(store.sync_epoch(), epoch, "the epoch survives a restart");
    let before = store.changes_since(0, 100).unwrap().next;
    store.ingest(vec![incoming(&b, 2)]).await.unwrap();
    let after = store.changes_since(before, 100).unwrap();
    assert_eq!(after.marks, vec![(b, 2)], "numbers go on after a restart");
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _open = open(dir.path());
    let err = Store::open(dir.path(), 1 << 20)
        .err()
        .expect("second open must fail");
    assert!(
        err.to_string().contains("locked by another process"),
        "{err}"
    );
}

/// sled 0.34's `flush_async` locks up with concurrent flushes, worst with
/// several databases in one process. The writer flushes on its own thread;
/// this runs many databases through thousands of group commits at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_databases_in_one_process_never_lock_up() {
    const DATABASES: usize = 12;
    const WRITERS: usize = 8;
    const COMMITS: u64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let mut jobs = Vec::new();
    let mut stores = Vec::new();
    for d in 0..DATABASES {
        let Opened { store, writer, .. } = open(&dir.path().join(d.to_string()));
        stores.push((store.clone(), writer));
        for w in 0..WRITERS {
            let store = store.clone();
            jobs.push(tokio::spawn(async move {
                let s = stream(&format!("p{w}"));
                for seq in 1..=COMMITS {
                    store.ingest(vec![incoming(&s, seq)]).await.unwrap();
                }
            }));
        }
    }
    let all = futures::future::join_all(jobs);
    let done = tokio::time::timeout(Duration::from_secs(240), all)
        .await
        .expect("the group commits finished (no lock-up)");
    assert!(done.iter().all(Result::is_ok));
    for (store, writer) in stores {
        assert_eq!(store.marks().unwrap().len(), WRITERS);
        assert_eq!(*store.inbox_head().borrow(), WRITERS as u64 * COMMITS);
        store.close().await.unwrap();
        assert!(writer.join(Duration::from_secs(30)).await);
    }
}
