//! `handbereik health`: asks the node's local API for gRPC health, for
//! container health checks and monitoring. Needs no token, as the health
//! service takes none.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::config::Config;

/// Arguments of `handbereik health`.
#[derive(Args, Debug, Clone)]
pub struct HealthArgs {
    /// The node's configuration, for the local API address.
    #[arg(
        long,
        short,
        default_value = "handbereik.toml",
        env = "HANDBEREIK_CONFIG"
    )]
    pub config: PathBuf,
    /// The local API address instead of the config's, such as 127.0.0.1:7400.
    #[arg(long, value_name = "HOST:PORT")]
    pub api: Option<String>,
}

/// Prints `serving` and succeeds when the node answers SERVING.
pub async fn health(args: &HealthArgs) -> Result<()> {
    let address = match &args.api {
        Some(a) => a.clone(),
        None => Config::load(&args.config)
            .with_context(|| format!("reading {} (or give --api)", args.config.display()))?
            .config
            .local_api
            .listen
            .to_string(),
    };
    let channel = Channel::from_shared(format!("http://{address}"))
        .with_context(|| format!("{address} is not host:port"))?
        .connect_timeout(std::time::Duration::from_secs(3))
        .connect()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the node's local API at {address} ({e}); is the node running?"
            )
        })?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("the health check failed: {}", s.message()))?
        .into_inner();
    match ServingStatus::try_from(response.status) {
        Ok(ServingStatus::Serving) => {
            println!("serving");
            Ok(())
        }
        Ok(other) => bail!("the node reports {}", other.as_str_name()),
        Err(_) => bail!(
            "the node reports an unknown health status {}",
            response.status
        ),
    }
}
