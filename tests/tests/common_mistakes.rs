//! The mistakes a partner's operator or integrator makes first, met through
//! the `handbereik` CLI as a person would meet them: each must give a
//! message that says what happened and what to do, exit 2 where the command
//! failed, and never panic. Nodes run in this process on loopback (ports
//! from the OS); the CLI runs as a separate process against their configs.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use handbereik_proto::v1 as pb;
use handbereik_tests::net::{TestNet, entry, jeugd, wait_until};
use handbereik_tests::{Run, run};

/// Runs the CLI off the async runtime's threads.
async fn cli(cwd: &Path, args: &[&str]) -> Result<Run> {
    let cwd = cwd.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("handbereik", &cwd, &args)
    })
    .await?
}

fn config(net: &TestNet, i: usize) -> String {
    net.nodes[i]
        .dir
        .join("handbereik.toml")
        .display()
        .to_string()
}

/// `sub --config FILE --api ADDRESS rest...`: the config for the token file,
/// `--api` for the address (the test nodes' configs name port 0).
fn with_api(net: &TestNet, i: usize, args: &[&str]) -> Vec<String> {
    let node = net.nodes[i].node.as_ref().expect("node running");
    let mut all = vec![args[0].to_string()];
    all.extend([
        "--config".into(),
        config(net, i),
        "--api".into(),
        node.local_api().to_string(),
    ]);
    all.extend(args[1..].iter().map(|a| a.to_string()));
    all
}

async fn cli_api(net: &TestNet, i: usize, args: &[&str]) -> Result<Run> {
    let all = with_api(net, i, args);
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    cli(net.tmp.path(), &all).await
}

