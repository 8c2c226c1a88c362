//! Wiring: start-up order, the tasks, and graceful shutdown.
//!
//! Start-up: configuration (already validated) → node key, pseudonym key,
//! category catalogue, policy, TLS identity → store → member list → metrics
//! → p2p → member list file watcher → policy watcher, retention sweeper,
//! audit checkpoints → peer API (mutual TLS), local API and metrics
//! listeners → ready. Shutdown, on [`Node::shutdown`]: the cancellation token
//! stops accepting (API, metrics, swarm) and ends the subscriptions; the API
//! lets in-flight calls finish; the swarm closes its connections; the ingest
//! pipeline drains; the last store handle is dropped, so the writer flushes
//! once more and ends. [`Node::join`] waits for all of it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use handbereik_keys::{Anchor, NodeKey};
use libp2p::{Multiaddr, PeerId};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState, BearerToken};
use crate::audit::{self, Audit};
use crate::config::ValidConfig;
use crate::error::{Error, Result};
use crate::inspect::client::Asker;
use crate::inspect::policy::PolicyHandle;
use crate::inspect::serve::SourceState;
use crate::inspect::server::{self, PeerListener};
use crate::inspect::tls::TlsIdentity;
use crate::membership::Membership;
use crate::metrics::{self, Metrics};
use crate::notify::subscriptions::Subscriptions;
use crate::p2p::{self, P2pHandle, P2pSettings};
use crate::registry::{self, Catalogue, Registry, Subjects};
use crate::store::{Store, WriterTask};

/// A running node.
pub struct Node {
    local_api: SocketAddr,
    peer_api: SocketAddr,
    store: Store,
    metrics_addr: SocketAddr,
    p2p: P2pHandle,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    writer: WriterTask,
    metrics: Arc<Metrics>,
}

