//! The libp2p swarm: transport, the member-only allow list, the bounded peer
//! set, gossipsub per purpose, the sync protocol and peer bookkeeping.
//!
//! Owns the `Swarm` alone, inside one task (the [`driver`]); the rest of the
//! node talks to it through [`P2pHandle`] (typed commands) and never sees a
//! `SwarmEvent`. Holds no business rules and reads no store itself: it asks
//! `membership` who may connect and what a list says, hands events to
//! `notify::ingest`, takes this node's own events from the store's feed, and
//! leaves sync answers and comparisons to its worker ([`sync::server`]).
//!
//! Rooms: [`behaviour`] (protocols, gossipsub settings), [`transport`] (the
//! counted TCP/Noise/Yamux stack), [`topology`] (whom to connect to),
//! [`peers`] (allow list, dials, duplicates), [`gossip`] and [`client`]
//! (the swarm task's handling of each protocol), [`checkpoints`] (the
//! audit topic), [`sync`] (catch-up).

mod behaviour;
mod checkpoints;
mod client;
mod driver;
mod gossip;
mod peers;
mod sync;
pub mod topology;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use handbereik_keys::{MemberId, NodeKey, Purpose};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{Error, Result};
use crate::limits::{Limiter, MemberLimits};
use crate::membership::Membership;
use crate::metrics::Metrics;
use crate::notify::ingest::{self, IngestHandle, Item};
use crate::store::{Published, Store};
use crate::supervisor::{Group, Supervisor};

/// The catch-up protocol's messages and size limits, for the fuzz targets
/// (`fuzz/`), which decode them as the libp2p codec does.
#[doc(hidden)]
pub use behaviour::{MAX_SYNC_REQUEST, MAX_SYNC_RESPONSE};
pub use behaviour::{audit_topic, governance_topic, purpose_topic};
/// See above.
#[doc(hidden)]
pub use sync::protocol as sync_protocol;
pub use topology::Bounds;

/// Pages of fetched events waiting to be handed to the ingest pipeline.
const PAGE_QUEUE: usize = 64;

/// Each member's share of this node's sync answers: catch-up is a few
/// requests per round and a chain of pages, far below this.
const SYNC_SHARE: MemberLimits = MemberLimits {
    per_sec: 50,
    burst: 200,
    in_flight: 8,
};

/// Settings of the p2p layer.
#[derive(Clone, Debug)]
pub struct P2pSettings {
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// How often a few peers are asked what changed.
    pub sync_interval: Duration,
    /// How many peers to connect to, and how they are chosen.
    pub bounds: Bounds,
}

pub(crate) enum Command {
    Publish {
        purpose: Purpose,
        bytes: Vec<u8>,
    },
    Peers {
        reply: oneshot::Sender<Vec<(PeerId, MemberId)>>,
    },
    PublishCheckpoint {
        bytes: Vec<u8>,
    },
}

/// The audit topic's two directions, for [`start`].
pub struct AuditGossip {
    /// Takes other members' checkpoints.
    pub witness: crate::audit::witness::Witness,
    /// This node's newest signed checkpoint (the newest stored one at start).
    pub own_checkpoints: watch::Receiver<Option<Vec<u8>>>,
}

/// What the gossip and sync layers need back from the ingest pipeline.
#[derive(Debug, Clone)]
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

    /// Gossips raw bytes on the audit topic as this node, outside the
    /// checkpoint feed (for tests and tools that must send what a faulty
    /// node would).
    pub async fn publish_checkpoint(&self, bytes: Vec<u8>) -> Result<()> {
        self.commands
            .send(Command::PublishCheckpoint { bytes })
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

/// The PeerId of a member's node key, without decoding the point: an
/// ed25519 PeerId is the identity multihash of the key's protobuf encoding,
/// so a list of tens of thousands of members costs no curve arithmetic.
pub fn peer_id_of(key: &handbereik_keys::PublicKey) -> Option<PeerId> {
    // multihash: identity (0x00), length 36; protobuf: KeyType Ed25519
    // (field 1 = 1), Data (field 2, 32 bytes).
    let mut bytes = Vec::with_capacity(38);
    bytes.extend_from_slice(&[0x00, 0x24, 0x08, 0x01, 0x12, 0x20]);
    bytes.extend_from_slice(key.as_bytes());
    PeerId::from_bytes(&bytes).ok()
}

/// Builds the swarm, binds its listeners and starts the driver, the sync
/// worker and the ingest pipeline under `supervisor`. `published` is the
/// store's feed of this node's own events, gossiped in the order they were
/// numbered; `audit` connects the audit topic to the witness and to this
/// node's checkpoints.
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
    audit: AuditGossip,
) -> Result<P2pHandle> {
    let mut seed = key.seed();
    let keypair = libp2p::identity::Keypair::ed25519_from_bytes(&mut seed)
        .map_err(|e| Error::P2p(e.to_string()))?;
    let peer_id = keypair.public().to_peer_id();
    let network = membership.network().to_string();
    let max_peers = u32::try_from(settings.bounds.max_peers).unwrap_or(u32::MAX);
    let mut swarm = transport::swarm(
        keypair,
        &network,
        max_peers,
        transport::WireCounters {
            received: metrics.p2p_bytes_received.clone(),
            sent: metrics.p2p_bytes_sent.clone(),
        },
    )?;
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
    let (sync_jobs, sync_done) = sync::server::spawn(
        supervisor,
        own.clone(),
        store,
        membership.clone(),
        Limiter::new(SYNC_SHARE),
        metrics.clone(),
    );
    let pages = spawn_page_feeder(supervisor, ingest.clone());
    let (commands_tx, commands_rx) = mpsc::channel(1024);
    let (listen_tx, listen_rx) = watch::channel(Vec::new());
    let driver = driver::Driver::new(driver::Parts {
        swarm,
        network,
        own,
        own_key: *key.public_key().as_bytes(),
        membership,
        metrics,
        ingest,
        listen: listen_tx,
        sync_interval: settings.sync_interval,
        published,
        bounds: settings.bounds,
        sync_jobs,
        sync_done,
        pages,
        witness: audit.witness,
        own_checkpoints: audit.own_checkpoints,
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

/// Starts the task that hands fetched pages to the ingest pipeline, one page
/// after another, so events of a stream go in in sequence order.
fn spawn_page_feeder(
    supervisor: &Supervisor,
    ingest: IngestHandle<Ticket>,
) -> mpsc::Sender<(Purpose, Vec<serde_bytes::ByteBuf>)> {
    let (tx, mut rx) = mpsc::channel::<(Purpose, Vec<serde_bytes::ByteBuf>)>(PAGE_QUEUE);
    supervisor.spawn_critical(Group::Workers, "sync page feeder", async move {
        while let Some((purpose, events)) = rx.recv().await {
            for bytes in events {
                let item = Item {
                    bytes: bytes.into_vec(),
                    topic_purpose: Some(purpose.clone()),
                    early_verdict: false,
                    ticket: Ticket::Sync,
                };
                if !ingest.submit(item).await {
                    return Ok::<(), Error>(());
                }
            }
        }
        Ok(())
    });
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_peer_id_is_the_one_libp2p_derives() {
        for seed in [1u8, 2, 77, 200] {
            let key = NodeKey::from_seed([seed; 32]);
            let public = key.public_key();
            let ed =
                libp2p::identity::ed25519::PublicKey::try_from_bytes(public.as_bytes()).unwrap();
            let slow = libp2p::identity::PublicKey::from(ed).to_peer_id();
            assert_eq!(peer_id_of(&public), Some(slow));
        }
    }
}
