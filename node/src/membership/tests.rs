//! Tests of the membership owner: races between offers, version-checked
//! storage across a restart, and refusals counted by reason.

use std::time::Duration;

use handbereik_keys::{Domain, GovernanceSet, MemberList, NodeKey, SignedEnvelope, canonical};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::store::Opened;

struct Gov {
    key: NodeKey,
}

impl Gov {
    fn new() -> Self {
        Gov {
            key: NodeKey::from_seed([9; 32]),
        }
    }

    fn anchor(&self) -> Anchor {
        Anchor::new([self.key.public_key()], 1).unwrap()
    }

    fn list(&self, network: &str, version: u64, expires_in: i64) -> Vec<u8> {
        let now = handbereik_keys::time::now();
        let list = MemberList {
            network: network.into(),
            version,
            issued_at: now - 1000,
            expires_at: now.saturating_add_signed(expires_in),
            governance: GovernanceSet::new(vec![self.key.public_key()], 1).unwrap(),
            members: Vec::new(),
            revoked: Vec::new(),
            profile: Default::default(),
        };
        let body = canonical::to_vec(&list, "member list").unwrap();
        SignedEnvelope::signed(Domain::MemberList, body, &self.key)
            .encode()
            .unwrap()
    }
}

async fn start(
    dir: &std::path::Path,
    gov: &Gov,
) -> (Membership, Opened, Arc<Metrics>, CancellationToken) {
    let opened = Store::open(dir, 1 << 20).unwrap();
    let metrics = Metrics::new();
    let (membership, owner) =
        Membership::load("test", gov.anchor(), opened.store.clone(), metrics.clone())
            .await
            .unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(owner.run(stop.clone()));
    (membership, opened, metrics, stop)
}

async fn restart(
    dir: &std::path::Path,
    gov: &Gov,
    opened: Opened,
    stop: CancellationToken,
) -> (Membership, Opened, Arc<Metrics>, CancellationToken) {
    stop.cancel();
    opened.store.close().await.unwrap();
    assert!(opened.writer.join(Duration::from_secs(30)).await);
    drop(opened.store);
    // The owner task holds a store clone until it sees the stop.
    for _ in 0..200 {
        if let Ok(again) = Store::open(dir, 1 << 20) {
            again.store.close().await.unwrap();
            assert!(again.writer.join(Duration::from_secs(30)).await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start(dir, gov).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_offers_keep_disk_and_memory_on_the_newest_list() {
    let gov = Gov::new();
    let dir = tempfile::tempdir().unwrap();
    let (mut membership, mut opened, _, mut stop) = start(dir.path(), &gov).await;
    let mut newest = 0;
    for round in 0..20u64 {
        let versions: Vec<u64> = (1..=6).map(|i| round * 10 + (i * 7 % 6) + 1).collect();
        newest = newest.max(*versions.iter().max().unwrap());
        let offers = versions.iter().map(|v| {
            let m = membership.clone();
            let bytes = gov.list("test", *v, 3600);
            let origin = if v % 2 == 0 {
                Origin::Gossip
            } else {
                Origin::File
            };
            async move { m.offer(bytes, origin).await.unwrap() }
        });
        futures::future::join_all(offers).await;
        assert_eq!(membership.view().version(), newest, "round {round}");
        if round % 5 == 4 {
            (membership, opened, _, stop) = restart(dir.path(), &gov, opened, stop).await;
            assert_eq!(
                membership.view().version(),
                newest,
                "after a restart the node holds the newest list it ever installed"
            );
        }
    }
}

#[tokio::test]
async fn refused_lists_are_counted_by_reason() {
    let gov = Gov::new();
    let dir = tempfile::tempdir().unwrap();
    let (membership, _opened, metrics, _stop) = start(dir.path(), &gov).await;
    assert_eq!(
        membership
            .offer(gov.list("test", 5, 3600), Origin::File)
            .await
            .unwrap(),
        Offered::Installed(5)
    );
    assert_eq!(
        membership
            .offer(gov.list("test", 5, 3600), Origin::Gossip)
            .await
            .unwrap(),
        Offered::Held
    );
    let cases: Vec<(Vec<u8>, RefusalReason)> = vec![
        (gov.list("test", 3, 3600), RefusalReason::Older),
        (gov.list("other", 9, 3600), RefusalReason::WrongNetwork),
        (gov.list("test", 9, -10), RefusalReason::Expired),
        (b"garbage".to_vec(), RefusalReason::Malformed),
        (
            {
                let mut forged = gov.list("test", 9, 3600);
                let at = forged.len() / 2;
                forged[at] ^= 1;
                forged
            },
            RefusalReason::Signatures,
        ),
    ];
    for (bytes, reason) in cases {
        match membership
            .offer(bytes.clone(), Origin::Gossip)
            .await
            .unwrap()
        {
            Offered::Refused(got, message) => {
                assert!(
                    got == reason
                        || (reason == RefusalReason::Signatures && got == RefusalReason::Malformed),
                    "{reason:?}: got {got:?} ({message})"
                );
                assert!(message.len() < 300, "{message}");
                // Offered again: refused again, counted again, not verified again.
                assert!(matches!(
                    membership.offer(bytes, Origin::Gossip).await.unwrap(),
                    Offered::Refused(..)
                ));
                assert_eq!(metrics.lists_refused_count(got.label()), 2, "{reason:?}");
            }
            other => panic!("{reason:?}: {other:?}"),
        }
    }
    assert_eq!(membership.view().version(), 5);
}

#[tokio::test]
async fn a_full_queue_drops_offers_instead_of_queueing_work() {
    let gov = Gov::new();
    let dir = tempfile::tempdir().unwrap();
    let opened = Store::open(dir.path(), 1 << 20).unwrap();
    let (membership, _owner) =
        Membership::load("test", gov.anchor(), opened.store.clone(), Metrics::new())
            .await
            .unwrap();
    // The owner is not running: the queue fills and then refuses.
    let taken = (0..100)
        .filter(|i| {
            membership
                .try_offer(gov.list("test", *i + 1, 3600), Origin::Gossip)
                .is_some()
        })
        .count();
    assert_eq!(taken, OFFER_QUEUE);
}