impl Node {
    /// Starts every part of the node; returns once all listeners are bound.
    pub async fn start(config: ValidConfig) -> Result<Node> {
        let c = &config.config;
        let key = Arc::new(NodeKey::load(&c.node.key_file)?);
        let token = BearerToken::load(&c.local_api.token_file)?;
        let listen: Vec<Multiaddr> = c
            .p2p
            .listen
            .iter()
            .map(|a| {
                a.parse().map_err(|e| {
                    Error::Config(crate::config::ConfigError::Invalid {
                        key: "p2p.listen",
                        reason: format!("{a}: {e}"),
                    })
                })
            })
            .collect::<Result<_>>()?;
        let subjects = Subjects::load(c.registry.pseudonym_key_file.as_deref())?;
        let catalogue = Catalogue::from_config(&c.registry.categories)?;
        let identity = Arc::new(TlsIdentity::new(&key, &config.member_id)?);
        let (store, writer) =
            Store::open(&c.node.data_dir, c.store.cache_capacity_mb * 1024 * 1024)?;
        // After the store: a second process on a locked directory says only that.
        let policy = PolicyHandle::load(&c.policy.file)?;
        let anchor = Anchor::new(config.anchor_keys.iter().copied(), c.governance.threshold)?;
        let membership = Membership::load(&c.node.network, anchor, store.clone())?;
        let metrics = Metrics::new();
        let shutdown = CancellationToken::new();

        let (p2p, mut tasks) = p2p::start(
            &key,
            config.member_id.clone(),
            P2pSettings {
                listen,
                sync_interval: Duration::from_secs(c.p2p.sync_interval_secs),
            },
            membership.clone(),
            store.clone(),
            metrics.clone(),
            shutdown.clone(),
        )?;
        tasks.push(tokio::spawn(membership.clone().watch_file(
            c.governance.member_list_file.clone(),
            Duration::from_secs(c.governance.member_list_poll_secs),
            shutdown.clone(),
        )));

        if let Some(url) = &c.governance.member_list_url {
            let url = crate::membership::url::parse(url).map_err(|reason| {
                Error::Config(crate::config::ConfigError::Invalid {
                    key: "governance.member_list_url",
                    reason,
                })
            })?;
            tasks.push(tokio::spawn(crate::membership::url::watch(
                membership.clone(),
                url,
                Duration::from_secs(c.governance.member_list_url_poll_secs),
                shutdown.clone(),
            )));
        }
        let registry = Registry::new(store.clone(), catalogue, subjects);
        let audit = Audit::new(store.clone());
        tasks.push(tokio::spawn(policy.clone().watch_file(
            c.policy.file.clone(),
            Duration::from_secs(c.policy.reload_secs),
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(registry::sweep_every(
            registry.clone(),
            Duration::from_secs(c.registry.sweep_interval_secs),
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(audit::checkpoint_every(
            store.clone(),
            key.clone(),
            config.member_id.clone(),
            Duration::from_secs(c.audit.checkpoint_interval_secs),
            shutdown.clone(),
        )));
        let peer_listener = api::bind(c.peer_api.listen, "peer API").await?;
        let peer_api = peer_listener
            .local_addr()
            .map_err(|e| Error::Tls(e.to_string()))?;
        let source = Arc::new(SourceState {
            own: config.member_id.clone(),
            key: key.clone(),
            membership: membership.clone(),
            registry: registry.clone(),
            policy,
            audit: audit.clone(),
            metrics: metrics.clone(),
        });
        let peer_settings = PeerListener {
            handshake_timeout: Duration::from_secs(c.peer_api.handshake_timeout_secs),
            max_handshakes: c.peer_api.max_handshakes,
        };
        let peer_shutdown = shutdown.clone();
        let peer_identity = identity.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = server::serve(
                peer_listener,
                &peer_identity,
                peer_settings,
                source,
                peer_shutdown,
            )
            .await
            {
                tracing::error!(error = %e, "peer API stopped");
            }
        }));
        let asker = Arc::new(Asker::new(
            config.member_id.clone(),
            identity,
            membership.clone(),
            audit.clone(),
            metrics.clone(),
            Duration::from_millis(c.peer_api.connect_timeout_ms),
        ));
        let api_listener = api::bind(c.local_api.listen, "local API").await?;
        let metrics_listener = api::bind(c.metrics.listen, "metrics endpoint").await?;
        let local_api = api_listener
            .local_addr()
            .map_err(|e| Error::P2p(e.to_string()))?;
        let metrics_addr = metrics_listener
            .local_addr()
            .map_err(|e| Error::P2p(e.to_string()))?;
        let state = Arc::new(ApiState {
            own: config.member_id.clone(),
            key,
            subscriptions: Subscriptions::new(store.clone()),
            store: store.clone(),
            membership,
            registry,
            audit,
            asker,
            p2p: p2p.clone(),
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
        });
        let api_shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = api::serve(api_listener, token, state, api_shutdown).await {
                tracing::error!(error = %e, "local API stopped");
            }
        }));
        tasks.push(tokio::spawn(metrics::serve(
            metrics_listener,
            metrics.clone(),
            shutdown.clone(),
        )));
        metrics.set_ready();
        tracing::info!(member = %config.member_id, peer = %p2p.peer_id(), %local_api, %peer_api, metrics = %metrics_addr, "node started");
        Ok(Node {
            local_api,
            peer_api,
            store,
            metrics_addr,
            p2p,
            shutdown,
            tasks,
            writer,
            metrics,
        })
    }

    /// Where the local API listens.
    pub fn local_api(&self) -> SocketAddr {
        self.local_api
    }

    /// Where the peer API (mutual TLS) listens.
    pub fn peer_api(&self) -> SocketAddr {
        self.peer_api
    }

    /// For tests of the fail-closed path: makes every audit append fail, as
    /// a full or broken disk would.
    #[doc(hidden)]
    pub fn fail_audit_writes(&self, fail: bool) {
        self.store.fail_audit_writes(fail);
    }

    /// Where the metrics endpoint listens.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// This node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.p2p.peer_id()
    }

    /// The p2p listen addresses, once bound.
    pub async fn p2p_addrs(&self) -> Vec<Multiaddr> {
        self.p2p.listen_addrs().await
    }

    /// The swarm handle: lets an embedding program (and the multi-node tests)
    /// gossip raw bytes as this node.
    pub fn p2p(&self) -> &P2pHandle {
        &self.p2p
    }

    /// The node's figures.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Asks every task to stop; see [`Node::join`].
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits until every task has stopped and the store is flushed.
    pub async fn join(self) {
        let Node {
            tasks,
            writer,
            p2p,
            store,
            ..
        } = self;
        drop(store);
        for task in tasks {
            if let Err(e) = task.await
                && e.is_panic()
            {
                tracing::error!(error = %e, "a node task panicked");
            }
        }
        drop(p2p);
        if writer.await.is_err() {
            tracing::error!("the store writer did not end cleanly");
        }
    }

    /// Shuts down and waits.
    pub async fn stop(self) {
        self.shutdown();
        self.join().await;
    }
}
