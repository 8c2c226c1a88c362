//! Witnessed audit with real nodes (in-process, real TLS and sled, on
//! loopback): every member holds the others' latest checkpoints, a member's
//! `Audit.Verify` finds its checkpoint held and countersigned by the
//! witnesses, and a forged checkpoint (signed by a key that is not the
//! member's) is refused by the witnesses and does not replace what they
//! hold.

use std::time::Duration;

use anyhow::{Result, ensure};
use handbereik_keys::{Domain, NodeKey, SignedEnvelope, canonical};
use handbereik_node::audit::Checkpoint;
use handbereik_proto::v1 as pb;
use handbereik_tests::net::{TestNet, bsn, jeugd, wait_until};

/// Generous bounds for a busy two-core machine.
const PATIENCE: Duration = Duration::from_secs(60);

async fn verify(net: &TestNet, node: usize) -> Result<pb::AuditVerifyResponse> {
    Ok(net.nodes[node]
        .audit()
        .await?
        .verify(pb::AuditVerifyRequest {})
        .await?
        .into_inner())
}

/// Waits until every other node holds node `node`'s checkpoint of its
/// whole log, as its Verify reports; answers that report.
async fn witnessed(net: &TestNet, node: usize) -> Result<pb::AuditVerifyResponse> {
    let others = (net.nodes.len() - 1) as u32;
    let mut last = None;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        let r = verify(net, node).await?;
        let whole = r
            .witnesses
            .iter()
            .all(|w| w.outcome == "agrees" && w.sequence == r.entries);
        if r.ok && r.entries > 0 && r.witnesses_agreeing == others && whole {
            return Ok(r);
        }
        last = Some(r);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("the witnesses did not come to hold node {node}'s whole log: {last:?}")
}

fn forged(key: &NodeKey, member: &str, seq: u64) -> Result<Vec<u8>> {
    let body = canonical::to_vec(
        &Checkpoint {
            member: member.to_string(),
            seq,
            hash: [0xee; 32],
            time: handbereik_keys::time::now(),
        },
        "audit checkpoint",
    )?;
    Ok(SignedEnvelope::signed(Domain::AuditCheckpoint, body, key).encode()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_checkpoint_is_refused_and_does_not_replace_the_held_one() -> Result<()> {
    let mut net = TestNet::new(3, &[jeugd()], 5)?;
    net.up().await?;
    // Entries in node 0's log: node 1 asks it twice.
    for _ in 0..2 {
        net.nodes[1]
            .inspections()
            .await?
            .known(pb::KnownRequest {
                actor: None,
                member_id: net.nodes[0].member_id.to_string(),
                subject: bsn("111222333"),
                purpose: jeugd().to_string(),
                deadline_ms: 5000,
            })
            .await?;
    }
    let before = witnessed(&net, 0).await?;
    ensure!(before.entries == 2, "{before:?}");
    ensure!(before.node_keys.len() == 1, "{before:?}");

    // Node 2 gossips checkpoints that claim to be node 0's, far ahead of
    // its log: one signed with node 2's own (member) key, one with a key
    // that is no member's.
    let victim = net.nodes[0].member_id.to_string();
    let stranger = NodeKey::generate()?;
    let p2p = net.nodes[2].handle()?.p2p().clone();
    p2p.publish_checkpoint(forged(&net.nodes[2].key, &victim, 50)?)
        .await?;
    p2p.publish_checkpoint(forged(&stranger, &victim, 60)?)
        .await?;
    let witness = net.nodes[1].metrics()?.clone();
    wait_until(PATIENCE, "node 1 refused both forgeries", || {
        let witness = witness.clone();
        async move {
            witness.witness_checkpoints_count("wrong_member") >= 1
                && witness.witness_checkpoints_count("unknown_signer") >= 1
        }
    })
    .await?;

    // What the witnesses hold of node 0 did not move: its verify still
    // finds both witnesses agreeing at entry 2, and no alarm was raised.
    let after = verify(&net, 0).await?;
    ensure!(after.ok, "{after:?}");
    ensure!(after.witnesses_agreeing == 2, "{after:?}");
    for w in &after.witnesses {
        ensure!(w.sequence == 2 && w.head_hash == before.head_hash, "{w:?}");
    }
    for node in [1, 2] {
        let status = net.nodes[node]
            .node_client()
            .await?
            .status(pb::StatusRequest {})
            .await?
            .into_inner();
        ensure!(status.audit_alarms.is_empty(), "{:?}", status.audit_alarms);
        let m = net.nodes[node].metrics()?;
        ensure!(m.audit_witness_alarms.get() == 0);
    }
    // Node 0 witnesses the others in turn (node 1 logged its asks).
    let one = witnessed(&net, 1).await?;
    ensure!(
        one.witnesses.iter().any(|w| w.member_id == victim),
        "{one:?}"
    );
    ensure!(
        net.nodes[0]
            .metrics()?
            .witness_checkpoints_count("accepted")
            >= 1
    );
    Ok(())
}
