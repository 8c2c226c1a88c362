//! `handbereik dev`: a whole network of partners on loopback in one process.
//!
//! Makes (or, with `--dir`, reopens) a governance key and one node directory
//! per partner, starts the nodes with ports from the OS, admits them in a
//! signed member list, loads sample registrations and one notification
//! through the local API, prints how to reach each node and runs until
//! Ctrl-C. Calls the node library, `handbereik-keys` and the CLI's own API
//! client; no network rule lives here.

mod governance;
mod partners;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use handbereik_keys::NodeKey;
use handbereik_proto::v1 as pb;

use super::client::{ApiArgs, Clients, explain};
use crate::config::Config;
use crate::node::Node;
use governance::{Admission, Governance, Reach};
use partners::{NodeDir, Partner, Ports, WALKTHROUGH_BSN, partner};

pub use partners::DEV_PSEUDONYM_KEY;

/// The most partners one dev network runs; each is a whole node in this process.
const MAX_NODES: usize = 12;

/// How long the nodes may take to find each other.
const CONNECT_LIMIT: Duration = Duration::from_secs(60);

/// Arguments of `handbereik dev`.
#[derive(Args, Debug, Clone)]
pub struct DevArgs {
    /// How many partners: a municipality, Veilig Thuis, a youth-care
    /// provider, then more youth-care providers (1 to 12).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=MAX_NODES as i64))]
    pub nodes: u8,
    /// Keep the network in this directory, so a second `dev` with the same
    /// directory continues it. Default: a new temporary directory, removed at exit.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// One started partner.
struct Running {
    partner: Partner,
    dir: NodeDir,
    node: Node,
}

/// Runs the dev network until Ctrl-C or SIGTERM.
pub fn dev(args: &DevArgs) -> Result<()> {
    super::run::init_logging(crate::config::LogFormat::Human, "warn");
    let (root, _temporary) = match &args.dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let tmp = tempfile::Builder::new()
                .prefix("handbereik-dev-")
                .tempdir()
                .context("cannot make a temporary directory; give --dir")?;
            (tmp.path().to_path_buf(), Some(tmp))
        }
    };
    check_root(&root)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let nodes = start(&root, usize::from(args.nodes)).await?;
        let any_failed =
            futures::future::select_all(nodes.iter().map(|r| Box::pin(r.node.failed())));
        tokio::select! {
            () = super::run::wait_for_signal() => {}
            _ = any_failed => {}
        }
        println!("stopping {} nodes", nodes.len());
        let mut failure = None;
        for running in nodes {
            running.node.shutdown();
            if let Err(f) = running.node.join().await {
                failure.get_or_insert(f);
            }
        }
        match failure {
            Some(f) => Err(anyhow::Error::from(f)),
            None => Ok::<(), anyhow::Error>(()),
        }
    })?;
    if args.dir.is_none() {
        println!("removed {}", root.display());
    }
    Ok(())
}

/// Refuses a directory that holds something other than a dev network.
fn check_root(root: &Path) -> Result<()> {
    let Ok(mut entries) = std::fs::read_dir(root) else {
        return Ok(());
    };
    let is_empty = entries.next().is_none();
    if !is_empty && !root.join("governance").join("governance.key").exists() {
        bail!(
            "{} is not empty and holds no dev network (no governance/governance.key); \
             give a new or empty --dir, or the directory of an earlier `handbereik dev`",
            root.display()
        );
    }
    Ok(())
}

