//! Messages: stored only as ciphertext, posted idempotently, read by keyset pages.
//!
//! Ordering: within a room, ids are taken while holding that room's write lock (SQLite's
//! single writer; a `FOR UPDATE` row lock on PostgreSQL), so commit order is id order and
//! a reader that has seen id N never later finds a smaller id appear in that room.

use crate::{
    crypto::{MessageKeys, Sealed},
    db::{
        DbConn,
        schema::{messages, users},
        write_tx,
    },
    error::{DomainError, Result},
    ids::{MessageId, RoomId, UserId},
    model::{Author, Body, Message, MessageKind},
    per_backend,
    repo::{Page, clamp_limit},
    time::Timestamp,
};
use diesel::prelude::*;

/// Longest accepted `client_id`.
pub const CLIENT_ID_MAX: usize = 64;

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = messages)]
struct MessageRow {
    id: i64,
    room_id: i64,
    author_id: Option<i64>,
    kind: String,
    key_id: String,
    body: Vec<u8>,
    client_id: Option<String>,
    created_at: i64,
    edited_at: Option<i64>,
    deleted_at: Option<i64>,
}

type AuthorCols = (Option<String>, Option<String>);

/// What a message body is bound to: its room. A ciphertext moved to another room does
/// not decrypt.
pub(crate) fn aad(room: i64) -> Vec<u8> {
    format!("confab:message:v1:room:{room}").into_bytes()
}

fn decrypt(keys: &MessageKeys, row: &MessageRow) -> Body {
    match keys.open(&row.key_id, &row.body, &aad(row.room_id)) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Body::Text(text),
            Err(_) => Body::Undecryptable("not UTF-8 after decryption".into()),
        },
        Err(e) => {
            tracing::warn!(message_id = row.id, key_id = %row.key_id, error = %e, "message could not be decrypted");
            Body::Undecryptable(e.to_string())
        }
    }
}

fn to_message(keys: &MessageKeys, row: MessageRow, author: AuthorCols) -> Message {
    let body = decrypt(keys, &row);
    let author = match (row.author_id, author) {
        (Some(id), (Some(username), Some(display_name))) => Some(Author {
            id: UserId(id),
            username,
            display_name,
        }),
        _ => None,
    };
    Message {
        id: MessageId(row.id),
        room_id: RoomId(row.room_id),
        author,
        kind: MessageKind::parse(&row.kind).unwrap_or(MessageKind::Text),
        body,
        client_id: row.client_id,
        created_at: Timestamp(row.created_at),
        edited_at: row.edited_at.map(Timestamp),
        deleted_at: row.deleted_at.map(Timestamp),
    }
}

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub room_id: RoomId,
    pub author_id: Option<UserId>,
    pub kind: MessageKind,
    pub body: String,
    /// The client's idempotency key: posting again with the same one returns the first
    /// message instead of storing a second.
    pub client_id: Option<String>,
}

/// A post's outcome: the stored message, and whether this call created it.
#[derive(Debug, Clone)]
pub struct Posted {
    pub message: Message,
    pub created: bool,
    /// For a message this call created through the group-commit writer: the id of the
    /// room's message just before it (`MessageId(0)` when it is the room's first), read
    /// under the room's write lock. A receiver that holds every message up to `prev` may
    /// append this one without reading the room back. `None` when not known.
    pub prev: Option<MessageId>,
}

impl Posted {
    /// A message this call has just stored as row `id`, built from what was written
    /// rather than read back.
    pub fn fresh(
        new: &NewMessage,
        id: MessageId,
        author: Option<Author>,
        now: Timestamp,
    ) -> Posted {
        Posted {
            message: Message {
                id,
                room_id: new.room_id,
                author,
                kind: new.kind,
                body: Body::Text(new.body.clone()),
                client_id: new.client_id.clone(),
                created_at: now,
                edited_at: None,
                deleted_at: None,
            },
            created: true,
            prev: None,
        }
    }
}

fn check_new(new: &NewMessage, max_chars: usize) -> Result<()> {
    if new.kind == MessageKind::Text && new.body.trim().is_empty() {
        return Err(DomainError::invalid("body", "must not be empty"));
    }
    if new.body.chars().count() > max_chars {
        return Err(DomainError::invalid(
            "body",
            format!("must be at most {max_chars} characters"),
        ));
    }
    if let Some(cid) = &new.client_id
        && (cid.is_empty() || cid.len() > CLIENT_ID_MAX || cid.chars().any(char::is_control))
    {
        return Err(DomainError::invalid(
            "client_id",
            format!("must be 1-{CLIENT_ID_MAX} printable characters"),
        ));
    }
    Ok(())
}

