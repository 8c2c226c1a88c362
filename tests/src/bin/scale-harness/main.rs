//! The scale harness: N real nodes in one process (the node library's
//! `Node::start`, real libp2p gossipsub and the sync protocol over loopback
//! TCP, one real sled store each), for several N one after another, each in
//! fresh directories; the figures of docs/scale.md come from it.
//!
//! Run it (a release build; about twelve minutes for the four sizes):
//!
//!     cargo run --release --locked -p handbereik-tests --bin scale-harness -- \
//!         --sizes 50,100,200,500 --json scale.json
//!
//! Per N it measures, in this order: connections per node once the overlay
//! has formed (mean, max, and the highest any node showed at any time);
//! idle CPU time and bytes on the wire per node per minute over an idle
//! window; resident memory per node; publish → durably stored at every
//! other node for `--events` events published at `--rate` per second
//! through one node's local API, p50/p99/max per delivery and per event at
//! the last node to get it, and what was lost; bytes on the wire per
//! delivery, less the idle rate; and how long a node that was stopped
//! while events were published takes to catch up after its start.
//!
//! Not a test: nothing here fails on a figure. The targets are printed
//! beside the figures, met or not; a phase that times out says so and the
//! run goes on.
//!
//! Rooms: [`process`] (this process's CPU, memory and descriptors),
//! [`network`] (starting, waiting for and stopping N nodes), [`delivery`]
//! (publish → delivered, bytes), [`catchup`] (a node that was away),
//! [`report`] (figures, targets, table, JSON).

mod catchup;
mod delivery;
mod network;
mod process;
mod report;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use handbereik_tests::net::TestNet;

use report::SizeFigures;

/// After the overlay has formed: time for gossipsub meshes (1 s heartbeats),
/// the first sync exchanges of every new connection and the member list's
/// re-gossip to end before the idle window opens.
const SETTLE: Duration = Duration::from_secs(15);

