//! The group-commit message writer: many posts, one transaction.
//!
//! Callers [`post`](MessageWriter::post) a message and await their own answer, or
//! [`enqueue`](MessageWriter::enqueue) it and await the answer later (a socket with
//! several sends in flight). One dedicated thread, holding one pooled connection for its
//! life, takes whatever is queued (up to [`BATCH_CAP`]; it never waits on purpose: when
//! one post is queued, a batch of one is written at once), writes the batch in **one**
//! transaction, commits, runs the posts' commit hooks in id order, and answers every
//! caller with its own result.
//!
//! Per batch, whatever its size: one statement locks its rooms and reads them, one reads
//! the authors' memberships in them and one their names ([`BatchView`], so the usual
//! guard needs no query of its own), one the rooms' newest ids (each created message's
//! [`Posted::prev`]), and the inserts: on PostgreSQL one multi-row
//! `INSERT … ON CONFLICT DO NOTHING RETURNING`, on SQLite one cached statement per row
//! (the unique `(author, client_id)` index finds repeated posts: a repeat costs a lookup
//! only when it is one). Per message: its mentions, if it names anyone.
//!
//! Guarantees, the same as [`repo::message::post`]:
//! - A message that fails (validation, its guard, a missing room, a constraint) fails
//!   alone. Refusals decided before a message writes anything are answered directly; any
//!   failed statement makes the writer roll the batch back and write it again with a
//!   savepoint per message (diesel's nested transactions), so only that message's
//!   savepoint is rolled back and the rest of the batch is committed.
//! - Idempotent by `(author, client_id)`, also within one batch: the second post sees the
//!   first's row and both callers get the same id (`created` only for the first).
//! - Per room, id order is commit order: every room of the batch is locked (PostgreSQL:
//!   `FOR UPDATE`, in id order, so two writers never deadlock; SQLite: `BEGIN IMMEDIATE`
//!   is the single writer lock) before the first insert and held until the commit.
//! - A guard (e.g. "may this user post here") runs inside the message's transaction, after
//!   the room lock, so it reads everything committed before the message: a member removed
//!   by a committed transaction cannot post afterwards.
//! - An answer means committed: callers are answered only after the commit returned. If
//!   the commit itself fails, every caller of the batch gets the error.
//!
//! Validation and encryption run on the caller's side ([`repo::message::prepare`]), so
//! the writer thread does only database I/O.
//!
//! On SQLite the writer's connection does not checkpoint the WAL (SQLite's default makes
//! the commit that crosses 1,000 pages copy the WAL into the database and fsync it: a
//! send waited 3 ms for that a few times a minute at light load). A second thread,
//! the checkpointer, runs a PASSIVE checkpoint (it never blocks the writer) once
//! [`CHECKPOINTS`]`.messages` wait in the WAL, or once the first of them has waited
//! [`CHECKPOINTS`]`.within`. Not more often: the first commit after a complete checkpoint
//! starts the WAL over and must fsync its header while holding the write lock (SQLite
//! ticket ff5be73dee), so every checkpoint costs one send a device flush: a few hundred
//! microseconds, hundreds of milliseconds when the disk is busy. Checkpointing every
//! second put that on one message per second at light load (5 % of them at 20/s).
//! (Truncating the WAL at that restart, `journal_size_limit = 0`, was tried and
//! dropped: where the file system discards freed blocks the writer then waited
//! 36–90 ms on the discard.)

use crate::{
    DomainError, Result,
    crypto::{MessageKeys, Sealed},
    db::{Backend, Db, DbConn, PooledConn, SQLITE_AUTOCHECKPOINT, write_tx},
    ids::{MessageId, RoomId, UserId},
    model::{Author, Room, RoomRole, User},
    permissions::{self, Action},
    repo::{
        self,
        message::{NewMessage, Posted},
    },
};
use diesel::{Connection as _, connection::SimpleConnection as _};
use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::RecvTimeoutError,
    },
    time::{Duration, Instant},
};
use tokio::sync::{mpsc, oneshot};

