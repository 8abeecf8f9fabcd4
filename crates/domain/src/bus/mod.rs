//! The event bus between the services: publish an event to a topic; receive, on one
//! stream per process, the events of the topics this process subscribed to.
//!
//! Two implementations: [`memory::MemoryBus`] (one process: `confab serve`, unit tests)
//! and the Redis pub/sub bus (several processes). Subscriptions are counted: a topic is
//! subscribed upstream when its first local listener arrives and dropped with the last,
//! so a process only receives the rooms its own clients are in.

pub mod memory;
pub mod redis;

use crate::ids::{MessageId, RoomId, SessionId, UserId};
use serde::{Deserialize, Serialize};
use std::{fmt, sync::Arc};
use tokio::sync::broadcast;

/// Where an event goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Topic {
    /// Everything that happens in a room, for its members' sockets.
    Room(RoomId),
    /// Account notices for one user's sockets (revocations, new sign-ins, new rooms).
    User(UserId),
    /// Online/offline changes, for every gateway.
    Presence,
}

impl Topic {
    /// The channel name under a deployment's prefix (`confab:room:12`).
    pub fn channel(&self, prefix: &str) -> String {
        match self {
            Topic::Room(id) => format!("{prefix}:room:{id}"),
            Topic::User(id) => format!("{prefix}:user:{id}"),
            Topic::Presence => format!("{prefix}:presence"),
        }
    }

    /// The inverse of [`Topic::channel`].
    pub fn from_channel(prefix: &str, channel: &str) -> Option<Topic> {
        let rest = channel.strip_prefix(prefix)?.strip_prefix(':')?;
        if rest == "presence" {
            return Some(Topic::Presence);
        }
        let (kind, id) = rest.split_once(':')?;
        let id: i64 = id.parse().ok()?;
        match kind {
            "room" => Some(Topic::Room(RoomId(id))),
            "user" => Some(Topic::User(UserId(id))),
            _ => None,
        }
    }
}

/// A message as clients see it (`message` and `edited` frames carry this).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMessage {
    pub id: MessageId,
    pub room: String,
    pub author: Option<WireUser>,
    pub kind: String,
    /// Empty for a deleted message.
    pub body: String,
    /// Unix microseconds.
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_ts: Option<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireUser {
    pub username: String,
    pub display_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    Online,
    Away,
    Offline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipChange {
    Joined,
    Left,
    RoleChanged,
}

/// Everything that crosses the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Message {
        room_id: RoomId,
        message: WireMessage,
        /// The id of the room's message just before this one (0: the room's first),
        /// when the publisher knows it (see `repo::message::Posted::prev`). A gateway
        /// whose sockets hold everything up to `prev` delivers this message as it came;
        /// otherwise, or when absent, it reads the room from the database.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prev: Option<MessageId>,
    },
    Edited {
        room_id: RoomId,
        message: WireMessage,
    },
    Deleted {
        room_id: RoomId,
        room: String,
        id: MessageId,
    },
    /// A soft-deleted message brought back.
    Restored {
        room_id: RoomId,
        message: WireMessage,
    },
    Typing {
        room_id: RoomId,
        room: String,
        user: WireUser,
    },
    Presence {
        user_id: UserId,
        username: String,
        status: PresenceStatus,
    },
    Membership {
        room_id: RoomId,
        room: String,
        user_id: UserId,
        change: MembershipChange,
    },
    /// A user's read marker moved (keeps their other tabs and devices in step).
    Read {
        room_id: RoomId,
        room: String,
        user_id: UserId,
        id: MessageId,
    },
    /// Close these sessions' sockets now.
    SessionsRevoked {
        user_id: UserId,
        session_ids: Vec<SessionId>,
        reason: String,
    },
    /// Close all of this user's sockets now.
    UserDeactivated { user_id: UserId },
    /// Tell the user's other devices about a new sign-in.
    SignedIn {
        user_id: UserId,
        session_id: SessionId,
        device: String,
        ip: String,
        ts: i64,
    },
}

