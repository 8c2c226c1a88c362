//! The libp2p swarm: transport, the member-only allow list, gossipsub per
//! purpose, the sync protocol and peer bookkeeping.
//!
//! Owns the `Swarm` alone, inside one task (the driver); the rest of the node
//! talks to it through [`P2pHandle`] (typed commands) and never sees a
//! `SwarmEvent`. Holds no business rules: it asks `membership` who may
//! connect and what a list says, hands events to `notify::ingest` and acts on
//! the reports that come back (accept, reject, fetch a gap).

mod behaviour;
mod driver;
mod fetch;
mod sync;

use std::sync::Arc;
use std::time::Duration;

use handbereik_keys::{MemberId, NodeKey, Purpose};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{Error, Result};
use crate::membership::Membership;
use crate::metrics::Metrics;
use crate::notify::ingest;
use crate::store::{Published, Store};
use crate::supervisor::{Group, Supervisor};

pub use behaviour::{governance_topic, purpose_topic};

/// Settings of the p2p layer.
#[derive(Clone, Debug)]
pub struct P2pSettings {
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// How often high-water marks are exchanged with every peer.
    pub sync_interval: Duration,
}

pub(crate) enum Command {
    Publish {
        purpose: Purpose,
        bytes: Vec<u8>,
    },
    Peers {
        reply: oneshot::Sender<Vec<(PeerId, MemberId)>>,
    },
}

/// What the gossip and sync layers need back from the ingest pipeline.
#[derive(Debug)]
pub(crate) enum Ticket {
    Gossip {
        message_id: libp2p::gossipsub::MessageId,
        peer: PeerId,
    },
    Sync,
}

/// The rest of the node's way to the swarm.
#[derive(Clone)]
pub struct P2pHandle {
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
    listen: watch::Receiver<Vec<Multiaddr>>,
}

impl P2pHandle {
    /// This node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Gossips raw bytes on a purpose's topic as this node, outside the
    /// store's feed (for tests and tools that must send what a faulty node
    /// would).
    pub async fn publish(&self, purpose: Purpose, bytes: Vec<u8>) -> Result<()> {
        self.commands
            .send(Command::Publish { purpose, bytes })
            .await
            .map_err(|_| Error::ShuttingDown)
    }

    /// The members connected now.
    pub async fn connected_peers(&self) -> Result<Vec<(PeerId, MemberId)>> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Peers { reply })
            .await
            .map_err(|_| Error::ShuttingDown)?;
        rx.await.map_err(|_| Error::ShuttingDown)
    }

    /// The addresses the swarm listens on, once it listens on at least one.
    pub async fn listen_addrs(&self) -> Vec<Multiaddr> {
        let mut rx = self.listen.clone();
        match rx.wait_for(|a| !a.is_empty()).await {
            Ok(addrs) => addrs.clone(),
            Err(_) => Vec::new(),
        }
    }
}

/// The PeerId of a member's node key.
pub fn peer_id_of(key: &handbereik_keys::PublicKey) -> Option<PeerId> {
    let ed = libp2p::identity::ed25519::PublicKey::try_from_bytes(key.as_bytes()).ok()?;
    Some(libp2p::identity::PublicKey::from(ed).to_peer_id())
}

/// Builds the swarm, binds its listeners and starts the driver and the
/// ingest pipeline under `supervisor`. `published` is the store's feed of
/// this node's own events, gossiped in the order they were numbered.
#[allow(clippy::too_many_arguments)]
pub fn start(
    supervisor: &Supervisor,
    key: &NodeKey,
    own: MemberId,
    settings: P2pSettings,
    membership: Membership,
    store: Store,
    metrics: Arc<Metrics>,
    published: mpsc::Receiver<Published>,
) -> Result<P2pHandle> {
    let mut seed = key.seed();
    let keypair = libp2p::identity::Keypair::ed25519_from_bytes(&mut seed)
        .map_err(|e| Error::P2p(e.to_string()))?;
    let peer_id = keypair.public().to_peer_id();
    let network = membership.network().to_string();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .map_err(|e| Error::P2p(e.to_string()))?
        .with_dns()
        .map_err(|e| Error::P2p(e.to_string()))?
        .with_behaviour(|key| behaviour::build(key, &network))
        .map_err(|e| Error::P2p(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    for address in &settings.listen {
        swarm.listen_on(address.clone()).map_err(|e| Error::Bind {
            what: "p2p listener",
            address: address.to_string(),
            reason: e.to_string(),
        })?;
    }
    let (reports_tx, reports_rx) = mpsc::channel(8192);
    let ingest = ingest::spawn(
        supervisor,
        membership.clone(),
        store.clone(),
        metrics.clone(),
        reports_tx,
    );
    let (commands_tx, commands_rx) = mpsc::channel(1024);
    let (listen_tx, listen_rx) = watch::channel(Vec::new());
    let driver = driver::Driver::new(driver::Parts {
        swarm,
        network,
        own,
        membership,
        store,
        metrics,
        ingest,
        listen: listen_tx,
        sync_interval: settings.sync_interval,
        published,
        supervisor: supervisor.clone(),
    });
    let stop = supervisor.stop_working();
    supervisor.spawn_critical(
        Group::Workers,
        "p2p swarm",
        driver.run(commands_rx, reports_rx, stop),
    );
    Ok(P2pHandle {
        commands: commands_tx,
        peer_id,
        listen: listen_rx,
    })
}