/// Most messages in one transaction. Large enough to amortise the commit (an fsync on
/// SQLite's WAL, a round trip on PostgreSQL), small enough that one batch holds the
/// write lock for milliseconds.
pub const BATCH_CAP: usize = 256;
/// Posts queued before callers wait for room: back-pressure instead of unbounded memory.
const QUEUE: usize = 8 * BATCH_CAP;
/// When the checkpointer copies the writer's SQLite WAL into the database.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoints {
    /// How often it looks at what the writer committed.
    pub every: Duration,
    /// A checkpoint once this many messages were committed since the last one…
    pub messages: u64,
    /// …or once the first of them was seen this long ago.
    pub within: Duration,
}

/// At one message per transaction a message adds about 6 pages to the WAL: 200 keep it
/// well under the pages at which another connection's commit would checkpoint
/// (`db::SQLITE_AUTOCHECKPOINT`). Under load that is reached every look, as before; at
/// light load (20 messages/s) it means a checkpoint, and a WAL restart, every 10 s, not
/// every second. `within` bounds how long a trickle of messages stays only in the WAL.
pub const CHECKPOINTS: Checkpoints = Checkpoints {
    every: Duration::from_secs(1),
    messages: 200,
    within: Duration::from_secs(10),
};

/// A check run inside the message's transaction, after its room is locked and before the
/// insert. Returning an error refuses that message only. It may run twice (when its batch
/// is written again with savepoints), so it must only read. The [`BatchView`] holds what
/// the writer read for the whole batch after its locks, so the usual check needs no query.
pub type Guard = Box<dyn Fn(&mut DbConn, &BatchView) -> Result<()> + Send>;

/// Read once per batch, after the batch's rooms are locked (so as fresh as a read of
/// each guard's own): the batch's rooms and its authors' memberships in them.
#[derive(Debug, Default)]
pub struct BatchView {
    rooms: HashMap<RoomId, Room>,
    roles: HashMap<(RoomId, UserId), RoomRole>,
    authors: HashSet<UserId>,
}

impl BatchView {
    /// A room of the batch (`None`: not in the batch, or it does not exist).
    pub fn room(&self, id: RoomId) -> Option<&Room> {
        self.rooms.get(&id)
    }

    /// An author's role in a room of the batch: `Some(None)` when not a member; `None`
    /// when the pair was not read (not the batch's).
    pub fn role(&self, room: RoomId, user: UserId) -> Option<Option<RoomRole>> {
        (self.rooms.contains_key(&room) && self.authors.contains(&user))
            .then(|| self.roles.get(&(room, user)).copied())
    }
}

/// The checks of a `send`: the room exists, `user` may post in it
/// ([`permissions::decide`], as [`permissions::can`] would), and for a direct chat, nobody
/// in it blocks them. Shared by the gateway and the persistence benchmark.
pub fn may_post(user: User, room_id: RoomId) -> Guard {
    Box::new(move |c, view| {
        let read;
        let room = match view.room(room_id) {
            Some(room) => room,
            None => {
                read = repo::room::find(c, room_id)?;
                &read
            }
        };
        let role = match view.role(room_id, user.id) {
            Some(role) => role,
            None => repo::room::membership(c, room_id, user.id)?.map(|m| m.role),
        };
        let subject = permissions::subject(c, user.clone())?;
        if !permissions::decide(&subject, Action::PostMessage, Some((room, role)))
            || repo::block::stops_posting(c, room, user.id)?
        {
            return Err(DomainError::Forbidden);
        }
        Ok(())
    })
}

/// Called on the writer thread once the message it came with is committed and created
/// (not for a repeat of a stored `client_id`), before any caller is answered. The hooks
/// of one writer run in id order, so announcing from here keeps a room's messages in
/// order; it must not block (hand the work to a task). The `usize` is how many messages
/// the commit created: 1 or a few when the writer is idle, up to [`BATCH_CAP`] under load.
pub type OnCommit = Box<dyn FnOnce(&Posted, usize) + Send>;

