//! One socket's task, written over a `Stream` of [`Inbound`] frames and a `Sink` of
//! [`Outbound`] frames, so it runs the same over a real connection (`socket.rs`)
//! and over plain channels in tests.
//!
//! Guarantees:
//! - Frames from one client are handled in order. A `send` is queued on the writer and
//!   the next frame read at once (up to [`MAX_SENDS_IN_FLIGHT`] sends in flight): sends
//!   are stored in the order sent, and each `ack` reaches the socket before the message
//!   it acknowledges. Other frames are handled one at a time.
//! - Every frame is authorised through `domain::permissions`.
//! - The socket ends with a close frame saying why: 1000 (client left), 1008 (too slow,
//!   flooding), 1009 (frame too large), 1012 (server restarting), 1013 (try again later),
//!   4001 (session ended). A dead peer (no traffic for two ping intervals) is dropped.
//! - Errors never panic the task; they become `error` frames or a close.

use crate::{
    Core,
    hub::{Bucket, CloseFrame, ConnId, ConnInfo, Outbound, Queued, close},
    protocol::{self, ClientFrame, ErrorCode, ServerFrame, wire_message},
};
use domain::{
    DomainError,
    auth::SessionKey,
    bus::{Event, MembershipChange, Topic, WireUser},
    ids::{MessageId, RoomId, SessionId},
    model::{MessageKind, Room, RoomRole, User},
    permissions::{self, Action},
    repo::{self, Page},
};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::{sync::mpsc, time::Instant};

/// A frame from the client, independent of the WebSocket library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Text(String),
    Binary,
    Ping(Vec<u8>),
    Pong,
    Close,
    /// A frame (after joining continuations) above the size limit.
    TooLarge,
    /// The transport failed or the peer broke the protocol.
    Broken(String),
}

/// The authenticated owner of a socket.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: User,
    pub session_id: SessionId,
    pub session_key: SessionKey,
}

/// How many frames a client may have refused for flooding before it is disconnected.
const MAX_VIOLATIONS: u32 = 200;
/// Messages per `joined` page after `since`.
const CATCH_UP_PAGE: i64 = 200;
/// Messages in a `joined` reply without `since`, and per `history` page.
const RECENT_PAGE: i64 = 50;
/// A socket's `send`s stored at once; beyond it the socket's frames wait to be read.
const MAX_SENDS_IN_FLIGHT: usize = 32;
/// How long the final flush and close frame may take before the socket is just dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Queued frames written together at most (one write each batch).
const WRITE_BATCH: usize = 64;

/// Why a frame was refused.
#[derive(Debug)]
struct Refusal {
    code: ErrorCode,
    message: String,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

impl From<DomainError> for Refusal {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NotFound => Refusal::new(ErrorCode::NotFound, "no such room"),
            DomainError::Forbidden => Refusal::new(ErrorCode::Forbidden, "not allowed"),
            DomainError::Invalid { field, reason } => {
                Refusal::new(ErrorCode::BadRequest, format!("{field}: {reason}"))
            }
            DomainError::Conflict(why) => Refusal::new(ErrorCode::BadRequest, why),
            other => {
                tracing::error!(error = %other, "request failed");
                Refusal::new(ErrorCode::Unavailable, "temporarily unavailable")
            }
        }
    }
}

/// How a connection ended.
#[derive(Debug)]
enum End {
    /// The client closed or vanished: answer with a normal close if possible.
    Client,
    Close(CloseFrame),
}

/// Runs one socket until it ends. Never panics on bad input. The final flush and close
/// frame get `CLOSE_TIMEOUT`; the caller then drops the transport, which closes the
/// connection underneath a peer that stopped reading.
pub async fn run<S, K>(core: Arc<Core>, identity: Identity, mut incoming: S, mut sink: K)
where
    S: Stream<Item = Inbound> + Unpin,
    K: Sink<Outbound> + Unpin,
{
    let info = ConnInfo {
        user_id: identity.user.id,
        username: identity.user.username.clone(),
        session_id: identity.session_id,
    };
    let Some(attached) = core.hub.register(info.clone()) else {
        let _ = sink
            .send(Outbound::Close(CloseFrame::new(
                close::RESTART,
                "server restarting",
            )))
            .await;
        return;
    };
    // Counted by the bus whatever the outcome; the registration's Drop releases it.
    if let Err(e) = core.hub.bus().subscribe(Topic::User(info.user_id)).await {
        tracing::warn!(error = %e, "could not subscribe to account events");
    }
    // A new socket is active: its user may just have come online, or back from away.
    // The one-off steps before the loop are boxed: a future is as large as its largest
    // await, and this one lives as long as the socket.
    Box::pin(core.presence.sync(info.user_id, |status| {
        core.hub.publish_presence(&info, status)
    }))
    .await;
    let crate::hub::Attached {
        registration,
        id,
        mut outbound,
        tx,
        mut kicked,
        ..
    } = attached;
    let mut conn = Connection {
        frames: Bucket::new(core.config.frames_per_sec, core.config.frames_burst),
        sends: Bucket::new(core.config.sends_per_sec, core.config.sends_burst),
        joins: Bucket::new(core.config.joins_per_sec, core.config.joins_burst),
        core: core.clone(),
        identity,
        id,
        tx,
        violations: 0,
        in_flight: std::sync::Mutex::default(),
    };
    // `hello` goes straight to the sink, ahead of whatever the hub queued since the
    // registration (presence changes, account notices): the protocol promises it first.
    // The queued events follow it in order, so the client still ends on the current state.
    let hello = Box::pin(hello_text(&core, &conn.identity.user)).await;
    if sink.send(Outbound::Text(hello)).await.is_err() {
        return;
    }
    metrics::counter!("confab_ws_frames_out_total").increment(1);
    let ping_every = core.config.ping_interval;
    // Milliseconds since `born` when the peer was last heard from (atomic, not a Cell,
    // so the task stays `Send`).
    let born = Instant::now();
    let last_heard = AtomicU64::new(0);
    let heard = || last_heard.store(born.elapsed().as_millis() as u64, Ordering::Relaxed);
    let end = {
        let writer = async {
            let mut ping = tokio::time::interval_at(first_ping(ping_every), ping_every);
            loop {
                tokio::select! {
                    out = outbound.recv() => {
                        let Some(out) = out else { return End::Client };
                        // Whatever else is queued goes out in the same write.
                        let mut batch = Some(out);
                        let mut fed = 0;
                        while let Some(out) = batch.take() {
                            if sink.feed(out).await.is_err() {
                                return End::Client;
                            }
                            fed += 1;
                            if fed < WRITE_BATCH {
                                batch = outbound.try_recv().ok();
                            }
                        }
                        if sink.flush().await.is_err() {
                            return End::Client;
                        }
                    }
                    _ = ping.tick() => {
                        let silent = born.elapsed().saturating_sub(Duration::from_millis(last_heard.load(Ordering::Relaxed)));
                        if silent > ping_every * 2 {
                            return End::Close(CloseFrame::new(close::POLICY, "no answer to pings"));
                        }
                        if sink.send(Outbound::Ping(Vec::new())).await.is_err() {
                            return End::Client;
                        }
                    }
                }
            }
        };
        let reader = async {
            loop {
                let room_for_more = conn.sends_in_flight().len() < MAX_SENDS_IN_FLIGHT;
                let sending = !conn.sends_in_flight().is_empty();
                tokio::select! {
                    frame = incoming.next(), if room_for_more => {
                        let Some(frame) = frame else { return End::Client };
                        heard();
                        // Boxed: the handlers' state (joins, history pages…) is large and
                        // only alive while a frame is handled; inline, every idle socket's
                        // task would carry it (≈ 17 KB each).
                        if let Some(end) = Box::pin(conn.on_frame(frame)).await {
                            if matches!(end, End::Client) {
                                // The client said goodbye: its sends still get answers.
                                while let Some((reference, outcome)) = conn.sends_in_flight().next().await {
                                    conn.answered(reference, outcome);
                                }
                            }
                            return end;
                        }
                    }
                    Some((reference, outcome)) = conn.sends_in_flight().next(), if sending => {
                        conn.answered(reference, outcome);
                    }
                }
            }
        };
        let kick = async {
            match kicked.wait_for(Option::is_some).await {
                Ok(frame) => frame.clone(),
                Err(_) => None,
            }
        };
        tokio::pin!(writer, reader, kick);
        tokio::select! {
            end = &mut writer => end,
            end = &mut reader => end,
            frame = &mut kick => frame.map_or(End::Client, End::Close),
        }
    };
    // Replies already queued (an error frame before a close, the last acks) go first;
    // a peer that does not read gets at most CLOSE_TIMEOUT.
    let frame = match end {
        End::Client => CloseFrame::new(close::NORMAL, ""),
        End::Close(frame) => frame,
    };
    tracing::debug!(conn_id = id, code = frame.code, reason = %frame.reason, "socket closing");
    let finish = async {
        while let Ok(out) = outbound.try_recv() {
            if sink.send(out).await.is_err() {
                return;
            }
        }
        let _ = sink.send(Outbound::Close(frame)).await;
        let _ = sink.close().await;
    };
    if tokio::time::timeout(CLOSE_TIMEOUT, Box::pin(finish))
        .await
        .is_err()
    {
        tracing::debug!(conn_id = id, "peer not reading; cutting the connection");
    }
    drop(registration);
}

