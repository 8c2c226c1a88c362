//! The composed libp2p behaviour, the gossipsub configuration and topic names.

use std::time::Duration;

use handbereik_keys::Purpose;
use libp2p::identity::Keypair;
use libp2p::{
    StreamProtocol, allow_block_list, connection_limits, gossipsub, identify, request_response,
    swarm::NetworkBehaviour,
};
use sha2::{Digest, Sha256};

use super::sync::{SyncRequest, SyncResponse};
use crate::notify::event::MAX_EVENT_BYTES;

/// The sync protocol's name.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/handbereik/sync/1");
/// Largest sync request (high-water marks of many streams).
pub const MAX_SYNC_REQUEST: u64 = 1024 * 1024;
/// Largest sync response (a page of events, or a member list).
pub const MAX_SYNC_RESPONSE: u64 = 40 * 1024 * 1024;
/// Largest member list gossiped on the governance topic.
pub const MAX_LIST_GOSSIP: usize = 8 * 1024 * 1024;

/// Every protocol a node speaks. Field order matters: libp2p asks behaviours
/// in this order whether to accept a connection, so the gates come first and a
/// connection they refuse never reaches gossipsub or sync.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Only PeerIds of current members may connect (updated with every list).
    pub allow: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    /// Bounds connections per peer and pending ones, against floods.
    pub limits: connection_limits::Behaviour,
    /// Tells peers our protocols and listen addresses.
    pub identify: identify::Behaviour,
    /// Notifications per purpose, and member lists on the governance topic.
    pub gossipsub: gossipsub::Behaviour,
    /// Catch-up: high-water marks, ranges of events, the member list.
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

/// What a topic hash stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicKind {
    /// The governance topic.
    Governance,
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
    Purpose::parse(name).ok().map(TopicKind::Purpose)
}

/// Builds the behaviour.
pub fn build(
    key: &Keypair,
    network: &str,
) -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
    let gossipsub_config = gossipsub_config(network)?;
    // Our events carry their source's signature, checked off the swarm task;
    // a second libp2p signature per message would only add work here.
    let gossipsub =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gossipsub_config)?;
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
                .with_max_established_per_peer(Some(2))
                .with_max_pending_incoming(Some(64)),
        ),
        identify: identify::Behaviour::new(identify::Config::new(
            "/handbereik/1".into(),
            key.public(),
        )),
        gossipsub,
        sync,
    })
}

/// The gossipsub configuration, in one place.
fn gossipsub_config(network: &str) -> Result<gossipsub::Config, String> {
    let governance = governance_topic(network).hash();
    gossipsub::ConfigBuilder::default()
        // Every message is checked by the node before it is forwarded.
        .validate_messages()
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        // Content-addressed ids: the same signed bytes are one message,
        // stable across builds and machines.
        .message_id_fn(|message: &gossipsub::Message| {
            gossipsub::MessageId::from(Sha256::digest(&message.data).to_vec())
        })
        // A little headroom over the event limit for protobuf framing; the
        // event limit itself is enforced on the bytes by `notify::event`.
        .max_transmit_size(MAX_EVENT_BYTES + 4 * 1024)
        .max_transmit_size_for_topic(MAX_LIST_GOSSIP, governance)
        .heartbeat_interval(Duration::from_millis(700))
        .duplicate_cache_time(Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())
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
            parse_topic("other", &purpose_topic("demo", &p).hash()),
            None
        );
    }
}
