//! Server-side sessions, shared by both services. The cookie holds a random key; rows
//! hold its SHA-256. A session ends at the earlier of `last_seen + idle` and
//! `created + absolute`, or when revoked.

use crate::{
    auth::SessionKey,
    db::{
        DbConn,
        schema::{sessions, users},
        write_tx,
    },
    error::{DomainError, Result},
    ids::{SessionId, UserId},
    model::{Session, User},
    per_backend,
    repo::user::UserRow,
    time::Timestamp,
};
use diesel::prelude::*;

/// Lifetimes, from settings.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub idle_secs: u64,
    pub absolute_secs: u64,
}

impl Lifetimes {
    fn expiry(self, created: Timestamp, seen: Timestamp) -> Timestamp {
        seen.plus_secs(self.idle_secs)
            .min(created.plus_secs(self.absolute_secs))
    }
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = sessions)]
struct SessionRow {
    id: i64,
    user_id: i64,
    user_agent: String,
    ip: String,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

impl From<SessionRow> for Session {
    fn from(r: SessionRow) -> Session {
        Session {
            id: SessionId(r.id),
            user_id: UserId(r.user_id),
            user_agent: r.user_agent,
            ip: r.ip,
            created_at: Timestamp(r.created_at),
            last_seen_at: Timestamp(r.last_seen_at),
            expires_at: Timestamp(r.expires_at),
            revoked_at: r.revoked_at.map(Timestamp),
        }
    }
}

/// A live session with its user and the opaque state the web layer keeps in it.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub session: Session,
    pub user: User,
    pub data: String,
}

const MAX_USER_AGENT: usize = 512;
const MAX_IP: usize = 64;

/// Starts a session and returns its key (only ever shown to the client).
pub fn create(
    conn: &mut DbConn,
    user: UserId,
    user_agent: &str,
    ip: &str,
    data: &str,
    lifetimes: Lifetimes,
) -> Result<(SessionKey, Session)> {
    let key = SessionKey::generate();
    let now = Timestamp::now();
    let values = (
        sessions::key_hash.eq(key.hash()),
        sessions::user_id.eq(user.0),
        sessions::user_agent.eq(truncate(user_agent, MAX_USER_AGENT)),
        sessions::ip.eq(truncate(ip, MAX_IP)),
        sessions::data.eq(data),
        sessions::created_at.eq(now.0),
        sessions::last_seen_at.eq(now.0),
        sessions::expires_at.eq(lifetimes.expiry(now, now).0),
    );
    let row: SessionRow = per_backend!(conn, c => diesel::insert_into(sessions::table)
        .values(values)
        .returning(SessionRow::as_returning())
        .get_result(c))?;
    Ok((key, row.into()))
}

/// The live session behind a key, if any: not revoked, not expired, user active.
pub fn find_live(conn: &mut DbConn, key: &SessionKey) -> Result<Option<LiveSession>> {
    let now = Timestamp::now().0;
    let row: Option<(SessionRow, UserRow, String)> = sessions::table
        .inner_join(users::table)
        .filter(sessions::key_hash.eq(key.hash()))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .filter(users::is_active.eq(true))
        .select((
            SessionRow::as_select(),
            UserRow::as_select(),
            sessions::data,
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(|(s, u, data)| LiveSession {
        session: s.into(),
        user: u.into(),
        data,
    }))
}

/// Which of `ids` are live sessions (not revoked, not expired, user active): one query.
pub fn live_among(
    conn: &mut DbConn,
    ids: &[SessionId],
) -> Result<std::collections::HashSet<SessionId>> {
    let now = Timestamp::now().0;
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    let live: Vec<i64> = sessions::table
        .inner_join(users::table)
        .filter(sessions::id.eq_any(ids))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .filter(users::is_active.eq(true))
        .select(sessions::id)
        .load(conn)?;
    Ok(live.into_iter().map(SessionId).collect())
}

/// Marks the session as used now and pushes its idle expiry forward (never past the
/// absolute limit). Returns false when the session is no longer live.
pub fn touch(conn: &mut DbConn, id: SessionId, lifetimes: Lifetimes) -> Result<bool> {
    let now = Timestamp::now();
    write_tx(conn, |conn| {
        let row: Option<(i64, i64)> = sessions::table
            .find(id.0)
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(now.0))
            .select((sessions::created_at, sessions::expires_at))
            .first(conn)
            .optional()?;
        let Some((created, _)) = row else {
            return Ok(false);
        };
        diesel::update(sessions::table.find(id.0))
            .set((
                sessions::last_seen_at.eq(now.0),
                sessions::expires_at.eq(lifetimes.expiry(Timestamp(created), now).0),
            ))
            .execute(conn)?;
        Ok(true)
    })
}

