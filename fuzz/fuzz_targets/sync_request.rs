//! A catch-up request as the node reads it: the libp2p CBOR codec of
//! `/handbereik/sync/2` with the node's size limit, then the request's
//! stream names parsed as the server does.
#![no_main]
use futures::executor::block_on;
use handbereik_node::p2p::sync_protocol::{SyncRequest, SyncResponse, parse_stream};
use handbereik_node::p2p::{MAX_SYNC_REQUEST, MAX_SYNC_RESPONSE};
use libfuzzer_sys::fuzz_target;
use libp2p::StreamProtocol;
use libp2p::request_response::{Codec, cbor};

const PROTOCOL: StreamProtocol = StreamProtocol::new("/handbereik/sync/2");

fuzz_target!(|data: &[u8]| {
    let mut codec = cbor::codec::Codec::<SyncRequest, SyncResponse>::default()
        .set_request_size_maximum(MAX_SYNC_REQUEST)
        .set_response_size_maximum(MAX_SYNC_RESPONSE);
    let mut io = futures::io::Cursor::new(data);
    if let Ok(SyncRequest::Fetch {
        source, purpose, ..
    }) = block_on(codec.read_request(&PROTOCOL, &mut io))
    {
        let _ = parse_stream(&source, &purpose);
    }
});