struct Job {
    new: NewMessage,
    sealed: Sealed,
    guard: Option<Guard>,
    on_commit: Option<OnCommit>,
    reply: oneshot::Sender<Result<Posted>>,
}

/// Handle to the writer thread. Cheap to clone; the thread ends (returning its
/// connection) when the last handle is dropped and the queue is drained.
#[derive(Clone)]
pub struct MessageWriter {
    tx: mpsc::Sender<Job>,
    keys: MessageKeys,
    max_chars: usize,
    batches: Arc<AtomicU64>,
    checkpoints: Arc<AtomicU64>,
}

impl std::fmt::Debug for MessageWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageWriter")
            .field("queued", &(QUEUE - self.tx.capacity()))
            .field("batches", &self.batches())
            .finish()
    }
}

impl MessageWriter {
    /// Starts the writer thread. It takes its connection from `db`'s pool on its first
    /// batch and keeps it (a broken one is returned and replaced).
    pub fn start(db: &Db, keys: MessageKeys, max_chars: usize) -> Result<MessageWriter> {
        Self::start_with_checkpoints(db, keys, max_chars, CHECKPOINTS)
    }

    /// [`start`](Self::start) with other checkpoint thresholds (tests use long ones to
    /// see that commits alone never checkpoint).
    pub fn start_with_checkpoints(
        db: &Db,
        keys: MessageKeys,
        max_chars: usize,
        policy: Checkpoints,
    ) -> Result<MessageWriter> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let batches = Arc::new(AtomicU64::new(0));
        let messages = Arc::new(AtomicU64::new(0));
        let checkpoints = Arc::new(AtomicU64::new(0));
        // The writer thread holds `alive`; its end ends the checkpointer.
        let (alive, writer_gone) = std::sync::mpsc::channel::<()>();
        let started = |e: std::io::Error| {
            DomainError::Internal(format!("cannot start the message writer: {e}"))
        };
        if db.backend() == Backend::Sqlite {
            let (db, messages, checkpoints) = (db.clone(), messages.clone(), checkpoints.clone());
            std::thread::Builder::new()
                .name("confab-checkpoint".into())
                .spawn(move || checkpointer(db, policy, writer_gone, messages, checkpoints))
                .map_err(started)?;
        }
        let (db, thread_keys, counter) = (db.clone(), keys.clone(), batches.clone());
        std::thread::Builder::new()
            .name("confab-msg-writer".into())
            .spawn(move || {
                writer_loop(db, thread_keys, rx, counter, messages);
                drop(alive);
            })
            .map_err(started)?;
        Ok(MessageWriter {
            tx,
            keys,
            max_chars,
            batches,
            checkpoints,
        })
    }

    /// Transactions written so far (each holds one or more posts).
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// WAL checkpoints the checkpointer has run (SQLite; always 0 on PostgreSQL).
    pub fn checkpoints(&self) -> u64 {
        self.checkpoints.load(Ordering::Relaxed)
    }

    /// Posts one message; resolves once it is committed (or refused).
    pub async fn post(&self, new: NewMessage) -> Result<Posted> {
        self.submit(new, None).await
    }

    /// Posts one message if `guard` passes inside the message's transaction.
    pub async fn post_guarded(&self, new: NewMessage, guard: Guard) -> Result<Posted> {
        self.submit(new, Some(guard)).await
    }

    /// Queues a post (waiting only for room in the queue) and returns its answer to await
    /// later: posts queued one after another are written in that order, so a socket can
    /// have several in flight. `on_commit` runs on the writer thread once the message is
    /// committed (see [`OnCommit`]).
    pub async fn enqueue(
        &self,
        new: NewMessage,
        guard: Guard,
        on_commit: OnCommit,
    ) -> Result<impl Future<Output = Result<Posted>> + Send + 'static> {
        self.queue(new, Some(guard), Some(on_commit)).await
    }

    async fn submit(&self, new: NewMessage, guard: Option<Guard>) -> Result<Posted> {
        self.queue(new, guard, None).await?.await
    }

    async fn queue(
        &self,
        new: NewMessage,
        guard: Option<Guard>,
        on_commit: Option<OnCommit>,
    ) -> Result<impl Future<Output = Result<Posted>> + Send + 'static> {
        // Validation and encryption here, on the caller's task: the writer does I/O only.
        let sealed = repo::message::prepare(&self.keys, &new, self.max_chars)?;
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job {
                new,
                sealed,
                guard,
                on_commit,
                reply,
            })
            .await
            .map_err(|_| DomainError::Unavailable("the message writer has stopped".into()))?;
        Ok(async move {
            answer.await.map_err(|_| {
                DomainError::Internal("the message writer dropped a post unanswered".into())
            })?
        })
    }
}

