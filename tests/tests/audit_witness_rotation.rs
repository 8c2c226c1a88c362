//! Witnessed audit, acceptance: a node whose key was rotated (stopped, a new
//! node key from `handbereik init`, governance revokes the old key and
//! admits the new one, started again) keeps a verifiable audit log:
//! `audit verify` passes over checkpoints signed by both keys, with the
//! witnesses agreeing, because each checkpoint is checked against the key
//! recorded with it and every key the node ran with is on record. A
//! checkpoint signed by a key that was never this node's fails verification,
//! named.
//!
//! Real `handbereik run` processes on loopback, made with the CLIs.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use handbereik_proto::v1 as pb;
use handbereik_tests::net::bsn;
use handbereik_tests::proc::cli;
use handbereik_tests::procnet::{Api, CALL, PURPOSE, PartnerSpec, ProcNet, Tuning, within};

const PATIENCE: Duration = Duration::from_secs(90);
const SOURCE: usize = 0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_key_rotation_verify_passes_over_checkpoints_of_both_keys() -> Result<()> {
    let specs = [
        PartnerSpec::loopback("source"),
        PartnerSpec::loopback("witness-a"),
        PartnerSpec::loopback("witness-b"),
    ];
    let tuning = Tuning {
        checkpoint_secs: 1,
        ..Tuning::default()
    };
    let mut net = tokio::task::block_in_place(|| ProcNet::create(&specs, &tuning))?;
    let result = run(&mut net).await;
    net.explain(result)
}

async fn verify(api: &Api) -> Result<pb::AuditVerifyResponse> {
    Ok(within(
        CALL,
        "Verify",
        api.audit().verify(pb::AuditVerifyRequest {}),
    )
    .await??
    .into_inner())
}

/// Polls the source's Verify until it passes with both witnesses holding
/// its checkpoint of `entries` entries.
async fn witnessed(api: &Api, entries: u64) -> Result<pb::AuditVerifyResponse> {
    let deadline = Instant::now() + PATIENCE;
    let mut last = None;
    while Instant::now() < deadline {
        let r = verify(api).await?;
        let all = r
            .witnesses
            .iter()
            .all(|w| w.outcome == "agrees" && w.sequence == entries);
        if r.ok && r.entries == entries && r.witnesses_agreeing == 2 && all {
            return Ok(r);
        }
        last = Some(r);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("verify did not pass with both witnesses at {entries} entries: {last:?}")
}

async fn ask(net: &ProcNet, times: usize) -> Result<()> {
    let asker = net.partners[1].api().await?;
    for _ in 0..times {
        let answer = within(
            CALL,
            "Known",
            asker.inspections().known(pb::KnownRequest {
                actor: None,
                member_id: net.partners[SOURCE].member_id.clone(),
                subject: bsn("111222333"),
                purpose: PURPOSE.into(),
                deadline_ms: 10_000,
            }),
        )
        .await??
        .into_inner();
        let reach = answer.answer.context("an answer")?.answer;
        ensure!(
            reach != pb::Answer::Unreachable as i32,
            "the source did not answer"
        );
    }
    Ok(())
}

async fn stop(net: &mut ProcNet, i: usize) -> Result<()> {
    let (status, _) =
        tokio::task::block_in_place(|| net.partners[i].terminate(Duration::from_secs(60)))?;
    ensure!(status.success(), "{} exited {status}", net.partners[i].name);
    Ok(())
}

async fn run(net: &mut ProcNet) -> Result<()> {
    tokio::task::block_in_place(|| net.start_all())?;
    net.wait_connected(&[0, 1, 2], PATIENCE).await?;
    let old_key = net.partners[SOURCE].public_key()?;
    ask(net, 2).await?;
    let source = net.partners[SOURCE].api().await?;
    let before = witnessed(&source, 2).await?;
    ensure!(before.node_keys == vec![old_key.clone()], "{before:?}");

    // The rotation.
    stop(net, SOURCE).await?;
    let new_key = tokio::task::block_in_place(|| net.rotate_key(SOURCE))?;
    ensure!(new_key != old_key);
    // The witnesses take the new list (polled every second) before the
    // source comes back with its new key.
    for w in [1, 2] {
        let api = net.partners[w].api().await?;
        let deadline = Instant::now() + PATIENCE;
        loop {
            let members = within(CALL, "Members", api.node().members(pb::MembersRequest {}))
                .await??
                .into_inner();
            let listed = members
                .members
                .iter()
                .any(|m| m.member_id == net.partners[SOURCE].member_id && m.node_key == new_key);
            if listed {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "{} kept the old list",
                net.partners[w].name
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    tokio::task::block_in_place(|| net.partners[SOURCE].start())?;
    net.wait_connected(&[0, 1, 2], PATIENCE).await?;
    ask(net, 2).await?;
    let after = witnessed(&source, 4).await?;
    ensure!(
        after.node_keys == vec![old_key.clone(), new_key.clone()],
        "both keys on record, oldest first: {after:?}"
    );
    ensure!(after.checkpoints >= 2, "{after:?}");

    // On disk: checkpoints signed by both keys, all verified above.
    stop(net, SOURCE).await?;
    let data = net.partners[SOURCE].data_dir.clone();
    let signers: BTreeSet<String> = handbereik_tests::stored::checkpoint_signers(&data)?
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    ensure!(
        signers == BTreeSet::from([old_key.clone(), new_key.clone()]),
        "checkpoints by both keys: {signers:?}"
    );
    let config = net.partners[SOURCE].config();
    let config = config.to_str().context("utf-8")?.to_string();
    let offline = |config: &str| {
        tokio::task::block_in_place(|| {
            cli(
                &["audit", "verify", "--offline", "--config", config],
                Duration::from_secs(60),
            )
        })
    };
    let ok = offline(&config)?;
    ensure!(ok.code == 0, "{ok:?}");
    ensure!(ok.stdout.contains("by 2 node key(s)"), "{ok:?}");

    // A checkpoint signed by a key this node never had fails, named.
    let stranger = handbereik_keys::NodeKey::generate()?;
    handbereik_tests::stored::put_checkpoint(&data, &net.partners[SOURCE].member_id, 1, &stranger)?;
    let bad = offline(&config)?;
    ensure!(bad.code != 0, "{bad:?}");
    ensure!(bad.stderr.contains("BROKEN at entry 1"), "{bad:?}");
    ensure!(
        bad.stderr.contains(&stranger.public_key().to_hex())
            && bad.stderr.contains("never ran with"),
        "{bad:?}"
    );
    Ok(())
}
