//! A catch-up response as the node reads it: the libp2p CBOR codec of
//! `/handbereik/sync/2` with the node's size limit, then marks compared
//! (`behind`), events and member list decoded as the client does.
#![no_main]
use futures::executor::block_on;
use handbereik_fuzz::{NOW, anchor, view};
use handbereik_keys::Anchor;
use handbereik_node::membership::MembershipView;
use handbereik_node::notify::event;
use handbereik_node::p2p::sync_protocol::{SyncRequest, SyncResponse, behind};
use handbereik_node::p2p::{MAX_SYNC_REQUEST, MAX_SYNC_RESPONSE};
use libfuzzer_sys::fuzz_target;
use libp2p::StreamProtocol;
use libp2p::request_response::{Codec, cbor};
use std::sync::LazyLock;

const PROTOCOL: StreamProtocol = StreamProtocol::new("/handbereik/sync/2");
static VIEW: LazyLock<MembershipView> = LazyLock::new(view);
static ANCHOR: LazyLock<Anchor> = LazyLock::new(anchor);

fuzz_target!(|data: &[u8]| {
    let mut codec = cbor::codec::Codec::<SyncRequest, SyncResponse>::default()
        .set_request_size_maximum(MAX_SYNC_REQUEST)
        .set_response_size_maximum(MAX_SYNC_RESPONSE);
    let mut io = futures::io::Cursor::new(data);
    match block_on(codec.read_response(&PROTOCOL, &mut io)) {
        Ok(SyncResponse::Changes { marks, .. }) => {
            let _ = behind(|_| 3, &marks, |_| true);
        }
        Ok(SyncResponse::Events { events }) => {
            for e in &events {
                let _ = event::check(e, &VIEW, None, NOW, |_, _, _| false);
            }
        }
        Ok(SyncResponse::MemberList { bytes }) => {
            let _ = handbereik_keys::verify_member_list(&bytes, &ANCHOR, None, NOW);
        }
        _ => {}
    }
});