/// Ping slots per ping period (see [`first_ping`]).
const PING_SLOTS: u32 = 20;

/// When a socket first pings: at a random point in the second half of its first period
/// (sockets opened together, in a reconnect storm or after a redeploy, would otherwise
/// ping together every period for as long as they stay), rounded up to the ping grid:
/// slots of `every / PING_SLOTS` counted from one clock for the whole process. The period
/// is a whole number of slots, so a socket stays on the grid and the sockets due in one
/// slot share one timer wake-up of their worker: at light load the wake-ups, one per ping
/// at random instants, cost more than the pings.
fn first_ping(every: Duration) -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let at = Instant::now() + every.mul_f64(rand::random_range(0.5..=1.0));
    let slot = (every / PING_SLOTS).max(Duration::from_millis(1));
    let slots = at
        .duration_since(epoch)
        .as_nanos()
        .div_ceil(slot.as_nanos());
    u64::try_from(slots * slot.as_nanos())
        .ok()
        .and_then(|nanos| epoch.checked_add(Duration::from_nanos(nanos)))
        .unwrap_or(at)
}

/// The `hello` frame, serialised. Its own function so the name lists (up to
/// [`ONLINE_SNAPSHOT_MAX`] strings, tens of KB) are freed once it is written: held in the
/// socket's task, they were most of an idle socket's memory.
async fn hello_text(core: &Core, user: &domain::model::User) -> bytestring::ByteString {
    let (online, away) = present_usernames(core, &user.username).await;
    ServerFrame::Hello {
        protocol: 1,
        user: WireUser {
            username: user.username.clone(),
            display_name: user.display_name.clone(),
        },
        online,
        away,
    }
    .to_text()
}

/// The room and one of its messages; a message of another room is not found.
fn message_in_room(
    c: &mut domain::db::DbConn,
    keys: &domain::crypto::MessageKeys,
    slug: &str,
    id: MessageId,
) -> domain::Result<(Room, domain::model::Message)> {
    let room = repo::room::find_by_slug(c, slug)?.ok_or(DomainError::NotFound)?;
    let message = repo::message::find(c, keys, id)?;
    if message.room_id != room.id {
        return Err(DomainError::NotFound);
    }
    Ok((room, message))
}

fn message_refusal(e: DomainError) -> Refusal {
    match e {
        DomainError::NotFound => Refusal::new(ErrorCode::NotFound, "no such message"),
        other => other.into(),
    }
}

/// At most this many names in the `hello` snapshot.
const ONLINE_SNAPSHOT_MAX: usize = 1000;

/// The presence snapshot for `hello`: who is online, who is away. One gateway: its
/// roster, memory work only. Several (Redis): a store read shared with the sockets asking
/// at the same time (so it shows every change completed before this socket asked, and a
/// reconnect storm costs a few reads, not one per socket), named from the roster; the
/// database only for users this gateway has never heard of. This socket is active, so its
/// own user is online whatever was read.
async fn present_usernames(core: &Core, me: &str) -> (Vec<String>, Vec<String>) {
    let roster = core.hub.roster();
    let (mut online, mut away) = if core.presence.is_shared() {
        match core.presence.fresh_snapshot().await.as_ref() {
            Ok(present) => {
                let (mut online, mut away, unknown) = roster.name(present, ONLINE_SNAPSHOT_MAX);
                if !unknown.is_empty() {
                    let found = core
                        .db
                        .run(move |c| {
                            let mut found = Vec::new();
                            for (id, status) in unknown {
                                if let Ok(u) = repo::user::find(c, id)
                                    && u.is_active
                                {
                                    found.push((u.id, u.username, status));
                                }
                            }
                            Ok(found)
                        })
                        .await
                        .unwrap_or_default();
                    for (id, name, status) in found {
                        roster.learn(id, &name);
                        match status {
                            domain::bus::PresenceStatus::Away => away.push(name),
                            _ => online.push(name),
                        }
                    }
                }
                (online, away)
            }
            Err(e) => {
                tracing::warn!(error = %e, "presence snapshot failed");
                (Vec::new(), Vec::new())
            }
        }
    } else {
        roster.lists(ONLINE_SNAPSHOT_MAX)
    };
    away.retain(|name| name != me);
    if !online.iter().any(|name| name == me) {
        online.push(me.to_owned());
    }
    (online, away)
}

/// The largest commit whose messages the writer's hook delivers to this gateway's
/// sockets itself (see `Posting::enqueue`).
const DIRECT_DELIVERY_MAX: usize = 4;

/// A `send` in flight: what its answer needs once the writer has it.
struct Posting {
    core: Arc<Core>,
    conn: ConnId,
    user: User,
    slug: String,
    body: String,
    client_id: String,
}

/// The answer to one queued `send`: the frame's `client_id` and the refusal, if any.
type InFlight = std::pin::Pin<Box<dyn Future<Output = (String, Result<(), Refusal>)> + Send>>;

