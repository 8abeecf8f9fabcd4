//! Bus → hub: turns each bus event into a frame once (per room, not per socket) and hands
//! the shared bytes to the hub. Account events close sockets.
//!
//! Messages: a `message` event that carries its room predecessor (`prev`, known for every
//! `send`, announced in commit order) is delivered as it came to each socket that holds
//! everything up to `prev`. A gateway's own `send`s reach its own sockets that way from
//! the writer's commit hook, before the bus (see `connection::Posting`); their echo then
//! finds those sockets served. Otherwise (an upload, a message that overtook another, a
//! socket still catching up) the event is a doorbell: the room's pump reads, from the database, every message newer than the oldest watermark of the
//! room's live sockets, and the hub gives each socket what it lacks. Within a room, commit
//! order is id order, so a page read after message N committed holds every message up to
//! N: nothing is skipped when two gateways' publications arrive out of order, or when the
//! bus loses some (a lagging receiver, a Redis reconnect: then every room is pumped).
//! One pump runs per room at a time; doorbells that ring meanwhile coalesce into one more
//! round, so a burst costs a few queries, not one per message per socket.

use crate::{
    hub::{CloseFrame, Hub, Queued, close},
    protocol::{ServerFrame, wire_message},
};
use domain::{
    bus::{Envelope, Event, Topic},
    crypto::MessageKeys,
    db::Db,
    ids::RoomId,
    repo::{self, Page},
    time::Timestamp,
};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};
use tokio::sync::{broadcast::error::RecvError, mpsc};

/// Messages per database page a pump delivers.
const PUMP_PAGE: i64 = 200;

/// The per-room message pumps.
pub struct Pumps {
    hub: Arc<Hub>,
    db: Db,
    keys: MessageKeys,
    /// Rooms with a pump running, and whether it must go round once more.
    // std Mutex: never held across an await.
    running: Mutex<HashMap<RoomId, bool>>,
}

impl Pumps {
    /// Starts a pump for the room, or asks the running one for another round.
    fn ring(self: &Arc<Self>, room: RoomId, slug: String) {
        {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(again) = running.get_mut(&room) {
                *again = true;
                return;
            }
            running.insert(room, false);
        }
        tokio::spawn(self.clone().pump(room, slug));
    }

    async fn pump(self: Arc<Self>, room: RoomId, slug: String) {
        loop {
            self.deliver_new(room, &slug).await;
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            match running.get_mut(&room) {
                Some(again) if *again => *again = false,
                _ => {
                    running.remove(&room);
                    return;
                }
            }
        }
    }

    async fn deliver_new(&self, room: RoomId, slug: &str) {
        let Some(floor) = self.hub.room_floor(room) else {
            return;
        };
        let mut after = floor.map_or(0, |m| m.0);
        loop {
            let keys = self.keys.clone();
            let page = self
                .db
                .run(move |c| repo::message::history(c, &keys, room, Page::After(after), PUMP_PAGE))
                .await;
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    // The next doorbell (or the client's `join … since`) catches up.
                    tracing::warn!(error = %e, room_id = %room, "could not read new messages");
                    return;
                }
            };
            let Some(last) = page.messages.last() else {
                return;
            };
            after = last.id.0;
            let now = Timestamp::now().micros();
            let frames: Vec<Queued> = page
                .messages
                .iter()
                .map(|m| {
                    metrics::histogram!("confab_ws_fanout_latency_seconds")
                        .record(now.saturating_sub(m.created_at.micros()) as f64 / 1e6);
                    Queued {
                        id: Some(m.id),
                        text: ServerFrame::Message(wire_message(slug, m)).to_text(),
                    }
                })
                .collect();
            self.hub.deliver_page(room, &frames);
            if !page.more {
                return;
            }
        }
    }

    fn ring_all(self: &Arc<Self>) {
        for (room, slug) in self.hub.rooms() {
            self.ring(room, slug);
        }
    }
}

/// Runs until the bus goes away.
pub async fn run(hub: Arc<Hub>, db: Db, keys: MessageKeys) {
    let pumps = Arc::new(Pumps {
        hub: hub.clone(),
        db,
        keys,
        running: Mutex::new(HashMap::new()),
    });
    let (bell, mut rung) = mpsc::unbounded_channel();
    hub.set_doorbell(bell);
    let mut events = hub.bus().events();
    let mut resyncs = hub.bus().resyncs();
    loop {
        let resync = async {
            match resyncs.as_mut() {
                Some(rx) => rx.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(env) => match &env.event {
                    Event::Message { room_id, message, prev } => {
                        let delivered = prev.is_some_and(|prev| {
                            metrics::histogram!("confab_ws_fanout_latency_seconds").record(
                                Timestamp::now().micros().saturating_sub(message.ts) as f64 / 1e6,
                            );
                            let q = Queued {
                                id: Some(message.id),
                                text: ServerFrame::Message(message.clone()).to_text(),
                            };
                            hub.deliver_chained(*room_id, prev, &q)
                        });
                        if !delivered {
                            pumps.ring(*room_id, message.room.clone());
                        }
                    }
                    _ => dispatch(&hub, &env),
                },
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "fan-out fell behind the bus; re-reading every room");
                    pumps.ring_all();
                    let (hub, db) = (hub.clone(), pumps.db.clone());
                    tokio::spawn(async move { crate::roster::resync(&hub, &db).await });
                }
                Err(RecvError::Closed) => return,
            },
            Some((room, slug)) = rung.recv() => pumps.ring(room, slug),
            ok = resync => {
                if ok {
                    tracing::info!("bus reconnected; re-reading every room");
                    pumps.ring_all();
                    // Presence events may have been lost too.
                    let (hub, db) = (hub.clone(), pumps.db.clone());
                    tokio::spawn(async move { crate::roster::resync(&hub, &db).await });
                } else {
                    resyncs = None;
                }
            }
        }
    }
}