/// Real nodes on one machine: connections, idle cost, memory, spread and
/// catch-up as the network grows.
#[derive(Parser, Debug, Clone)]
#[command(name = "scale-harness")]
struct Args {
    /// Network sizes, run one after another.
    #[arg(long, value_delimiter = ',', default_value = "50,100,200,500")]
    sizes: Vec<usize>,
    /// Events published per size for the latency figures.
    #[arg(long, default_value_t = 100)]
    events: usize,
    /// Events published per second, on a fixed schedule. Without it: 10 per
    /// second, or fewer so that the deliveries (events × (N − 1)) stay within
    /// `--deliveries-per-sec`: every node here shares this machine's cores,
    /// and a faster rate would measure a queue of CPU work, not the network.
    #[arg(long)]
    rate: Option<f64>,
    /// The most deliveries per second the automatic rate asks of the machine.
    #[arg(long, default_value_t = 500.0)]
    deliveries_per_sec: f64,
    /// Seconds of the idle window.
    #[arg(long, default_value_t = 60)]
    idle_secs: u64,
    /// `p2p.max_peers` of every node.
    #[arg(long, default_value_t = 32)]
    max_peers: usize,
    /// `store.cache_capacity_mb` of every node (hundreds share this process).
    #[arg(long, default_value_t = 1)]
    cache_mb: u64,
    /// `p2p.sync_interval_secs` of every node.
    #[arg(long, default_value_t = 10)]
    sync_secs: u64,
    /// Events published while the catch-up node is stopped.
    #[arg(long, default_value_t = 20)]
    catchup_events: usize,
    /// Seconds the catch-up node stays stopped.
    #[arg(long, default_value_t = 15)]
    away_secs: u64,
    /// Seconds to wait for deliveries after the last publish.
    #[arg(long, default_value_t = 30)]
    deliver_secs: u64,
    /// Where the nodes' directories are made (default: the temp directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Write every figure as JSON to this file (after each size).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run every size in this process rather than each in a child process
    /// of its own (a child's memory figures start clean, without what the
    /// allocator kept from the sizes before).
    #[arg(long)]
    in_process: bool,
    /// Internal: run one size and write its figures to this file.
    #[arg(long, hide = true)]
    child_out: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let largest = args.sizes.iter().copied().max().unwrap_or(0) as u64;
    // Per node: four listeners, up to max_peers connections, sled's files.
    let wanted = 1024 + largest * (args.max_peers as u64 + 16);
    let fd_limit = process::raise_fd_limit(wanted)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()?;
    let ticks = process::clock_ticks();
    let baseline_rss = process::rss_bytes()?;
    if let Some(out) = &args.child_out {
        println!(
            "  (a child process for N = {:?}: baseline RSS {:.1} MiB, load {:.2})",
            args.sizes,
            baseline_rss as f64 / 1048576.0,
            process::load_average()
        );
        let mut figures = Vec::new();
        for &n in &args.sizes {
            figures.push(runtime.block_on(run_size(&args, n, baseline_rss, ticks)));
        }
        std::fs::write(out, serde_json::to_string(&figures)?)?;
        runtime.shutdown_timeout(Duration::from_secs(10));
        return Ok(());
    }
    println!("handbereik scale harness");
    println!("  command: {command}");
    println!(
        "  machine: {cores} cores, load {:.2}; open files limit {} (soft) / {} (hard), wanted {wanted}; baseline RSS {:.1} MiB",
        process::load_average(),
        fd_limit.0,
        fd_limit.1,
        baseline_rss as f64 / 1048576.0
    );
    println!(
        "  every node: max_peers {}, cache {} MiB, sync every {} s, deployment-default local timers; {} events per size at {}; idle window {} s",
        args.max_peers,
        args.cache_mb,
        args.sync_secs,
        args.events,
        args.rate.map_or_else(
            || format!("min(10, {} / (N - 1)) per second", args.deliveries_per_sec),
            |r| format!("{r} per second")
        ),
        args.idle_secs
    );
    let mut sizes: Vec<SizeFigures> = Vec::new();
    for &n in &args.sizes {
        if args.in_process {
            sizes.push(runtime.block_on(run_size(&args, n, baseline_rss, ticks)));
        } else {
            match run_child(n) {
                Ok(mut figures) => sizes.append(&mut figures),
                Err(e) => {
                    println!("  N = {n}: the child process failed: {e:#}");
                    sizes.push(SizeFigures {
                        n,
                        max_peers: args.max_peers,
                        notes: vec![format!("the child process failed: {e:#}")],
                        ..SizeFigures::default()
                    });
                }
            }
        }
        if let Some(path) = &args.json {
            let verdicts = report::verdicts(&sizes);
            let run = report::Run {
                command: command.clone(),
                cores,
                fd_limit,
                sizes: &sizes,
                verdicts: &verdicts,
            };
            if let Err(e) = report::write_json(path, &run) {
                println!("  cannot write the JSON: {e:#}");
            }
        }
    }
    let verdicts = report::verdicts(&sizes);
    report::print_table(&sizes, &verdicts);
    // Tasks of stopped nodes that missed their deadlines end with the runtime.
    runtime.shutdown_timeout(Duration::from_secs(10));
    Ok(())
}

/// Runs one size in a child process (this program with the same flags but
/// `--sizes n`) and reads its figures back.
fn run_child(n: usize) -> Result<Vec<SizeFigures>> {
    let out =
        std::env::temp_dir().join(format!("handbereik-scale-{}-{n}.json", std::process::id()));
    let mut child_args: Vec<String> = Vec::new();
    let mut skip = false;
    for arg in std::env::args().skip(1) {
        if skip {
            skip = false;
            continue;
        }
        if arg == "--sizes" || arg == "--json" {
            skip = true;
            continue;
        }
        if arg.starts_with("--sizes=") || arg.starts_with("--json=") {
            continue;
        }
        child_args.push(arg);
    }
    let status = std::process::Command::new(std::env::current_exe()?)
        .args(&child_args)
        .arg("--sizes")
        .arg(n.to_string())
        .arg("--child-out")
        .arg(&out)
        .status()?;
    let text = std::fs::read_to_string(&out);
    let _ = std::fs::remove_file(&out);
    if !status.success() {
        anyhow::bail!("exit {status}");
    }
    Ok(serde_json::from_str(&text?)?)
}

