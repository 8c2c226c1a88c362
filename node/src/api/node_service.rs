//! `handbereik.v1.Node`: Status and Members.

use std::collections::HashSet;
use std::sync::Arc;

use handbereik_keys::time;
use handbereik_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::ApiState;

pub struct NodeService {
    state: Arc<ApiState>,
}

impl NodeService {
    pub fn new(state: Arc<ApiState>) -> Self {
        NodeService { state }
    }
}

#[tonic::async_trait]
impl pb::node_server::Node for NodeService {
    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let s = &self.state;
        let view = s.membership.view();
        let now = time::now();
        let peers = s.p2p.connected_peers().await?;
        let m = &s.metrics;
        let list = view.list().map(|l| &l.list);
        let audit_alarms = super::witness::alarms(s).await?;
        Ok(Response::new(pb::StatusResponse {
            member_id: s.own.to_string(),
            network: s.membership.network().to_string(),
            peer_id: s.p2p.peer_id().to_string(),
            state: view.own_refusal(&s.own, now).unwrap_or_else(|| "ok".into()),
            member_list_version: view.version(),
            member_list_expires_at: list.map_or(0, |l| l.expires_at),
            member_list_expired: view.is_expired(now),
            connected_peers: peers
                .iter()
                .map(|(peer, member)| pb::ConnectedPeer {
                    member_id: member.to_string(),
                    peer_id: peer.to_string(),
                })
                .collect(),
            counters: Some(pb::Counters {
                published: m.published.get(),
                received: m.received.get(),
                rejected: m.rejected_total(),
                fetched_by_sync: m.fetched_by_sync.get(),
                inbox_size: *s.inbox_head.borrow(),
            }),
            audit_alarms,
        }))
    }

    async fn members(
        &self,
        _: Request<pb::MembersRequest>,
    ) -> Result<Response<pb::MembersResponse>, Status> {
        let s = &self.state;
        let view = s.membership.view();
        let connected: HashSet<String> = s
            .p2p
            .connected_peers()
            .await?
            .into_iter()
            .map(|(_, m)| m.to_string())
            .collect();
        let members = view
            .members()
            .iter()
            .map(|m| pb::Member {
                member_id: m.member_id.to_string(),
                name: m.name.clone(),
                roles: m.roles.iter().map(|r| r.to_string()).collect(),
                purposes: m.purposes.iter().map(|p| p.to_string()).collect(),
                node_key: m.node_key.to_hex(),
                p2p_addresses: m.p2p_addresses.clone(),
                grpc_endpoint: m.grpc_endpoint.clone(),
                maintenance: m.maintenance,
                connected: connected.contains(m.member_id.as_str()),
            })
            .collect();
        Ok(Response::new(pb::MembersResponse {
            version: view.version(),
            members,
        }))
    }
}