/// Makes or reopens everything, starts the nodes, publishes the list and the
/// samples, and prints the guide. Returns the running nodes.
async fn start(root: &Path, count: usize) -> Result<Vec<Running>> {
    let fresh = !root.join("governance").join("governance.key").exists();
    let governance = Governance::open_or_create(root)?;
    let mut started = Vec::new();
    for i in 0..count {
        let partner = partner(i)?;
        let dir = NodeDir::new(root, &partner);
        let is_new = !dir.exists();
        let key = if is_new {
            dir.create(&partner, &governance.public_key())?
        } else {
            NodeKey::load(&dir.key())?
        };
        let config = Config::load(&dir.config())
            .with_context(|| format!("the config of {} in {}", partner.name, dir.dir.display()))?;
        let node = Node::start(config)
            .await
            .with_context(|| format!("starting the node of {}", partner.name))?;
        let (reach, ports) = reach(&node).await?;
        if is_new {
            // Pin the ports the OS gave, so a restart with --dir finds the
            // node where the member list says it is.
            dir.write_config(&partner, &governance.public_key(), &ports)?;
        }
        started.push(Started {
            running: Running { partner, dir, node },
            key,
            reach,
            is_new,
        });
    }
    let admissions: Vec<Admission<'_>> = started
        .iter()
        .map(|s| Admission {
            partner: &s.running.partner,
            dir: &s.running.dir,
            key: &s.key,
            reach: &s.reach,
        })
        .collect();
    let version = governance.publish(&admissions)?;
    wait_connected(&started).await?;
    for s in started.iter().filter(|s| s.is_new) {
        load_samples(&s.running).await?;
    }
    if fresh && let Some(veilig_thuis) = started.get(1) {
        publish_sample(&veilig_thuis.running).await?;
    }
    let nodes: Vec<Running> = started.into_iter().map(|s| s.running).collect();
    print_guide(root, &nodes, version, fresh);
    Ok(nodes)
}

/// A node during start-up.
struct Started {
    running: Running,
    key: NodeKey,
    reach: Reach,
    is_new: bool,
}

/// Where the started node listens: for its membership request and its config.
async fn reach(node: &Node) -> Result<(Reach, Ports)> {
    let p2p = node
        .p2p_addrs()
        .await
        .into_iter()
        .find_map(|a| {
            a.iter().find_map(|p| match p {
                libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
                _ => None,
            })
        })
        .context("the node reported no TCP listen address")?;
    let ports = Ports {
        p2p,
        peer: node.peer_api().port(),
        local: node.local_api().port(),
        metrics: node.metrics_addr().port(),
    };
    let reach = Reach {
        p2p_address: format!("/ip4/127.0.0.1/tcp/{p2p}"),
        grpc_endpoint: format!("127.0.0.1:{}", ports.peer),
    };
    Ok((reach, ports))
}

/// The local API clients of a node, as its back office would connect.
async fn clients(dir: &NodeDir) -> Result<Clients> {
    ApiArgs {
        config: dir.config(),
        api: None,
        token_file: None,
    }
    .connect()
    .await
}