impl Args {
    /// Events per second at `n` nodes.
    fn rate_at(&self, n: usize) -> f64 {
        self.rate.unwrap_or_else(|| {
            (self.deliveries_per_sec / n.saturating_sub(1).max(1) as f64).min(10.0)
        })
    }
}

/// One size, from fresh directories to every node stopped and the
/// directories removed.
async fn run_size(args: &Args, n: usize, baseline_rss: u64, ticks: f64) -> SizeFigures {
    let mut fig = SizeFigures {
        n,
        max_peers: args.max_peers,
        rate: args.rate_at(n),
        load: (process::load_average(), 0.0),
        ..SizeFigures::default()
    };
    println!();
    println!("N = {n}: starting {n} nodes");
    let settings = network::Settings {
        max_peers: args.max_peers,
        cache_mb: args.cache_mb,
        sync_secs: args.sync_secs,
        dir: args.dir.clone().unwrap_or_else(std::env::temp_dir),
    };
    let mut net = match network::start(n, &settings).await {
        Ok((net, took)) => {
            fig.start_secs = took.as_secs_f64();
            println!("    started in {:.1} s", fig.start_secs);
            net
        }
        Err(e) => {
            println!("    FAILED to start: {e:#}");
            fig.notes.push(format!("start failed: {e:#}"));
            return fig;
        }
    };
    let sampler = network::Sampler::start(&net);
    if let Err(e) = measure(args, &mut net, baseline_rss, ticks, &mut fig).await {
        println!("    FAILED: {e:#}");
        fig.notes.push(format!("failed: {e:#}"));
    }
    fig.connections_max_seen = sampler.finish().await;
    let stopping = Instant::now();
    network::stop_all(&mut net, Duration::from_secs(180)).await;
    println!("    stopped in {:.1} s", stopping.elapsed().as_secs_f64());
    let publisher = &net.nodes[0];
    match network::event_sizes(
        &publisher.dir.join("data"),
        &publisher.member_id.to_string(),
        "jeugdbescherming",
    )
    .await
    {
        Ok((count, mean)) => {
            fig.event_bytes = mean;
            println!(
                "    the publisher's store holds {count} events of {mean:.0} signed bytes on average"
            );
        }
        Err(e) => fig.notes.push(format!("event sizes unread: {e:#}")),
    }
    if fig.event_bytes > 0.0 {
        fig.bytes_per_delivery_ratio = fig.delivery.bytes_per_delivery / fig.event_bytes;
    }
    fig.load.1 = process::load_average();
    drop(net);
    fig
}

