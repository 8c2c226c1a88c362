//! Wiring: start-up order, the tasks, and graceful shutdown.
//!
//! Start-up: configuration (already validated) → node key, pseudonym key,
//! category catalogue, TLS identity → store → policy → member list (and its
//! owner task) → metrics → the node key history, the announcer and the
//! audit witness → p2p → member list file and URL watchers → policy
//! watcher, retention sweeper, audit checkpoints, gap passing, the store
//! watchdog → peer API (mutual TLS), local API and metrics listeners →
//! ready. Every task is owned by the [`Supervisor`]; one that fails stops
//! the node, and [`Node::failed`] says which.
//!
//! Shutdown, in phases, each with a deadline ([`SHUTDOWN_PHASE`]):
//!
//! 1. **stop accepting**: the local API, the peer API and the metrics
//!    listener take no new connections; subscription streams end;
//! 2. **drain**: in-flight calls finish (the servers group ends);
//! 3. **cancel**: background tasks end (watchers, sweeper, checkpoints, the
//!    membership owner, ingest), every long wait raced against cancellation;
//! 4. **close the swarm**: the p2p task disconnects its peers and ends (part
//!    of the workers group, so within the same deadline);
//! 5. **flush and close the store**: one last group commit, then the writer
//!    thread is joined.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use handbereik_keys::{Anchor, NodeKey};
use libp2p::{Multiaddr, PeerId};

use crate::api::{self, ApiState, BearerToken};
use crate::audit::witness::Witness;
use crate::audit::{self, Audit};
use crate::config::ValidConfig;
use crate::error::{Error, Result};
use crate::inspect::channels::Channels;
use crate::inspect::client::Asker;
use crate::inspect::policy::PolicyHandle;
use crate::inspect::serve::SourceState;
use crate::inspect::server::{self, PeerListener};
use crate::inspect::tls::{AcceptLimits, TlsIdentity};
use crate::inspect::witness::WitnessService;
use crate::inspect::witnesses::WitnessAsker;
use crate::limits::MemberLimits;
use crate::membership::Membership;
use crate::metrics::{self, Metrics};
use crate::notify::announce::Announcer;
use crate::notify::gaps;
use crate::notify::publish::Publisher;
use crate::notify::subscriptions::Subscriptions;
use crate::p2p::{self, P2pHandle, P2pSettings};
use crate::registry::{self, Catalogue, Registry, Subjects};
use crate::store::{Opened, Store, StoreError, WriterThread};
use crate::supervisor::{Failure, Group, Supervisor};

/// How long each phase of the shutdown may take.
pub const SHUTDOWN_PHASE: Duration = Duration::from_secs(10);

/// Peers wanted per admitted purpose: a gossipsub mesh of D = 6 plus room to
/// replace two.
const PEERS_PER_PURPOSE: usize = 8;
/// Random long links, re-chosen with every list, for a small diameter.
const LONG_LINKS: usize = 2;

/// How often the watchdog looks at the store's group commit.
const WATCHDOG_EVERY: Duration = Duration::from_secs(1);

/// A running node.
pub struct Node {
    local_api: SocketAddr,
    peer_api: SocketAddr,
    metrics_addr: SocketAddr,
    store: Store,
    writer: WriterThread,
    p2p: P2pHandle,
    supervisor: Supervisor,
    metrics: Arc<Metrics>,
}