/// Stores a message (encrypted) and returns it. Idempotent by `(author, client_id)`.
pub fn post(
    conn: &mut DbConn,
    keys: &MessageKeys,
    new: &NewMessage,
    max_chars: usize,
) -> Result<Posted> {
    let sealed = prepare(keys, new, max_chars)?;
    write_tx(conn, |conn| {
        lock_room(conn, new.room_id)?;
        if let Some(existing) = existing_post(conn, keys, new)? {
            return already_posted(new, existing);
        }
        match insert_sealed(conn, new, &sealed, &mut |c, id| author_of(c, id))? {
            Some(posted) => Ok(posted),
            // Stored meanwhile by another room's transaction (PostgreSQL locks per room).
            None => already_posted(
                new,
                existing_post(conn, keys, new)?.ok_or(DomainError::NotFound)?,
            ),
        }
    })
}

/// The message stored earlier under this post's `(author, client_id)`, if any.
pub(crate) fn existing_post(
    conn: &mut DbConn,
    keys: &MessageKeys,
    new: &NewMessage,
) -> Result<Option<Message>> {
    match (new.author_id, &new.client_id) {
        (Some(author), Some(cid)) => find_by_client_id(conn, keys, author, cid),
        _ => Ok(None),
    }
}

/// The answer to a post whose `(author, client_id)` is already stored as `existing`.
pub(crate) fn already_posted(new: &NewMessage, existing: Message) -> Result<Posted> {
    if existing.room_id != new.room_id {
        return Err(DomainError::Conflict(
            "client_id already used in another room".into(),
        ));
    }
    Ok(Posted {
        message: existing,
        created: false,
        prev: None,
    })
}

/// Validates a new message and seals its body for its room: the CPU part of a post,
/// which needs no connection (the group-commit writer runs it on the caller's side).
pub fn prepare(keys: &MessageKeys, new: &NewMessage, max_chars: usize) -> Result<Sealed> {
    check_new(new, max_chars)?;
    keys.seal(new.body.as_bytes(), &aad(new.room_id.0))
        .map_err(|e| DomainError::Crypto(e.to_string()))
}

/// The author columns of a stored message, for building it without reading it back.
pub(crate) fn author_of(conn: &mut DbConn, id: UserId) -> Result<Option<Author>> {
    let row: Option<(String, String)> = users::table
        .find(id.0)
        .select((users::username, users::display_name))
        .first(conn)
        .optional()?;
    Ok(row.map(|(username, display_name)| Author {
        id,
        username,
        display_name,
    }))
}

/// One stored message row as written (here and, many at a time, by the writer).
#[derive(Insertable)]
#[diesel(table_name = messages)]
pub(crate) struct NewRow<'a> {
    room_id: i64,
    author_id: Option<i64>,
    kind: &'a str,
    key_id: &'a str,
    body: &'a [u8],
    client_id: Option<&'a str>,
    created_at: i64,
}

impl<'a> NewRow<'a> {
    pub(crate) fn of(new: &'a NewMessage, sealed: &'a Sealed, now: Timestamp) -> NewRow<'a> {
        NewRow {
            room_id: new.room_id.0,
            author_id: new.author_id.map(|a| a.0),
            kind: new.kind.as_str(),
            key_id: &sealed.key_id,
            body: &sealed.bytes,
            client_id: new.client_id.as_deref(),
            created_at: now.0,
        }
    }
}

/// The write half of [`post`], inside a write transaction that already holds the room's
/// lock ([`lock_room`]): the insert and the mentions. `None` when the `(author,
/// client_id)` is already stored (nothing written). The stored message is built from what
/// was written, not read back; `author` finds the author's names (the writer reads them
/// per batch).
pub(crate) fn insert_sealed(
    conn: &mut DbConn,
    new: &NewMessage,
    sealed: &Sealed,
    author: &mut dyn FnMut(&mut DbConn, UserId) -> Result<Option<Author>>,
) -> Result<Option<Posted>> {
    let now = Timestamp::now();
    let values = NewRow::of(new, sealed, now);
    // The unique `(author_id, client_id)` index answers "posted before?" in the insert
    // itself: no row back means that post is already stored.
    let id: Option<i64> = per_backend!(conn, c => diesel::insert_into(messages::table)
        .values(values)
        .on_conflict_do_nothing()
        .returning(messages::id)
        .get_result(c)
        .optional())?;
    let Some(id) = id else {
        return Ok(None);
    };
    if new.kind == MessageKind::Text {
        crate::repo::mention::record(conn, MessageId(id), new.room_id, new.author_id, &new.body)?;
    }
    let author = match new.author_id {
        Some(a) => author(conn, a)?,
        None => None,
    };
    Ok(Some(Posted::fresh(new, MessageId(id), author, now)))
}

