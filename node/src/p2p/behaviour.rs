//! The composed libp2p behaviour, the gossipsub configuration (mesh sizes,
//! scoring) and topic names, each in one place.

use std::time::Duration;

use handbereik_keys::{LIST_LIMIT, Purpose};
use libp2p::identity::Keypair;
use libp2p::{
    StreamProtocol, allow_block_list, connection_limits, gossipsub, identify, ping,
    request_response, swarm::NetworkBehaviour,
};
use sha2::{Digest, Sha256};

use super::sync::{SyncRequest, SyncResponse};
use crate::audit::witness::MAX_CHECKPOINT_BYTES;
use crate::notify::event::MAX_EVENT_BYTES;

/// The sync protocol's name: version 2 exchanges what changed since a cursor.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/handbereik/sync/2");
/// Largest sync request.
pub const MAX_SYNC_REQUEST: u64 = 64 * 1024;
/// Largest sync response (a page of events, or a member list).
pub const MAX_SYNC_RESPONSE: u64 = (LIST_LIMIT as u64) + 1024 * 1024;
/// Largest member list gossiped on the governance topic: any list a node
/// accepts (a 20,000-member list is about 6 MiB).
pub const MAX_LIST_GOSSIP: usize = LIST_LIMIT + 64 * 1024;

/// How often each connection is pinged; two missed pings close it.
pub const PING_INTERVAL: Duration = Duration::from_secs(10);
/// How long a ping may take.
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Every protocol a node speaks. Field order matters: libp2p asks behaviours
/// in this order whether to accept a connection, so the gates come first and
/// a connection they refuse never reaches gossipsub or sync.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Only PeerIds of current members may connect (updated with every list).
    pub allow: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    /// The bounded peer set: at most `max_peers` connections in all.
    pub limits: connection_limits::Behaviour,
    /// Finds dead connections: one that misses pings is closed, so peer
    /// counts and alerts are true.
    pub ping: ping::Behaviour,
    /// Tells peers our protocols and listen addresses.
    pub identify: identify::Behaviour,
    /// Notifications per purpose, member lists on the governance topic,
    /// audit checkpoints on the audit topic.
    pub gossipsub: gossipsub::Behaviour,
    /// Catch-up: what changed, ranges of events, the member list.
    pub sync: request_response::cbor::Behaviour<SyncRequest, SyncResponse>,
}

/// The topic of one purpose.
pub fn purpose_topic(network: &str, purpose: &Purpose) -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(format!("/handbereik/{network}/{purpose}/1"))
}

/// The topic member lists travel on.
pub fn governance_topic(network: &str) -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(format!("/handbereik/{network}/governance/1"))
}

/// The topic audit checkpoints travel on (every node subscribes to it).
pub fn audit_topic(network: &str) -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(format!("/handbereik/{network}/audit/1"))
}

/// What a topic hash stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicKind {
    /// The governance topic.
    Governance,
    /// The audit topic: signed checkpoints of members' audit logs.
    Audit,
    /// A purpose's topic.
    Purpose(Purpose),
}

/// Parses a topic name of this network; `None` for anything else.
pub fn parse_topic(network: &str, topic: &gossipsub::TopicHash) -> Option<TopicKind> {
    let rest = topic
        .as_str()
        .strip_prefix("/handbereik/")?
        .strip_prefix(network)?
        .strip_prefix('/')?;
    let name = rest.strip_suffix("/1")?;
    if name == "governance" {
        return Some(TopicKind::Governance);
    }
    if name == "audit" {
        return Some(TopicKind::Audit);
    }
    Purpose::parse(name).ok().map(TopicKind::Purpose)
}

