//! Witnessed audit, acceptance: a node whose audit log is rewritten while
//! it is stopped (an entry changed, the whole chain and its checkpoints
//! recomputed and re-signed with its own key, so the log verifies on its
//! own) is caught by its peers within one checkpoint interval of its
//! restart: an alarm in `Status`, in the metric, in an error log line and
//! on the witness's local event stream; and its own `audit verify` fails on
//! the witnesses' copies while `--offline` (local chain only) passes and
//! says that witnesses were not asked.
//!
//! Real `handbereik run` processes on loopback, made with the CLIs.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use handbereik_proto::v1 as pb;
use handbereik_tests::net::bsn;
use handbereik_tests::proc::cli;
use handbereik_tests::procnet::{Api, CALL, PURPOSE, PartnerSpec, ProcNet, Tuning, within};

/// The checkpoint interval of every node: the alarm must come within one.
const INTERVAL: Duration = Duration::from_secs(60);
/// Bounds for everything else on a busy two-core machine.
const PATIENCE: Duration = Duration::from_secs(90);
const SOURCE: usize = 0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_audit_log_raises_an_alarm_at_a_witness_within_one_interval() -> Result<()> {
    let specs = [
        PartnerSpec::loopback("source"),
        PartnerSpec::loopback("witness-a"),
        PartnerSpec::loopback("witness-b"),
    ];
    let tuning = Tuning {
        checkpoint_secs: INTERVAL.as_secs(),
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

/// Polls the source's Verify until both witnesses hold its checkpoint of
/// `entries` entries.
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
    bail!("the witnesses did not come to hold the source's {entries} entries: {last:?}")
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
    let source_id = net.partners[SOURCE].member_id.clone();
    let asker = net.partners[1].api().await?;
    for _ in 0..3 {
        within(
            CALL,
            "Known",
            asker.inspections().known(pb::KnownRequest {
                actor: None,
                member_id: source_id.clone(),
                subject: bsn("111222333"),
                purpose: PURPOSE.into(),
                deadline_ms: 10_000,
            }),
        )
        .await??;
    }
    // A stop checkpoints the head; the start gossips that checkpoint, and
    // both witnesses come to hold it.
    stop(net, SOURCE).await?;
    tokio::task::block_in_place(|| net.partners[SOURCE].start())?;
    let source = net.partners[SOURCE].api().await?;
    let honest = witnessed(&source, 3).await?;

    // The insider's rewrite, with the node stopped and its key at hand.
    stop(net, SOURCE).await?;
    let (entries, head) = handbereik_tests::stored::rewrite_audit(
        &net.partners[SOURCE].data_dir,
        &net.partners[SOURCE].key_file(),
        2,
    )?;
    ensure!(entries == 3);
    ensure!(
        hex_of(&head) != honest.head_hash,
        "the rewrite changed the head"
    );
    tokio::task::block_in_place(|| net.partners[SOURCE].start())?;
    let started = Instant::now();

    // At least one witness raises the alarm, within one checkpoint interval.
    let mut alarmed = None;
    while alarmed.is_none() {
        for w in [1, 2] {
            let api = net.partners[w].api().await?;
            let status = within(CALL, "Status", api.node().status(pb::StatusRequest {}))
                .await??
                .into_inner();
            if let Some(alarm) = status
                .audit_alarms
                .into_iter()
                .find(|a| a.member_id == source_id)
            {
                alarmed = Some((w, alarm));
                break;
            }
        }
        if alarmed.is_none() {
            ensure!(
                started.elapsed() < INTERVAL,
                "no witness raised an alarm within one checkpoint interval ({INTERVAL:?}) of the restart"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let (w, alarm) = alarmed.context("an alarm")?;
    eprintln!(
        "{} raised the alarm {:.1} s after the source's restart",
        net.partners[w].name,
        started.elapsed().as_secs_f64()
    );
    ensure!(
        alarm.held_entries == 3 && alarm.offered_entries == 3,
        "{alarm:?}"
    );
    ensure!(alarm.held_hash == honest.head_hash, "{alarm:?}");
    ensure!(alarm.offered_hash == hex_of(&head), "{alarm:?}");
    ensure!(alarm.problem.contains("rewritten"), "{alarm:?}");
    ensure!(
        net.partners[w].metric("handbereik_audit_witness_alarms_total")? >= 1.0,
        "the alarm metric"
    );
    let log = net.partners[w].log()?;
    ensure!(
        log.contains(|l| l.contains("ERROR")
            && l.contains("audit alarm")
            && l.contains(&source_id)),
        "an error log line naming the member"
    );

    // The privacy officer's subscription at that witness sees it.
    let api = net.partners[w].api().await?;
    let mut stream = within(
        CALL,
        "Subscribe",
        api.notifications().subscribe(pb::SubscribeRequest {
            name: "privacy-officer".into(),
            types: vec!["nl.handbereik.audit.alarm".into()],
            purposes: vec![],
            sources: vec![],
        }),
    )
    .await??
    .into_inner();
    let delivery = tokio::time::timeout(PATIENCE, stream.message())
        .await
        .context("no alarm delivered to the subscription")??
        .context("the subscription ended")?;
    let n = delivery.notification.context("a notification")?;
    let data = String::from_utf8(n.data)?;
    ensure!(n.r#type == "nl.handbereik.audit.alarm", "{}", n.r#type);
    ensure!(
        data.contains(&source_id) && data.contains("rewritten"),
        "{data}"
    );

    // The source's own verify fails on the witnesses' copies: its chain
    // verifies on its own, but not against what they hold.
    let r = verify(&source).await?;
    ensure!(!r.ok, "{r:?}");
    ensure!(r.witnesses_disagreeing >= 1, "{r:?}");
    ensure!(r.first_bad_sequence == 3, "{r:?}");
    ensure!(r.problem.contains("rewritten"), "{r:?}");
    let config = net.partners[SOURCE].config();
    let config = config.to_str().context("utf-8")?.to_string();
    let online = tokio::task::block_in_place(|| {
        cli(
            &["audit", "verify", "--config", &config],
            Duration::from_secs(60),
        )
    })?;
    ensure!(online.code != 0, "{online:?}");
    ensure!(online.stderr.contains("BROKEN at entry 3"), "{online:?}");
    ensure!(online.stdout.contains("disagrees"), "{online:?}");

    // Offline, only the local chain is checked, and it says so.
    stop(net, SOURCE).await?;
    let offline = tokio::task::block_in_place(|| {
        cli(
            &["audit", "verify", "--offline", "--config", &config],
            Duration::from_secs(60),
        )
    })?;
    ensure!(offline.code == 0, "{offline:?}");
    ensure!(
        offline.stdout.contains("witnesses not asked"),
        "{offline:?}"
    );
    Ok(())
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
