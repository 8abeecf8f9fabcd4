//! The domain's types as the rest of Confab sees them (rows are mapped in `repo`).

mod names;

pub use names::*;

use crate::{
    ids::{MessageId, RoomId, SessionId, UserId},
    time::Timestamp,
};
use serde::{Deserialize, Serialize};

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Who may find and read a room.
    RoomKind { Public = "public", Private = "private", Direct = "direct" }
);

text_enum!(
    /// What a member may do inside a room, from most to least.
    RoomRole { Owner = "owner", Moderator = "moderator", Member = "member", ReadOnly = "readonly" }
);

text_enum!(MessageKind { Text = "text", Attachment = "attachment", System = "system" });

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub language: Option<String>,
    pub created_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Room {
    pub id: RoomId,
    pub slug: String,
    pub name: String,
    pub topic: String,
    pub kind: RoomKind,
    pub archived: bool,
    pub created_by: Option<UserId>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Membership {
    pub room_id: RoomId,
    pub user_id: UserId,
    pub role: RoomRole,
    pub last_read: Option<MessageId>,
    pub joined_at: Timestamp,
}

/// A message's text once decrypted, or why it could not be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Text(String),
    /// Wrong key or corrupted row: reported for this row only.
    Undecryptable(String),
}

impl Body {
    pub fn text(&self) -> Option<&str> {
        match self {
            Body::Text(t) => Some(t),
            Body::Undecryptable(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: MessageId,
    pub room_id: RoomId,
    pub author: Option<Author>,
    pub kind: MessageKind,
    pub body: Body,
    pub client_id: Option<String>,
    pub created_at: Timestamp,
    pub edited_at: Option<Timestamp>,
    pub deleted_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Author {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub user_agent: String,
    pub ip: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl Session {
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub actor_id: Option<UserId>,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub detail: serde_json::Value,
    pub ip: Option<String>,
    pub created_at: Timestamp,
}
