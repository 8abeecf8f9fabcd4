//! The hub: one per process, owns "room → local subscribers" and "user → local sockets".
//!
//! Guarantees:
//! - Every socket has a bounded outbound queue. Delivery never waits: a socket whose queue
//!   is full is disconnected (close 1008), so one slow reader cannot slow anyone else.
//! - Per room and socket, `message` frames go out in increasing id order, at most once and
//!   without gaps: they come from database pages or chained to their predecessor (see
//!   `fanout`), and a watermark drops anything not newer than what the socket already has.
//!   While a socket's `join` is being answered, other live events for the room are
//!   buffered (bounded) and flushed after the `joined` reply; its messages are then
//!   fetched from its watermark on.
//! - A [`Registration`]'s `Drop` removes the socket and releases its bus subscriptions, so
//!   no early return can leak a connection.
//! - At most `HubLimits::catchup_concurrency` catch-up reads (the history page of a
//!   `join`) run at once ([`Hub::catch_up_permit`]): when every client of a restarted
//!   gateway comes back together, the others wait their turn instead of taking every
//!   database connection. The peak is exported as `confab_ws_catchup_peak`.
//!
//! std `Mutex`, not tokio's: no critical section awaits.

use crate::{presence::Presence, roster::Roster};
use bytestring::ByteString;
use domain::{
    bus::{Event, PresenceStatus, SharedBus, Topic},
    ids::{MessageId, RoomId, SessionId, UserId},
};
use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Instant,
};
use tokio::sync::{Notify, Semaphore, SemaphorePermit, mpsc, watch};

/// Asks the fan-out to deliver a room's new messages from the database.
pub type Doorbell = mpsc::UnboundedSender<(RoomId, String)>;

pub type ConnId = u64;

/// WebSocket close codes the gateway uses.
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const RESTART: u16 = 1012;
    pub const TRY_AGAIN: u16 = 1013;
    /// The session behind the socket ended (revoked, signed out, deactivated).
    pub const SESSION_ENDED: u16 = 4001;
}

/// What a connection task writes to its socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    Text(ByteString),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(CloseFrame),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    pub code: u16,
    pub reason: String,
}

impl CloseFrame {
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        CloseFrame {
            code,
            reason: reason.into(),
        }
    }
}

/// A frame queued for a socket, with the message id it carries (for de-duplication).
#[derive(Debug, Clone)]
pub struct Queued {
    pub id: Option<MessageId>,
    pub text: ByteString,
}

#[derive(Debug)]
enum RoomSub {
    /// The `joined` reply is being prepared; live events other than messages wait in
    /// `buf` (messages are fetched from the database once the socket is live).
    Pending {
        slug: String,
        buf: VecDeque<ByteString>,
    },
    Live {
        slug: String,
        last: Option<MessageId>,
    },
}

impl RoomSub {
    fn slug(&self) -> &str {
        match self {
            RoomSub::Pending { slug, .. } | RoomSub::Live { slug, .. } => slug,
        }
    }
}

/// Who a socket belongs to.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub user_id: UserId,
    pub username: String,
    pub session_id: SessionId,
}

struct Conn {
    info: ConnInfo,
    tx: mpsc::Sender<Outbound>,
    kick: watch::Sender<Option<CloseFrame>>,
    rooms: HashMap<RoomId, RoomSub>,
    /// Frames kept back while this socket's own `send`s are being stored, so each `ack`
    /// reaches it before the message it acknowledges (see [`Hub::begin_send`]), with
    /// the id of the message a frame carries.
    held: Option<Vec<(Option<MessageId>, ByteString)>>,
    /// This socket's `send`s between [`Hub::begin_send`] and [`Hub::end_send`].
    sending: usize,
}

impl Conn {
    fn kick(&self, frame: CloseFrame) {
        self.kick.send_if_modified(|slot| {
            if slot.is_none() {
                *slot = Some(frame);
                true
            } else {
                false
            }
        });
    }

    /// Queues a frame without waiting; a full queue disconnects the socket.
    fn push(&mut self, text: ByteString) {
        self.push_message(None, text);
    }

    /// Queues a frame that carries message `id`.
    fn push_message(&mut self, id: Option<MessageId>, text: ByteString) {
        if let Some(held) = &mut self.held {
            held.push((id, text));
            return;
        }
        self.send_now(text);
    }

