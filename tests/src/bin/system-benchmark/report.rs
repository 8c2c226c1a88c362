//! The benchmark's report: every figure with its unit, target, baseline and
//! ratio, printed as it is measured and written as JSON at the end; and the
//! phase runner that bounds every phase in time, so that a phase that hangs
//! or fails is reported and the run goes on.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;

/// A design target for one figure.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The figure must be at least this.
    AtLeast(f64),
    /// The figure must be at most this.
    AtMost(f64),
}

impl Target {
    fn met(self, value: f64) -> bool {
        match self {
            Target::AtLeast(t) => value >= t,
            Target::AtMost(t) => value <= t,
        }
    }

    fn text(self, unit: &str) -> String {
        match self {
            Target::AtLeast(t) => format!(">= {} {unit}", number(t)),
            Target::AtMost(t) => format!("<= {} {unit}", number(t)),
        }
    }
}

/// One measured figure.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    /// The phase that measured it.
    pub phase: String,
    /// A short stable key, such as `ingest.gossip.rate`.
    pub key: String,
    /// What it is, for a reader.
    pub what: String,
    /// The value.
    pub value: f64,
    /// Its unit (`/s`, `ms`, `MB`, ...).
    pub unit: String,
    /// The target, if the design sets one.
    pub target: Option<Target>,
    /// Whether the target is met (absent without a target).
    pub met: Option<bool>,
    /// The key of the baseline this figure is compared with, if any.
    pub baseline: Option<String>,
    /// `value / baseline`, if there is a baseline.
    pub ratio: Option<f64>,
    /// The ratio's own target, if the design sets one.
    pub ratio_target: Option<Target>,
}

/// How a phase ended.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseOutcome {
    /// Its name.
    pub name: String,
    /// `ok`, `failed` or `timed out`.
    pub status: String,
    /// The error, when it failed.
    pub error: Option<String>,
    /// How long it ran, seconds.
    pub seconds: f64,
}

/// Latency samples kept for the plot, seconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Samples {
    /// Publish → delivered, every delivery.
    pub delivery: Vec<f64>,
    /// Inspect at the source, every answered request.
    pub inspect: Vec<f64>,
    /// The echo baseline, every answered request.
    pub echo: Vec<f64>,
}

/// Everything one run measured.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Logical CPUs of the machine.
    pub cores: usize,
    /// Whether this was a `--quick` run (smaller sizes; figures not comparable).
    pub quick: bool,
    /// The build profile (`release` or `debug`).
    pub profile: String,
    /// Every figure, in the order measured.
    pub figures: Vec<Figure>,
    /// Every phase and how it ended.
    pub phases: Vec<PhaseOutcome>,
    /// Latency samples for the plot (not written to JSON in full).
    #[serde(skip)]
    pub samples: Samples,
}

impl Report {
    /// The value of the figure `key`, if measured.
    pub fn value(&self, key: &str) -> Option<f64> {
        self.figures.iter().find(|f| f.key == key).map(|f| f.value)
    }

    /// Records a figure without a target and prints it.
    pub fn plain(&mut self, phase: &str, key: &str, what: &str, value: f64, unit: &str) {
        self.record(phase, key, what, value, unit, None, None, None);
    }

    /// Records a figure with a target and prints it.
    pub fn against(
        &mut self,
        phase: &str,
        key: &str,
        what: &str,
        value: f64,
        unit: &str,
        target: Target,
    ) {
        self.record(phase, key, what, value, unit, Some(target), None, None);
    }

    /// Records a figure compared with the baseline `baseline` (measured
    /// earlier in this run), with an optional target for the value and
    /// one for the ratio; prints it.
    #[allow(clippy::too_many_arguments)]
    pub fn relative(
        &mut self,
        phase: &str,
        key: &str,
        what: &str,
        value: f64,
        unit: &str,
        target: Option<Target>,
        baseline: &str,
        ratio_target: Option<Target>,
    ) {
        self.record(
            phase,
            key,
            what,
            value,
            unit,
            target,
            Some(baseline),
            ratio_target,
        );
    }