/// Builds the behaviour for a node that keeps at most `max_peers` connections.
pub fn build(
    key: &Keypair,
    network: &str,
    max_peers: u32,
) -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
    let gossipsub_config = gossipsub_config(network)?;
    // Our events carry their source's signature, checked off the swarm task;
    // a second libp2p signature per message would only add work here.
    let mut gossipsub =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gossipsub_config)?;
    gossipsub.with_peer_score(score_params(), gossipsub::PeerScoreThresholds::default())?;
    let codec = request_response::cbor::codec::Codec::default()
        .set_request_size_maximum(MAX_SYNC_REQUEST)
        .set_response_size_maximum(MAX_SYNC_RESPONSE);
    let sync = request_response::Behaviour::with_codec(
        codec,
        [(SYNC_PROTOCOL, request_response::ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(Duration::from_secs(30))
            .with_max_concurrent_streams(64),
    );
    Ok(Behaviour {
        allow: allow_block_list::Behaviour::default(),
        limits: connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                // One connection per pair, refused here, before gossipsub
                // sees a second one: gossipsub shares one send queue among
                // a peer's connections and announces subscriptions once, so
                // closing one of two later could lose that announcement and
                // leave the pair connected with no gossip between them.
                // When both ends of a simultaneous dial keep a different
                // one, both close, and their jittered redials make one.
                .with_max_established_per_peer(Some(1))
                .with_max_established(Some(max_peers))
                .with_max_pending_incoming(Some(max_peers.saturating_mul(2)))
                .with_max_pending_outgoing(Some(max_peers)),
        ),
        ping: ping::Behaviour::new(
            ping::Config::new()
                .with_interval(PING_INTERVAL)
                .with_timeout(PING_TIMEOUT),
        ),
        identify: identify::Behaviour::new(identify::Config::new(
            "/handbereik/1".into(),
            key.public(),
        )),
        gossipsub,
        sync,
    })
}

/// The gossipsub configuration, in one place. Mesh sizes follow the
/// gossipsub v1.1 spec's defaults (D = 6, D_lo = 5, D_hi = 12, D_lazy = 6),
/// which a bounded peer set of 32 with 8 peers per purpose can hold; no
/// flood publishing: a publisher sends to its mesh, and gossip (IHAVE/IWANT)
/// and mesh forwarding do the rest.
fn gossipsub_config(network: &str) -> Result<gossipsub::Config, String> {
    let governance = governance_topic(network).hash();
    let audit = audit_topic(network).hash();
    gossipsub::ConfigBuilder::default()
        // Every message is checked by the node before it is forwarded.
        .validate_messages()
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        // Content-addressed ids: the same signed bytes are one message,
        // stable across builds and machines.
        .message_id_fn(|message: &gossipsub::Message| {
            gossipsub::MessageId::from(Sha256::digest(&message.data).to_vec())
        })
        .mesh_n(6)
        .mesh_n_low(5)
        .mesh_n_high(12)
        .mesh_outbound_min(2)
        .gossip_lazy(6)
        .flood_publish(false)
        // A little headroom over the event limit for protobuf framing; the
        // event limit itself is enforced on the bytes by `notify::event`.
        .max_transmit_size(MAX_EVENT_BYTES + 4 * 1024)
        .max_transmit_size_for_topic(MAX_LIST_GOSSIP, governance)
        // A checkpoint is a few hundred bytes; 4 KiB is refused by the node.
        .max_transmit_size_for_topic(MAX_CHECKPOINT_BYTES + 1024, audit)
        .heartbeat_interval(Duration::from_secs(1))
        .duplicate_cache_time(Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())
}

/// Peer scoring: a message that fails validation (Reject) costs its sender,
/// and a sender far enough below zero is graylisted. Only that is scored:
/// in a network of authenticated members there is no Sybil crowd to weigh by
/// IP address (all of a test network is on one address), and a quiet topic
/// must not count against the peers in its mesh.
fn score_params() -> gossipsub::PeerScoreParams {
    gossipsub::PeerScoreParams {
        ip_colocation_factor_weight: 0.0,
        ..Default::default()
    }
}

/// The scoring of one topic: invalid messages only.
pub fn topic_score_params() -> gossipsub::TopicScoreParams {
    gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.0,
        first_message_deliveries_weight: 0.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        // Squared: nine rejected messages in a short while reach the
        // graylist (-80: everything from the peer is ignored), four already
        // stop gossip with it (-10); the count decays by a tenth a second.
        invalid_message_deliveries_weight: -1.0,
        invalid_message_deliveries_decay: 0.9,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_parse_back() {
        let p = Purpose::parse("jeugdbescherming").unwrap();
        assert_eq!(
            parse_topic("demo", &purpose_topic("demo", &p).hash()),
            Some(TopicKind::Purpose(p.clone()))
        );
        assert_eq!(
            parse_topic("demo", &governance_topic("demo").hash()),
            Some(TopicKind::Governance)
        );
        assert_eq!(
            parse_topic("demo", &audit_topic("demo").hash()),
            Some(TopicKind::Audit)
        );
        assert_eq!(
            parse_topic("other", &purpose_topic("demo", &p).hash()),
            None
        );
    }

    #[test]
    fn the_gossip_and_scoring_settings_are_valid() {
        assert!(gossipsub_config("demo").is_ok());
        assert!(score_params().validate().is_ok());
        assert!(topic_score_params().validate().is_ok());
    }
}