/// Takes the room's write lock for the rest of the transaction. SQLite already holds the
/// database write lock (`BEGIN IMMEDIATE`); PostgreSQL locks the room row.
pub(crate) fn lock_room(conn: &mut DbConn, room: RoomId) -> Result<()> {
    match conn {
        DbConn::Sqlite(_) => {
            // Still check the room exists, so both backends answer the same.
            use crate::db::schema::rooms;
            rooms::table
                .find(room.0)
                .select(rooms::id)
                .first::<i64>(conn)?;
        }
        DbConn::Postgres(c) => {
            use crate::db::schema::rooms;
            rooms::table
                .find(room.0)
                .select(rooms::id)
                .for_update()
                .first::<i64>(c)?;
        }
    }
    Ok(())
}

fn find_by_client_id(
    conn: &mut DbConn,
    keys: &MessageKeys,
    author: UserId,
    cid: &str,
) -> Result<Option<Message>> {
    let row: Option<(MessageRow, AuthorCols)> = messages::table
        .left_join(users::table)
        .filter(messages::author_id.eq(author.0))
        .filter(messages::client_id.eq(cid))
        .select((
            MessageRow::as_select(),
            (users::username.nullable(), users::display_name.nullable()),
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(|(r, a)| to_message(keys, r, a)))
}

pub fn find(conn: &mut DbConn, keys: &MessageKeys, id: MessageId) -> Result<Message> {
    let (row, author): (MessageRow, AuthorCols) = messages::table
        .left_join(users::table)
        .filter(messages::id.eq(id.0))
        .select((
            MessageRow::as_select(),
            (users::username.nullable(), users::display_name.nullable()),
        ))
        .first(conn)?;
    Ok(to_message(keys, row, author))
}

/// One page of a room's history, oldest first, and whether more lies beyond it in the
/// direction asked.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub messages: Vec<Message>,
    pub more: bool,
}

pub fn history(
    conn: &mut DbConn,
    keys: &MessageKeys,
    room: RoomId,
    page: Page,
    limit: i64,
) -> Result<HistoryPage> {
    let limit = clamp_limit(limit);
    let base = messages::table
        .left_join(users::table)
        .filter(messages::room_id.eq(room.0))
        .select((
            MessageRow::as_select(),
            (users::username.nullable(), users::display_name.nullable()),
        ))
        .limit(limit + 1)
        .into_boxed();
    let (mut rows, newest_first): (Vec<(MessageRow, AuthorCols)>, bool) = match page {
        Page::Latest => (base.order(messages::id.desc()).load(conn)?, true),
        Page::Before(id) => (
            base.filter(messages::id.lt(id))
                .order(messages::id.desc())
                .load(conn)?,
            true,
        ),
        Page::After(id) => (
            base.filter(messages::id.gt(id))
                .order(messages::id.asc())
                .load(conn)?,
            false,
        ),
    };
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    if newest_first {
        rows.reverse();
    }
    Ok(HistoryPage {
        messages: rows
            .into_iter()
            .map(|(r, a)| to_message(keys, r, a))
            .collect(),
        more,
    })
}

/// Changes a message's text; keeps its id and creation time, sets `edited_at`. Its
/// mentions are recounted from the new text, in the same transaction, so unread mention
/// counts follow the edit.
pub fn edit(
    conn: &mut DbConn,
    keys: &MessageKeys,
    id: MessageId,
    body: &str,
    max_chars: usize,
) -> Result<Message> {
    write_tx(conn, |conn| {
        let (room, author, kind, deleted): (i64, Option<i64>, String, Option<i64>) =
            messages::table
                .find(id.0)
                .select((
                    messages::room_id,
                    messages::author_id,
                    messages::kind,
                    messages::deleted_at,
                ))
                .first(conn)?;
        if kind != MessageKind::Text.as_str() || deleted.is_some() {
            return Err(DomainError::invalid(
                "message",
                "only a live text message can be edited",
            ));
        }
        check_new(
            &NewMessage {
                room_id: RoomId(room),
                author_id: None,
                kind: MessageKind::Text,
                body: body.to_owned(),
                client_id: None,
            },
            max_chars,
        )?;
        let sealed = keys
            .seal(body.as_bytes(), &aad(room))
            .map_err(|e| DomainError::Crypto(e.to_string()))?;
        diesel::update(messages::table.find(id.0))
            .set((
                messages::key_id.eq(&sealed.key_id),
                messages::body.eq(&sealed.bytes),
                messages::edited_at.eq(Timestamp::now().0),
            ))
            .execute(conn)?;
        crate::repo::mention::rerecord(conn, id, RoomId(room), author.map(UserId), body)?;
        find(conn, keys, id)
    })
}