/// Waits until every node sees every other.
async fn wait_connected(started: &[Started]) -> Result<()> {
    let deadline = tokio::time::Instant::now() + CONNECT_LIMIT;
    for s in started {
        let mut api = clients(&s.running.dir).await?;
        loop {
            let peers = api
                .node
                .status(pb::StatusRequest {})
                .await
                .map(|r| r.into_inner().connected_peers.len())
                .unwrap_or(0);
            if peers + 1 >= started.len() {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{} sees {peers} of the {} other nodes after {CONNECT_LIMIT:?}; \
                     run with RUST_LOG=info to see why",
                    s.running.partner.name,
                    started.len() - 1
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Registers the partner's sample entries through its local API.
async fn load_samples(running: &Running) -> Result<()> {
    let mut api = clients(&running.dir).await?;
    let retain_until = handbereik_keys::time::now() + 365 * 86_400;
    for sample in &running.partner.samples {
        let request = pb::RegisterRequest {
            subject: Some(pb::Subject {
                kind: Some(pb::subject::Kind::Bsn(sample.bsn.to_string())),
            }),
            entry: Some(pb::EntryInput {
                category: sample.category.to_string(),
                legal_basis: sample.legal_basis.to_string(),
                retain_until,
                content_type: "application/json".into(),
                content: sample.content.as_bytes().to_vec(),
            }),
        };
        match api.registry.register(request).await {
            Ok(_) => {}
            Err(status) if status.code() == tonic::Code::AlreadyExists => {}
            Err(status) => {
                return Err(explain(status)).with_context(|| {
                    format!(
                        "registering the sample {} at {}",
                        sample.category, running.partner.name
                    )
                });
            }
        }
    }
    Ok(())
}

/// Veilig Thuis announces a report about the walkthrough's subject.
async fn publish_sample(running: &Running) -> Result<()> {
    let mut api = clients(&running.dir).await?;
    let subject = pseudonym_of(&mut api, WALKTHROUGH_BSN).await?;
    api.notifications
        .publish(pb::PublishRequest {
            r#type: "nl.samenonderhandbereik.melding.ontvangen".into(),
            purpose: "jeugdbescherming".into(),
            subject,
            dataref: "melding".into(),
            datacontenttype: "application/json".into(),
            data: br#"{"urgentie":"hoog"}"#.to_vec(),
        })
        .await
        .map_err(explain)
        .context("publishing the sample notification")?;
    Ok(())
}

/// The network pseudonym of a BSN, as the node's registry shows it.
async fn pseudonym_of(api: &mut Clients, bsn: &str) -> Result<String> {
    let list = api
        .registry
        .list(pb::ListRequest {
            subject: Some(pb::Subject {
                kind: Some(pb::subject::Kind::Bsn(bsn.to_string())),
            }),
            page_token: String::new(),
            limit: 1,
        })
        .await
        .map_err(explain)?
        .into_inner();
    list.entries
        .first()
        .map(|e| e.subject.clone())
        .context("the sample subject is not registered")
}

/// Prints how to reach each node, commands to try, and the `ready:` line
/// that scripts and tests wait for.
fn print_guide(root: &Path, nodes: &[Running], version: u64, fresh: bool) {
    let state = if fresh { "made" } else { "continued" };
    println!(
        "handbereik dev: {state} network \"{}\" with {} partners in {}",
        partners::NETWORK,
        nodes.len(),
        root.display()
    );
    println!(
        "governance key {} (threshold 1), member list version {version}",
        root.join("governance").join("governance.key").display()
    );
    println!();
    for r in nodes {
        let token = std::fs::read_to_string(r.dir.token()).unwrap_or_default();
        println!(
            "{} ({})  member {}",
            r.partner.name, r.partner.slug, r.partner.member_id
        );
        println!("  config     {}", r.dir.config().display());
        println!(
            "  local API  {}  token {} (in {})",
            r.node.local_api(),
            token.trim(),
            r.dir.token().display()
        );
        println!(
            "  peer API   {}  metrics http://{}/metrics",
            r.node.peer_api(),
            r.node.metrics_addr()
        );
        let purposes: Vec<&str> = r.partner.purposes.iter().map(|p| p.as_str()).collect();
        println!("  purposes   {}", purposes.join(", "));
        println!(
            "  try        handbereik status --config {}",
            r.dir.config().display()
        );
    }
    if let [gemeente, _, jeugdhulp, ..] = nodes {
        let g = gemeente.dir.config();
        let j = jeugdhulp.dir.config();
        println!();
        println!("Try (the README walks through these):");
        println!(
            "  handbereik locate --config {} --purpose jeugdbescherming --bsn {WALKTHROUGH_BSN} --user jh-17 --role deelnemer",
            j.display()
        );
        println!(
            "  handbereik inspect --config {} --member {} --purpose jeugdbescherming --bsn {WALKTHROUGH_BSN} --category melding --user jh-17 --role deelnemer",
            j.display(),
            gemeente.partner.member_id
        );
        println!(
            "  handbereik audit report --config {} --bsn {WALKTHROUGH_BSN}",
            g.display()
        );
    }
    println!();
    println!(
        "ready: {} nodes connected, member list version {version}; Ctrl-C stops them",
        nodes.len()
    );
}
