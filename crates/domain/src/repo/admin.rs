//! Queries for the staff admin: filtered, keyset-paginated lists, counts, and the
//! group/permission edits the admin forms make. Same SQL on SQLite and PostgreSQL.
//!
//! Every list returns at most `limit` rows and a cursor for the next page (`None` when
//! there is none), so no list costs more as the table grows (no `OFFSET`).

use crate::{
    db::{
        DbConn,
        schema::{
            attachments, audit_log, auth_groups, group_permissions, messages, rooms, sessions,
            user_groups, user_permissions, users,
        },
        write_tx,
    },
    error::{DomainError, Result},
    ids::{AttachmentId, GroupId, MessageId, RoomId, SessionId, UserId},
    model::{MessageKind, Room, Session, User},
    permissions::Permission,
    repo::{clamp_limit, room::RoomRow, user::UserRow, user::escape_like},
    time::Timestamp,
};
use diesel::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// A page of rows and the cursor of the next one.
#[derive(Debug, Clone)]
pub struct Listed<T, C> {
    pub rows: Vec<T>,
    pub next: Option<C>,
}

fn split_page<T, C>(mut rows: Vec<T>, limit: i64, cursor: impl Fn(&T) -> C) -> Listed<T, C> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(cursor) } else { None };
    Listed { rows, next }
}

fn like_contains(s: &str) -> String {
    format!("%{}%", escape_like(&s.to_ascii_lowercase()))
}

/// Figures for the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub users: i64,
    pub active_users: i64,
    pub staff: i64,
    pub rooms: i64,
    pub archived_rooms: i64,
    pub messages: i64,
    pub live_sessions: i64,
    pub attachments: i64,
}

pub fn counts(conn: &mut DbConn) -> Result<Counts> {
    let now = Timestamp::now().0;
    Ok(Counts {
        users: users::table.count().get_result(conn)?,
        active_users: users::table
            .filter(users::is_active.eq(true))
            .count()
            .get_result(conn)?,
        staff: users::table
            .filter(users::is_staff.eq(true))
            .count()
            .get_result(conn)?,
        rooms: rooms::table.count().get_result(conn)?,
        archived_rooms: rooms::table
            .filter(rooms::archived.eq(true))
            .count()
            .get_result(conn)?,
        messages: messages::table.count().get_result(conn)?,
        live_sessions: sessions::table
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(now))
            .count()
            .get_result(conn)?,
        attachments: attachments::table.count().get_result(conn)?,
    })
}

// ---------------------------------------------------------------------------- users

/// How the user list is ordered. Each order has a unique key, so the cursor is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserSort {
    #[default]
    Newest,
    Oldest,
    Username,
}