/// Publishes the messages this process's writer commits, one at a time in commit order
/// (the writer's hooks queue them in id order), so a room's messages reach every gateway
/// in order and each can be delivered as it came (see `Hub::deliver_chained`).
/// Whatever has queued up meanwhile goes out together, in one round trip to Redis.
pub async fn announce(hub: Arc<Hub>, mut queue: mpsc::UnboundedReceiver<(Topic, Event)>) {
    const MOST: usize = 256;
    let mut events = Vec::with_capacity(MOST);
    while queue.recv_many(&mut events, MOST).await > 0 {
        if let Err(e) = hub.bus().publish_many(&events).await {
            tracing::warn!(error = %e, "bus publish failed; delivering locally");
            for (topic, event) in events.drain(..) {
                deliver_locally(&hub, topic, event);
            }
        }
        events.clear();
    }
}

/// Publishes an event; when the bus fails, this gateway's own sockets still get it.
pub async fn publish_or_deliver(hub: &Hub, topic: Topic, event: Event) {
    if let Err(e) = hub.bus().publish(topic, &event).await {
        tracing::warn!(error = %e, "bus publish failed; delivering locally");
        deliver_locally(hub, topic, event);
    }
}

/// What the bus echo would have done, for this gateway's sockets only: the event is
/// stored already, and other gateways' sockets catch up from the database when their bus
/// comes back (it resyncs), but this gateway's own must not wait for that.
fn deliver_locally(hub: &Hub, topic: Topic, event: Event) {
    match &event {
        Event::Message {
            room_id, message, ..
        } => hub.ring(*room_id, &message.room),
        _ => dispatch(hub, &Envelope { topic, event }),
    }
}

/// Delivers one event (not a message: see [`Pumps`]) to the local sockets it concerns.
pub fn dispatch(hub: &Hub, env: &Envelope) {
    match (&env.topic, &env.event) {
        (Topic::Room(room), event) => {
            let (frame, skip) = match event {
                Event::Edited { message, .. } => (
                    ServerFrame::Edited {
                        room: message.room.clone(),
                        message: message.clone(),
                    },
                    None,
                ),
                Event::Restored { message, .. } => (
                    ServerFrame::Restored {
                        room: message.room.clone(),
                        message: message.clone(),
                    },
                    None,
                ),
                Event::Deleted { room, id, .. } => (
                    ServerFrame::Deleted {
                        room: room.clone(),
                        id: *id,
                    },
                    None,
                ),
                Event::Typing { room, user, .. } => (
                    ServerFrame::Typing {
                        room: room.clone(),
                        user: user.clone(),
                    },
                    Some(user.username.as_str()),
                ),
                Event::Membership {
                    room,
                    user_id,
                    change,
                    ..
                } => (
                    ServerFrame::Membership {
                        room: room.clone(),
                        user_id: *user_id,
                        change: *change,
                    },
                    None,
                ),
                _ => return,
            };
            hub.deliver_room(*room, &frame.to_text(), skip);
        }
        (Topic::User(user), event) => match event {
            Event::SessionsRevoked {
                session_ids,
                reason,
                ..
            } => {
                let n = hub.kick_sessions(
                    *user,
                    session_ids,
                    CloseFrame::new(close::SESSION_ENDED, format!("session ended: {reason}")),
                );
                tracing::info!(user_id = %user, sockets = n, "sessions revoked");
            }
            Event::UserDeactivated { .. } => {
                let n = hub.kick_user(
                    *user,
                    CloseFrame::new(close::SESSION_ENDED, "account deactivated"),
                );
                tracing::info!(user_id = %user, sockets = n, "user deactivated");
            }
            Event::SignedIn { device, ip, ts, .. } => hub.deliver_user(
                *user,
                &ServerFrame::Notice {
                    kind: "signed_in".into(),
                    device: device.clone(),
                    ip: ip.clone(),
                    ts: *ts,
                }
                .to_text(),
            ),
            Event::Read { room, id, .. } => hub.deliver_user(
                *user,
                &ServerFrame::Read {
                    room: room.clone(),
                    id: *id,
                }
                .to_text(),
            ),
            Event::Membership {
                room,
                user_id,
                change,
                ..
            } => hub.deliver_user(
                *user,
                &ServerFrame::Membership {
                    room: room.clone(),
                    user_id: *user_id,
                    change: *change,
                }
                .to_text(),
            ),
            _ => {}
        },
        // Coalesced: the roster's ticker sends the changes (crate::roster).
        (
            Topic::Presence,
            Event::Presence {
                user_id,
                username,
                status,
            },
        ) => hub.roster().record(*user_id, username, *status),
        (Topic::Presence, _) => {}
    }
}
