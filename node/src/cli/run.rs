//! `handbereik run`: the daemon, until SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use crate::config::{Config, LogFormat};
use crate::node::Node;

/// How long shutdown may take before the process exits anyway: every phase
/// has its own deadline (`node::SHUTDOWN_PHASE`); this bounds them all.
const DRAIN_DEADLINE: Duration = Duration::from_secs(60);

/// Arguments of `handbereik run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The configuration file.
    #[arg(
        long,
        short,
        default_value = "handbereik.toml",
        env = "HANDBEREIK_CONFIG"
    )]
    pub config: PathBuf,
    /// Override one key, such as `--set p2p.sync_interval_secs=5` (repeatable;
    /// applied after HANDBEREIK_<SECTION>_<KEY> environment variables).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub sets: Vec<String>,
}

/// Runs the node until a signal, then shuts it down in order.
pub fn run(args: &RunArgs) -> Result<()> {
    let env = std::env::vars().filter(|(k, _)| k != "HANDBEREIK_CONFIG");
    let config = Config::load_with(&args.config, env, &args.sets)?;
    init_logging(config.config.log.format, &config.config.log.level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let node = Node::start(config).await?;
        tokio::select! {
            () = wait_for_signal() => {
                tracing::info!("shutting down: stop accepting, finish in-flight work, flush the store");
            }
            () = node.failed() => {}
        }
        node.shutdown();
        match tokio::time::timeout(DRAIN_DEADLINE, node.join()).await {
            Err(_) => {
                tracing::error!("shutdown took longer than {DRAIN_DEADLINE:?}; exiting anyway");
                Ok(())
            }
            Ok(Err(failure)) => Err(failure.into()),
            Ok(Ok(())) => {
                tracing::info!("stopped");
                Ok(())
            }
        }
    })
}

pub(crate) async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Logs to stderr, human-readable or JSON; `RUST_LOG` overrides the level.
/// Both carry the fields of the spans around each line (the RPC, its
/// request id and peer member), so one request can be followed across
/// nodes by its request id.
pub fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Colours only on a terminal: journald, docker logs and files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
        LogFormat::Human => builder.try_init(),
    };
}