impl Node {
    /// Starts every part of the node; returns once all listeners are bound.
    pub async fn start(config: ValidConfig) -> Result<Node> {
        let c = &config.config;
        let key = Arc::new(NodeKey::load(&c.node.key_file)?);
        let token = BearerToken::load(&c.local_api.token_file)?;
        let subjects = Subjects::load(c.registry.pseudonym_key_file.as_deref())?;
        let catalogue = Catalogue::new(config.categories.iter().cloned());
        let identity = Arc::new(TlsIdentity::new(&key, &config.member_id)?);
        let cache_bytes = c.store.cache_capacity_mb.saturating_mul(1024 * 1024);
        let Opened {
            store,
            writer,
            published,
        } = Store::open(&c.node.data_dir, cache_bytes)?;
        let metrics = Metrics::new();
        // After the store: a second process on a locked directory says only that.
        let policy = PolicyHandle::load(&c.policy.file, metrics.clone())?;
        let supervisor = Supervisor::new(metrics.clone());
        let anchor = Anchor::new(config.anchor_keys.iter().copied(), c.governance.threshold)?;
        let (membership, owner) =
            Membership::load(&c.node.network, anchor, store.clone(), metrics.clone()).await?;
        supervisor.spawn_critical(
            Group::Workers,
            "membership",
            owner.run(supervisor.stop_working()),
        );

        // Witnessed audit: the node keys on record (before anything is
        // signed), the local announcer (audit alarms reach the back office
        // on the local stream), the witness of the other members'
        // checkpoints, and this node's own checkpoints for gossip.
        audit::record_key(&store, &key.public_key()).await?;
        let announcer = Announcer::new(config.member_id.clone(), key.clone(), store.clone());
        let witness = Witness::start(
            &supervisor,
            audit::witness::Parts {
                own: config.member_id.clone(),
                key: key.clone(),
                membership: membership.clone(),
                store: store.clone(),
                metrics: metrics.clone(),
                announcer: announcer.clone(),
            },
        );
        let (own_checkpoints_tx, own_checkpoints) =
            tokio::sync::watch::channel(audit::latest_checkpoint(&store, &key.public_key())?);

        let p2p = p2p::start(
            &supervisor,
            &key,
            config.member_id.clone(),
            P2pSettings {
                listen: config.p2p_listen.clone(),
                sync_interval: Duration::from_secs(c.p2p.sync_interval_secs),
                bounds: p2p::Bounds {
                    max_peers: c.p2p.max_peers,
                    per_purpose: PEERS_PER_PURPOSE,
                    long_links: LONG_LINKS,
                },
            },
            membership.clone(),
            store.clone(),
            metrics.clone(),
            published,
            p2p::AuditGossip {
                witness: witness.clone(),
                own_checkpoints,
            },
        )?;
        supervisor.spawn_critical(
            Group::Workers,
            "member list file watcher",
            membership.clone().watch_file(
                c.governance.member_list_file.clone(),
                Duration::from_secs(c.governance.member_list_poll_secs),
                supervisor.stop_working(),
            ),
        );
        if let Some(url) = config.member_list_url.clone() {
            supervisor.spawn_critical(
                Group::Workers,
                "member list URL poll",
                crate::membership::url::watch(
                    membership.clone(),
                    url,
                    Duration::from_secs(c.governance.member_list_url_poll_secs),
                    supervisor.stop_working(),
                ),
            );
        }
        let registry = Registry::new(store.clone(), catalogue, subjects);
        let audit = Audit::new(store.clone());
        supervisor.spawn_critical(
            Group::Workers,
            "policy watcher",
            until_stopped(policy.clone().watch_file(
                c.policy.file.clone(),
                Duration::from_secs(c.policy.reload_secs),
                supervisor.stop_working(),
            )),
        );
        supervisor.spawn_critical(
            Group::Workers,
            "retention sweeper",
            until_stopped(registry::sweep_every(
                registry.clone(),
                Duration::from_secs(c.registry.sweep_interval_secs),
                supervisor.stop_working(),
            )),
        );
        supervisor.spawn_critical(
            Group::Workers,
            "audit checkpoints",
            until_stopped(audit::checkpoint_every(
                store.clone(),
                key.clone(),
                config.member_id.clone(),
                Duration::from_secs(c.audit.checkpoint_interval_secs),
                own_checkpoints_tx,
                supervisor.stop_working(),
            )),
        );
        supervisor.spawn_critical(
            Group::Workers,
            "gap passing",
            gaps::pass_every(
                store.clone(),
                Duration::from_secs(c.notify.gap_timeout_secs),
                supervisor.stop_working(),
            ),
        );
        supervisor.spawn_critical(
            Group::Workers,
            "store watchdog",
            watch_store(
                store.clone(),
                Duration::from_secs(c.store.commit_timeout_secs),
                supervisor.stop_working(),
            ),
        );

        let peer_listener = api::bind(c.peer_api.listen, "peer API").await?;
        let peer_api = local_addr(&peer_listener, "peer API")?;
        let source = Arc::new(SourceState {
            own: config.member_id.clone(),
            key: key.clone(),
            membership: membership.clone(),
            registry: registry.clone(),
            policy,
            audit: audit.clone(),
            metrics: metrics.clone(),
            announcer: announcer.clone(),
        });
        let peer_settings = PeerListener {
            accept: AcceptLimits {
                handshake_timeout: Duration::from_secs(c.peer_api.handshake_timeout_secs),
                max_handshakes: c.peer_api.max_handshakes,
                max_per_address: c.peer_api.max_handshakes_per_address,
                max_silent: c.peer_api.max_handshakes.saturating_mul(4),
            },
            per_member: MemberLimits {
                per_sec: c.peer_api.member_requests_per_sec,
                burst: c.peer_api.member_burst,
                in_flight: c.peer_api.member_in_flight,
            },
        };
        let peer_identity = identity.clone();
        let peer_stop = supervisor.stop_accepting();
        let held = WitnessService::new(witness.clone(), membership.clone(), metrics.clone());
        supervisor.spawn_critical(Group::Servers, "peer API", async move {
            server::serve(
                peer_listener,
                &peer_identity,
                peer_settings,
                source,
                held,
                peer_stop,
            )
            .await
        });
        let witnesses = Arc::new(WitnessAsker::new(
            config.member_id.clone(),
            key.public_key(),
            identity.clone(),
            membership.clone(),
            audit.clone(),
            Duration::from_millis(c.peer_api.connect_timeout_ms),
        ));
        let channels = Arc::new(Channels::new(
            identity,
            Duration::from_millis(c.peer_api.connect_timeout_ms),
        ));
        let asker = Arc::new(Asker::new(
            config.member_id.clone(),
            key.clone(),
            channels,
            membership.clone(),
            audit.clone(),
            metrics.clone(),
            announcer,
        ));
        let api_listener = api::bind(c.local_api.listen, "local API").await?;
        let metrics_listener = api::bind(c.metrics.listen, "metrics endpoint").await?;
        let local_api = local_addr(&api_listener, "local API")?;
        let metrics_addr = local_addr(&metrics_listener, "metrics endpoint")?;
        let state = Arc::new(ApiState {
            own: config.member_id.clone(),
            public_key: key.public_key(),
            publisher: Publisher::new(
                config.member_id.clone(),
                key.clone(),
                membership.clone(),
                store.clone(),
                metrics.clone(),
            ),
            inbox_head: store.inbox_head(),
            supervisor: supervisor.clone(),
            subscriptions: Subscriptions::new(store.clone()),
            membership,
            registry,
            audit,
            asker,
            witness,
            witnesses,
            p2p: p2p.clone(),
            metrics: metrics.clone(),
        });
        let api_stop = supervisor.stop_accepting();
        supervisor.spawn_critical(Group::Servers, "local API", async move {
            api::serve(api_listener, token, state, api_stop).await
        });
        let metrics_stop = supervisor.stop_accepting();
        let served_metrics = metrics.clone();
        supervisor.spawn_critical(Group::Servers, "metrics endpoint", async move {
            metrics::serve(metrics_listener, served_metrics, metrics_stop).await;
            Ok::<(), Error>(())
        });
        metrics.set_ready();
        tracing::info!(member = %config.member_id, peer = %p2p.peer_id(), %local_api, %peer_api, metrics = %metrics_addr, "node started");
        Ok(Node {
            local_api,
            peer_api,
            metrics_addr,
            store,
            writer,
            p2p,
            supervisor,
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
    /// a full or broken disk would. Only in builds with the `test-hooks`
    /// feature, which the tests crate turns on (node/Cargo.toml).
    #[cfg(any(test, feature = "test-hooks"))]
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

    /// Follows the inbox's durable head: how many notifications of other
    /// members this node has stored for its back office (for harnesses that
    /// time delivery without a gRPC stream per node).
    pub fn inbox_head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.store.inbox_head()
    }

    /// Asks every task to stop; see [`Node::join`].
    pub fn shutdown(&self) {
        self.supervisor.shutdown();
    }

    /// Resolves when a task of the node has failed (and the node is stopping).
    pub async fn failed(&self) {
        self.supervisor.failed().await;
    }

    /// The failure that stopped the node, if one did.
    pub fn failure(&self) -> Option<Failure> {
        self.supervisor.failure()
    }

    /// Runs the shutdown phases (module doc) and waits for all of it; each
    /// phase has [`SHUTDOWN_PHASE`]. Answers the failure that stopped the
    /// node, if a task failed.
    pub async fn join(self) -> std::result::Result<(), Failure> {
        let Node {
            store,
            writer,
            supervisor,
            p2p,
            ..
        } = self;
        for group in supervisor.drain(SHUTDOWN_PHASE).await {
            tracing::error!(
                group,
                "shutdown: tasks did not end within {SHUTDOWN_PHASE:?}; going on"
            );
        }
        drop(p2p);
        match tokio::time::timeout(SHUTDOWN_PHASE, store.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %crate::error::chain(&e), "shutdown: the last flush of the store failed")
            }
            Err(_) => {
                tracing::error!("shutdown: the store did not flush within {SHUTDOWN_PHASE:?}")
            }
        }
        if !writer.join(SHUTDOWN_PHASE).await {
            tracing::error!("shutdown: the store writer did not end cleanly");
        }
        match supervisor.failure() {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    /// Shuts down and waits; a failure is logged (it already was when it
    /// happened).
    pub async fn stop(self) {
        self.shutdown();
        if let Err(failure) = self.join().await {
            tracing::warn!(%failure, "the node had stopped on a failure");
        }
    }
}

/// A background task that returns nothing: it runs until its token fires.
async fn until_stopped(task: impl std::future::Future<Output = ()>) -> Result<()> {
    task.await;
    Ok(())
}

fn local_addr(listener: &tokio::net::TcpListener, what: &'static str) -> Result<SocketAddr> {
    listener.local_addr().map_err(|e| Error::Bind {
        what,
        address: "the bound socket".into(),
        reason: e.to_string(),
    })
}

/// Stops the node when the store breaks or a group commit runs too long: a
/// node that cannot write must not stay half alive.
async fn watch_store(
    store: Store,
    commit_timeout: Duration,
    stop: tokio_util::sync::CancellationToken,
) -> std::result::Result<(), StoreError> {
    let clock = store.commit_clock().clone();
    let mut tick = tokio::time::interval(WATCHDOG_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        if let Some(cause) = clock.broken() {
            return Err(StoreError::Broken(cause));
        }
        if let Some(running) = clock.running_for()
            && running > commit_timeout
        {
            return Err(StoreError::Stalled {
                secs: running.as_secs(),
            });
        }
    }
}
