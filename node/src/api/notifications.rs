//! `handbereik.v1.Notifications`: Publish, Subscribe, Ack.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use handbereik_keys::{Purpose, time};
use handbereik_proto::v1 as pb;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use super::ApiState;
use crate::error::Error;
use crate::notify::event::{self, Draft, Notification};
use crate::notify::subscriptions::{Delivered, Record};
use crate::store::Stream as EventStream;

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
        let s = &self.state;
        let view = s.membership.view();
        if let Some(refusal) = view.refusal(time::now()) {
            return Err(Error::NotAvailable(refusal).into());
        }
        let purpose =
            Purpose::parse(&r.purpose).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let admitted = view.member(&s.own).is_some_and(|m| m.has_purpose(&purpose));
        if !admitted {
            return Err(Status::permission_denied(format!(
                "this node ({}) is not admitted for purpose {purpose} in member list version {}",
                s.own,
                view.version()
            )));
        }
        let draft = Draft {
            event_type: r.r#type,
            purpose: purpose.clone(),
            subject: r.subject,
            dataref: r.dataref,
            datacontenttype: if r.datacontenttype.is_empty() {
                "application/json".into()
            } else {
                r.datacontenttype
            },
            data: r.data,
        };
        event::check_draft(&draft).map_err(Status::invalid_argument)?;
        let key = s.key.clone();
        let own = s.own.clone();
        let stream = EventStream {
            source: s.own.clone(),
            purpose: purpose.clone(),
        };
        let now = time::rfc3339(time::now());
        let (_, bytes) = s
            .store
            .append_own(
                stream,
                Box::new(move |seq| {
                    event::sign_own(&key, &own, &draft, seq, now).map_err(Error::from)
                }),
            )
            .await?;
        s.metrics.published.inc();
        let notification = event::decode_stored(&bytes)
            .ok_or_else(|| Status::internal("cannot decode own event"))?;
        // The event is durable and numbered: answer success even if gossip
        // cannot take it now (shutting down); peers fetch it by sync. Failing
        // here would make the back office publish it again under a new number.
        if let Err(e) = s.p2p.publish(purpose, bytes).await {
            tracing::warn!(error = %e, "published event stored but not gossiped; sync delivers it");
        }
        Ok(Response::new(pb::PublishResponse {
            notification: Some(to_proto(&notification, s.own.as_str())),
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
        let stop = self.state.shutdown.child_token();
        tokio::spawn(async move {
            if let Err(e) = state.subscriptions.deliver(record, tx, stop).await {
                tracing::warn!(error = %e, "subscription delivery stopped");
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(|d| {
            Ok(pb::Delivery {
                position: d.position,
                notification: Some(to_proto(&d.notification, d.source.as_str())),
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
