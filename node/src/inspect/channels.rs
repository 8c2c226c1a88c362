//! The pool of connections to other members' peer listeners, shared by
//! every question this node asks (Known, Inspect, Locate, Report).
//!
//! One channel per member, rebuilt when the member list gives the member
//! another key or endpoint (the key is pinned in the TLS handshake), closed
//! after [`CHANNEL_IDLE`] unused, and at most [`MAX_CHANNELS`] open (least
//! recently used go first), so a Locate over thousands of members never
//! holds thousands of connections. Calls [`tls`](super::tls).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use handbereik_keys::{Member, MemberId, PublicKey};
use handbereik_proto::v1::source_client::SourceClient;
use tonic::transport::Channel;

use super::answer;
use super::tls::{self, TlsIdentity};
use crate::error::{Error, Result};

/// Channels to other members kept open at most (least recently used go).
pub const MAX_CHANNELS: usize = 256;
/// A channel not used for this long is closed.
pub const CHANNEL_IDLE: Duration = Duration::from_secs(300);

struct Cached {
    key: PublicKey,
    endpoint: String,
    client: SourceClient<Channel>,
    last_used: Instant,
}

/// The pool. Cheap to share behind an `Arc`.
pub struct Channels {
    identity: Arc<TlsIdentity>,
    connect_timeout: Duration,
    clients: Mutex<HashMap<MemberId, Cached>>,
}

impl Channels {
    /// Presenting `identity`; each connection attempt within `connect_timeout`.
    pub fn new(identity: Arc<TlsIdentity>, connect_timeout: Duration) -> Self {
        Channels {
            identity,
            connect_timeout,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// A client of `member`'s Source service, over a channel that pins the
    /// member's current key.
    pub fn source(&self, member: &Member) -> Result<SourceClient<Channel>> {
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| Error::Tls("the connection table is poisoned".into()))?;
        let now = Instant::now();
        if let Some(c) = clients.get_mut(&member.member_id)
            && c.key == member.node_key
            && c.endpoint == member.grpc_endpoint
        {
            c.last_used = now;
            return Ok(c.client.clone());
        }
        // A new channel: first close the idle ones, then, if still full, the
        // least recently used.
        clients.retain(|_, c| now.duration_since(c.last_used) < CHANNEL_IDLE);
        while clients.len() >= MAX_CHANNELS {
            let Some(oldest) = clients
                .iter()
                .min_by_key(|(_, c)| c.last_used)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            clients.remove(&oldest);
        }
        let config = tls::client_config(&self.identity, member.node_key)?;
        let channel = tls::channel(&member.grpc_endpoint, config, self.connect_timeout)?;
        let client =
            SourceClient::new(channel).max_decoding_message_size(answer::ANSWER_LIMIT + 1024);
        clients.insert(
            member.member_id.clone(),
            Cached {
                key: member.node_key,
                endpoint: member.grpc_endpoint.clone(),
                client: client.clone(),
                last_used: now,
            },
        );
        Ok(client)
    }
}
