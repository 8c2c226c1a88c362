//! The figures of each size, the targets they are held to, the table
//! printed at the end and the JSON written on request.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::catchup::CatchUp;
use crate::delivery::Delivery;

/// p50, p99 and max of a set of samples (ms), and how many there were.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Spread {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `samples`; all zero when there are none.
    pub fn of(mut samples: Vec<f64>) -> Self {
        if samples.is_empty() {
            return Spread::default();
        }
        samples.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            let i = (q * samples.len() as f64).ceil() as usize;
            samples[i.clamp(1, samples.len()) - 1]
        };
        Spread {
            count: samples.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: samples[samples.len() - 1],
        }
    }
}

/// Everything measured at one N.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SizeFigures {
    /// Nodes.
    pub n: usize,
    /// `p2p.max_peers` of every node.
    pub max_peers: usize,
    /// Events published per second.
    pub rate: f64,
    /// Seconds to start every node (one after another).
    pub start_secs: f64,
    /// Seconds from the list being handed out to the overlay condition.
    pub overlay_secs: f64,
    /// Connections per node at the end of the idle window: mean.
    pub connections_mean: f64,
    /// ... and max.
    pub connections_max: i64,
    /// The highest connection gauge of any node, sampled every 250 ms from
    /// the list being handed out to the end of the size.
    pub connections_max_seen: i64,
    /// Seconds of the idle window.
    pub idle_secs: f64,
    /// Process CPU time in the idle window per node per minute, ms.
    pub idle_cpu_ms_per_node_min: f64,
    /// All nodes' idle CPU as a share of one core, percent.
    pub idle_cpu_percent_of_core: f64,
    /// Bytes sent on the wire in the idle window per node per minute (each
    /// node receives as much, on average).
    pub idle_bytes_per_node_min: f64,
    /// Resident memory above the harness's own before any node, per node, MiB.
    pub rss_mib_per_node: f64,
    /// Resident memory of the whole process, MiB.
    pub rss_mib_total: f64,
    /// File descriptors open with every node running.
    pub open_fds: usize,
    /// Threads with every node running.
    pub threads: u64,
    /// Mean size of a published event's signed bytes (from the publisher's store).
    pub event_bytes: f64,
    /// Publish → delivered.
    pub delivery: Delivery,
    /// Wire bytes per delivery over the event's size.
    pub bytes_per_delivery_ratio: f64,
    /// The stopped node catching up.
    pub catchup: Option<CatchUp>,
    /// The machine's 1-minute load average when the size started and ended.
    pub load: (f64, f64),
    /// Phases that timed out or failed.
    pub notes: Vec<String>,
}

/// One target and whether a size met it.
#[derive(Debug, Serialize)]
pub struct Verdict {
    /// At which N.
    pub n: usize,
    /// The target.
    pub target: String,
    /// The figure.
    pub figure: String,
    /// Met.
    pub met: bool,
}

/// Holds every size to the targets: the idle figures are compared with the
/// smallest size's.
pub fn verdicts(sizes: &[SizeFigures]) -> Vec<Verdict> {
    let Some(base) = sizes.iter().min_by_key(|s| s.n) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in sizes {
        out.push(Verdict {
            n: s.n,
            target: format!("connections per node <= max_peers ({})", s.max_peers),
            figure: format!(
                "max {} at the end, {} seen at any time",
                s.connections_max, s.connections_max_seen
            ),
            met: s.connections_max_seen <= s.max_peers as i64
                && s.connections_max <= s.max_peers as i64,
        });
        if s.n != base.n {
            let cpu = s.idle_cpu_ms_per_node_min / base.idle_cpu_ms_per_node_min;
            out.push(Verdict {
                n: s.n,
                target: format!("idle CPU per node <= 1.5x N={}", base.n),
                figure: format!(
                    "{:.1} ms/min vs {:.1}: {cpu:.2}x",
                    s.idle_cpu_ms_per_node_min, base.idle_cpu_ms_per_node_min
                ),
                met: cpu <= 1.5,
            });
            let bytes = s.idle_bytes_per_node_min / base.idle_bytes_per_node_min;
            out.push(Verdict {
                n: s.n,
                target: format!("idle bytes per node <= 1.5x N={}", base.n),
                figure: format!(
                    "{:.0} B/min vs {:.0}: {bytes:.2}x",
                    s.idle_bytes_per_node_min, base.idle_bytes_per_node_min
                ),
                met: bytes <= 1.5,
            });
        }
        let d = &s.delivery;
        out.push(Verdict {
            n: s.n,
            target: "publish -> delivered at all nodes p99 <= 1 s, none lost".into(),
            figure: format!(
                "p99 {:.0} ms, {} lost, {} events not everywhere",
                d.all_nodes_ms.p99, d.lost, d.events_not_everywhere
            ),
            met: d.all_nodes_ms.p99 <= 1000.0 && d.lost == 0 && d.events > 0,
        });
        out.push(Verdict {
            n: s.n,
            target: "wire bytes per delivered event <= 10x its size".into(),
            figure: format!(
                "{:.0} B per delivery, event {:.0} B: {:.2}x",
                d.bytes_per_delivery, s.event_bytes, s.bytes_per_delivery_ratio
            ),
            met: s.bytes_per_delivery_ratio <= 10.0 && s.bytes_per_delivery_ratio > 0.0,
        });
    }
    out
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.2}", v / 1e3))
}