/// A PASSIVE checkpoint when `policy` says one is due (see the module's doc): it copies
/// what it can of the WAL into the database without waiting for (or blocking) the
/// writer or any reader. Ends with the writer thread.
fn checkpointer(
    db: Db,
    policy: Checkpoints,
    writer_gone: std::sync::mpsc::Receiver<()>,
    messages: Arc<AtomicU64>,
    checkpoints: Arc<AtomicU64>,
) {
    let mut seen = 0;
    // When this look first found messages the last checkpoint did not cover.
    let mut waiting_since: Option<Instant> = None;
    while let Err(RecvTimeoutError::Timeout) = writer_gone.recv_timeout(policy.every) {
        let now = messages.load(Ordering::Relaxed);
        if now == seen {
            continue;
        }
        let since = *waiting_since.get_or_insert_with(Instant::now);
        if now - seen < policy.messages && since.elapsed() < policy.within {
            continue;
        }
        match db
            .get()
            .and_then(|mut c| Ok(c.batch_execute("PRAGMA wal_checkpoint(PASSIVE)")?))
        {
            Ok(()) => {
                seen = now;
                waiting_since = None;
                checkpoints.fetch_add(1, Ordering::Relaxed);
            }
            // Tried again next time; meanwhile the WAL only grows.
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
}

/// The writer's connection: on SQLite, its commits leave checkpoints to the checkpointer.
fn writer_conn(db: &Db) -> Result<PooledConn> {
    let mut c = db.get()?;
    if db.backend() == Backend::Sqlite {
        c.batch_execute("PRAGMA wal_autocheckpoint = 0")?;
    }
    Ok(c)
}

/// Gives the writer's connection back to the pool as other users expect it.
fn release(db: &Db, mut c: PooledConn) {
    if db.backend() == Backend::Sqlite {
        // A broken connection fails this too; the pool's check deals with it.
        let _ = c.batch_execute(&format!(
            "PRAGMA wal_autocheckpoint = {SQLITE_AUTOCHECKPOINT}"
        ));
    }
}

fn writer_loop(
    db: Db,
    keys: MessageKeys,
    mut rx: mpsc::Receiver<Job>,
    batches: Arc<AtomicU64>,
    messages: Arc<AtomicU64>,
) {
    let mut conn: Option<PooledConn> = None;
    let mut batch: Vec<Job> = Vec::with_capacity(BATCH_CAP);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < BATCH_CAP {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut c = match conn.take() {
            Some(c) => c,
            None => match writer_conn(&db) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "message writer has no connection");
                    // Everything queued while the pool waited (up to its timeout) is
                    // refused too: the next post in the queue would otherwise wait a whole
                    // timeout more, and the one after it another (a send took 20 s to be
                    // refused during a PostgreSQL outage).
                    while let Ok(job) = rx.try_recv() {
                        batch.push(job);
                    }
                    for job in batch.drain(..) {
                        let _ = job.reply.send(Err(DomainError::Unavailable(e.to_string())));
                    }
                    continue;
                }
            },
        };
        let size = batch.len();
        batches.fetch_add(1, Ordering::Relaxed);
        // Posts taken, not rows written: a refused one is counted too (the checkpointer
        // only needs an upper bound on what the WAL holds).
        messages.fetch_add(size as u64, Ordering::Relaxed);
        // A panicking guard must not stop every later post of the process: the batch's
        // callers get an error (their reply senders are dropped), its transaction is
        // rolled back, and the writer goes on.
        let healthy = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            write_batch(&mut c, &keys, &mut batch)
        }));
        metrics::histogram!("confab_message_batch_size").record(size as f64);
        match healthy {
            Ok(true) => conn = Some(c),
            // After a failed BEGIN or COMMIT the connection may be broken: give it back
            // (the pool checks it) and take a fresh one for the next batch.
            Ok(false) => release(&db, c),
            Err(_) => {
                tracing::error!(size, "message batch panicked");
                batch.clear();
                // The unwinding skipped the rollback: undo the open transaction before the
                // connection goes back to the pool. If even that fails, the connection
                // (and its pool slot) is given up rather than handed out mid-transaction.
                if roll_back_all(&mut c) {
                    release(&db, c);
                } else {
                    tracing::error!("message writer gave up a connection stuck in a transaction");
                    std::mem::forget(c);
                }
            }
        }
    }
    if let Some(c) = conn {
        release(&db, c);
    }
}

