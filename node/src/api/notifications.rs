//! `handbereik.v1.Notifications`: Publish, Subscribe, Ack.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use handbereik_proto::v1 as pb;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use super::ApiState;
use crate::error::chain;
use crate::notify::event::{Draft, Notification};
use crate::notify::subscriptions::{Delivered, Note, Record};

pub struct NotificationsService {
    state: Arc<ApiState>,
}

impl NotificationsService {
    pub fn new(state: Arc<ApiState>) -> Self {
        NotificationsService { state }
    }
}

/// The protobuf form of a notification.
pub fn to_proto(n: &Notification, source_member_id: &str) -> pb::Notification {
    pb::Notification {
        id: n.id.clone(),
        source: n.source.clone(),
        specversion: n.specversion.clone(),
        r#type: n.event_type.clone(),
        subject: n.subject.clone(),
        time: n.time.clone(),
        sequence: n.sequence,
        dataref: n.dataref.clone(),
        datacontenttype: n.datacontenttype.clone(),
        purpose: n.purpose.to_string(),
        data: n.data.clone(),
        source_member_id: source_member_id.to_string(),
    }
}

type DeliveryStream = Pin<Box<dyn Stream<Item = Result<pb::Delivery, Status>> + Send>>;

#[tonic::async_trait]
impl pb::notifications_server::Notifications for NotificationsService {
    async fn publish(
        &self,
        request: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let r = request.into_inner();
        let purpose = super::input::purpose("purpose", &r.purpose)?;
        let draft = Draft {
            event_type: r.r#type,
            purpose,
            subject: r.subject,
            dataref: r.dataref,
            datacontenttype: if r.datacontenttype.is_empty() {
                "application/json".into()
            } else {
                r.datacontenttype
            },
            data: r.data,
        };
        let notification = self.state.publisher.publish(draft).await?;
        Ok(Response::new(pb::PublishResponse {
            notification: Some(to_proto(&notification, self.state.own.as_str())),
        }))
    }

    type SubscribeStream = DeliveryStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let r = request.into_inner();
        let record = self
            .state
            .subscriptions
            .open(
                &r.name,
                Record {
                    acked: 0,
                    types: r.types,
                    purposes: r.purposes,
                    sources: r.sources,
                },
            )
            .await?;
        let (tx, rx) = mpsc::channel::<Delivered>(256);
        let state = self.state.clone();
        let stop = self.state.supervisor.stop_accepting().child_token();
        self.state
            .supervisor
            .spawn_request("subscription delivery", async move {
                if let Err(e) = state.subscriptions.deliver(record, tx, stop).await {
                    tracing::warn!(error = %chain(&e), "subscription delivery stopped");
                }
            });
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(|d| {
            let (gap_before, late) = match d.note {
                Note::InOrder => (None, false),
                Note::AfterGap { from, to } => (Some(pb::Gap { from, to }), false),
                Note::Late => (None, true),
            };
            Ok(pb::Delivery {
                position: d.position,
                notification: Some(to_proto(&d.notification, d.source.as_str())),
                gap_before,
                late,
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn ack(
        &self,
        request: Request<pb::AckRequest>,
    ) -> Result<Response<pb::AckResponse>, Status> {
        let r = request.into_inner();
        let acked = self.state.subscriptions.ack(&r.name, r.position).await?;
        Ok(Response::new(pb::AckResponse { acked }))
    }
}