impl Posting {
    /// Queues the post for `room_id`; the commit hook queues the `ack` and announces it.
    async fn enqueue(
        &self,
        room_id: RoomId,
    ) -> Result<
        impl Future<Output = Result<repo::message::Posted, DomainError>> + Send + 'static,
        DomainError,
    > {
        let guard = domain::writer::may_post(self.user.clone(), room_id);
        let new = repo::message::NewMessage {
            room_id,
            author_id: Some(self.user.id),
            kind: MessageKind::Text,
            body: self.body.clone(),
            client_id: Some(self.client_id.clone()),
        };
        let (hub, announce) = (self.core.hub.clone(), self.core.announce.clone());
        let (conn, slug) = (self.conn, self.slug.clone());
        let on_commit: domain::writer::OnCommit = Box::new(move |posted, created| {
            // The slug named the room the post was stored under: it is that room's slug.
            let message = wire_message(&slug, &posted.message);
            hub.ack(conn, message.id, ack_frame(&message).to_text());
            let room_id = posted.message.room_id;
            // This gateway's own sockets get the message now, from the writer's thread in
            // commit order, without waiting for the bus: at light load each hand-off to
            // another thread costs about 0.1 ms. The bus echo then finds them served (their
            // watermarks), and a socket that lacks `prev` is caught up by the echo's pump.
            // Only for small commits: under load the writer thread must only write (its
            // fan-out cut the highest sustained rate by a fifth), and the echo delivers.
            let direct = posted
                .prev
                .filter(|_| created <= DIRECT_DELIVERY_MAX)
                .map(|prev| (prev, message.clone()));
            // Announced first: each socket woken below queues its task on the runtime,
            // and the announcer queued after them waited for every one of their writes
            // (0.3 ms of the other gateways' latency at light load).
            let event = Event::Message {
                room_id,
                message,
                prev: posted.prev,
            };
            let _ = announce.send((Topic::Room(room_id), event));
            if let Some((prev, message)) = direct {
                let q = Queued {
                    id: Some(message.id),
                    text: ServerFrame::Message(message).to_text(),
                };
                hub.deliver_chained(room_id, prev, &q);
            }
        });
        self.core.writer.enqueue(new, guard, on_commit).await
    }