/// Rolls back every open transaction level; false if that failed.
fn roll_back_all(conn: &mut DbConn) -> bool {
    use diesel::connection::TransactionManager;
    type Tm = <DbConn as diesel::Connection>::TransactionManager;
    loop {
        match Tm::transaction_manager_status_mut(conn).transaction_depth() {
            Ok(None) => return true,
            Ok(Some(_)) => {
                if Tm::rollback_transaction(conn).is_err() {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
}

/// Writes one batch and answers its callers. Returns false when the transaction as a
/// whole failed.
///
/// First pass ([`bulk_pass`]): no savepoints, one insert for the batch. Refusals our own
/// code decides before a message writes anything (no such room, a guard's "forbidden",
/// invalid input) need no rollback and are answered as they are. Any other error (a
/// statement failed: PostgreSQL has aborted the transaction, or a message may be half
/// written) rolls the whole pass back, and the batch is written again one message at a
/// time with a savepoint each, so the bad message fails alone. Both passes give the same
/// answers.
fn write_batch(conn: &mut DbConn, keys: &MessageKeys, batch: &mut Vec<Job>) -> bool {
    let mut outcome = write_pass(conn, keys, batch, false);
    if let Err(Pass::Unclean) = outcome {
        metrics::counter!("confab_message_batch_retries_total").increment(1);
        outcome = write_pass(conn, keys, batch, true);
    }
    match outcome {
        Ok((mut results, tops)) => {
            link(&mut results, tops);
            // Hooks in id order (the order the rooms will see), then the answers.
            let mut order: Vec<usize> = (0..results.len()).collect();
            order.sort_by_key(|&i| match &results[i] {
                Ok(p) => p.message.id.0,
                Err(_) => i64::MAX,
            });
            let created = results
                .iter()
                .filter(|r| r.as_ref().is_ok_and(|p| p.created))
                .count();
            for i in order {
                if let (Ok(posted), Some(hook)) = (&results[i], batch[i].on_commit.take())
                    && posted.created
                {
                    hook(posted, created);
                }
            }
            for (job, result) in batch.drain(..).zip(results) {
                // A caller that went away still had its message stored; nothing to tell.
                let _ = job.reply.send(result);
            }
            true
        }
        Err(e) => {
            let why = match e {
                Pass::Unclean => "a message failed and could not be isolated".to_owned(),
                Pass::Failed(e) => e.to_string(),
            };
            tracing::error!(error = %why, size = batch.len(), "message batch failed");
            for job in batch.drain(..) {
                let _ = job.reply.send(Err(DomainError::Unavailable(why.clone())));
            }
            false
        }
    }
}

/// Why a pass did not commit.
enum Pass {
    /// Without savepoints, a message failed in a way that needs a rollback.
    Unclean,
    /// The transaction itself failed (BEGIN, a lock, the prefetch, COMMIT).
    Failed(DomainError),
}

/// A refusal decided before the message wrote anything, with no failed statement.
fn clean(e: &DomainError) -> bool {
    matches!(
        e,
        DomainError::NotFound | DomainError::Forbidden | DomainError::Invalid { .. }
    )
}

/// Each created message's `prev`: the batch's created messages of a room, in id order,
/// follow the room's newest message before the batch (`tops`) and each other.
fn link(results: &mut [Result<Posted>], mut tops: HashMap<i64, i64>) {
    let mut created: Vec<&mut Posted> = results
        .iter_mut()
        .filter_map(|r| r.as_mut().ok())
        .filter(|p| p.created)
        .collect();
    created.sort_by_key(|p| p.message.id.0);
    for posted in created {
        let top = tops.entry(posted.message.room_id.0).or_insert(0);
        posted.prev = Some(MessageId(*top));
        *top = posted.message.id.0;
    }
}

type PassResults = (Vec<Result<Posted>>, HashMap<i64, i64>);

fn write_pass(
    conn: &mut DbConn,
    keys: &MessageKeys,
    batch: &[Job],
    savepoints: bool,
) -> Result<PassResults, Pass> {
    let mut unclean = false;
    let committed = write_tx(conn, |conn| {
        let view = batch_view(conn, batch)?;
        let tops = room_tops(conn, &view)?;
        let authors = batch_authors(conn, batch)?;
        if !savepoints {
            return bulk_pass(conn, keys, batch, &view, &authors)
                .map(|results| (results, tops))
                .map_err(|Unclean| {
                    unclean = true;
                    DomainError::Internal("retry with savepoints".into())
                });
        }
        let mut results = Vec::with_capacity(batch.len());
        for job in batch {
            let one = if savepoints {
                conn.transaction(|c| write_one(c, keys, job, &view, &authors))
            } else {
                write_one(conn, keys, job, &view, &authors)
            };
            match &one {
                Err(e) if !savepoints && !clean(e) => {
                    unclean = true;
                    return Err(DomainError::Internal("retry with savepoints".into()));
                }
                _ => {}
            }
            results.push(one);
        }
        Ok((results, tops))
    });
    match committed {
        Ok(results) => Ok(results),
        Err(_) if unclean => Err(Pass::Unclean),
        Err(e) => Err(Pass::Failed(e)),
    }
}

/// The bulk pass hit a failed statement: write the batch again with savepoints.
struct Unclean;

impl From<DomainError> for Unclean {
    fn from(_: DomainError) -> Self {
        Unclean
    }
}

/// The first pass: the batch's checks (room, guard) run first, then its messages go in
/// as **one** multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING` (on PostgreSQL every
/// statement is a round trip; on SQLite it saves the per-statement work). A post whose
/// `(author, client_id)` is already stored (before the batch, or by an earlier post of
/// the batch, which comes first in the `VALUES`) gets no row back and is answered with the
/// stored message. Posts without a `client_id` are inserted one by one. Any failed
/// statement makes the caller write the batch again with a savepoint per message.
fn bulk_pass(
    conn: &mut DbConn,
    keys: &MessageKeys,
    batch: &[Job],
    view: &BatchView,
    authors: &HashMap<UserId, Option<Author>>,
) -> Result<Vec<Result<Posted>>, Unclean> {
    use crate::{db::schema::messages, time::Timestamp};
    use diesel::prelude::*;
    let mut results: Vec<Option<Result<Posted>>> = Vec::with_capacity(batch.len());
    for job in batch {
        if view.room(job.new.room_id).is_none() {
            results.push(Some(Err(DomainError::NotFound)));
            continue;
        }
        match job.guard.as_ref().map(|g| g(conn, view)).transpose() {
            Ok(_) => results.push(None),
            Err(e) if clean(&e) => results.push(Some(Err(e))),
            Err(_) => return Err(Unclean),
        }
    }
    let now = Timestamp::now();
    let keyed: Vec<usize> = (0..batch.len())
        .filter(|&i| results[i].is_none())
        .filter(|&i| batch[i].new.author_id.is_some() && batch[i].new.client_id.is_some())
        .collect();
    let mut ids: HashMap<(i64, String), i64> = HashMap::new();
    if !keyed.is_empty() {
        let values: Vec<_> = keyed
            .iter()
            .map(|&i| repo::message::NewRow::of(&batch[i].new, &batch[i].sealed, now))
            .collect();
        let returned = (messages::id, messages::author_id, messages::client_id);
        let rows: Vec<(i64, Option<i64>, Option<String>)> = match conn {
            DbConn::Postgres(pg) => diesel::insert_into(messages::table)
                .values(values)
                .on_conflict_do_nothing()
                .returning(returned)
                .get_results(pg)
                .map_err(|_| Unclean)?,
            // diesel has no multi-row `INSERT … RETURNING` for SQLite; in-process, a
            // cached statement per row costs microseconds, not a round trip.
            DbConn::Sqlite(lite) => {
                let mut rows = Vec::with_capacity(values.len());
                for row in values {
                    let got = diesel::insert_into(messages::table)
                        .values(row)
                        .on_conflict_do_nothing()
                        .returning(returned)
                        .get_result(lite)
                        .optional()
                        .map_err(|_| Unclean)?;
                    rows.extend(got);
                }
                rows
            }
        };
        for (id, author, cid) in rows {
            if let (Some(a), Some(c)) = (author, cid) {
                ids.insert((a, c), id);
            }
        }
    }
    let mut created: HashSet<i64> = HashSet::new();
    for (i, job) in batch.iter().enumerate() {
        if results[i].is_some() {
            continue;
        }
        let new = &job.new;
        let one = match (new.author_id, new.client_id.as_deref()) {
            (Some(a), Some(cid)) => match ids.get(&(a.0, cid.to_owned())) {
                // The first post of the batch with this key is the one that was inserted.
                Some(&id) if created.insert(id) => {
                    if new.kind == crate::model::MessageKind::Text {
                        repo::mention::record(
                            conn,
                            MessageId(id),
                            new.room_id,
                            Some(a),
                            &new.body,
                        )?;
                    }
                    let author = authors.get(&a).cloned().flatten();
                    Ok(Posted::fresh(new, MessageId(id), author, now))
                }
                _ => match repo::message::existing_post(conn, keys, new)? {
                    Some(existing) => repo::message::already_posted(new, existing),
                    None => return Err(Unclean),
                },
            },
            _ => match write_one(conn, keys, job, view, authors) {
                Err(e) if !clean(&e) => return Err(Unclean),
                one => one,
            },
        };
        results[i] = Some(one);
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(DomainError::Internal("unanswered post".into()))))
        .collect())
}

/// One message of a batch: its room exists (and is locked), its guard passes — then the
/// insert (which finds a `client_id` already stored, also earlier in this batch, through
/// the unique index) and its mentions.
fn write_one(
    conn: &mut DbConn,
    keys: &MessageKeys,
    job: &Job,
    view: &BatchView,
    authors: &HashMap<UserId, Option<Author>>,
) -> Result<Posted> {
    if view.room(job.new.room_id).is_none() {
        return Err(DomainError::NotFound);
    }
    if let Some(guard) = &job.guard {
        guard(conn, view)?;
    }
    let inserted = repo::message::insert_sealed(conn, &job.new, &job.sealed, &mut |_, id| {
        Ok(authors.get(&id).cloned().flatten())
    })?;
    match inserted {
        Some(posted) => Ok(posted),
        None => {
            let existing =
                repo::message::existing_post(conn, keys, &job.new)?.ok_or(DomainError::NotFound)?;
            repo::message::already_posted(&job.new, existing)
        }
    }
}

/// The newest message id of each locked room (0 for an empty room), read after the lock,
/// so nothing newer can be committed in these rooms before this batch's commit.
/// PostgreSQL: one statement (a fresh snapshot, taken after the locks were granted);
/// SQLite: one indexed `max` per room, in-process.
fn room_tops(conn: &mut DbConn, view: &BatchView) -> Result<HashMap<i64, i64>> {
    use crate::db::schema::messages;
    use diesel::{
        prelude::*,
        sql_types::{Array, BigInt, Nullable},
    };
    #[derive(QueryableByName)]
    struct Top {
        #[diesel(sql_type = BigInt)]
        room: i64,
        #[diesel(sql_type = Nullable<BigInt>)]
        top: Option<i64>,
    }
    let ids: Vec<i64> = view.rooms.keys().map(|r| r.0).collect();
    let tops: Vec<(i64, Option<i64>)> = match conn {
        DbConn::Postgres(pg) => diesel::sql_query(
            "SELECT r AS room, (SELECT max(m.id) FROM messages m WHERE m.room_id = r) AS top \
             FROM unnest($1) AS r",
        )
        .bind::<Array<BigInt>, _>(&ids)
        .load::<Top>(pg)?
        .into_iter()
        .map(|t| (t.room, t.top))
        .collect(),
        DbConn::Sqlite(lite) => ids
            .iter()
            .map(|&r| {
                messages::table
                    .filter(messages::room_id.eq(r))
                    .select(diesel::dsl::max(messages::id))
                    // An aggregate is one row: no `LIMIT` (see `.cargo/config.toml`).
                    .get_result::<Option<i64>>(lite)
                    .map(|top| (r, top))
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(tops.into_iter().map(|(r, t)| (r, t.unwrap_or(0))).collect())
}

/// The names of the batch's authors, in one query (a user with no row maps to `None`).
/// Read inside the transaction, per batch: a display name changed before the commit is
/// the one the message goes out with.
fn batch_authors(conn: &mut DbConn, batch: &[Job]) -> Result<HashMap<UserId, Option<Author>>> {
    use crate::db::schema::users;
    use diesel::prelude::*;
    let mut ids: Vec<i64> = batch
        .iter()
        .filter_map(|j| j.new.author_id.map(|a| a.0))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut authors: HashMap<UserId, Option<Author>> =
        ids.iter().map(|&id| (UserId(id), None)).collect();
    if ids.is_empty() {
        return Ok(authors);
    }
    let columns = (users::id, users::username, users::display_name);
    let rows: Vec<(i64, String, String)> = match (conn, ids.as_slice()) {
        // One author: the cached `=` on SQLite (see `repo::room::lock_many`).
        (DbConn::Sqlite(c), [id]) => users::table
            .filter(users::id.eq(*id))
            .select(columns)
            .load(c)?,
        (conn, _) => users::table
            .filter(users::id.eq_any(&ids))
            .select(columns)
            .load(conn)?,
    };
    for (id, username, display_name) in rows {
        authors.insert(
            UserId(id),
            Some(Author {
                id: UserId(id),
                username,
                display_name,
            }),
        );
    }
    Ok(authors)
}

/// Takes the write lock of every room in the batch (see [`repo::room::lock_many`]),
/// then reads what the guards need: the rooms that exist, and the authors' memberships in
/// them (one query). Either way no room of the batch can be deleted before the commit.
fn batch_view(conn: &mut DbConn, batch: &[Job]) -> Result<BatchView> {
    let mut ids: Vec<i64> = batch.iter().map(|j| j.new.room_id.0).collect();
    ids.sort_unstable();
    ids.dedup();
    let rooms: HashMap<RoomId, Room> = repo::room::lock_many(conn, &ids)?
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    let mut authors = HashSet::new();
    let mut roles = HashMap::new();
    // Only guards read roles; a batch without any does not pay for them.
    if batch.iter().any(|j| j.guard.is_some()) && !rooms.is_empty() {
        authors = batch.iter().filter_map(|j| j.new.author_id).collect();
        let room_ids: Vec<i64> = rooms.keys().map(|r| r.0).collect();
        let user_ids: Vec<i64> = authors.iter().map(|u| u.0).collect();
        for m in repo::room::memberships_among(conn, &room_ids, &user_ids)? {
            roles.insert((m.room_id, m.user_id), m.role);
        }
    }
    Ok(BatchView {
        rooms,
        roles,
        authors,
    })
}
