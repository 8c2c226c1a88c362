//! Bad input from outside gets a clear, short error and never an echo: every
//! RPC of the local API is sent a value of 1 MiB in each of its string
//! fields (found from the API's own descriptors, so a new RPC or field is
//! covered without changing this test), garbage bytes go to both APIs, and a
//! BSN where a pseudonym belongs is refused without repeating it.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::{Buf, BufMut};
use handbereik_node::inspect::tls::{self, TlsIdentity};
use handbereik_tests::net::{TestNet, jeugd};
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value,
};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

/// The longest message a refusal may carry: a line, not the input.
const SHORT: usize = 400;

/// Bytes in, bytes out: the test builds requests itself.
#[derive(Clone, Default)]
struct Raw;

struct RawEncoder;
struct RawDecoder;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
    }
}

/// Calls `/service/method` with `body`; answers the status (OK included).
async fn call(
    channel: Channel,
    path: &str,
    streaming: bool,
    body: Vec<u8>,
    bearer: Option<&str>,
) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(64 << 20);
    if let Err(e) = grpc.ready().await {
        return tonic::Status::unavailable(e.to_string());
    }
    let mut request = tonic::Request::new(body);
    if let Some(bearer) = bearer {
        request
            .metadata_mut()
            .insert("authorization", bearer.parse().unwrap());
    }
    request.set_timeout(Duration::from_secs(30));
    let path = PathAndQuery::from_str(path).unwrap();
    if streaming {
        match grpc.server_streaming(request, path, Raw).await {
            Ok(_) => tonic::Status::ok(""),
            Err(status) => status,
        }
    } else {
        match grpc.unary(request, path, Raw).await {
            Ok(_) => tonic::Status::ok(""),
            Err(status) => status,
        }
    }
}

/// Every way to put one huge string into a request of `message`: the path of
/// fields to it (top level and one level of nested messages).
fn string_paths(message: &MessageDescriptor, depth: usize) -> Vec<Vec<FieldDescriptor>> {
    let mut out = Vec::new();
    for field in message.fields() {
        match field.kind() {
            Kind::String => out.push(vec![field.clone()]),
            Kind::Message(inner) if depth > 0 => {
                for mut path in string_paths(&inner, depth - 1) {
                    path.insert(0, field.clone());
                    out.push(path);
                }
            }
            _ => {}
        }
    }
    out
}

/// A message of `descriptor` with the string at `path` set to `value`.
fn with_value(
    descriptor: &MessageDescriptor,
    path: &[FieldDescriptor],
    value: &str,
) -> DynamicMessage {
    let mut message = DynamicMessage::new(descriptor.clone());
    let (field, rest) = path.split_first().expect("a path has a field");
    let set = if rest.is_empty() {
        Value::String(value.to_string())
    } else {
        let Kind::Message(inner) = field.kind() else {
            unreachable!("only message fields lead deeper")
        };
        Value::Message(with_value(&inner, rest, value))
    };
    let set = if field.is_list() {
        Value::List(vec![set])
    } else {
        set
    };
    message.set_field(field, set);
    message
}

fn name(path: &[FieldDescriptor]) -> String {
    path.iter()
        .map(|f| f.name().to_string())
        .collect::<Vec<_>>()
        .join(".")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_string_field_of_every_local_rpc_refuses_a_megabyte_briefly() -> Result<()> {
    let mut net = TestNet::new(2, &[jeugd()], 5)?;
    net.up().await?;
    let node = &net.nodes[0];
    let addr = node.handle()?.local_api();
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let pool = DescriptorPool::decode(handbereik_proto::FILE_DESCRIPTOR_SET)?;
    let huge = "x".repeat(1 << 20);
    let mut checked = 0;
    for service in pool.services() {
        if service.name() == "Source" {
            continue; // the peer API, tested below
        }
        for method in service.methods() {
            let rpc = format!("/{}/{}", service.full_name(), method.name());
            for path in string_paths(&method.input(), 2) {
                let body = with_value(&method.input(), &path, &huge);
                let status = call(
                    channel.clone(),
                    &rpc,
                    method.is_server_streaming(),
                    prost::Message::encode_to_vec(&body),
                    Some(&node.bearer()),
                )
                .await;
                let what = format!("{rpc} {}", name(&path));
                assert_eq!(
                    status.code(),
                    tonic::Code::InvalidArgument,
                    "{what}: {status:?}"
                );
                assert!(
                    status.message().len() < SHORT,
                    "{what}: a message of {} bytes",
                    status.message().len()
                );
                assert!(
                    !status.message().contains("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
                    "{what}: {}",
                    status.message()
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked > 30,
        "only {checked} fields found: the descriptors are not read"
    );
    println!("{checked} string fields of the local API refuse 1 MiB with a short INVALID_ARGUMENT");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_a_bsn_where_a_pseudonym_belongs_are_refused_without_echo() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut net = TestNet::new(2, &[jeugd()], 5)?;
    net.up().await?;
    let bsn = "111222333";

    // The local API.
    let node = &net.nodes[0];
    let local = Channel::from_shared(format!("http://{}", node.handle()?.local_api()))?
        .connect()
        .await?;
    let status = call(
        local.clone(),
        "/handbereik.v1.Registry/Get",
        false,
        vec![0xff, 0xff, 0xff],
        Some(&node.bearer()),
    )
    .await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let get = handbereik_proto::v1::GetRequest {
        subject: handbereik_tests::net::pseudonym(bsn),
        category: "melding".into(),
    };
    let status = call(
        local,
        "/handbereik.v1.Registry/Get",
        false,
        prost::Message::encode_to_vec(&get),
        Some(&node.bearer()),
    )
    .await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(!status.message().contains(bsn), "{}", status.message());

    // The peer API, as member 0 asking member 1.
    let identity = TlsIdentity::new(&net.nodes[0].key, &net.nodes[0].member_id)?;
    let config = tls::client_config(&identity, net.nodes[1].key.public_key())?;
    let endpoint = net.nodes[1].peer_addr.clone().context("peer address")?;
    let peer = tls::channel(&endpoint, Arc::clone(&config), Duration::from_secs(10))?;
    let status = call(
        peer.clone(),
        "/handbereik.v1.Source/Known",
        false,
        vec![0x0a, 0xff, 0x01],
        None,
    )
    .await;
    assert_eq!(
        status.code(),
        tonic::Code::InvalidArgument,
        "garbage on the peer API: {status:?}"
    );
    let known = handbereik_proto::v1::SourceKnownRequest {
        signed_request: Vec::new(),
        request_id: "r-1".into(),
        subject: bsn.into(),
        purpose: "jeugdbescherming".into(),
    };
    let status = call(
        peer,
        "/handbereik.v1.Source/Known",
        false,
        prost::Message::encode_to_vec(&known),
        None,
    )
    .await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        !status.message().contains(bsn),
        "the peer API repeats the BSN: {}",
        status.message()
    );
    Ok(())
}