/// The phases of one size on a started network.
async fn measure(
    args: &Args,
    net: &mut TestNet,
    baseline_rss: u64,
    ticks: f64,
    fig: &mut SizeFigures,
) -> Result<()> {
    let n = fig.n;
    let limit = Duration::from_secs(120 + n as u64 / 2);
    let overlay = network::wait_overlay(net, args.max_peers, limit).await;
    fig.overlay_secs = overlay.waited.as_secs_f64();
    if overlay.timed_out {
        fig.notes.push("the overlay did not form in time".into());
    }
    println!(
        "    overlay formed {:.1} s after the list was handed out; settling {} s",
        fig.overlay_secs,
        SETTLE.as_secs()
    );
    tokio::time::sleep(SETTLE).await;

    let cpu0 = process::cpu_seconds(ticks)?;
    let bytes0 = network::wire_sent(net);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let idle = t0.elapsed().as_secs_f64();
    let cpu = process::cpu_seconds(ticks)? - cpu0;
    let bytes = network::wire_sent(net).saturating_sub(bytes0) as f64;
    let per_min = 60.0 / idle / n as f64;
    fig.idle_secs = idle;
    fig.idle_cpu_ms_per_node_min = cpu * 1e3 * per_min;
    fig.idle_cpu_percent_of_core = cpu / idle * 100.0;
    fig.idle_bytes_per_node_min = bytes * per_min;
    let counts = network::connections(net);
    fig.connections_mean = counts.iter().sum::<i64>() as f64 / counts.len().max(1) as f64;
    fig.connections_max = counts.iter().copied().max().unwrap_or(0);
    let rss = process::rss_bytes()?;
    fig.rss_mib_total = rss as f64 / 1048576.0;
    fig.rss_mib_per_node = rss.saturating_sub(baseline_rss) as f64 / 1048576.0 / n as f64;
    fig.open_fds = process::open_fds()?;
    fig.threads = process::threads()?;
    println!(
        "    idle {idle:.0} s: CPU {:.1} ms/node/min ({:.1}% of a core for all), {:.0} B/node/min sent; connections mean {:.1} max {}; RSS {:.2} MiB/node ({:.0} MiB in all), {} fds, {} threads",
        fig.idle_cpu_ms_per_node_min,
        fig.idle_cpu_percent_of_core,
        fig.idle_bytes_per_node_min,
        fig.connections_mean,
        fig.connections_max,
        fig.rss_mib_per_node,
        fig.rss_mib_total,
        fig.open_fds,
        fig.threads
    );

    let rates = delivery::IdleRates {
        bytes_per_sec: bytes / idle,
        cpu_per_sec: cpu / idle,
        ticks,
    };
    fig.delivery = delivery::measure(
        net,
        0,
        args.events,
        fig.rate,
        rates,
        Duration::from_secs(args.deliver_secs),
    )
    .await?;
    let d = &fig.delivery;
    if d.timed_out {
        fig.notes.push(format!(
            "deliveries timed out: {} of {}",
            d.delivered, d.expected
        ));
    }
    println!(
        "    delivery of {} events at {:.2}/s to {} nodes: per delivery p50 {:.0} / p99 {:.0} / max {:.0} ms; at all nodes p50 {:.0} / p99 {:.0} / max {:.0} ms; {} lost, {} by sync; {:.0} B and {:.0} µs CPU per delivery",
        d.events,
        fig.rate,
        n - 1,
        d.per_delivery_ms.p50,
        d.per_delivery_ms.p99,
        d.per_delivery_ms.max,
        d.all_nodes_ms.p50,
        d.all_nodes_ms.p99,
        d.all_nodes_ms.max,
        d.lost,
        d.by_sync,
        d.bytes_per_delivery,
        d.cpu_us_per_delivery
    );

    let catchup = catchup::measure(
        net,
        0,
        args.catchup_events,
        fig.rate,
        Duration::from_secs(args.away_secs),
        Duration::from_secs(120),
    )
    .await?;
    if catchup.timed_out {
        fig.notes
            .push("the stopped node did not catch up in time".into());
    }
    println!(
        "    catch-up: node {} (connected to the publisher: {}) away {:.0} s while {} events were published; start {:.0} ms, first connection {} s, caught up {} s after the start call ({} by sync)",
        catchup.node,
        catchup.was_connected_to_publisher,
        catchup.stopped_secs,
        catchup.events,
        catchup.start_ms,
        catchup
            .first_connection_ms
            .map_or("-".into(), |v| format!("{:.2}", v / 1e3)),
        catchup
            .caught_up_ms
            .map_or("-".into(), |v| format!("{:.2}", v / 1e3)),
        catchup.by_sync
    );
    fig.catchup = Some(catchup);
    Ok(())
}