impl UserSort {
    pub fn parse(s: &str) -> UserSort {
        match s {
            "oldest" => UserSort::Oldest,
            "username" => UserSort::Username,
            _ => UserSort::Newest,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UserSort::Newest => "newest",
            UserSort::Oldest => "oldest",
            UserSort::Username => "username",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// Part of the username or display name, any case.
    pub search: Option<String>,
    pub active: Option<bool>,
    pub staff: Option<bool>,
    pub sort: UserSort,
    /// The previous page's `next`: an id, or a username key for [`UserSort::Username`].
    pub after: Option<String>,
}

pub fn list_users(
    conn: &mut DbConn,
    query: &UserQuery,
    limit: i64,
) -> Result<Listed<User, String>> {
    let limit = clamp_limit(limit);
    let mut q = users::table
        .select(UserRow::as_select())
        .limit(limit + 1)
        .into_boxed();
    if let Some(s) = query
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let pattern = like_contains(s);
        // Display names are not case-folded in the table; match them as typed, too.
        let display = format!("%{}%", escape_like(s));
        q = q.filter(
            users::username_key
                .like(pattern)
                .escape('\\')
                .or(users::display_name.like(display).escape('\\')),
        );
    }
    if let Some(active) = query.active {
        q = q.filter(users::is_active.eq(active));
    }
    if let Some(staff) = query.staff {
        q = q.filter(users::is_staff.eq(staff));
    }
    let after = query.after.as_deref().filter(|s| !s.is_empty());
    let id_after = || -> Result<Option<i64>> {
        after
            .map(|a| {
                a.parse::<i64>()
                    .map_err(|_| DomainError::invalid("after", "not a user id"))
            })
            .transpose()
    };
    q = match query.sort {
        UserSort::Newest => {
            if let Some(a) = id_after()? {
                q = q.filter(users::id.lt(a));
            }
            q.order(users::id.desc())
        }
        UserSort::Oldest => {
            if let Some(a) = id_after()? {
                q = q.filter(users::id.gt(a));
            }
            q.order(users::id.asc())
        }
        UserSort::Username => {
            if let Some(a) = after {
                q = q.filter(users::username_key.gt(a.to_owned()));
            }
            q.order(users::username_key.asc())
        }
    };
    let rows: Vec<User> = q
        .load::<UserRow>(conn)?
        .into_iter()
        .map(User::from)
        .collect();
    let sort = query.sort;
    Ok(split_page(rows, limit, |u: &User| match sort {
        UserSort::Username => u.username.to_ascii_lowercase(),
        _ => u.id.0.to_string(),
    }))
}

/// Users by id, for showing names next to ids (audit log, sessions).
pub fn usernames(conn: &mut DbConn, ids: &[UserId]) -> Result<BTreeMap<UserId, String>> {
    let ids: Vec<i64> = ids.iter().map(|u| u.0).collect();
    let rows: Vec<(i64, String)> = users::table
        .filter(users::id.eq_any(&ids))
        .select((users::id, users::username))
        .load(conn)?;
    Ok(rows.into_iter().map(|(i, n)| (UserId(i), n)).collect())
}

/// A user's groups and directly granted permissions.
pub fn user_access(
    conn: &mut DbConn,
    user: UserId,
) -> Result<(BTreeSet<GroupId>, BTreeSet<Permission>)> {
    let groups: Vec<i64> = user_groups::table
        .filter(user_groups::user_id.eq(user.0))
        .select(user_groups::group_id)
        .load(conn)?;
    let perms: Vec<String> = user_permissions::table
        .filter(user_permissions::user_id.eq(user.0))
        .select(user_permissions::permission)
        .load(conn)?;
    Ok((
        groups.into_iter().map(GroupId).collect(),
        perms.iter().filter_map(|p| Permission::parse(p)).collect(),
    ))
}

/// Replaces a user's groups and direct permissions in one transaction.
pub fn set_user_access(
    conn: &mut DbConn,
    user: UserId,
    groups: &BTreeSet<GroupId>,
    perms: &BTreeSet<Permission>,
) -> Result<()> {
    write_tx(conn, |conn| {
        crate::repo::user::find(conn, user)?;
        let known: Vec<i64> = auth_groups::table
            .filter(auth_groups::id.eq_any(groups.iter().map(|g| g.0).collect::<Vec<_>>()))
            .select(auth_groups::id)
            .load(conn)?;
        if known.len() != groups.len() {
            return Err(DomainError::invalid("groups", "unknown group"));
        }
        diesel::delete(user_groups::table.filter(user_groups::user_id.eq(user.0))).execute(conn)?;
        for g in groups {
            diesel::insert_into(user_groups::table)
                .values((
                    user_groups::user_id.eq(user.0),
                    user_groups::group_id.eq(g.0),
                ))
                .execute(conn)?;
        }
        diesel::delete(user_permissions::table.filter(user_permissions::user_id.eq(user.0)))
            .execute(conn)?;
        for p in perms {
            diesel::insert_into(user_permissions::table)
                .values((
                    user_permissions::user_id.eq(user.0),
                    user_permissions::permission.eq(p.as_str()),
                ))
                .execute(conn)?;
        }
        Ok(())
    })
}

// --------------------------------------------------------------------------- groups

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupInfo {
    pub id: GroupId,
    pub name: String,
    pub permissions: BTreeSet<Permission>,
    pub members: i64,
}

/// Every group with its permissions and member count, by name. Groups are few (a
/// handful of staff roles), so this list is not paginated.
pub fn groups(conn: &mut DbConn) -> Result<Vec<GroupInfo>> {
    let groups: Vec<(i64, String)> = auth_groups::table
        .select((auth_groups::id, auth_groups::name))
        .order(auth_groups::name.asc())
        .load(conn)?;
    let perms: Vec<(i64, String)> = group_permissions::table
        .select((group_permissions::group_id, group_permissions::permission))
        .load(conn)?;
    let members: Vec<(i64, i64)> = user_groups::table
        .group_by(user_groups::group_id)
        .select((user_groups::group_id, diesel::dsl::count_star()))
        .load(conn)?;
    let members: BTreeMap<i64, i64> = members.into_iter().collect();
    Ok(groups
        .into_iter()
        .map(|(id, name)| GroupInfo {
            id: GroupId(id),
            name,
            permissions: perms
                .iter()
                .filter(|(g, _)| *g == id)
                .filter_map(|(_, p)| Permission::parse(p))
                .collect(),
            members: members.get(&id).copied().unwrap_or(0),
        })
        .collect())
}

pub fn group(conn: &mut DbConn, id: GroupId) -> Result<GroupInfo> {
    groups(conn)?
        .into_iter()
        .find(|g| g.id == id)
        .ok_or(DomainError::NotFound)
}

/// Creates a group; a taken name is a conflict.
pub fn create_group(conn: &mut DbConn, name: &str) -> Result<GroupId> {
    let name = crate::model::parse_label("name", name, 1, 80)?;
    write_tx(conn, |conn| {
        let taken: i64 = auth_groups::table
            .filter(auth_groups::name.eq(&name))
            .count()
            .get_result(conn)?;
        if taken > 0 {
            return Err(DomainError::Conflict(format!(
                "a group named {name} exists"
            )));
        }
        crate::repo::group::create(conn, &name)
    })
}

/// Replaces a group's name and permissions.
pub fn update_group(
    conn: &mut DbConn,
    id: GroupId,
    name: &str,
    perms: &BTreeSet<Permission>,
) -> Result<()> {
    let name = crate::model::parse_label("name", name, 1, 80)?;
    write_tx(conn, |conn| {
        let taken: i64 = auth_groups::table
            .filter(auth_groups::name.eq(&name))
            .filter(auth_groups::id.ne(id.0))
            .count()
            .get_result(conn)?;
        if taken > 0 {
            return Err(DomainError::Conflict(format!(
                "a group named {name} exists"
            )));
        }
        let n = diesel::update(auth_groups::table.find(id.0))
            .set(auth_groups::name.eq(&name))
            .execute(conn)?;
        if n == 0 {
            return Err(DomainError::NotFound);
        }
        diesel::delete(group_permissions::table.filter(group_permissions::group_id.eq(id.0)))
            .execute(conn)?;
        for p in perms {
            diesel::insert_into(group_permissions::table)
                .values((
                    group_permissions::group_id.eq(id.0),
                    group_permissions::permission.eq(p.as_str()),
                ))
                .execute(conn)?;
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------- rooms

#[derive(Debug, Clone, Default)]
pub struct RoomQuery {
    /// Part of the slug or name.
    pub search: Option<String>,
    pub kind: Option<crate::model::RoomKind>,
    pub archived: Option<bool>,
    pub after: Option<RoomId>,
}

/// Rooms of every kind, by id.
pub fn list_rooms(
    conn: &mut DbConn,
    query: &RoomQuery,
    limit: i64,
) -> Result<Listed<Room, RoomId>> {
    let limit = clamp_limit(limit);
    let mut q = rooms::table
        .select(RoomRow::as_select())
        .order(rooms::id.asc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(s) = query
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        q = q.filter(
            rooms::slug
                .like(like_contains(s))
                .escape('\\')
                .or(rooms::name
                    .like(format!("%{}%", escape_like(s)))
                    .escape('\\')),
        );
    }
    if let Some(kind) = query.kind {
        q = q.filter(rooms::kind.eq(kind.as_str()));
    }
    if let Some(archived) = query.archived {
        q = q.filter(rooms::archived.eq(archived));
    }
    if let Some(after) = query.after {
        q = q.filter(rooms::id.gt(after.0));
    }
    let rows = q
        .load::<RoomRow>(conn)?
        .into_iter()
        .map(Room::try_from)
        .collect::<Result<Vec<_>>>()?;
    Ok(split_page(rows, limit, |r: &Room| r.id))
}

/// How many messages and members a room has (shown before deleting it).
pub fn room_size(conn: &mut DbConn, room: RoomId) -> Result<(i64, i64)> {
    use crate::db::schema::memberships;
    let messages: i64 = messages::table
        .filter(messages::room_id.eq(room.0))
        .count()
        .get_result(conn)?;
    let members: i64 = memberships::table
        .filter(memberships::room_id.eq(room.0))
        .count()
        .get_result(conn)?;
    Ok((messages, members))
}

// ------------------------------------------------------------------------- messages

#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    pub room: Option<RoomId>,
    pub author: Option<UserId>,
    /// Unix microseconds, inclusive.
    pub from: Option<Timestamp>,
    /// Unix microseconds, exclusive.
    pub until: Option<Timestamp>,
    /// Newest first: the page before this id.
    pub before: Option<MessageId>,
}

/// A message without its body: what staff without `messages.view` may see.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MessageMeta {
    pub id: MessageId,
    pub room_id: RoomId,
    pub room_slug: String,
    pub room_kind: String,
    pub author: Option<String>,
    pub kind: MessageKind,
    pub created_at: Timestamp,
    pub edited_at: Option<Timestamp>,
    pub deleted_at: Option<Timestamp>,
}

pub fn list_messages(
    conn: &mut DbConn,
    query: &MessageQuery,
    limit: i64,
) -> Result<Listed<MessageMeta, MessageId>> {
    let limit = clamp_limit(limit);
    type Row = (
        i64,
        i64,
        String,
        String,
        Option<String>,
        String,
        i64,
        Option<i64>,
        Option<i64>,
    );
    let mut q = messages::table
        .inner_join(rooms::table)
        .left_join(users::table)
        .select((
            messages::id,
            messages::room_id,
            rooms::slug,
            rooms::kind,
            users::username.nullable(),
            messages::kind,
            messages::created_at,
            messages::edited_at,
            messages::deleted_at,
        ))
        .order(messages::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(r) = query.room {
        q = q.filter(messages::room_id.eq(r.0));
    }
    if let Some(a) = query.author {
        q = q.filter(messages::author_id.eq(a.0));
    }
    if let Some(f) = query.from {
        q = q.filter(messages::created_at.ge(f.0));
    }
    if let Some(u) = query.until {
        q = q.filter(messages::created_at.lt(u.0));
    }
    if let Some(b) = query.before {
        q = q.filter(messages::id.lt(b.0));
    }
    let rows: Vec<Row> = q.load(conn)?;
    let rows = rows
        .into_iter()
        .map(
            |(id, room_id, slug, room_kind, author, kind, created, edited, deleted)| MessageMeta {
                id: MessageId(id),
                room_id: RoomId(room_id),
                room_slug: slug,
                room_kind,
                author,
                kind: MessageKind::parse(&kind).unwrap_or(MessageKind::Text),
                created_at: Timestamp(created),
                edited_at: edited.map(Timestamp),
                deleted_at: deleted.map(Timestamp),
            },
        )
        .collect();
    Ok(split_page(rows, limit, |m: &MessageMeta| m.id))
}

// ------------------------------------------------------------------------- sessions

#[derive(Debug, Clone, Default)]
pub struct SessionQuery {
    pub user: Option<UserId>,
    /// Only sessions that are neither revoked nor expired.
    pub live_only: bool,
    /// Newest first: the page before this id.
    pub before: Option<SessionId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRowView {
    pub session: Session,
    pub username: String,
}

pub fn list_sessions(
    conn: &mut DbConn,
    query: &SessionQuery,
    limit: i64,
) -> Result<Listed<SessionRowView, SessionId>> {
    let limit = clamp_limit(limit);
    type Row = (i64, i64, String, String, i64, i64, i64, Option<i64>, String);
    let mut q = sessions::table
        .inner_join(users::table)
        .select((
            sessions::id,
            sessions::user_id,
            sessions::user_agent,
            sessions::ip,
            sessions::created_at,
            sessions::last_seen_at,
            sessions::expires_at,
            sessions::revoked_at,
            users::username,
        ))
        .order(sessions::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(u) = query.user {
        q = q.filter(sessions::user_id.eq(u.0));
    }
    if query.live_only {
        q = q
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(Timestamp::now().0));
    }
    if let Some(b) = query.before {
        q = q.filter(sessions::id.lt(b.0));
    }
    let rows: Vec<Row> = q.load(conn)?;
    let rows = rows
        .into_iter()
        .map(
            |(id, user, ua, ip, created, seen, expires, revoked, username)| SessionRowView {
                session: Session {
                    id: SessionId(id),
                    user_id: UserId(user),
                    user_agent: ua,
                    ip,
                    created_at: Timestamp(created),
                    last_seen_at: Timestamp(seen),
                    expires_at: Timestamp(expires),
                    revoked_at: revoked.map(Timestamp),
                },
                username,
            },
        )
        .collect();
    Ok(split_page(rows, limit, |s: &SessionRowView| s.session.id))
}

// ---------------------------------------------------------------------- attachments
// The admin's views carry the room slug and the uploader's name joined in (for lists
// and audit details); `repo::attachment` holds the plain operations the media routes use.

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AttachmentMeta {
    pub id: AttachmentId,
    pub room_id: RoomId,
    pub room_slug: String,
    pub message_id: Option<MessageId>,
    pub uploader: Option<String>,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub storage_key: String,
    pub thumbnail_key: Option<String>,
    pub created_at: Timestamp,
}

/// The attachment columns with the room slug and uploader's name (a macro because the
/// boxed query's type is unwieldy to spell out).
macro_rules! attachment_select {
    () => {
        attachments::table
            .inner_join(rooms::table)
            .left_join(users::table.on(attachments::uploader_id.eq(users::id.nullable())))
            .select((
                attachments::id,
                attachments::room_id,
                rooms::slug,
                attachments::message_id,
                users::username.nullable(),
                attachments::content_type,
                attachments::size,
                attachments::sha256,
                attachments::storage_key,
                attachments::thumbnail_key,
                attachments::created_at,
            ))
    };
}

#[derive(Debug, Clone, Default)]
pub struct AttachmentQuery {
    pub room: Option<RoomId>,
    pub before: Option<AttachmentId>,
}

pub fn list_attachments(
    conn: &mut DbConn,
    query: &AttachmentQuery,
    limit: i64,
) -> Result<Listed<AttachmentMeta, AttachmentId>> {
    let limit = clamp_limit(limit);
    let mut q = attachment_select!().limit(limit + 1).into_boxed();
    if let Some(r) = query.room {
        q = q.filter(attachments::room_id.eq(r.0));
    }
    if let Some(b) = query.before {
        q = q.filter(attachments::id.lt(b.0));
    }
    let rows: Vec<AttachmentRow> = q.order(attachments::id.desc()).load(conn)?;
    let rows = rows.into_iter().map(attachment_meta).collect();
    Ok(split_page(rows, limit, |a: &AttachmentMeta| a.id))
}

pub fn find_attachment(conn: &mut DbConn, id: AttachmentId) -> Result<AttachmentMeta> {
    let row: AttachmentRow = attachment_select!()
        .filter(attachments::id.eq(id.0))
        .first(conn)?;
    Ok(attachment_meta(row))
}

/// Deletes the attachment row and returns it, so the caller can remove the stored files.
pub fn delete_attachment(conn: &mut DbConn, id: AttachmentId) -> Result<AttachmentMeta> {
    write_tx(conn, |conn| {
        let meta = find_attachment(conn, id)?;
        diesel::delete(attachments::table.find(id.0)).execute(conn)?;
        Ok(meta)
    })
}

type AttachmentRow = (
    i64,
    i64,
    String,
    Option<i64>,
    Option<String>,
    String,
    i64,
    String,
    String,
    Option<String>,
    i64,
);

fn attachment_meta(r: AttachmentRow) -> AttachmentMeta {
    AttachmentMeta {
        id: AttachmentId(r.0),
        room_id: RoomId(r.1),
        room_slug: r.2,
        message_id: r.3.map(MessageId),
        uploader: r.4,
        content_type: r.5,
        size: r.6,
        sha256: r.7,
        storage_key: r.8,
        thumbnail_key: r.9,
        created_at: Timestamp(r.10),
    }
}

// ---------------------------------------------------------------------------- audit

/// The audit log, newest first, with the actor's username, a keyset page before `before`.
pub fn list_audit(
    conn: &mut DbConn,
    before: Option<i64>,
    limit: i64,
) -> Result<Listed<(crate::model::AuditEntry, Option<String>), i64>> {
    // One less than the hard cap, so asking for one extra row still detects a next page.
    let limit = clamp_limit(limit).min(crate::repo::MAX_PAGE - 1);
    let entries = crate::repo::audit::list(conn, before, limit + 1)?;
    let actors: Vec<UserId> = entries.iter().filter_map(|e| e.actor_id).collect();
    let names = usernames(conn, &actors)?;
    let rows = entries
        .into_iter()
        .map(|e| {
            let name = e.actor_id.and_then(|a| names.get(&a).cloned());
            (e, name)
        })
        .collect();
    Ok(split_page(rows, limit, |(e, _)| e.id))
}

/// How many audit entries exist (the dashboard shows the newest few via [`list_audit`]).
pub fn audit_count(conn: &mut DbConn) -> Result<i64> {
    Ok(audit_log::table.count().get_result(conn)?)
}