/// Replaces the web layer's state kept in the session.
pub fn save_data(conn: &mut DbConn, id: SessionId, data: &str) -> Result<()> {
    let n = diesel::update(
        sessions::table
            .find(id.0)
            .filter(sessions::revoked_at.is_null()),
    )
    .set(sessions::data.eq(data))
    .execute(conn)?;
    if n == 0 {
        return Err(DomainError::NotFound);
    }
    Ok(())
}

pub fn find(conn: &mut DbConn, id: SessionId) -> Result<Session> {
    let row: SessionRow = sessions::table
        .find(id.0)
        .select(SessionRow::as_select())
        .first(conn)?;
    Ok(row.into())
}

/// Every live session of a user, newest first.
pub fn list_live(conn: &mut DbConn, user: UserId) -> Result<Vec<Session>> {
    let rows: Vec<SessionRow> = sessions::table
        .filter(sessions::user_id.eq(user.0))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(Timestamp::now().0))
        .select(SessionRow::as_select())
        .order(sessions::id.desc())
        .load(conn)?;
    Ok(rows.into_iter().map(Session::from).collect())
}

/// Revokes one session; returns whether it was live.
pub fn revoke(conn: &mut DbConn, id: SessionId) -> Result<bool> {
    let n = diesel::update(
        sessions::table
            .find(id.0)
            .filter(sessions::revoked_at.is_null()),
    )
    .set(sessions::revoked_at.eq(Timestamp::now().0))
    .execute(conn)?;
    Ok(n > 0)
}

/// Revokes a user's sessions except `keep`; returns the ids revoked, so the caller can
/// close their sockets.
pub fn revoke_others(conn: &mut DbConn, user: UserId, keep: SessionId) -> Result<Vec<SessionId>> {
    revoke_where(conn, user, Some(keep))
}

/// Revokes every session of a user (sign out everywhere, deactivation, password change).
pub fn revoke_all(conn: &mut DbConn, user: UserId) -> Result<Vec<SessionId>> {
    revoke_where(conn, user, None)
}

fn revoke_where(
    conn: &mut DbConn,
    user: UserId,
    keep: Option<SessionId>,
) -> Result<Vec<SessionId>> {
    write_tx(conn, |conn| {
        let mut q = sessions::table
            .filter(sessions::user_id.eq(user.0))
            .filter(sessions::revoked_at.is_null())
            .select(sessions::id)
            .into_boxed();
        if let Some(keep) = keep {
            q = q.filter(sessions::id.ne(keep.0));
        }
        let ids: Vec<i64> = q.load(conn)?;
        if !ids.is_empty() {
            diesel::update(sessions::table.filter(sessions::id.eq_any(&ids)))
                .set(sessions::revoked_at.eq(Timestamp::now().0))
                .execute(conn)?;
        }
        Ok(ids.into_iter().map(SessionId).collect())
    })
}

/// Deletes sessions that ended more than `keep_secs` ago; returns how many.
pub fn purge_ended(conn: &mut DbConn, keep_secs: u64) -> Result<usize> {
    let cutoff = Timestamp::now().minus_secs(keep_secs).0;
    Ok(diesel::delete(
        sessions::table.filter(
            sessions::expires_at
                .lt(cutoff)
                .or(sessions::revoked_at.lt(cutoff)),
        ),
    )
    .execute(conn)?)
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