/// Soft-deletes (`deleted = true`) or restores a message.
pub fn set_deleted(
    conn: &mut DbConn,
    keys: &MessageKeys,
    id: MessageId,
    deleted: bool,
) -> Result<Message> {
    let at = deleted.then(|| Timestamp::now().0);
    let n = diesel::update(messages::table.find(id.0))
        .set(messages::deleted_at.eq(at))
        .execute(conn)?;
    if n == 0 {
        return Err(DomainError::NotFound);
    }
    find(conn, keys, id)
}

/// The newest message id in a room, for unread counts and catch-up.
pub fn latest_id(conn: &mut DbConn, room: RoomId) -> Result<Option<MessageId>> {
    let id: Option<i64> = messages::table
        .filter(messages::room_id.eq(room.0))
        .select(diesel::dsl::max(messages::id))
        .first(conn)?;
    Ok(id.map(MessageId))
}

/// How many messages in a room are newer than `after` (capped at `cap`, so the count
/// stays cheap in a busy room).
pub fn count_after(
    conn: &mut DbConn,
    room: RoomId,
    after: Option<MessageId>,
    cap: i64,
) -> Result<i64> {
    let ids: Vec<i64> = messages::table
        .filter(messages::room_id.eq(room.0))
        .filter(messages::id.gt(after.map_or(0, |m| m.0)))
        .filter(messages::deleted_at.is_null())
        .select(messages::id)
        .limit(cap)
        .load(conn)?;
    Ok(ids.len() as i64)
}

/// What one `rotate-keys` batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RotateBatch {
    pub rotated: usize,
    /// Rows that could not be decrypted with any configured key; left as they are.
    pub failed: usize,
    /// The last id looked at, to continue from.
    pub last_id: Option<i64>,
}

/// Re-encrypts up to `batch` rows not sealed with the current key, with ids above
/// `after`. Each row is updated only if it is unchanged since it was read, so a
/// concurrent edit is never overwritten with older text.
pub fn rotate_batch(
    conn: &mut DbConn,
    keys: &MessageKeys,
    after: i64,
    batch: i64,
) -> Result<RotateBatch> {
    let rows: Vec<MessageRow> = messages::table
        .filter(messages::id.gt(after))
        .filter(messages::key_id.ne(keys.current_id()))
        .select(MessageRow::as_select())
        .order(messages::id.asc())
        .limit(batch.max(1))
        .load(conn)?;
    let mut out = RotateBatch {
        last_id: rows.last().map(|r| r.id),
        ..Default::default()
    };
    write_tx(conn, |conn| {
        for row in &rows {
            let Ok(plain) = keys.open(&row.key_id, &row.body, &aad(row.room_id)) else {
                tracing::warn!(message_id = row.id, key_id = %row.key_id, "cannot re-encrypt: not decryptable with the configured keys");
                out.failed += 1;
                continue;
            };
            let sealed = keys
                .seal(&plain, &aad(row.room_id))
                .map_err(|e| DomainError::Crypto(e.to_string()))?;
            out.rotated += diesel::update(
                messages::table
                    .find(row.id)
                    .filter(messages::key_id.eq(&row.key_id))
                    .filter(messages::body.eq(&row.body)),
            )
            .set((
                messages::key_id.eq(&sealed.key_id),
                messages::body.eq(&sealed.bytes),
            ))
            .execute(conn)?;
        }
        Ok(())
    })?;
    Ok(out)
}

/// How many rows are sealed with each key id.
pub fn count_by_key(conn: &mut DbConn) -> Result<Vec<(String, i64)>> {
    Ok(messages::table
        .group_by(messages::key_id)
        .select((messages::key_id, diesel::dsl::count_star()))
        .order(messages::key_id.asc())
        .load(conn)?)
}

/// Messages by one author, newest first (admin).
pub fn by_author(
    conn: &mut DbConn,
    keys: &MessageKeys,
    author: UserId,
    before: Option<MessageId>,
    limit: i64,
) -> Result<Vec<Message>> {
    let mut q = messages::table
        .left_join(users::table)
        .filter(messages::author_id.eq(author.0))
        .select((
            MessageRow::as_select(),
            (users::username.nullable(), users::display_name.nullable()),
        ))
        .order(messages::id.desc())
        .limit(clamp_limit(limit))
        .into_boxed();
    if let Some(b) = before {
        q = q.filter(messages::id.lt(b.0));
    }
    Ok(q.load::<(MessageRow, AuthorCols)>(conn)?
        .into_iter()
        .map(|(r, a)| to_message(keys, r, a))
        .collect())
}