    /// The one place a figure is made: the ratio from the baseline, and
    /// whether every target set is met (absent when none is).
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        phase: &str,
        key: &str,
        what: &str,
        value: f64,
        unit: &str,
        target: Option<Target>,
        baseline: Option<&str>,
        ratio_target: Option<Target>,
    ) {
        let ratio = baseline.and_then(|b| self.value(b)).map(|b| value / b);
        let met = (target.is_some() || ratio_target.is_some()).then(|| {
            target.is_none_or(|t| t.met(value))
                && ratio_target.is_none_or(|r| ratio.is_some_and(|x| r.met(x)))
        });
        self.add(Figure {
            phase: phase.into(),
            key: key.into(),
            what: what.into(),
            value,
            unit: unit.into(),
            target,
            met,
            baseline: baseline.map(str::to_string),
            ratio,
            ratio_target,
        });
    }

    fn add(&mut self, figure: Figure) {
        println!("  {}", line(&figure));
        self.figures.push(figure);
    }

    /// The summary table, one line a figure.
    pub fn print_summary(&self) {
        println!();
        println!(
            "summary ({} cores, {} build{})",
            self.cores,
            self.profile,
            if self.quick {
                ", --quick: sizes reduced, figures not comparable"
            } else {
                ""
            }
        );
        for f in &self.figures {
            println!("  {}", line(f));
        }
        for p in &self.phases {
            if p.status != "ok" {
                println!(
                    "  PHASE {} {} after {:.1} s{}",
                    p.name,
                    p.status,
                    p.seconds,
                    p.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                );
            }
        }
    }
}

fn line(f: &Figure) -> String {
    let mut text = format!(
        "{:<28} {:>12} {:<4} {}",
        f.key,
        number(f.value),
        f.unit,
        f.what
    );
    if let (Some(base), Some(ratio)) = (&f.baseline, f.ratio) {
        text.push_str(&format!("; {ratio:.2}x {base}"));
    }
    let mut targets = Vec::new();
    if let Some(t) = f.target {
        targets.push(t.text(&f.unit));
    }
    if let Some(t) = f.ratio_target {
        targets.push(t.text("x").replace(" x", "x"));
    }
    if !targets.is_empty() {
        let verdict = match f.met {
            Some(true) => "met",
            Some(false) => "NOT MET",
            None => "",
        };
        text.push_str(&format!("  [target {}: {verdict}]", targets.join(", ")));
    }
    text
}

/// A figure for people: thousands separated, two decimals below 100.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v.abs() < 100.0 {
        return format!("{v:.2}");
    }
    let whole = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

/// Runs one phase with a time limit. A phase that fails or runs out of
/// time is recorded and printed; the run goes on with the next one. The
/// phase's nodes are dropped with its future (their tasks end with the
/// runtime).
pub async fn phase<F>(report: &mut Report, name: &str, limit: Duration, run: F)
where
    F: AsyncFnOnce(&mut Report) -> anyhow::Result<()>,
{
    println!();
    println!("== {name} (at most {} s)", limit.as_secs());
    let started = Instant::now();
    let outcome = tokio::time::timeout(limit, run(report)).await;
    let seconds = started.elapsed().as_secs_f64();
    let (status, error) = match outcome {
        Ok(Ok(())) => ("ok", None),
        Ok(Err(e)) => ("failed", Some(format!("{e:#}"))),
        Err(_) => ("timed out", None),
    };
    if status != "ok" {
        println!(
            "  PHASE {name} {status} after {seconds:.1} s{}",
            error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    report.phases.push(PhaseOutcome {
        name: name.into(),
        status: status.into(),
        error,
        seconds,
    });
}

/// The `q` quantile of sorted `samples` (NaN when empty).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// Waits for `what` with a deadline; the error names it.
pub async fn within<T>(
    limit: Duration,
    what: &str,
    future: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(limit, future).await {
        Ok(result) => result,
        Err(_) => anyhow::bail!("{what}: no answer within {} ms", limit.as_millis()),
    }
}