/// A failed start of `handbereik run`: exit 2, no panic, and the last line
/// of stderr (after the log lines of what did start) says what happened.
fn refused_last(run: &Run, needles: &[&str]) {
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let last = run.stderr.lines().last().unwrap_or_default();
    for needle in needles {
        assert!(
            last.contains(needle),
            "{needle:?} not in the last line: {last}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token() -> Result<()> {
    let mut net = TestNet::new(1, &[jeugd()], 60)?;
    net.up().await?;
    let wrong = net.tmp.path().join("wrong-token");
    std::fs::write(&wrong, "0123456789abcdef\n")?;
    cli_api(
        &net,
        0,
        &["status", "--token-file", &wrong.display().to_string()],
    )
    .await?
    .refused("the node refused the API token")?
    .refused("use the token file of this node (local_api.token_file)")?;
    // The right token (from the config) works; health needs none.
    cli_api(&net, 0, &["status"]).await?.ok()?;
    let health = cli_api(&net, 0, &["health"]).await?.ok()?;
    assert_eq!(health.stdout, "serving\n");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_not_running() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.port()
    };
    let token = dir.path().join("api-token");
    std::fs::write(&token, "x\n")?;
    let address = format!("127.0.0.1:{port}");
    let token = token.display().to_string();
    cli(
        dir.path(),
        &["status", "--api", &address, "--token-file", &token],
    )
    .await?
    .refused("cannot reach the node's local API")?
    .refused("is the node running (`handbereik run`) and is local_api.listen right?")?;
    cli(dir.path(), &["health", "--api", &address])
        .await?
        .refused("cannot reach the node's local API")?
        .refused("is the node running?")?;
    // Without a config file the message says which file it looked for.
    cli(dir.path(), &["status"])
        .await?
        .refused("reading handbereik.toml (or give --api and --token-file)")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_member_list() -> Result<()> {
    let mut net = TestNet::new(2, &[jeugd()], 60)?;
    net.start_all().await?;
    let list = net.list(|_| true, 6)?;
    net.hand_out(&list, |_| true)?;
    let client = net.nodes[0].node_client().await?;
    // First held, then expired: "no list yet" also reads as expired.
    wait_until(Duration::from_secs(30), "the list is held", || {
        let mut client = client.clone();
        async move {
            client
                .status(pb::StatusRequest {})
                .await
                .is_ok_and(|s| s.into_inner().member_list_version == 1)
        }
    })
    .await?;
    wait_until(Duration::from_secs(30), "the list has expired", || {
        let mut client = client.clone();
        async move {
            client
                .status(pb::StatusRequest {})
                .await
                .is_ok_and(|s| s.into_inner().member_list_expired)
        }
    })
    .await?;
    let pseudonym = "ab".repeat(32);
    cli_api(
        &net,
        0,
        &[
            "locate",
            "--purpose",
            "jeugdbescherming",
            "--pseudonym",
            &pseudonym,
        ],
    )
    .await?
    .refused("expired")?
    .refused("ask governance for a current member list")?;
    let status = cli_api(&net, 0, &["status"]).await?.ok()?;
    assert!(status.stdout.contains("(EXPIRED)"), "{}", status.stdout);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_member_id() -> Result<()> {
    let mut net = TestNet::new(2, &[jeugd()], 60)?;
    net.up().await?;
    let pseudonym = "ab".repeat(32);
    for (member, message) in [
        (
            "00000009999999999000",
            "member 00000009999999999000 is not in member list version 1",
        ),
        ("123", "is not an OIN: an OIN has exactly 20 digits"),
    ] {
        cli_api(
            &net,
            0,
            &[
                "inspect",
                "--member",
                member,
                "--purpose",
                "jeugdbescherming",
                "--pseudonym",
                &pseudonym,
                "--category",
                "melding",
            ],
        )
        .await?
        .refused(message)?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_denies() -> Result<()> {
    let mut net = TestNet::new(2, &[jeugd()], 60)?;
    net.up().await?;
    let subject = "cd".repeat(32);
    let mut registry = net.nodes[1].registry().await?;
    registry
        .register(pb::RegisterRequest {
            subject: Some(pb::Subject {
                kind: Some(pb::subject::Kind::Pseudonym(subject.clone())),
            }),
            entry: entry("veiligheidsplan", "{}"),
        })
        .await?;
    let source = net.nodes[1].member_id.to_string();
    let out = cli_api(
        &net,
        0,
        &[
            "inspect",
            "--member",
            &source,
            "--purpose",
            "jeugdbescherming",
            "--pseudonym",
            &subject,
            "--category",
            "veiligheidsplan",
        ],
    )
    .await?
    .ok()?;
    assert!(
        out.stdout
            .contains("veiligheidsplan  refused  policies: never-strictly-confidential"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains(&format!(
            "note: the policy of {source} does not allow veiligheidsplan for purpose jeugdbescherming"
        )) && out.stderr.contains("contact that partner about its policy"),
        "{}",
        out.stderr
    );
    // A purpose this node is not admitted for is refused before anything is asked.
    cli_api(
        &net,
        0,
        &[
            "inspect",
            "--member",
            &source,
            "--purpose",
            "veiligheid",
            "--pseudonym",
            &subject,
            "--category",
            "melding",
        ],
    )
    .await?
    .refused("is not admitted for purpose veiligheid")?
    .refused("ask governance to admit it, or use a purpose it is admitted for")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_in_use() -> Result<()> {
    let net = TestNet::new(1, &[jeugd()], 60)?;
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port();
    let c = config(&net, 0);
    let set = format!("local_api.listen=127.0.0.1:{port}");
    let out = cli(net.tmp.path(), &["run", "--config", &c, "--set", &set]).await?;
    refused_last(
        &out,
        &[
            &format!("cannot listen on 127.0.0.1:{port} for the local API"),
            "is the port in use by another process?",
        ],
    );
    drop(taken);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_directory_locked() -> Result<()> {
    let mut net = TestNet::new(1, &[jeugd()], 60)?;
    net.start_all().await?;
    let c = config(&net, 0);
    let out = cli(net.tmp.path(), &["run", "--config", &c]).await?;
    refused_last(
        &out,
        &["is locked by another process; is another handbereik node running with this data_dir?"],
    );
    Ok(())
}