/// One delivered event and the topic it came on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub topic: Topic,
    pub event: Event,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the bus is unavailable: {0}")]
    Unavailable(String),
    #[error("bus payload rejected: {0}")]
    BadPayload(String),
}

/// The bus as the services use it. Cheap to clone behind an `Arc`.
#[async_trait::async_trait]
pub trait Bus: Send + Sync + fmt::Debug {
    async fn publish(&self, topic: Topic, event: &Event) -> Result<(), BusError>;
    /// Publishes several events in order; Redis sends them in one round trip.
    async fn publish_many(&self, events: &[(Topic, Event)]) -> Result<(), BusError> {
        for (topic, event) in events {
            self.publish(*topic, event).await?;
        }
        Ok(())
    }
    /// Counted: each call needs a matching [`Bus::unsubscribe`].
    async fn subscribe(&self, topic: Topic) -> Result<(), BusError>;
    async fn unsubscribe(&self, topic: Topic) -> Result<(), BusError>;
    /// A receiver of every event on this process's subscribed topics. A receiver that
    /// falls more than the channel's capacity behind sees `Lagged` and must recover
    /// (the gateway re-syncs its clients with `join … since`).
    fn events(&self) -> broadcast::Receiver<Arc<Envelope>>;
    /// Is the bus reachable? For `/readyz`.
    async fn ping(&self) -> Result<(), BusError>;
    /// Bumped each time the bus re-established its upstream subscriptions after losing
    /// them: events published meanwhile were not delivered, so listeners re-read from the
    /// database. `None` for a bus that cannot lose events this way (in-process).
    fn resyncs(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

pub type SharedBus = Arc<dyn Bus>;

/// How many events a process buffers for its slowest local consumer.
pub const LOCAL_CAPACITY: usize = 65_536;

/// Reference counts of local listeners per topic; tells when to (un)subscribe upstream.
#[derive(Debug, Default)]
pub struct SubscriptionCounts(std::collections::HashMap<Topic, usize>);

impl SubscriptionCounts {
    /// Returns true when this is the topic's first listener.
    pub fn add(&mut self, topic: Topic) -> bool {
        let n = self.0.entry(topic).or_insert(0);
        *n += 1;
        *n == 1
    }

    /// Returns true when this was the topic's last listener.
    pub fn remove(&mut self, topic: Topic) -> bool {
        match self.0.get_mut(&topic) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                self.0.remove(&topic);
                true
            }
            None => false,
        }
    }

    pub fn contains(&self, topic: &Topic) -> bool {
        self.0.contains_key(topic)
    }

    pub fn topics(&self) -> impl Iterator<Item = &Topic> {
        self.0.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_round_trip() {
        for t in [
            Topic::Room(RoomId(7)),
            Topic::User(UserId(3)),
            Topic::Presence,
        ] {
            assert_eq!(Topic::from_channel("p1", &t.channel("p1")), Some(t));
            assert_eq!(Topic::from_channel("p2", &t.channel("p1")), None);
        }
        assert_eq!(Topic::from_channel("p", "p:room:x"), None);
        assert_eq!(Topic::from_channel("p", "p:other:1"), None);
    }

    #[test]
    fn counts_report_first_and_last() {
        let mut c = SubscriptionCounts::default();
        let t = Topic::Room(RoomId(1));
        assert!(c.add(t));
        assert!(!c.add(t));
        assert!(!c.remove(t));
        assert!(c.remove(t));
        assert!(
            !c.remove(t),
            "removing an absent topic is not a last listener"
        );
        assert!(!c.contains(&t));
    }

    #[test]
    fn events_serialise_with_a_type_tag() {
        let e = Event::UserDeactivated { user_id: UserId(5) };
        let json = serde_json::to_string(&e).expect("json");
        assert_eq!(json, r#"{"type":"user_deactivated","user_id":5}"#);
        assert_eq!(serde_json::from_str::<Event>(&json).expect("parse"), e);
    }
}