    /// Sends what was held back, in order, up to the first message newer than `upto`
    /// (everything when `upto` is `None`).
    fn flush_held(&mut self, upto: Option<MessageId>) {
        let Some(held) = &mut self.held else {
            return;
        };
        let cut = match upto {
            None => held.len(),
            Some(upto) => held
                .iter()
                .position(|(id, _)| id.is_some_and(|id| id > upto))
                .unwrap_or(held.len()),
        };
        let ready: Vec<ByteString> = held.drain(..cut).map(|(_, text)| text).collect();
        for text in ready {
            self.send_now(text);
        }
    }

    fn send_now(&self, text: ByteString) {
        match self.tx.try_send(Outbound::Text(text)) {
            Ok(()) => metrics::counter!("confab_ws_frames_out_total").increment(1),
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("confab_ws_slow_consumers_total").increment(1);
                tracing::info!(user_id = %self.info.user_id, "socket too slow; disconnecting");
                self.kick(CloseFrame::new(
                    close::POLICY,
                    "too slow: outbound queue full",
                ));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// A token bucket: `rate` per second, up to `burst`.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn new(rate: f64, burst: f64) -> Bucket {
        Bucket {
            rate,
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    pub fn take(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct UserEntry {
    conns: HashSet<ConnId>,
    sends: Bucket,
}

#[derive(Default)]
struct Inner {
    conns: HashMap<ConnId, Conn>,
    rooms: HashMap<RoomId, HashSet<ConnId>>,
    users: HashMap<UserId, UserEntry>,
    closing: Option<CloseFrame>,
}

/// Sizes and rates the hub enforces.
#[derive(Debug, Clone)]
pub struct HubLimits {
    pub outbound_queue: usize,
    pub pending_buffer: usize,
    pub user_sends_per_sec: f64,
    pub user_sends_burst: f64,
    /// Catch-up reads running at once (see [`Hub::catch_up_permit`]).
    pub catchup_concurrency: usize,
}

pub struct Hub {
    inner: Mutex<Inner>,
    next_id: AtomicU64,
    bus: SharedBus,
    presence: Arc<Presence>,
    roster: Arc<Roster>,
    limits: HubLimits,
    drained: Notify,
    doorbell: std::sync::OnceLock<Doorbell>,
    catch_ups: Semaphore,
    catch_ups_running: AtomicUsize,
    catch_ups_peak: AtomicUsize,
}

/// One catch-up read in progress; dropping it lets the next one start.
pub struct CatchUpPermit<'a> {
    hub: &'a Hub,
    _permit: Option<SemaphorePermit<'a>>,
}

impl Drop for CatchUpPermit<'_> {
    fn drop(&mut self) {
        let now = self.hub.catch_ups_running.fetch_sub(1, Ordering::SeqCst) - 1;
        metrics::gauge!("confab_ws_catchup_running").set(now as f64);
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("connections", &self.connections())
            .finish()
    }
}

/// The parts of a newly registered socket its task needs.
pub struct Attached {
    pub registration: Registration,
    pub id: ConnId,
    pub outbound: mpsc::Receiver<Outbound>,
    /// A sender to the same queue, for the socket's own replies.
    pub tx: mpsc::Sender<Outbound>,
    pub kicked: watch::Receiver<Option<CloseFrame>>,
    /// This is the user's first socket on this gateway.
    pub first_for_user: bool,
}

/// Removes its socket from the hub when dropped.
pub struct Registration {
    hub: Arc<Hub>,
    id: ConnId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(self.id);
    }
}

impl Hub {
    pub fn new(bus: SharedBus, presence: Arc<Presence>, limits: HubLimits) -> Hub {
        Hub {
            inner: Mutex::new(Inner::default()),
            next_id: AtomicU64::new(1),
            bus,
            presence,
            roster: Arc::new(Roster::new()),
            catch_ups: Semaphore::new(limits.catchup_concurrency.max(1)),
            limits,
            drained: Notify::new(),
            doorbell: std::sync::OnceLock::new(),
            catch_ups_running: AtomicUsize::new(0),
            catch_ups_peak: AtomicUsize::new(0),
        }
    }

    /// Waits for a turn to read a `join` page from the database; hold the permit for the
    /// read only (not across bus calls), so waiting sockets get the database in turn.
    pub async fn catch_up_permit(&self) -> CatchUpPermit<'_> {
        metrics::gauge!("confab_ws_catchup_limit").set(self.limits.catchup_concurrency as f64);
        // Never closed; were it, running unbounded beats refusing every join.
        let permit = self.catch_ups.acquire().await.ok();
        let now = self.catch_ups_running.fetch_add(1, Ordering::SeqCst) + 1;
        self.catch_ups_peak.fetch_max(now, Ordering::SeqCst);
        metrics::counter!("confab_ws_catchup_reads_total").increment(1);
        metrics::gauge!("confab_ws_catchup_running").set(now as f64);
        // Loaded again rather than computed: racing setters then leave the true maximum.
        metrics::gauge!("confab_ws_catchup_peak").set(self.catch_up_peak() as f64);
        CatchUpPermit {
            hub: self,
            _permit: permit,
        }
    }

    /// The most catch-up reads that ever ran at once on this gateway.
    pub fn catch_up_peak(&self) -> usize {
        self.catch_ups_peak.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn bus(&self) -> &SharedBus {
        &self.bus
    }

    /// The presence store this hub's sockets are counted in.
    pub fn presence(&self) -> &Arc<Presence> {
        &self.presence
    }

    /// Presence as this gateway's sockets see it (the `hello` snapshot, coalesced frames).
    pub fn roster(&self) -> &Arc<Roster> {
        &self.roster
    }

    pub fn connections(&self) -> usize {
        self.lock().conns.len()
    }

    /// Registers a socket. `None` while the gateway is shutting down.
    pub fn register(self: &Arc<Self>, info: ConnInfo) -> Option<Attached> {
        let (tx, outbound) = mpsc::channel(self.limits.outbound_queue.max(4));
        let (kick, kicked) = watch::channel(None);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        if inner.closing.is_some() {
            return None;
        }
        let user = inner
            .users
            .entry(info.user_id)
            .or_insert_with(|| UserEntry {
                conns: HashSet::new(),
                sends: Bucket::new(self.limits.user_sends_per_sec, self.limits.user_sends_burst),
            });
        user.conns.insert(id);
        let first_for_user = user.conns.len() == 1;
        self.presence.attach(id, info.user_id);
        self.roster.learn(info.user_id, &info.username);
        inner.conns.insert(
            id,
            Conn {
                info,
                tx: tx.clone(),
                kick,
                rooms: HashMap::new(),
                held: None,
                sending: 0,
            },
        );
        metrics::gauge!("confab_ws_connections").set(inner.conns.len() as f64);
        Some(Attached {
            registration: Registration {
                hub: self.clone(),
                id,
            },
            id,
            outbound,
            tx,
            kicked,
            first_for_user,
        })
    }

    fn unregister(self: &Arc<Self>, id: ConnId) {
        let (removed, rooms) = {
            let mut inner = self.lock();
            let Some(conn) = inner.conns.remove(&id) else {
                return;
            };
            let rooms: Vec<RoomId> = conn.rooms.keys().copied().collect();
            for room in &rooms {
                if let Some(set) = inner.rooms.get_mut(room) {
                    set.remove(&id);
                    if set.is_empty() {
                        inner.rooms.remove(room);
                    }
                }
            }
            if let Some(user) = inner.users.get_mut(&conn.info.user_id) {
                user.conns.remove(&id);
                if user.conns.is_empty() {
                    inner.users.remove(&conn.info.user_id);
                }
            }
            self.presence.detach(id, conn.info.user_id);
            metrics::gauge!("confab_ws_connections").set(inner.conns.len() as f64);
            if inner.conns.is_empty() {
                self.drained.notify_waiters();
            }
            (conn.info, rooms)
        };
        // Releasing bus subscriptions and presence awaits; the socket is already gone
        // from every map, so nothing more is delivered to it meanwhile.
        let hub = self.clone();
        let cleanup = async move {
            for room in rooms {
                let _ = hub.bus.unsubscribe(Topic::Room(room)).await;
            }
            let _ = hub.bus.unsubscribe(Topic::User(removed.user_id)).await;
            // Any socket closing can change the user's status: the last one here (maybe
            // offline), or the last active one (away).
            hub.presence
                .sync(removed.user_id, |status| {
                    hub.publish_presence(&removed, status)
                })
                .await;
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(cleanup);
        }
    }

    pub fn has_user(&self, user: UserId) -> bool {
        self.lock().users.contains_key(&user)
    }

    pub fn local_users(&self) -> Vec<UserId> {
        self.lock().users.keys().copied().collect()
    }

    pub async fn publish_presence(&self, info: &ConnInfo, status: PresenceStatus) {
        let event = Event::Presence {
            user_id: info.user_id,
            username: info.username.clone(),
            status,
        };
        if let Err(e) = self.bus.publish(Topic::Presence, &event).await {
            tracing::warn!(error = %e, "could not publish presence");
        }
    }

    /// Takes one token from the user's send bucket (shared by their sockets here).
    pub fn take_user_send(&self, user: UserId) -> bool {
        self.lock()
            .users
            .get_mut(&user)
            .is_some_and(|u| u.sends.take())
    }

    /// Connects the hub to the fan-out's message pump (once).
    pub fn set_doorbell(&self, doorbell: Doorbell) {
        let _ = self.doorbell.set(doorbell);
    }

    /// Asks for the room's messages newer than what its sockets have.
    pub fn ring(&self, room: RoomId, slug: &str) {
        if let Some(bell) = self.doorbell.get() {
            let _ = bell.send((room, slug.to_owned()));
        }
    }

    /// Every room some local socket follows, with its slug.
    pub fn rooms(&self) -> Vec<(RoomId, String)> {
        let inner = self.lock();
        inner
            .rooms
            .iter()
            .filter_map(|(room, set)| {
                let cid = set.iter().next()?;
                let slug = inner.conns.get(cid)?.rooms.get(room)?.slug().to_owned();
                Some((*room, slug))
            })
            .collect()
    }

    /// Starts following a room: live events wait until [`Hub::finish_join`].
    /// Returns true when the socket was not in the room yet (subscribe the topic then).
    pub fn begin_join(&self, id: ConnId, room: RoomId, slug: &str) -> bool {
        let mut inner = self.lock();
        let Some(conn) = inner.conns.get_mut(&id) else {
            return false;
        };
        let fresh = !conn.rooms.contains_key(&room);
        conn.rooms.insert(
            room,
            RoomSub::Pending {
                slug: slug.to_owned(),
                buf: VecDeque::new(),
            },
        );
        inner.rooms.entry(room).or_default().insert(id);
        fresh
    }

    /// Stops following a room; true if the socket was in it (unsubscribe the topic then).
    pub fn leave(&self, id: ConnId, room: RoomId) -> bool {
        let mut inner = self.lock();
        let was = inner
            .conns
            .get_mut(&id)
            .is_some_and(|c| c.rooms.remove(&room).is_some());
        if was && let Some(set) = inner.rooms.get_mut(&room) {
            set.remove(&id);
            if set.is_empty() {
                inner.rooms.remove(&room);
            }
        }
        was
    }

    pub fn is_in(&self, id: ConnId, room: RoomId) -> bool {
        self.lock()
            .conns
            .get(&id)
            .is_some_and(|c| c.rooms.contains_key(&room))
    }

    /// Sends the `joined` reply (whose messages run up to `upto`). When `complete`, the
    /// buffered live events follow, the room goes live for the socket with `upto` as its
    /// watermark, and the fan-out is asked for anything newer.
    pub fn finish_join(
        &self,
        id: ConnId,
        room: RoomId,
        joined: ByteString,
        upto: Option<MessageId>,
        complete: bool,
    ) {
        let mut inner = self.lock();
        let Some(conn) = inner.conns.get_mut(&id) else {
            return;
        };
        let Some(RoomSub::Pending { slug, buf }) = conn.rooms.get_mut(&room) else {
            return;
        };
        let slug = slug.clone();
        if !complete {
            drop(inner);
            return self.push_to(id, joined);
        }
        let buffered: Vec<ByteString> = buf.drain(..).collect();
        conn.rooms.insert(
            room,
            RoomSub::Live {
                slug: slug.clone(),
                last: upto,
            },
        );
        conn.push(joined);
        for text in buffered {
            conn.push(text);
        }
        drop(inner);
        self.ring(room, &slug);
    }

    fn push_to(&self, id: ConnId, text: ByteString) {
        if let Some(conn) = self.lock().conns.get_mut(&id) {
            conn.push(text);
        }
    }

    /// A `send` of socket `id` is on its way to the writer. Until its `ack`, frames for
    /// the socket are kept back: the room's pump (rung by anything) may read the new row
    /// before the `ack` is queued, and the protocol promises the sender the `ack` first.
    /// Several sends may be in flight; each [`ack`](Hub::ack) releases what it allows.
    pub fn begin_send(&self, id: ConnId) {
        if let Some(conn) = self.lock().conns.get_mut(&id) {
            conn.sending += 1;
            conn.held.get_or_insert_with(Vec::new);
        }
    }

    /// Queues the `ack` of message `acked` (called once it is committed), then what was
    /// kept back up to it: a held message newer than `acked` may be another send's of
    /// this socket whose `ack` has not come yet, so it and what follows it wait.
    pub fn ack(&self, id: ConnId, acked: MessageId, text: ByteString) {
        if let Some(conn) = self.lock().conns.get_mut(&id) {
            conn.send_now(text);
            conn.flush_held(Some(acked));
        }
    }

    /// A send is answered: `reply` (an `ack` not given by [`ack`](Hub::ack), e.g. for a
    /// repeated `client_id`) is queued, and with the socket's last send, everything held.
    pub fn end_send(&self, id: ConnId, reply: Option<ByteString>) {
        let mut inner = self.lock();
        let Some(conn) = inner.conns.get_mut(&id) else {
            return;
        };
        if let Some(text) = reply {
            conn.send_now(text);
        }
        conn.sending = conn.sending.saturating_sub(1);
        if conn.sending == 0 {
            conn.flush_held(None);
            conn.held = None;
        }
    }

    /// The oldest watermark among the sockets following `room` live: messages after it
    /// may still be owed to someone. `None` when no socket follows it live.
    pub fn room_floor(&self, room: RoomId) -> Option<Option<MessageId>> {
        let inner = self.lock();
        let mut floor: Option<Option<MessageId>> = None;
        for cid in inner.rooms.get(&room)? {
            if let Some(RoomSub::Live { last, .. }) =
                inner.conns.get(cid).and_then(|c| c.rooms.get(&room))
            {
                floor = Some(match floor {
                    None => *last,
                    Some(f) => f.min(*last),
                });
            }
        }
        floor
    }

    /// Delivers a page of messages (oldest first, read from the database) to every socket
    /// following the room live, each getting only what is newer than its watermark. One
    /// lock for the whole page, so concurrent pages cannot interleave.
    pub fn deliver_page(&self, room: RoomId, page: &[Queued]) {
        let mut inner = self.lock();
        let Inner { conns, rooms, .. } = &mut *inner;
        let Some(set) = rooms.get(&room) else {
            return;
        };
        for cid in set {
            let Some(conn) = conns.get_mut(cid) else {
                continue;
            };
            let Some(RoomSub::Live { last, .. }) = conn.rooms.get_mut(&room) else {
                continue;
            };
            let mut wm = *last;
            let mut out = Vec::new();
            for q in page {
                if newer(q.id, wm) {
                    wm = q.id.or(wm);
                    out.push(q);
                }
            }
            *last = wm;
            for q in out {
                conn.push_message(q.id, q.text.clone());
            }
        }
    }

    /// Delivers one message that came with its room predecessor `prev` (see
    /// `Event::Message::prev`) to every socket following the room live whose watermark
    /// is at least `prev` and below the message: such a socket holds everything before
    /// it. Returns false when some socket is behind `prev` (a message it lacks is still
    /// on its way, or was lost): the caller then reads the room from the database.
    pub fn deliver_chained(&self, room: RoomId, prev: MessageId, q: &Queued) -> bool {
        let Some(id) = q.id else {
            return false;
        };
        let mut inner = self.lock();
        let Inner { conns, rooms, .. } = &mut *inner;
        let Some(set) = rooms.get(&room) else {
            return true;
        };
        let mut complete = true;
        for cid in set {
            let Some(conn) = conns.get_mut(cid) else {
                continue;
            };
            let Some(RoomSub::Live { last, .. }) = conn.rooms.get_mut(&room) else {
                continue;
            };
            let wm = last.map_or(0, |m| m.0);
            if wm >= id.0 {
                continue;
            }
            if wm < prev.0 {
                complete = false;
                continue;
            }
            *last = Some(id);
            conn.push_message(Some(id), q.text.clone());
        }
        complete
    }

    /// Sends a room event that is not a message (typing, edits, membership) to every
    /// local socket following the room; `skip` names a username that does not get it.
    pub fn deliver_room(&self, room: RoomId, text: &ByteString, skip: Option<&str>) {
        let mut inner = self.lock();
        let Inner { conns, rooms, .. } = &mut *inner;
        let Some(set) = rooms.get(&room) else {
            return;
        };
        let cap = self.limits.pending_buffer;
        for cid in set {
            let Some(conn) = conns.get_mut(cid) else {
                continue;
            };
            if skip.is_some_and(|s| s == conn.info.username) {
                continue;
            }
            match conn.rooms.get_mut(&room) {
                Some(RoomSub::Pending { buf, .. }) => {
                    if buf.len() >= cap {
                        conn.kick(CloseFrame::new(
                            close::TRY_AGAIN,
                            "too far behind; reconnect and join with since",
                        ));
                    } else {
                        buf.push_back(text.clone());
                    }
                }
                Some(RoomSub::Live { .. }) => conn.push(text.clone()),
                None => {}
            }
        }
    }

    /// Sends a frame to every local socket of a user.
    pub fn deliver_user(&self, user: UserId, text: &ByteString) {
        let mut inner = self.lock();
        let Inner { users, conns, .. } = &mut *inner;
        if let Some(entry) = users.get(&user) {
            for cid in &entry.conns {
                if let Some(conn) = conns.get_mut(cid) {
                    conn.push(text.clone());
                }
            }
        }
    }

    /// Sends a frame to every local socket.
    pub fn deliver_all(&self, text: &ByteString) {
        for conn in self.lock().conns.values_mut() {
            conn.push(text.clone());
        }
    }

    /// Closes every socket of a user (deactivation).
    pub fn kick_user(&self, user: UserId, frame: CloseFrame) -> usize {
        self.kick_where(|c| c.info.user_id == user, frame)
    }

    /// Closes the sockets opened with these sessions.
    pub fn kick_sessions(&self, user: UserId, sessions: &[SessionId], frame: CloseFrame) -> usize {
        self.kick_where(
            |c| c.info.user_id == user && sessions.contains(&c.info.session_id),
            frame,
        )
    }

    /// The sessions behind this gateway's sockets, each once.
    pub fn session_ids(&self) -> Vec<SessionId> {
        let inner = self.lock();
        let mut ids: Vec<SessionId> = inner.conns.values().map(|c| c.info.session_id).collect();
        ids.sort_unstable_by_key(|id| id.0);
        ids.dedup();
        ids
    }

    /// Closes every socket whose session is one of `sessions`.
    pub fn kick_any_session(
        &self,
        sessions: &std::collections::HashSet<SessionId>,
        frame: CloseFrame,
    ) -> usize {
        self.kick_where(|c| sessions.contains(&c.info.session_id), frame)
    }

    /// Closes one socket.
    pub fn kick(&self, id: ConnId, frame: CloseFrame) {
        if let Some(conn) = self.lock().conns.get(&id) {
            conn.kick(frame);
        }
    }

    fn kick_where(&self, pred: impl Fn(&Conn) -> bool, frame: CloseFrame) -> usize {
        let inner = self.lock();
        let mut n = 0;
        for conn in inner.conns.values().filter(|c| pred(c)) {
            conn.kick(frame.clone());
            n += 1;
        }
        n
    }

    /// Refuses new sockets and closes every open one with `frame`.
    pub fn close_all(&self, frame: CloseFrame) {
        let mut inner = self.lock();
        inner.closing = Some(frame.clone());
        for conn in inner.conns.values() {
            conn.kick(frame.clone());
        }
    }

    pub fn is_closing(&self) -> bool {
        self.lock().closing.is_some()
    }

    /// Waits until no socket is left.
    pub async fn drained(&self) {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.connections() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// The slug a socket follows a room under, if it does.
    pub fn slug_of(&self, id: ConnId, room: RoomId) -> Option<String> {
        self.lock()
            .conns
            .get(&id)
            .and_then(|c| c.rooms.get(&room))
            .map(|s| s.slug().to_owned())
    }
}

/// Whether a frame with `id` should go to a socket that has seen up to `last`. Frames
/// without an id always go.
fn newer(id: Option<MessageId>, last: Option<MessageId>) -> bool {
    match (id, last) {
        (Some(id), Some(last)) => id > last,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::bus::memory::MemoryBus;

    fn hub(queue: usize) -> Arc<Hub> {
        Arc::new(Hub::new(
            Arc::new(MemoryBus::new()),
            Arc::new(Presence::local()),
            HubLimits {
                outbound_queue: queue,
                pending_buffer: 4,
                user_sends_per_sec: 1.0,
                user_sends_burst: 2.0,
                catchup_concurrency: 2,
            },
        ))
    }

    fn info(user: i64) -> ConnInfo {
        ConnInfo {
            user_id: UserId(user),
            username: format!("u{user}"),
            session_id: SessionId(user),
        }
    }

    fn text(rx: &mut mpsc::Receiver<Outbound>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(Outbound::Text(t)) = rx.try_recv() {
            out.push(t.to_string());
        }
        out
    }

    fn q(id: i64) -> Queued {
        Queued {
            id: Some(MessageId(id)),
            text: format!("m{id}").into(),
        }
    }

    #[tokio::test]
    async fn join_buffers_live_events_and_rings_for_newer_messages() {
        let hub = hub(16);
        let (bell, mut rung) = mpsc::unbounded_channel();
        hub.set_doorbell(bell);
        let mut a = hub.register(info(1)).expect("open");
        let room = RoomId(1);
        assert!(hub.begin_join(a.id, room, "r"));
        // Live events arrive while the database page is being read.
        hub.deliver_room(room, &"edited".into(), None);
        hub.deliver_page(room, &[q(4)]);
        assert_eq!(hub.room_floor(room), None, "nobody follows it live yet");
        hub.finish_join(a.id, room, "joined".into(), Some(MessageId(3)), true);
        assert_eq!(text(&mut a.outbound), ["joined", "edited"]);
        assert_eq!(rung.try_recv().expect("rang"), (room, "r".to_owned()));
        assert_eq!(hub.room_floor(room), Some(Some(MessageId(3))));
        // The pump then delivers what is newer, once, in order.
        hub.deliver_page(room, &[q(3), q(4), q(5)]);
        hub.deliver_page(room, &[q(4), q(5)]);
        hub.deliver_room(room, &"typing".into(), Some("u1"));
        assert_eq!(text(&mut a.outbound), ["m4", "m5"]);
    }

    #[tokio::test]
    async fn a_sending_socket_gets_each_ack_before_the_message_it_acknowledges() {
        let hub = hub(16);
        let mut a = hub.register(info(1)).expect("open");
        let mut b = hub.register(info(2)).expect("open");
        let room = RoomId(1);
        for c in [&a, &b] {
            hub.begin_join(c.id, room, "r");
            hub.finish_join(c.id, room, "joined".into(), None, true);
        }
        text(&mut a.outbound);
        text(&mut b.outbound);
        // Two of A's sends are in flight (1 and 3); the pump, rung by something else,
        // reads rows 1, 2 (B's) and 3 before either ack is queued.
        hub.begin_send(a.id);
        hub.begin_send(a.id);
        hub.deliver_page(room, &[q(1), q(2)]);
        hub.deliver_room(room, &"typing".into(), Some("u2"));
        hub.deliver_chained(room, MessageId(2), &q(3));
        assert!(text(&mut a.outbound).is_empty(), "held back");
        assert_eq!(
            text(&mut b.outbound),
            ["m1", "m2", "m3"],
            "others are not held"
        );
        // An ack releases what was held up to the first message newer than its own (the
        // hub cannot tell B's 2 from another send of A's), in order.
        hub.ack(a.id, MessageId(1), "ack1".into());
        assert_eq!(text(&mut a.outbound), ["ack1", "m1"]);
        hub.ack(a.id, MessageId(3), "ack3".into());
        assert_eq!(text(&mut a.outbound), ["ack3", "m2", "typing", "m3"]);
        hub.end_send(a.id, None);
        hub.deliver_page(room, &[q(4)]);
        assert!(text(&mut a.outbound).is_empty(), "one send still open");
        hub.end_send(a.id, None);
        assert_eq!(text(&mut a.outbound), ["m4"]);
        // Live again; a refused or repeated send ends with its own reply, then the rest.
        hub.begin_send(a.id);
        hub.deliver_page(room, &[q(5)]);
        hub.end_send(a.id, Some("again".into()));
        assert_eq!(text(&mut a.outbound), ["again", "m5"]);
        hub.deliver_page(room, &[q(6)]);
        assert_eq!(text(&mut a.outbound), ["m6"]);
    }

    #[tokio::test]
    async fn a_chained_message_goes_only_to_sockets_that_hold_its_predecessor() {
        let hub = hub(16);
        let mut a = hub.register(info(1)).expect("open");
        let mut b = hub.register(info(2)).expect("open");
        let room = RoomId(1);
        for (c, upto) in [(&a, 5), (&b, 3)] {
            hub.begin_join(c.id, room, "r");
            hub.finish_join(c.id, room, "joined".into(), Some(MessageId(upto)), true);
        }
        text(&mut a.outbound);
        text(&mut b.outbound);
        // 7 follows 5: A has 5, B lacks 4 and 5, so the room must be read for B.
        assert!(!hub.deliver_chained(room, MessageId(5), &q(7)));
        assert_eq!(text(&mut a.outbound), ["m7"]);
        assert!(text(&mut b.outbound).is_empty());
        // The pump's page then gives B everything once, and A nothing twice.
        hub.deliver_page(room, &[q(4), q(5), q(7)]);
        assert_eq!(text(&mut b.outbound), ["m4", "m5", "m7"]);
        assert!(text(&mut a.outbound).is_empty());
        // Both hold 7 now: 8 goes to both; a repeat of 8 goes to nobody.
        assert!(hub.deliver_chained(room, MessageId(7), &q(8)));
        assert!(hub.deliver_chained(room, MessageId(7), &q(8)));
        assert_eq!(text(&mut a.outbound), ["m8"]);
        assert_eq!(text(&mut b.outbound), ["m8"]);
        // The first message of a room follows 0.
        let other = RoomId(2);
        hub.begin_join(a.id, other, "o");
        hub.finish_join(a.id, other, "joined".into(), None, true);
        text(&mut a.outbound);
        assert!(hub.deliver_chained(other, MessageId(0), &q(9)));
        assert_eq!(text(&mut a.outbound), ["m9"]);
    }

    #[tokio::test]
    async fn the_floor_is_the_oldest_live_watermark() {
        let hub = hub(16);
        let a = hub.register(info(1)).expect("open");
        let b = hub.register(info(2)).expect("open");
        let room = RoomId(1);
        for (c, upto) in [(&a, 7), (&b, 4)] {
            hub.begin_join(c.id, room, "r");
            hub.finish_join(c.id, room, "joined".into(), Some(MessageId(upto)), true);
        }
        assert_eq!(hub.room_floor(room), Some(Some(MessageId(4))));
        hub.deliver_page(room, &[q(5), q(6), q(7), q(8)]);
        assert_eq!(hub.room_floor(room), Some(Some(MessageId(8))));
        assert_eq!(hub.rooms(), vec![(room, "r".to_owned())]);
    }

    #[tokio::test]
    async fn a_full_queue_kicks_only_that_socket() {
        let hub = hub(4);
        let mut slow = hub.register(info(1)).expect("open");
        let mut fast = hub.register(info(2)).expect("open");
        let room = RoomId(1);
        for c in [&slow, &fast] {
            hub.begin_join(c.id, room, "r");
            hub.finish_join(c.id, room, "joined".into(), None, true);
        }
        text(&mut fast.outbound);
        for i in 1..=10 {
            hub.deliver_page(room, &[q(i)]);
            text(&mut fast.outbound);
        }
        assert_eq!(
            slow.kicked.borrow().as_ref().map(|f| f.code),
            Some(close::POLICY)
        );
        assert!(fast.kicked.borrow().is_none());
        assert_eq!(
            text(&mut slow.outbound).len(),
            4,
            "joined and three messages"
        );
    }

    #[tokio::test]
    async fn dropping_the_registration_removes_the_socket() {
        let hub = hub(4);
        let a = hub.register(info(1)).expect("open");
        hub.begin_join(a.id, RoomId(1), "r");
        assert_eq!(hub.connections(), 1);
        drop(a);
        assert_eq!(hub.connections(), 0);
        assert!(!hub.has_user(UserId(1)));
        hub.close_all(CloseFrame::new(close::RESTART, "bye"));
        assert!(
            hub.register(info(1)).is_none(),
            "closed hubs refuse sockets"
        );
        hub.drained().await;
    }

    #[tokio::test]
    async fn revocation_kicks_only_the_named_sessions() {
        let hub = hub(4);
        let a = hub.register(info(1)).expect("open");
        let b = hub
            .register(ConnInfo {
                session_id: SessionId(99),
                ..info(1)
            })
            .expect("open");
        let frame = CloseFrame::new(close::SESSION_ENDED, "revoked");
        assert_eq!(hub.kick_sessions(UserId(1), &[SessionId(99)], frame), 1);
        assert!(a.kicked.borrow().is_none());
        assert!(b.kicked.borrow().is_some());
    }

    #[tokio::test]
    async fn catch_up_reads_wait_their_turn_beyond_the_bound() {
        let hub = hub(4);
        let first = hub.catch_up_permit().await;
        let _second = hub.catch_up_permit().await;
        let third =
            tokio::time::timeout(std::time::Duration::from_millis(50), hub.catch_up_permit()).await;
        assert!(third.is_err(), "a third read waits while two run");
        drop(first);
        let _third = tokio::time::timeout(std::time::Duration::from_secs(1), hub.catch_up_permit())
            .await
            .expect("its turn comes when one ends");
        assert_eq!(hub.catch_up_peak(), 2);
    }

    #[test]
    fn buckets_refill_at_their_rate() {
        let mut b = Bucket::new(1000.0, 2.0);
        assert!(b.take());
        assert!(b.take());
        assert!(!b.take());
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(b.take());
    }
}