    /// Awaits the writer's answer. A stale cached slug (room deleted, slug reused) is
    /// dropped and the post tried once more under the slug's current room.
    async fn finish(
        self,
        answer: impl Future<Output = Result<repo::message::Posted, DomainError>>,
        cached: bool,
    ) -> (String, Result<(), Refusal>) {
        let mut result = answer.await;
        if cached && matches!(result, Err(DomainError::NotFound)) {
            self.core.forget_room_id(&self.slug);
            result = match self.core.look_up_room_id(&self.slug).await {
                Ok(room_id) => match self.enqueue(room_id).await {
                    Ok(answer) => answer.await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
        }
        let (reply, outcome) = match result {
            Ok(posted) if posted.created => {
                metrics::counter!("confab_ws_messages_total").increment(1);
                (None, Ok(()))
            }
            // A repeated `client_id`: the stored message's ack, nothing announced.
            Ok(posted) => {
                let message = wire_message(&self.slug, &posted.message);
                (Some(ack_frame(&message).to_text()), Ok(()))
            }
            Err(e) => (None, Err(e.into())),
        };
        self.core.hub.end_send(self.conn, reply);
        (self.client_id, outcome)
    }
}

fn ack_frame(message: &domain::bus::WireMessage) -> ServerFrame {
    ServerFrame::Ack {
        client_id: message.client_id.clone().unwrap_or_default(),
        id: message.id,
        ts: message.ts,
    }
}

impl Core {
    fn cached_room_id(&self, slug: &str) -> Option<RoomId> {
        self.room_ids.lock().ok()?.get(slug).copied()
    }

    /// Reads a slug's room id and remembers it.
    async fn look_up_room_id(&self, slug: &str) -> Result<RoomId, DomainError> {
        let owned = slug.to_owned();
        let room = self
            .db
            .run(move |c| repo::room::find_by_slug(c, &owned)?.ok_or(DomainError::NotFound))
            .await?;
        if let Ok(mut ids) = self.room_ids.lock() {
            // Bounded: a flood of distinct slugs costs a lookup each, never memory.
            if ids.len() >= 10_000 {
                ids.clear();
            }
            ids.insert(slug.to_owned(), room.id);
        }
        Ok(room.id)
    }

    fn forget_room_id(&self, slug: &str) {
        if let Ok(mut ids) = self.room_ids.lock() {
            ids.remove(slug);
        }
    }
}

struct Connection {
    core: Arc<Core>,
    identity: Identity,
    id: ConnId,
    tx: mpsc::Sender<Outbound>,
    frames: Bucket,
    sends: Bucket,
    joins: Bucket,
    violations: u32,
    /// This socket's `send`s being stored, answered in the order sent. In a Mutex only
    /// to be `Sync` (the task's futures borrow the connection); always used through
    /// `get_mut`, never locked.
    in_flight: std::sync::Mutex<futures_util::stream::FuturesOrdered<InFlight>>,
}

impl Connection {
    /// Queues a reply. A client that lets its queue fill is not reading: disconnect it.
    fn send(&self, frame: ServerFrame) {
        match self.tx.try_send(Outbound::Text(frame.to_text())) {
            Ok(()) => metrics::counter!("confab_ws_frames_out_total").increment(1),
            Err(mpsc::error::TrySendError::Full(_)) => self.core.hub.kick(
                self.id,
                CloseFrame::new(close::POLICY, "too slow: outbound queue full"),
            ),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn sends_in_flight(&mut self) -> &mut futures_util::stream::FuturesOrdered<InFlight> {
        self.in_flight.get_mut().unwrap_or_else(|p| p.into_inner())
    }

    fn answered(&self, client_id: String, outcome: Result<(), Refusal>) {
        if let Err(r) = outcome {
            tracing::debug!(conn_id = self.id, code = ?r.code, "send refused");
            self.refuse(Some(client_id), r);
        }
    }

    fn refuse(&self, reference: Option<String>, r: Refusal) {
        self.send(ServerFrame::Error {
            code: r.code,
            reference,
            message: Some(r.message),
        });
    }

    async fn on_frame(&mut self, frame: Inbound) -> Option<End> {
        match frame {
            Inbound::Text(text) => {
                metrics::counter!("confab_ws_frames_in_total").increment(1);
                self.on_text(&text).await
            }
            Inbound::Binary => {
                metrics::counter!("confab_ws_frames_in_total").increment(1);
                self.refuse(
                    None,
                    Refusal::new(ErrorCode::BadRequest, "frames are JSON text"),
                );
                None
            }
            Inbound::Ping(payload) => {
                let _ = self.tx.try_send(Outbound::Pong(payload));
                None
            }
            Inbound::Pong => None,
            Inbound::Close => Some(End::Client),
            Inbound::TooLarge => {
                self.refuse(
                    None,
                    Refusal::new(
                        ErrorCode::TooLarge,
                        format!("frames are limited to {} bytes", self.core.max_frame_bytes),
                    ),
                );
                Some(End::Close(CloseFrame::new(
                    close::TOO_BIG,
                    "frame too large",
                )))
            }
            Inbound::Broken(why) => {
                tracing::debug!(conn_id = self.id, %why, "socket broken");
                Some(End::Close(CloseFrame::new(close::POLICY, "protocol error")))
            }
        }
    }

    async fn on_text(&mut self, text: &str) -> Option<End> {
        let parsed = protocol::parse(text);
        // Every frame counts against the rate, valid or not: garbage floods too.
        if !self.frames.take() {
            let reference = match &parsed {
                Ok(frame) => frame.client_ref(),
                Err(e) => e.reference.clone(),
            };
            self.refuse(
                reference,
                Refusal::new(ErrorCode::RateLimited, "too many frames; slow down"),
            );
            return self.count_violation();
        }
        let frame = match parsed {
            Ok(frame) => frame,
            Err(e) => {
                self.refuse(e.reference, Refusal::new(e.code, e.message));
                return self.count_violation();
            }
        };
        let reference = frame.client_ref();
        let kind = frame.kind();
        if let Err(r) = self.dispatch(frame).await {
            tracing::debug!(conn_id = self.id, kind, code = ?r.code, "frame refused");
            self.refuse(reference, r);
        }
        None
    }

    fn count_violation(&mut self) -> Option<End> {
        self.violations += 1;
        (self.violations > MAX_VIOLATIONS).then(|| {
            End::Close(CloseFrame::new(
                close::POLICY,
                "too many bad or excess frames",
            ))
        })
    }

    async fn dispatch(&mut self, frame: ClientFrame) -> Result<(), Refusal> {
        match frame {
            ClientFrame::Join { room, since } => self.join(room, since).await,
            ClientFrame::Leave { room } => self.leave(room).await,
            ClientFrame::Send {
                room,
                body,
                client_id,
            } => self.post(room, body, client_id).await,
            ClientFrame::Typing { room } => self.typing(room).await,
            ClientFrame::Read { room, id } => self.read(room, id).await,
            ClientFrame::History { room, before } => self.history(room, before).await,
            ClientFrame::Edit { room, id, body } => self.edit(room, id, body).await,
            ClientFrame::Delete { room, id } => self.delete(room, id).await,
            ClientFrame::Presence { status } => {
                self.set_presence(status).await;
                Ok(())
            }
        }
    }

    /// This socket is away (tab hidden, idle) or back. Announced only when it changes the
    /// user's status across all their sockets; no reply.
    async fn set_presence(&self, status: protocol::ClientPresence) {
        let user = self.identity.user.id;
        let away = status == protocol::ClientPresence::Away;
        if !self.core.presence.set_away(self.id, user, away) {
            return;
        }
        let info = ConnInfo {
            user_id: user,
            username: self.identity.user.username.clone(),
            session_id: self.identity.session_id,
        };
        let hub = &self.core.hub;
        self.core
            .presence
            .sync(user, |status| hub.publish_presence(&info, status))
            .await;
    }

    /// Loads a room by slug and checks `action` for this user, in one blocking call.
    async fn room_for(&self, slug: String, action: Action) -> Result<Room, Refusal> {
        let user = self.identity.user.clone();
        self.core
            .db
            .run(move |c| {
                let room = repo::room::find_by_slug(c, &slug)?.ok_or(DomainError::NotFound)?;
                if !permissions::can(c, &user, action, Some(&room))? {
                    return Err(DomainError::Forbidden);
                }
                Ok(room)
            })
            .await
            .map_err(Refusal::from)
    }

    async fn publish(&self, topic: Topic, event: Event) {
        crate::fanout::publish_or_deliver(&self.core.hub, topic, event).await;
    }

    async fn join(&mut self, slug: String, since: Option<MessageId>) -> Result<(), Refusal> {
        // Each join may read a page of history: limited apart from the frame rate.
        if !self.joins.take() {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "too many joins; slow down",
            ));
        }
        let user = self.identity.user.clone();
        let (room, role, added) = self
            .core
            .db
            .run(move |c| {
                let room = repo::room::find_by_slug(c, &slug)?.ok_or(DomainError::NotFound)?;
                let subject = permissions::subject(c, user.clone())?;
                let role = repo::room::membership(c, room.id, user.id)?.map(|m| m.role);
                if !permissions::decide(&subject, Action::ReadRoom, Some((&room, role))) {
                    return Err(DomainError::Forbidden);
                }
                match role {
                    Some(role) => Ok((room, role, false)),
                    None => {
                        // Opening a public room makes one a member, like a public channel.
                        if !permissions::decide(&subject, Action::JoinRoom, Some((&room, None))) {
                            return Err(DomainError::Forbidden);
                        }
                        repo::room::add_member(c, room.id, user.id, RoomRole::Member)?;
                        Ok((room, RoomRole::Member, true))
                    }
                }
            })
            .await?;
        if added {
            self.publish(
                Topic::Room(room.id),
                Event::Membership {
                    room_id: room.id,
                    room: room.slug.clone(),
                    user_id: self.identity.user.id,
                    change: MembershipChange::Joined,
                },
            )
            .await;
        }
        let hub = &self.core.hub;
        // Follow the room (buffering) and have the bus confirm the subscription before
        // reading the database: whatever commits after the read arrives on the bus.
        if hub.begin_join(self.id, room.id, &room.slug)
            && let Err(e) = hub.bus().subscribe(Topic::Room(room.id)).await
        {
            self.abandon(room.id).await;
            tracing::warn!(error = %e, "room subscription failed");
            return Err(Refusal::new(ErrorCode::Unavailable, "try again shortly"));
        }
        let keys = self.core.keys.clone();
        let room_id = room.id;
        let (page, limit) = match since {
            Some(s) => (Page::After(s.0), CATCH_UP_PAGE),
            None => (Page::Latest, RECENT_PAGE),
        };
        let permit = hub.catch_up_permit().await;
        let loaded = self
            .core
            .db
            .run(move |c| repo::message::history(c, &keys, room_id, page, limit))
            .await;
        drop(permit);
        let page = match loaded {
            Ok(page) => page,
            Err(e) => {
                self.abandon(room.id).await;
                return Err(e.into());
            }
        };
        let messages: Vec<_> = page
            .messages
            .iter()
            .map(|m| wire_message(&room.slug, m))
            .collect();
        let upto = messages.last().map(|m| m.id).or(since);
        let more = since.is_some() && page.more;
        let joined = ServerFrame::Joined {
            room: room.slug.clone(),
            role: role.as_str().to_owned(),
            messages,
            more,
            older: since.is_none() && page.more,
        };
        hub.finish_join(self.id, room.id, joined.to_text(), upto, !more);
        Ok(())
    }

    /// Undoes a half-done join.
    async fn abandon(&self, room: RoomId) {
        if self.core.hub.leave(self.id, room) {
            let _ = self.core.hub.bus().unsubscribe(Topic::Room(room)).await;
        }
    }

    async fn leave(&mut self, slug: String) -> Result<(), Refusal> {
        let room = self
            .core
            .db
            .run(move |c| repo::room::find_by_slug(c, &slug)?.ok_or(DomainError::NotFound))
            .await?;
        self.abandon(room.id).await;
        self.send(ServerFrame::Left { room: room.slug });
        Ok(())
    }

    /// Queues a `send` on the process's group-commit writer and goes on reading frames:
    /// up to [`MAX_SENDS_IN_FLIGHT`] per socket are stored at once, in the order sent.
    /// The permission and block checks run inside the message's transaction, after its
    /// room is locked: a removal committed before the post is always seen, so a removed
    /// member cannot post. The `ack` is queued by the writer's commit hook, before the
    /// message is announced; the hub keeps the socket's other frames back until then.
    async fn post(&mut self, slug: String, body: String, client_id: String) -> Result<(), Refusal> {
        let max = self.core.max_message_chars;
        if body.chars().count() > max {
            return Err(Refusal::new(
                ErrorCode::TooLarge,
                format!("messages are limited to {max} characters"),
            ));
        }
        if !self.sends.take() || !self.core.hub.take_user_send(self.identity.user.id) {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "sending too fast; slow down",
            ));
        }
        let cached = self.core.cached_room_id(&slug);
        let room_id = match cached {
            Some(id) => id,
            None => self.core.look_up_room_id(&slug).await?,
        };
        let send = Posting {
            core: self.core.clone(),
            conn: self.id,
            user: self.identity.user.clone(),
            slug,
            body,
            client_id,
        };
        self.core.hub.begin_send(self.id);
        let answer = match send.enqueue(room_id).await {
            Ok(answer) => answer,
            Err(e) => {
                self.core.hub.end_send(self.id, None);
                return Err(e.into());
            }
        };
        self.sends_in_flight()
            .push_back(Box::pin(send.finish(answer, cached.is_some())));
        Ok(())
    }

