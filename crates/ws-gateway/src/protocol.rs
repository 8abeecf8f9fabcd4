//! The WebSocket protocol v1 (see `docs/protocol.md`): client frames parsed once at the
//! edge into [`ClientFrame`], server frames serialised from [`ServerFrame`]. Nothing else
//! in the gateway looks at raw JSON.

use domain::{
    bus::{MembershipChange, PresenceStatus, WireMessage, WireUser},
    ids::{MessageId, UserId},
    model::{Body, Message},
};
use serde::{Deserialize, Serialize};

/// Everything a client may send.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    Join {
        room: String,
        #[serde(default)]
        since: Option<MessageId>,
    },
    Leave {
        room: String,
    },
    Send {
        room: String,
        body: String,
        client_id: String,
    },
    Typing {
        room: String,
    },
    Read {
        room: String,
        id: MessageId,
    },
    History {
        room: String,
        #[serde(default)]
        before: Option<MessageId>,
    },
    /// Change the text of one's own message.
    Edit {
        room: String,
        id: MessageId,
        body: String,
    },
    /// Delete one's own message, or any in a room one moderates or owns.
    Delete {
        room: String,
        id: MessageId,
    },
    /// This socket's user is away (tab hidden, idle) or back.
    Presence {
        status: ClientPresence,
    },
}

/// What a socket may say about its user's presence (`offline` is the server's to say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientPresence {
    Online,
    Away,
}

impl ClientFrame {
    pub fn kind(&self) -> &'static str {
        match self {
            ClientFrame::Join { .. } => "join",
            ClientFrame::Leave { .. } => "leave",
            ClientFrame::Send { .. } => "send",
            ClientFrame::Typing { .. } => "typing",
            ClientFrame::Read { .. } => "read",
            ClientFrame::History { .. } => "history",
            ClientFrame::Edit { .. } => "edit",
            ClientFrame::Delete { .. } => "delete",
            ClientFrame::Presence { .. } => "presence",
        }
    }

    /// The `client_id` an error about this frame refers to.
    pub fn client_ref(&self) -> Option<String> {
        match self {
            ClientFrame::Send { client_id, .. } => Some(client_id.clone()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Forbidden,
    BadRequest,
    TooLarge,
    RateLimited,
    NotFound,
    Unavailable,
}

/// A frame that could not be parsed: what to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub code: ErrorCode,
    pub reference: Option<String>,
    pub message: String,
}

/// Parses one text frame. Unknown types, missing or extra fields and wrong types are all
/// `bad_request`; the `client_id`, when one can be read, is echoed as `ref`.
pub fn parse(text: &str) -> Result<ClientFrame, ParseError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| ParseError {
        code: ErrorCode::BadRequest,
        reference: None,
        message: format!("not JSON: {e}"),
    })?;
    let reference = value
        .get("client_id")
        .and_then(|v| v.as_str())
        .map(|s| s.chars().take(64).collect());
    if !value.is_object() {
        return Err(ParseError {
            code: ErrorCode::BadRequest,
            reference,
            message: "a frame is a JSON object".into(),
        });
    }
    ClientFrame::deserialize(value).map_err(|e| ParseError {
        code: ErrorCode::BadRequest,
        reference,
        message: e.to_string(),
    })
}

/// Everything the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame on every socket.
    Hello {
        protocol: u32,
        user: WireUser,
        /// Usernames online right now (then kept current by `presence` frames).
        online: Vec<String>,
        /// Usernames connected but away (every socket of theirs said so).
        away: Vec<String>,
    },
    Joined {
        room: String,
        role: String,
        messages: Vec<WireMessage>,
        /// Newer messages than these remain (only after `since`): send `join` again
        /// with `since` = the last id to get the next page.
        more: bool,
        /// Older history exists (ask with `history`).
        older: bool,
    },
    Left {
        room: String,
    },
    Ack {
        client_id: String,
        id: MessageId,
        ts: i64,
    },
    Message(WireMessage),
    Edited {
        room: String,
        message: WireMessage,
    },
    Deleted {
        room: String,
        id: MessageId,
    },
    Restored {
        room: String,
        message: WireMessage,
    },
    Typing {
        room: String,
        user: WireUser,
    },
    /// One user's status changed.
    Presence {
        user: String,
        status: PresenceStatus,
    },
    /// Several users' status changed within one presence tick (see `roster`): each user
    /// once, in the list of their latest status.
    #[serde(rename = "presence")]
    PresenceBatch {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        online: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        away: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        offline: Vec<String>,
    },
    Membership {
        room: String,
        user_id: UserId,
        change: MembershipChange,
    },
    Read {
        room: String,
        id: MessageId,
    },
    History {
        room: String,
        messages: Vec<WireMessage>,
        /// Older messages than these remain.
        more: bool,
    },
    /// An account notice: a new sign-in on another device.
    Notice {
        kind: String,
        device: String,
        ip: String,
        ts: i64,
    },
    Error {
        code: ErrorCode,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
}

impl ServerFrame {
    pub fn error(code: ErrorCode, reference: Option<String>, message: impl Into<String>) -> Self {
        ServerFrame::Error {
            code,
            reference,
            message: Some(message.into()),
        }
    }

