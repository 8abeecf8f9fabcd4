//! The WebSocket gateway's frame parser (`ws_gateway::protocol::parse`), which sees every
//! text frame a client sends.
//!
//! Invariants: it never panics; every input is either a typed frame of the `type` the
//! input names, or a `bad_request` with at most 64 characters of echoed `client_id`; and
//! the error frame the gateway answers with is itself valid JSON of the documented shape.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_gateway::protocol::{self, ClientFrame, ErrorCode, ServerFrame};

fuzz_target!(|data: &[u8]| {
    // The socket only hands text frames (valid UTF-8) to the parser; binary frames are
    // refused before it. Lossy conversion keeps every input useful.
    let text = String::from_utf8_lossy(data);
    match protocol::parse(&text) {
        Ok(frame) => {
            let json: serde_json::Value = serde_json::from_str(&text).expect("a frame is JSON");
            assert_eq!(json["type"], frame.kind(), "{text:?}");
            match &frame {
                ClientFrame::Send { client_id, .. } => {
                    assert_eq!(frame.client_ref().as_deref(), Some(client_id.as_str()));
                }
                _ => assert_eq!(frame.client_ref(), None),
            }
        }
        Err(e) => {
            assert_eq!(e.code, ErrorCode::BadRequest, "{e:?}");
            if let Some(r) = &e.reference {
                assert!(r.chars().count() <= 64, "reference too long: {r:?}");
            }
            let answer = ServerFrame::error(e.code, e.reference.clone(), e.message).to_text();
            let json: serde_json::Value =
                serde_json::from_str(&answer).expect("the error frame is JSON");
            assert_eq!(json["type"], "error");
            assert_eq!(json["code"], "bad_request");
            assert_eq!(
                json.get("ref").and_then(|r| r.as_str()),
                e.reference.as_deref()
            );
        }
    }
});