/// Prints the table of every size and the verdicts.
pub fn print_table(sizes: &[SizeFigures], verdicts: &[Verdict]) {
    println!();
    println!(
        "{:>5} | {:>13} | {:>10} | {:>9} | {:>8} | {:>6} | {:>18} | {:>18} | {:>5} | {:>13} | {:>8} | {:>11}",
        "N",
        "conns mn/mx",
        "idle CPU",
        "idle B",
        "RSS",
        "rate",
        "per delivery ms",
        "at all nodes ms",
        "lost",
        "B/delivery",
        "CPU",
        "catch-up s"
    );
    println!(
        "{:>5} | {:>13} | {:>10} | {:>9} | {:>8} | {:>6} | {:>18} | {:>18} | {:>5} | {:>13} | {:>8} | {:>11}",
        "",
        "(seen)",
        "ms/node/mn",
        "/node/min",
        "MiB/node",
        "ev/s",
        "p50 / p99 / max",
        "p50 / p99 / max",
        "",
        "(x event)",
        "us/deliv",
        "(1st conn)"
    );
    for s in sizes {
        let d = &s.delivery;
        let catchup = s.catchup.as_ref().map_or("-".into(), |c| {
            format!("{} ({})", ms(c.caught_up_ms), ms(c.first_connection_ms))
        });
        println!(
            "{:>5} | {:>13} | {:>10.1} | {:>9.0} | {:>8.2} | {:>6.2} | {:>18} | {:>18} | {:>5} | {:>13} | {:>8.0} | {:>11}",
            s.n,
            format!(
                "{:.1}/{} ({})",
                s.connections_mean, s.connections_max, s.connections_max_seen
            ),
            s.idle_cpu_ms_per_node_min,
            s.idle_bytes_per_node_min,
            s.rss_mib_per_node,
            s.rate,
            format!(
                "{:.0} / {:.0} / {:.0}",
                d.per_delivery_ms.p50, d.per_delivery_ms.p99, d.per_delivery_ms.max
            ),
            format!(
                "{:.0} / {:.0} / {:.0}",
                d.all_nodes_ms.p50, d.all_nodes_ms.p99, d.all_nodes_ms.max
            ),
            d.lost,
            format!(
                "{:.0} ({:.2}x)",
                d.bytes_per_delivery, s.bytes_per_delivery_ratio
            ),
            d.cpu_us_per_delivery,
            catchup
        );
    }
    println!();
    for v in verdicts {
        println!(
            "  {} N={:<4} {}: {}",
            if v.met { "met    " } else { "NOT MET" },
            v.n,
            v.target,
            v.figure
        );
    }
    for s in sizes {
        for note in &s.notes {
            println!("  note   N={:<4} {note}", s.n);
        }
    }
}

/// Everything, as JSON.
#[derive(Serialize)]
pub struct Run<'a> {
    /// How the harness was called.
    pub command: String,
    /// Cores available.
    pub cores: usize,
    /// The open-files limit (soft, hard) after raising it.
    pub fd_limit: (u64, u64),
    /// Every size.
    pub sizes: &'a [SizeFigures],
    /// The targets.
    pub verdicts: &'a [Verdict],
}

/// Writes `run` to `path` as JSON.
pub fn write_json(path: &Path, run: &Run<'_>) -> Result<()> {
    let text = serde_json::to_string_pretty(run)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