    async fn edit(&mut self, slug: String, id: MessageId, body: String) -> Result<(), Refusal> {
        let max = self.core.max_message_chars;
        if body.chars().count() > max {
            return Err(Refusal::new(
                ErrorCode::TooLarge,
                format!("messages are limited to {max} characters"),
            ));
        }
        // Edits are writes: they share the send rate.
        if !self.sends.take() {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "sending too fast; slow down",
            ));
        }
        let user = self.identity.user.clone();
        let keys = self.core.keys.clone();
        let (room, edited) = self
            .core
            .db
            .run(move |c| {
                let (room, message) = message_in_room(c, &keys, &slug, id)?;
                let own = message.author.as_ref().is_some_and(|a| a.id == user.id);
                if !own
                    || !permissions::can(c, &user, Action::EditMessage { own }, Some(&room))?
                    || repo::block::stops_posting(c, &room, user.id)?
                {
                    return Err(DomainError::Forbidden);
                }
                let edited = repo::message::edit(c, &keys, id, &body, max)?;
                Ok((room, edited))
            })
            .await
            .map_err(message_refusal)?;
        self.publish(
            Topic::Room(room.id),
            Event::Edited {
                room_id: room.id,
                message: wire_message(&room.slug, &edited),
            },
        )
        .await;
        Ok(())
    }

    /// Deletes a message: one's own, or any in a room one moderates or owns. Every
    /// socket following the room gets `deleted`; deleting twice changes nothing.
    async fn delete(&mut self, slug: String, id: MessageId) -> Result<(), Refusal> {
        let user = self.identity.user.clone();
        let keys = self.core.keys.clone();
        let (room, already) = self
            .core
            .db
            .run(move |c| {
                let (room, message) = message_in_room(c, &keys, &slug, id)?;
                let own = message.author.as_ref().is_some_and(|a| a.id == user.id);
                if !permissions::can(c, &user, Action::DeleteMessage { own }, Some(&room))? {
                    return Err(DomainError::Forbidden);
                }
                let already = message.deleted_at.is_some();
                if !already {
                    repo::message::set_deleted(c, &keys, id, true)?;
                }
                Ok((room, already))
            })
            .await
            .map_err(message_refusal)?;
        if already {
            self.send(ServerFrame::Deleted {
                room: room.slug,
                id,
            });
            return Ok(());
        }
        tracing::info!(conn_id = self.id, room = %room.slug, message_id = %id, "message deleted");
        self.publish(
            Topic::Room(room.id),
            Event::Deleted {
                room_id: room.id,
                room: room.slug,
                id,
            },
        )
        .await;
        Ok(())
    }

    async fn typing(&mut self, slug: String) -> Result<(), Refusal> {
        let room = self.room_for(slug, Action::PostMessage).await?;
        let user = &self.identity.user;
        self.publish(
            Topic::Room(room.id),
            Event::Typing {
                room_id: room.id,
                room: room.slug,
                user: WireUser {
                    username: user.username.clone(),
                    display_name: user.display_name.clone(),
                },
            },
        )
        .await;
        Ok(())
    }

    async fn read(&mut self, slug: String, id: MessageId) -> Result<(), Refusal> {
        let user = self.identity.user.id;
        let room = self
            .core
            .db
            .run(move |c| {
                let room = repo::room::find_by_slug(c, &slug)?.ok_or(DomainError::NotFound)?;
                // A read marker lives on a membership: only members have one.
                if repo::room::membership(c, room.id, user)?.is_none() {
                    return Err(DomainError::Forbidden);
                }
                repo::room::mark_read(c, room.id, user, id)?;
                Ok(room)
            })
            .await?;
        self.publish(
            Topic::User(user),
            Event::Read {
                room_id: room.id,
                room: room.slug,
                user_id: user,
                id,
            },
        )
        .await;
        Ok(())
    }

    async fn history(&mut self, slug: String, before: Option<MessageId>) -> Result<(), Refusal> {
        let room = self.room_for(slug, Action::ReadRoom).await?;
        let keys = self.core.keys.clone();
        let room_id = room.id;
        let page = before.map_or(Page::Latest, |b| Page::Before(b.0));
        let page = self
            .core
            .db
            .run(move |c| repo::message::history(c, &keys, room_id, page, RECENT_PAGE))
            .await?;
        self.send(ServerFrame::History {
            messages: page
                .messages
                .iter()
                .map(|m| wire_message(&room.slug, m))
                .collect(),
            room: room.slug,
            more: page.more,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Deps, Gateway, GatewayConfig};
    use domain::{
        bus::{Bus, memory::MemoryBus},
        db::Backend,
        model::RoomKind,
        repo::{room::NewRoom, session::Lifetimes, user::NewUser},
        testing::{TestDb, settings},
    };
    use futures_util::{sink, stream};
    use serde_json::Value;

    #[test]
    fn sockets_opened_together_ping_apart_in_shared_slots() {
        let every = Duration::from_secs(20);
        let slot = every / PING_SLOTS;
        let now = Instant::now();
        let firsts: Vec<Instant> = (0..200).map(|_| first_ping(every)).collect();
        assert!(firsts.iter().all(|t| *t >= now + every / 2));
        assert!(firsts.iter().all(|t| *t <= Instant::now() + every + slot));
        let (lo, hi) = (firsts.iter().min().unwrap(), firsts.iter().max().unwrap());
        // 200 uniform draws over 10 s: together within 5 s with odds far below 1e-50.
        assert!(*hi - *lo > Duration::from_secs(5), "{lo:?}..{hi:?}");
        // On one grid: any two first ticks are a whole number of slots apart, so at most
        // 11 distinct instants (the second half of a period, rounded up to slots).
        let mut distinct: Vec<Instant> = firsts.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() <= 11, "{} distinct instants", distinct.len());
        for t in &distinct {
            let apart = t.duration_since(*lo).as_nanos();
            assert_eq!(apart % slot.as_nanos(), 0, "{apart} ns apart");
        }
    }

    struct Harness {
        _db: TestDb,
        gateway: Gateway,
        bus: Arc<MemoryBus>,
    }

    struct Client {
        to: mpsc::UnboundedSender<Inbound>,
        from: mpsc::UnboundedReceiver<Outbound>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Client {
        fn send(&self, json: &str) {
            self.to
                .send(Inbound::Text(json.to_owned()))
                .expect("task alive");
        }

        /// The next text frame as JSON (pings and incidental presence and membership
        /// notices skipped).
        async fn next(&mut self) -> Value {
            loop {
                let out = tokio::time::timeout(Duration::from_secs(5), self.from.recv())
                    .await
                    .expect("a frame within 5 s")
                    .expect("socket open");
                match out {
                    Outbound::Text(t) => {
                        let v: Value = serde_json::from_str(&t).expect("json");
                        if v["type"] != "presence" && v["type"] != "membership" {
                            return v;
                        }
                    }
                    Outbound::Close(c) => panic!("closed: {c:?}"),
                    _ => {}
                }
            }
        }

        async fn close_frame(&mut self) -> CloseFrame {
            loop {
                let out = tokio::time::timeout(Duration::from_secs(5), self.from.recv())
                    .await
                    .expect("a frame within 5 s")
                    .expect("a close frame before the end");
                if let Outbound::Close(c) = out {
                    return c;
                }
            }
        }
    }

    async fn harness() -> Harness {
        harness_with(GatewayConfig {
            sends_burst: 3.0,
            sends_per_sec: 0.5,
            ..GatewayConfig::default()
        })
        .await
    }

    async fn harness_with(config: GatewayConfig) -> Harness {
        harness_on(config, |bus| bus).await
    }

    /// A gateway whose bus is `wrap` of the harness's in-process bus (`Harness::bus` is
    /// the inner one: what it publishes comes from elsewhere).
    async fn harness_on(
        config: GatewayConfig,
        wrap: impl FnOnce(Arc<MemoryBus>) -> domain::bus::SharedBus,
    ) -> Harness {
        let db = TestDb::new(Backend::Sqlite);
        let s = settings(&db.url);
        let bus = Arc::new(MemoryBus::new());
        let keys = s.message_keys().expect("keys");
        let mut deps = Deps::in_process(db.db.clone(), bus.clone(), keys).with_config(config);
        deps.bus = wrap(bus.clone());
        let gateway = Gateway::start(&s, deps).await.expect("gateway");
        Harness {
            _db: db,
            gateway,
            bus,
        }
    }

    impl Harness {
        async fn user(&self, name: &str) -> Identity {
            let name = name.to_owned();
            self.gateway
                .core
                .db
                .run(move |c| {
                    let user = repo::user::create(
                        c,
                        &NewUser {
                            username: name,
                            display_name: String::new(),
                            password: "correct horse battery".into(),
                            is_staff: false,
                            is_superuser: false,
                        },
                        4,
                    )?;
                    let (key, session) = repo::session::create(
                        c,
                        user.id,
                        "test",
                        "127.0.0.1",
                        "",
                        Lifetimes {
                            idle_secs: 3600,
                            absolute_secs: 7200,
                        },
                    )?;
                    Ok(Identity {
                        user,
                        session_id: session.id,
                        session_key: key,
                    })
                })
                .await
                .expect("user")
        }

        async fn room(&self, slug: &str, kind: RoomKind, owner: Option<&Identity>) -> Room {
            let new = NewRoom {
                slug: slug.into(),
                name: String::new(),
                topic: String::new(),
                kind,
                created_by: owner.map(|o| o.user.id),
            };
            self.gateway
                .core
                .db
                .run(move |c| repo::room::create(c, &new))
                .await
                .expect("room")
        }

        async fn connect(&self, who: &Identity) -> Client {
            let (to, rx) = mpsc::unbounded_channel::<Inbound>();
            let (tx, from) = mpsc::unbounded_channel::<Outbound>();
            let mut rx = rx;
            let incoming = stream::poll_fn(move |cx| rx.poll_recv(cx));
            let out = sink::unfold(tx, |tx, item: Outbound| async move {
                tx.send(item).map_err(|_| ())?;
                Ok::<_, ()>(tx)
            });
            let task = tokio::spawn(run(
                self.gateway.core.clone(),
                who.clone(),
                Box::pin(incoming),
                Box::pin(out),
            ));
            let mut c = Client { to, from, task };
            assert_eq!(c.next().await["type"], "hello");
            c
        }

        /// ann and bob, each on a socket that has joined the public room `lobby`.
        async fn ann_and_bob_in_lobby(&self) -> (Client, Client) {
            let ann = self.user("ann").await;
            let bob = self.user("bob").await;
            self.room("lobby", RoomKind::Public, None).await;
            let mut a = self.connect(&ann).await;
            let mut b = self.connect(&bob).await;
            for c in [&a, &b] {
                c.send(r#"{"type":"join","room":"lobby"}"#);
            }
            assert_eq!(a.next().await["type"], "joined");
            assert_eq!(b.next().await["type"], "joined");
            (a, b)
        }
    }

    #[tokio::test]
    async fn a_socket_task_stays_small() {
        // Every open socket holds one of these futures for its whole life; the frame
        // handlers and the one-off steps are boxed so their state is not in it. Inline
        // they made it ≈ 17 KB, most of an idle socket's memory.
        let h = harness().await;
        let ann = h.user("ann").await;
        let (_to, mut rx) = mpsc::unbounded_channel::<Inbound>();
        let incoming = stream::poll_fn(move |cx| rx.poll_recv(cx));
        let out = sink::drain().sink_map_err(|_: std::convert::Infallible| ());
        let task = run(
            h.gateway.core.clone(),
            ann,
            Box::pin(incoming),
            Box::pin(out),
        );
        let size = std::mem::size_of_val(&task);
        assert!(size <= 4096, "the socket task's future is {size} bytes");
    }

    #[tokio::test]
    async fn send_is_acked_then_fanned_out_once_and_resends_are_idempotent() {
        let h = harness().await;
        let ann = h.user("ann").await;
        let bob = h.user("bob").await;
        h.room("lobby", RoomKind::Public, None).await;
        let mut a = h.connect(&ann).await;
        let mut b = h.connect(&bob).await;
        for c in [&a, &b] {
            c.send(r#"{"type":"join","room":"lobby"}"#);
        }
        let joined = a.next().await;
        assert_eq!(joined["type"], "joined");
        assert_eq!(
            joined["role"], "member",
            "joining a public room makes a member"
        );
        assert_eq!(b.next().await["type"], "joined");
        a.send(r#"{"type":"send","room":"lobby","body":"hello","client_id":"c1"}"#);
        let ack = a.next().await;
        assert_eq!(ack["type"], "ack");
        assert_eq!(ack["client_id"], "c1");
        let echo = a.next().await;
        assert_eq!(echo["type"], "message");
        assert_eq!(echo["id"], ack["id"]);
        let got = b.next().await;
        assert_eq!(got["type"], "message");
        assert_eq!(got["body"], "hello");
        assert_eq!(got["author"]["username"], "ann");
        // The same client_id again: same id, nothing new for anyone.
        a.send(r#"{"type":"send","room":"lobby","body":"hello","client_id":"c1"}"#);
        let again = a.next().await;
        assert_eq!(again["type"], "ack");
        assert_eq!(again["id"], ack["id"]);
        a.send(r#"{"type":"send","room":"lobby","body":"second","client_id":"c2"}"#);
        assert_eq!(a.next().await["type"], "ack");
        assert_eq!(a.next().await["body"], "second");
        assert_eq!(
            b.next().await["body"],
            "second",
            "no duplicate of the first"
        );
    }

    /// A bus that loses every `message` event (as a partitioned Redis would); the rest
    /// passes.
    #[derive(Debug)]
    struct LosesMessages(Arc<MemoryBus>);

    #[async_trait::async_trait]
    impl Bus for LosesMessages {
        async fn publish(&self, topic: Topic, event: &Event) -> Result<(), domain::bus::BusError> {
            if matches!(event, Event::Message { .. }) {
                return Ok(());
            }
            self.0.publish(topic, event).await
        }
        async fn subscribe(&self, topic: Topic) -> Result<(), domain::bus::BusError> {
            self.0.subscribe(topic).await
        }
        async fn unsubscribe(&self, topic: Topic) -> Result<(), domain::bus::BusError> {
            self.0.unsubscribe(topic).await
        }
        fn events(&self) -> tokio::sync::broadcast::Receiver<Arc<domain::bus::Envelope>> {
            self.0.events()
        }
        async fn ping(&self) -> Result<(), domain::bus::BusError> {
            self.0.ping().await
        }
    }

    #[tokio::test]
    async fn the_gateways_own_sockets_get_its_messages_without_the_bus() {
        let h = harness_on(GatewayConfig::default(), |bus| Arc::new(LosesMessages(bus))).await;
        let (mut a, mut b) = h.ann_and_bob_in_lobby().await;
        for (n, body) in ["one", "two"].into_iter().enumerate() {
            a.send(&format!(
                r#"{{"type":"send","room":"lobby","body":"{body}","client_id":"c{n}"}}"#
            ));
            let ack = a.next().await;
            assert_eq!(ack["type"], "ack", "{ack}");
            let own = a.next().await;
            assert_eq!((&own["type"], &own["id"]), (&"message".into(), &ack["id"]));
            let got = b.next().await;
            assert_eq!(got["type"], "message", "{got}");
            assert_eq!((&got["body"], &got["id"]), (&body.into(), &ack["id"]));
        }
        // Other events still come through the bus, and nothing was queued in between.
        let lobby = lobby_id(&h).await;
        let typing = Event::Typing {
            room_id: lobby,
            room: "lobby".into(),
            user: WireUser {
                username: "ann".into(),
                display_name: "ann".into(),
            },
        };
        h.bus
            .publish(Topic::Room(lobby), &typing)
            .await
            .expect("publish");
        assert_eq!(b.next().await["type"], "typing");
    }

    #[tokio::test]
    async fn pipelined_sends_are_stored_in_order_and_each_ack_precedes_its_message() {
        let h = harness_with(GatewayConfig {
            sends_burst: 100.0,
            user_sends_burst: 100.0,
            frames_burst: 100.0,
            ..GatewayConfig::default()
        })
        .await;
        let (mut a, mut b) = h.ann_and_bob_in_lobby().await;
        // Forty sends without waiting (more than may be in flight at once), a repeat of
        // one of them, and one for a room that does not exist, in the middle.
        const N: usize = 40;
        for i in 0..N {
            a.send(&format!(
                r#"{{"type":"send","room":"lobby","body":"m{i}","client_id":"c{i}"}}"#
            ));
            if i == 20 {
                a.send(r#"{"type":"send","room":"lobby","body":"m3","client_id":"c3"}"#);
                a.send(r#"{"type":"send","room":"nowhere","body":"x","client_id":"lost"}"#);
            }
        }
        let mut acked: Vec<(String, i64)> = Vec::new();
        let mut echoed: Vec<i64> = Vec::new();
        let mut refused = Vec::new();
        while echoed.len() < N || acked.len() < N + 1 || refused.is_empty() {
            let f = a.next().await;
            match f["type"].as_str() {
                Some("ack") => acked.push((
                    f["client_id"].as_str().unwrap().to_owned(),
                    f["id"].as_i64().unwrap(),
                )),
                Some("message") => {
                    let id = f["id"].as_i64().unwrap();
                    assert!(
                        acked.iter().any(|(_, a)| *a == id),
                        "the ack of {id} came before the message"
                    );
                    echoed.push(id);
                }
                Some("error") => refused.push(f),
                other => panic!("unexpected frame {other:?}"),
            }
        }
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0]["code"], "not_found");
        assert_eq!(refused[0]["ref"], "lost");
        let ids: Vec<i64> = (0..N)
            .map(|i| {
                acked
                    .iter()
                    .find(|(c, _)| *c == format!("c{i}"))
                    .expect("acked")
                    .1
            })
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "stored in the order sent: {ids:?}"
        );
        assert_eq!(echoed, ids, "every message once, in order");
        let repeats: Vec<i64> = acked
            .iter()
            .filter(|(c, _)| c == "c3")
            .map(|(_, id)| *id)
            .collect();
        assert_eq!(repeats, [ids[3], ids[3]], "the repeat got the stored id");
        let mut seen = Vec::new();
        while seen.len() < N {
            let f = b.next().await;
            assert_eq!(f["type"], "message");
            seen.push(f["id"].as_i64().unwrap());
        }
        assert_eq!(seen, ids, "the other member got them all, in order");
    }

    #[tokio::test]
    async fn bad_frames_get_error_codes_and_the_socket_stays_open() {
        let h = harness().await;
        let ann = h.user("ann").await;
        let owner = h.user("olga").await;
        h.room("secret", RoomKind::Private, Some(&owner)).await;
        h.room("lobby", RoomKind::Public, None).await;
        let mut a = h.connect(&ann).await;
        for (frame, code) in [
            ("{nope", "bad_request"),
            (r#"{"type":"dance"}"#, "bad_request"),
            (r#"{"type":"join"}"#, "bad_request"),
            (r#"{"type":"join","room":"secret"}"#, "forbidden"),
            (r#"{"type":"join","room":"missing"}"#, "not_found"),
            (
                r#"{"type":"send","room":"secret","body":"x","client_id":"k1"}"#,
                "forbidden",
            ),
            (r#"{"type":"history","room":"secret"}"#, "forbidden"),
        ] {
            a.send(frame);
            let e = a.next().await;
            assert_eq!(e["type"], "error", "{frame}");
            assert_eq!(e["code"], code, "{frame}");
        }
        a.send(r#"{"type":"send","room":"secret","body":"x","client_id":"k9"}"#);
        assert_eq!(a.next().await["ref"], "k9");
        a.send(&format!(
            r#"{{"type":"send","room":"lobby","body":"{}","client_id":"big"}}"#,
            "x".repeat(5000)
        ));
        assert_eq!(a.next().await["code"], "too_large");
        a.send(r#"{"type":"join","room":"lobby"}"#);
        assert_eq!(a.next().await["type"], "joined", "still serving");
    }

    #[tokio::test]
    async fn read_only_members_cannot_send_and_senders_are_rate_limited() {
        let h = harness().await;
        let owner = h.user("olga").await;
        let ro = h.user("rita").await;
        let room = h.room("news", RoomKind::Private, Some(&owner)).await;
        let (rid, uid) = (room.id, ro.user.id);
        h.gateway
            .core
            .db
            .run(move |c| repo::room::add_member(c, rid, uid, RoomRole::ReadOnly))
            .await
            .expect("member");
        let mut r = h.connect(&ro).await;
        r.send(r#"{"type":"join","room":"news"}"#);
        assert_eq!(r.next().await["role"], "readonly");
        r.send(r#"{"type":"send","room":"news","body":"hi","client_id":"r1"}"#);
        assert_eq!(r.next().await["code"], "forbidden");
        let mut o = h.connect(&owner).await;
        let mut codes = Vec::new();
        for i in 0..6 {
            o.send(&format!(
                r#"{{"type":"send","room":"news","body":"m{i}","client_id":"o{i}"}}"#
            ));
            let f = o.next().await;
            codes.push(
                f["code"]
                    .as_str()
                    .unwrap_or(f["type"].as_str().unwrap_or(""))
                    .to_owned(),
            );
        }
        assert_eq!(&codes[..3], ["ack", "ack", "ack"]);
        assert!(codes[3..].iter().all(|c| c == "rate_limited"), "{codes:?}");
    }

    #[tokio::test]
    async fn oversize_frames_close_with_1009_after_an_error() {
        let h = harness().await;
        let ann = h.user("ann").await;
        let mut a = h.connect(&ann).await;
        a.to.send(Inbound::TooLarge).expect("alive");
        assert_eq!(a.next().await["code"], "too_large");
        assert_eq!(a.close_frame().await.code, close::TOO_BIG);
        a.task.await.expect("task ends cleanly");
        assert_eq!(h.gateway.connections(), 0);
    }

    #[tokio::test]
    async fn revocation_on_the_bus_closes_only_that_session_with_4001() {
        let h = harness().await;
        let ann = h.user("ann").await;
        let mut a = h.connect(&ann).await;
        h.bus
            .publish(
                Topic::User(ann.user.id),
                &Event::SessionsRevoked {
                    user_id: ann.user.id,
                    session_ids: vec![ann.session_id],
                    reason: "signed out".into(),
                },
            )
            .await
            .expect("publish");
        let closed = a.close_frame().await;
        assert_eq!(closed.code, close::SESSION_ENDED);
        assert!(closed.reason.contains("signed out"));
    }

    #[tokio::test]
    async fn sessions_revoked_without_a_bus_event_are_found_by_the_periodic_check() {
        let h = harness_with(GatewayConfig {
            revalidate_interval: Duration::from_millis(300),
            ..GatewayConfig::default()
        })
        .await;
        let ann = h.user("ann").await;
        let bob = h.user("bob").await;
        let mut a1 = h.connect(&ann).await;
        let mut a2 = h.connect(&ann).await;
        let mut b = h.connect(&bob).await;
        let carl = h.user("carl").await;
        let mut c1 = h.connect(&carl).await;
        // Revoked, or the account deactivated, in the database only, as while the bus was
        // down: no event comes.
        let (sid, carl_id) = (ann.session_id, carl.user.id);
        h.gateway
            .core
            .db
            .run(move |c| {
                repo::session::revoke(c, sid)?;
                repo::user::set_active(c, carl_id, false)
            })
            .await
            .expect("revoke");
        for a in [&mut a1, &mut a2, &mut c1] {
            let closed = tokio::time::timeout(Duration::from_secs(5), a.close_frame())
                .await
                .expect("closed within a few checks");
            assert_eq!(closed.code, close::SESSION_ENDED);
            assert_eq!(closed.reason, "session ended");
        }
        // Bob's session is live: after several more checks his socket still answers.
        tokio::time::sleep(Duration::from_millis(700)).await;
        b.send(r#"{"type":"presence","status":"away"}"#);
        b.send(r#"{"type":"bogus"}"#);
        loop {
            let f = b.next().await;
            if f["type"] == "error" {
                break;
            }
        }
        assert_eq!(h.gateway.connections(), 1);
    }

    #[tokio::test]
    async fn catch_up_is_paged_and_live_messages_follow_without_gaps_or_repeats() {
        let h = harness().await;
        let ann = h.user("ann").await;
        let lobby = h.room("lobby", RoomKind::Public, None).await;
        let (rid, uid) = (lobby.id, ann.user.id);
        let keys = h.gateway.core.keys.clone();
        let ids: Vec<i64> = h
            .gateway
            .core
            .db
            .run(move |c| {
                (0..250)
                    .map(|i| {
                        let new = repo::message::NewMessage {
                            room_id: rid,
                            author_id: Some(uid),
                            kind: MessageKind::Text,
                            body: format!("m{i}"),
                            client_id: None,
                        };
                        repo::message::post(c, &keys, &new, 4000).map(|p| p.message.id.0)
                    })
                    .collect()
            })
            .await
            .expect("messages");
        let mut a = h.connect(&ann).await;
        a.send(r#"{"type":"join","room":"lobby","since":0}"#);
        let first = a.next().await;
        assert_eq!(first["type"], "joined");
        assert_eq!(first["more"], true);
        let page1: Vec<i64> = first["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["id"].as_i64().expect("id"))
            .collect();
        assert_eq!(page1, ids[..200]);
        a.send(&format!(
            r#"{{"type":"join","room":"lobby","since":{}}}"#,
            ids[199]
        ));
        let second = a.next().await;
        assert_eq!(second["more"], false);
        assert_eq!(second["messages"].as_array().expect("messages").len(), 50);
        a.send(r#"{"type":"send","room":"lobby","body":"live","client_id":"l1"}"#);
        let ack = a.next().await;
        assert_eq!(ack["type"], "ack");
        let live = a.next().await;
        assert_eq!(live["id"], ack["id"]);
        assert!(live["id"].as_i64().expect("id") > ids[249]);
    }

    #[tokio::test]
    async fn typing_read_and_history_reach_the_right_sockets() {
        let h = harness().await;
        let ann = h.user("ann").await;
        let bob = h.user("bob").await;
        h.room("lobby", RoomKind::Public, None).await;
        let mut a1 = h.connect(&ann).await;
        let mut a2 = h.connect(&ann).await;
        let mut b = h.connect(&bob).await;
        for c in [&a1, &a2, &b] {
            c.send(r#"{"type":"join","room":"lobby"}"#);
        }
        for c in [&mut a1, &mut a2, &mut b] {
            assert_eq!(c.next().await["type"], "joined");
        }
        a1.send(r#"{"type":"typing","room":"lobby"}"#);
        let t = b.next().await;
        assert_eq!(t["type"], "typing");
        assert_eq!(t["user"]["username"], "ann");
        // Two sends plus one later: inside the harness's burst of three.
        let mut ids = Vec::new();
        for i in 0..2 {
            b.send(&format!(
                r#"{{"type":"send","room":"lobby","body":"b{i}","client_id":"b{i}"}}"#
            ));
            assert_eq!(b.next().await["type"], "ack");
            ids.push(b.next().await["id"].as_i64().expect("id"));
        }
        for c in [&mut a1, &mut a2] {
            for id in &ids {
                let m = c.next().await;
                assert_eq!(m["type"], "message", "ann's tabs never saw typing: {m}");
                assert_eq!(m["id"], *id);
            }
        }
        a1.send(&format!(
            r#"{{"type":"read","room":"lobby","id":{}}}"#,
            ids[1]
        ));
        let r = a2.next().await;
        assert_eq!(r["type"], "read");
        assert_eq!(r["id"], ids[1]);
        a1.send(&format!(
            r#"{{"type":"history","room":"lobby","before":{}}}"#,
            ids[1]
        ));
        // a1 also gets its own read notice first.
        assert_eq!(a1.next().await["type"], "read");
        let hist = a1.next().await;
        assert_eq!(hist["type"], "history");
        assert_eq!(hist["more"], false);
        let got: Vec<i64> = hist["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["id"].as_i64().expect("id"))
            .collect();
        assert_eq!(got, ids[..1]);
        a1.send(r#"{"type":"leave","room":"lobby"}"#);
        assert_eq!(a1.next().await["type"], "left");
        b.send(r#"{"type":"send","room":"lobby","body":"bye","client_id":"b9"}"#);
        assert_eq!(b.next().await["type"], "ack");
        assert_eq!(a2.next().await["body"], "bye");
        assert!(
            !h.gateway.core.hub.is_in(1, lobby_id(&h).await),
            "the first socket left the room"
        );
    }

    async fn lobby_id(h: &Harness) -> RoomId {
        h.gateway
            .core
            .db
            .run(|c| repo::room::find_by_slug(c, "lobby"))
            .await
            .expect("db")
            .expect("lobby")
            .id
    }

    #[tokio::test]
    async fn shutdown_closes_every_socket_with_1012() {
        let h = harness().await;
        let ann = h.user("ann").await;
        let mut a = h.connect(&ann).await;
        let mut b = h.connect(&ann).await;
        h.gateway.shutdown().await;
        assert_eq!(a.close_frame().await.code, close::RESTART);
        assert_eq!(b.close_frame().await.code, close::RESTART);
        assert_eq!(h.gateway.connections(), 0);
    }
}