    /// The JSON text of the frame.
    pub fn to_text(&self) -> bytestring::ByteString {
        // Serialising these plain structs cannot fail (no maps with non-string keys).
        serde_json::to_string(self)
            .unwrap_or_else(|_| r#"{"type":"error","code":"unavailable"}"#.to_owned())
            .into()
    }
}

/// A stored message as clients see it.
pub fn wire_message(room_slug: &str, m: &Message) -> WireMessage {
    let deleted = m.deleted_at.is_some();
    let body = match (&m.body, deleted) {
        (Body::Text(t), false) => t.clone(),
        // Deleted: nothing to show. Undecryptable: reported in the logs, shown as empty.
        _ => String::new(),
    };
    WireMessage {
        id: m.id,
        room: room_slug.to_owned(),
        author: m.author.as_ref().map(|a| WireUser {
            username: a.username.clone(),
            display_name: a.display_name.clone(),
        }),
        kind: m.kind.as_str().to_owned(),
        body,
        ts: m.created_at.micros(),
        edited_ts: m.edited_at.map(|t| t.micros()),
        deleted,
        client_id: m.client_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_client_frame() {
        assert_eq!(
            parse(r#"{"type":"join","room":"general","since":12}"#),
            Ok(ClientFrame::Join {
                room: "general".into(),
                since: Some(MessageId(12))
            })
        );
        assert_eq!(
            parse(r#"{"type":"join","room":"general"}"#),
            Ok(ClientFrame::Join {
                room: "general".into(),
                since: None
            })
        );
        assert_eq!(
            parse(r#"{"type":"send","room":"r","body":"hi","client_id":"c1"}"#),
            Ok(ClientFrame::Send {
                room: "r".into(),
                body: "hi".into(),
                client_id: "c1".into()
            })
        );
        assert!(matches!(
            parse(r#"{"type":"leave","room":"r"}"#),
            Ok(ClientFrame::Leave { .. })
        ));
        assert!(matches!(
            parse(r#"{"type":"typing","room":"r"}"#),
            Ok(ClientFrame::Typing { .. })
        ));
        assert!(matches!(
            parse(r#"{"type":"read","room":"r","id":3}"#),
            Ok(ClientFrame::Read { .. })
        ));
        assert_eq!(
            parse(r#"{"type":"edit","room":"r","id":3,"body":"fixed"}"#),
            Ok(ClientFrame::Edit {
                room: "r".into(),
                id: MessageId(3),
                body: "fixed".into()
            })
        );
        assert_eq!(
            parse(r#"{"type":"delete","room":"r","id":3}"#),
            Ok(ClientFrame::Delete {
                room: "r".into(),
                id: MessageId(3)
            })
        );
        assert_eq!(
            parse(r#"{"type":"presence","status":"away"}"#),
            Ok(ClientFrame::Presence {
                status: ClientPresence::Away
            })
        );
        assert_eq!(
            parse(r#"{"type":"presence","status":"online"}"#),
            Ok(ClientFrame::Presence {
                status: ClientPresence::Online
            })
        );
        assert!(matches!(
            parse(r#"{"type":"history","room":"r","before":3}"#),
            Ok(ClientFrame::History {
                before: Some(MessageId(3)),
                ..
            })
        ));
    }

    #[test]
    fn bad_frames_are_bad_requests_with_their_reference() {
        for bad in [
            "not json",
            "[1,2]",
            "42",
            r#"{"room":"r"}"#,
            r#"{"type":"dance","room":"r"}"#,
            r#"{"type":"join"}"#,
            r#"{"type":"join","room":7}"#,
            r#"{"type":"read","room":"r","id":"x"}"#,
            r#"{"type":"join","room":"r","extra":true}"#,
            r#"{"type":"presence","status":"offline"}"#,
            r#"{"type":"presence","status":"busy"}"#,
            r#"{"type":"presence"}"#,
        ] {
            let e = parse(bad).expect_err(bad);
            assert_eq!(e.code, ErrorCode::BadRequest, "{bad}");
        }
        let e = parse(r#"{"type":"send","room":"r","client_id":"c9"}"#).expect_err("no body");
        assert_eq!(e.reference.as_deref(), Some("c9"));
    }

    #[test]
    fn server_frames_have_the_documented_shape() {
        let json: serde_json::Value = serde_json::from_str(
            &ServerFrame::Ack {
                client_id: "c1".into(),
                id: MessageId(5),
                ts: 7,
            }
            .to_text(),
        )
        .expect("json");
        assert_eq!(
            json,
            serde_json::json!({"type":"ack","client_id":"c1","id":5,"ts":7})
        );
        let err = ServerFrame::Error {
            code: ErrorCode::RateLimited,
            reference: Some("c2".into()),
            message: None,
        };
        assert_eq!(
            &*err.to_text(),
            r#"{"type":"error","code":"rate_limited","ref":"c2"}"#
        );
        let msg = ServerFrame::Message(WireMessage {
            id: MessageId(9),
            room: "general".into(),
            author: Some(WireUser {
                username: "ann".into(),
                display_name: "Ann".into(),
            }),
            kind: "text".into(),
            body: "hi".into(),
            ts: 1,
            edited_ts: None,
            deleted: false,
            client_id: None,
        });
        let json: serde_json::Value = serde_json::from_str(&msg.to_text()).expect("json");
        assert_eq!(json["type"], "message");
        assert_eq!(json["room"], "general");
        assert_eq!(json["id"], 9);
        assert_eq!(json["author"]["username"], "ann");
        assert_eq!(json["author"]["display_name"], "Ann");
        assert_eq!(json["body"], "hi");
        assert_eq!(json["ts"], 1);
    }
}
