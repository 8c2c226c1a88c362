//! The BSN never leaves the node: a whole flow with subjects given by BSN
//! (through the local API and the CLI, with one node as a separate process
//! logging at debug level), then every stored file, the log, the answers and
//! the CLI output are searched for the BSN digits. The CLI commands for
//! inspection and audit are checked on the way.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use handbereik_proto::v1 as pb;
use handbereik_tests::bin;
use handbereik_tests::net::{TestNet, bsn, entry, jeugd};

const BSN_A: &str = "111222333";
const BSN_B: &str = "123456782";

/// `handbereik` run as a process for the node in `dir`; killed when dropped.
struct Proc {
    child: Child,
    log: PathBuf,
    api: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn start_process(dir: &Path) -> Result<Proc> {
    let log = dir.join("node.log");
    let child = Command::new(bin("handbereik")?)
        .arg("run")
        .arg("--config")
        .arg(dir.join("handbereik.toml"))
        .args(["--set", "local_api.listen=127.0.0.1:0"])
        .env("HANDBEREIK_LOG_LEVEL", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("starting handbereik run")?;
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("node started")) {
            let api = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("local_api="))
                .context("local_api= in the start line")?
                .trim_matches('"')
                .to_string();
            return Ok(Proc { child, log, api });
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the node did not start: {text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the CLI against the node in `dir`; returns stdout + stderr.
fn cli(dir: &Path, api: Option<&str>, args: &[&str]) -> Result<(bool, String)> {
    let mut cmd = Command::new(bin("handbereik")?);
    cmd.args(args)
        .arg("--config")
        .arg(dir.join("handbereik.toml"));
    if let Some(api) = api {
        cmd.args(["--api", api]);
    }
    let out = cmd.output().context("running handbereik")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

async fn cli_async(dir: PathBuf, api: Option<String>, args: Vec<String>) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, text) = cli(&dir, api.as_deref(), &args)?;
        if !ok {
            bail!("handbereik {args:?} failed: {text}");
        }
        Ok(text)
    })
    .await?
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                files_under(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bsn_appears_in_no_file_log_answer_or_output() -> Result<()> {
    let mut net = TestNet::new(3, &[jeugd()], 5)?;
    net.up().await?;
    // Node 1 runs as its own process, logging at debug level to a file.
    net.nodes[1].stop().await;
    let dir1 = net.nodes[1].dir.clone();
    let mut proc1 = start_process(&dir1)?;
    let api1 = proc1.api.clone();
    let mut captured = String::new();

    for (category, content) in [
        ("betrokkenheid", r#"{"contact":"wijkteam"}"#),
        ("melding", r#"{"zorg":"hoog"}"#),
    ] {
        captured += &cli_async(
            dir1.clone(),
            Some(api1.clone()),
            strings(&[
                "register",
                "--bsn",
                BSN_A,
                "--category",
                category,
                "--legal-basis",
                "Jeugdwet art. 7.1.1.1",
                "--retain-days",
                "30",
                "--content",
                content,
            ]),
        )
        .await?;
    }
    net.nodes[2]
        .registry()
        .await?
        .register(pb::RegisterRequest {
            subject: bsn(BSN_B),
            entry: entry("betrokkenheid", "{}"),
        })
        .await
        .map(|r| captured += &format!("{r:?}"))?;

    let dir0 = net.nodes[0].dir.clone();
    let member1 = net.nodes[1].member_id.to_string();
    let api0 = net.nodes[0].handle()?.local_api().to_string();
    let located = cli_async(
        dir0.clone(),
        Some(api0.clone()),
        strings(&["locate", "--purpose", "jeugdbescherming", "--bsn", BSN_A]),
    )
    .await?;
    assert!(located.contains(member1.as_str()), "{located}");
    assert!(
        located
            .lines()
            .any(|l| l.contains(&member1) && l.contains("  known  ")),
        "{located}"
    );
    captured += &located;
    let inspected = cli_async(
        dir0.clone(),
        Some(api0.clone()),
        strings(&[
            "inspect",
            "--member",
            &member1,
            "--purpose",
            "jeugdbescherming",
            "--bsn",
            BSN_A,
            "--category",
            "melding",
            "--category",
            "veiligheidsplan",
        ]),
    )
    .await?;
    assert!(inspected.contains("melding  allowed"), "{inspected}");
    assert!(inspected.contains(r#"{"zorg":"hoog"}"#), "{inspected}");
    assert!(
        inspected.contains("veiligheidsplan  refused  policies: never-strictly-confidential"),
        "{inspected}"
    );
    assert!(
        inspected.contains(&format!("signed by {member1}")),
        "{inspected}"
    );
    captured += &inspected;
    let known = net.nodes[0]
        .inspections()
        .await?
        .known(pb::KnownRequest {
            actor: None,
            member_id: member1.clone(),
            subject: bsn(BSN_A),
            purpose: jeugd().to_string(),
            deadline_ms: 5000,
        })
        .await?
        .into_inner();
    let signed = known
        .answer
        .as_ref()
        .and_then(|a| a.provenance.as_ref())
        .map(|p| p.signed_answer.clone())
        .context("a signed answer")?;
    captured += &format!("{known:?}");

    let report = cli_async(
        dir1.clone(),
        Some(api1.clone()),
        strings(&["audit", "report", "--bsn", BSN_A]),
    )
    .await?;
    assert!(report.contains("Disclosed by this partner:"), "{report}");
    assert!(
        report.contains(&format!("to {}", net.nodes[0].member_id)),
        "{report}"
    );
    assert!(report.contains("Refused or unanswered: 0"), "{report}");
    captured += &report;
    let verified = cli_async(
        dir1.clone(),
        Some(api1.clone()),
        strings(&["audit", "verify"]),
    )
    .await?;
    assert!(verified.starts_with("audit log ok: "), "{verified}");
    captured += &cli_async(
        dir1.clone(),
        Some(api1.clone()),
        strings(&["registry", "list", "--bsn", BSN_A]),
    )
    .await?;
    // The in-process side of the same flow, through gRPC.
    let inspected = net.nodes[0]
        .inspections()
        .await?
        .inspect(pb::InspectRequest {
            actor: None,
            emergency_reason: String::new(),
            member_id: member1.clone(),
            subject: bsn(BSN_A),
            purpose: jeugd().to_string(),
            categories: vec!["melding".into()],
            deadline_ms: 5000,
        })
        .await?
        .into_inner();
    assert_eq!(inspected.categories[0].records.len(), 1, "{inspected:?}");
    let signed_inspect = inspected
        .provenance
        .as_ref()
        .map(|p| p.signed_answer.clone())
        .context("a signed inspect answer")?;
    captured += &format!("{inspected:?}");
    let obtained = net.nodes[0]
        .audit()
        .await?
        .subject_report(pb::SubjectReportRequest {
            subject: bsn(BSN_A),
        })
        .await?
        .into_inner();
    assert!(!obtained.obtained.is_empty(), "{obtained:?}");
    captured += &format!("{obtained:?}");
    let located_b = net.nodes[0]
        .inspections()
        .await?
        .locate(pb::LocateRequest {
            actor: None,
            subject: bsn(BSN_B),
            purpose: jeugd().to_string(),
            deadline_ms: 5000,
            regions: Vec::new(),
        })
        .await?
        .into_inner();
    captured += &format!("{located_b:?}");

    // Erase B where it was registered (node 2, in-process), by the CLI.
    let dir2 = net.nodes[2].dir.clone();
    let api2 = net.nodes[2].handle()?.local_api().to_string();
    let erased = cli_async(dir2, Some(api2), strings(&["erase", "--bsn", BSN_B])).await?;
    assert!(erased.contains(": 1 entries removed"), "{erased}");
    captured += &erased;

    // A running node's directory cannot be verified offline.
    let dir1c = dir1.clone();
    let (ok, text) =
        tokio::task::spawn_blocking(move || cli(&dir1c, None, &["audit", "verify", "--offline"]))
            .await??;
    assert!(!ok && text.contains("the node is running"), "{text}");

    // Stop everything, then verify offline and search.
    let status = Command::new("kill")
        .args(["-TERM", &proc1.child.id().to_string()])
        .status()?;
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while proc1.child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            bail!("node 1 did not stop after SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for node in &mut net.nodes {
        node.stop().await;
    }
    let dir1c = dir1.clone();
    let (ok, text) =
        tokio::task::spawn_blocking(move || cli(&dir1c, None, &["audit", "verify", "--offline"]))
            .await??;
    assert!(ok && text.starts_with("audit log ok: "), "{text}");

    let log = std::fs::read_to_string(&proc1.log)?;
    assert!(
        log.contains("node started") && log.contains("DEBUG"),
        "the log is at debug level"
    );
    let mut files = Vec::new();
    files_under(net.tmp.path(), &mut files);
    assert!(files.len() > 10, "{files:?}");
    for bsn in [BSN_A, BSN_B] {
        assert!(!captured.contains(bsn), "captured output holds the BSN");
        assert!(!signed.windows(9).any(|w| w == bsn.as_bytes()));
        assert!(!signed_inspect.windows(9).any(|w| w == bsn.as_bytes()));
        for f in &files {
            let bytes = std::fs::read(f)?;
            assert!(
                !bytes.windows(9).any(|w| w == bsn.as_bytes()),
                "{} holds the BSN",
                f.display()
            );
        }
    }
    Ok(())
}
