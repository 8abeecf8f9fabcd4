//! Rooms and memberships.

use crate::{
    db::{
        DbConn,
        schema::{memberships, rooms},
        write_tx,
    },
    error::{DomainError, Result},
    ids::{MessageId, RoomId, UserId},
    model::{
        Membership, ROOM_NAME_MAX, Room, RoomKind, RoomRole, RoomSlug, TOPIC_MAX, parse_label,
    },
    per_backend,
    time::Timestamp,
};
use diesel::prelude::*;

/// The public room every user joins (see `confab migrate`).
pub const GENERAL: &str = "general";

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = rooms)]
pub(crate) struct RoomRow {
    id: i64,
    slug: String,
    name: String,
    topic: String,
    kind: String,
    archived: bool,
    created_by: Option<i64>,
    created_at: i64,
}

impl TryFrom<RoomRow> for Room {
    type Error = DomainError;
    fn try_from(r: RoomRow) -> Result<Room> {
        Ok(Room {
            id: RoomId(r.id),
            kind: RoomKind::parse(&r.kind).ok_or_else(|| {
                DomainError::Internal(format!("room {} has kind {:?}", r.id, r.kind))
            })?,
            slug: r.slug,
            name: r.name,
            topic: r.topic,
            archived: r.archived,
            created_by: r.created_by.map(UserId),
            created_at: Timestamp(r.created_at),
        })
    }
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = memberships)]
struct MembershipRow {
    room_id: i64,
    user_id: i64,
    role: String,
    last_read_message_id: Option<i64>,
    joined_at: i64,
}

impl From<MembershipRow> for Membership {
    fn from(r: MembershipRow) -> Membership {
        Membership {
            room_id: RoomId(r.room_id),
            user_id: UserId(r.user_id),
            role: RoomRole::parse(&r.role).unwrap_or(RoomRole::ReadOnly),
            last_read: r.last_read_message_id.map(MessageId),
            joined_at: Timestamp(r.joined_at),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewRoom {
    pub slug: String,
    /// Empty means "same as the slug".
    pub name: String,
    pub topic: String,
    pub kind: RoomKind,
    /// Becomes the owner.
    pub created_by: Option<UserId>,
}

/// Creates a room; its creator, if any, becomes its owner. A taken slug is a conflict.
pub fn create(conn: &mut DbConn, new: &NewRoom) -> Result<Room> {
    let slug = RoomSlug::parse(&new.slug)?;
    let name = parse_label(
        "name",
        if new.name.trim().is_empty() {
            slug.as_str()
        } else {
            &new.name
        },
        1,
        ROOM_NAME_MAX,
    )?;
    let topic = parse_label("topic", &new.topic, 0, TOPIC_MAX)?;
    write_tx(conn, |conn| {
        if find_by_slug(conn, slug.as_str())?.is_some() {
            return Err(DomainError::Conflict(format!("a room named {slug} exists")));
        }
        let values = (
            rooms::slug.eq(slug.as_str()),
            rooms::name.eq(&name),
            rooms::topic.eq(&topic),
            rooms::kind.eq(new.kind.as_str()),
            rooms::archived.eq(false),
            rooms::created_by.eq(new.created_by.map(|u| u.0)),
            rooms::created_at.eq(Timestamp::now().0),
        );
        let row: RoomRow = per_backend!(conn, c => diesel::insert_into(rooms::table)
            .values(values)
            .returning(RoomRow::as_returning())
            .get_result(c))?;
        let room = Room::try_from(row)?;
        if let Some(owner) = new.created_by {
            add_member(conn, room.id, owner, RoomRole::Owner)?;
        }
        Ok(room)
    })
}

/// Creates `general` if it does not exist, and makes every existing user a member of it.
pub fn ensure_general(conn: &mut DbConn) -> Result<Room> {
    write_tx(conn, |conn| {
        let room = match find_by_slug(conn, GENERAL)? {
            Some(room) => room,
            None => create(
                conn,
                &NewRoom {
                    slug: GENERAL.into(),
                    name: "General".into(),
                    topic: String::new(),
                    kind: RoomKind::Public,
                    created_by: None,
                },
            )?,
        };
        use crate::db::schema::users;
        let missing: Vec<i64> = users::table
            .filter(diesel::dsl::not(diesel::dsl::exists(
                memberships::table
                    .filter(memberships::room_id.eq(room.id.0))
                    .filter(memberships::user_id.eq(users::id)),
            )))
            .select(users::id)
            .load(conn)?;
        for user in missing {
            add_member(conn, room.id, UserId(user), RoomRole::Member)?;
        }
        Ok(room)
    })
}

pub fn find(conn: &mut DbConn, id: RoomId) -> Result<Room> {
    let row: RoomRow = rooms::table
        .find(id.0)
        .select(RoomRow::as_select())
        .first(conn)?;
    row.try_into()
}

pub fn find_by_slug(conn: &mut DbConn, slug: &str) -> Result<Option<Room>> {
    let row: Option<RoomRow> = rooms::table
        .filter(rooms::slug.eq(slug))
        .select(RoomRow::as_select())
        .first(conn)
        .optional()?;
    row.map(Room::try_from).transpose()
}

/// Adds a member, or changes the role of an existing one.
pub fn add_member(conn: &mut DbConn, room: RoomId, user: UserId, role: RoomRole) -> Result<()> {
    write_tx(conn, |conn| {
        let updated = diesel::update(memberships::table.find((room.0, user.0)))
            .set(memberships::role.eq(role.as_str()))
            .execute(conn)?;
        if updated == 0 {
            diesel::insert_into(memberships::table)
                .values((
                    memberships::room_id.eq(room.0),
                    memberships::user_id.eq(user.0),
                    memberships::role.eq(role.as_str()),
                    memberships::joined_at.eq(Timestamp::now().0),
                ))
                .execute(conn)?;
        }
        Ok(())
    })
}

pub fn remove_member(conn: &mut DbConn, room: RoomId, user: UserId) -> Result<bool> {
    Ok(diesel::delete(memberships::table.find((room.0, user.0))).execute(conn)? > 0)
}

pub fn membership(conn: &mut DbConn, room: RoomId, user: UserId) -> Result<Option<Membership>> {
    let row: Option<MembershipRow> = memberships::table
        .find((room.0, user.0))
        .select(MembershipRow::as_select())
        .first(conn)
        .optional()?;
    Ok(row.map(Membership::from))
}

/// The rooms of `ids` that exist, locked until the end of the transaction: PostgreSQL
/// `FOR UPDATE` in id order (every writer locks in the same order, so two cannot
/// deadlock); SQLite's transaction already holds the database's write lock.
pub(crate) fn lock_many(conn: &mut DbConn, ids: &[i64]) -> Result<Vec<Room>> {
    let rows: Vec<RoomRow> = match conn {
        DbConn::Postgres(c) => rooms::table
            .filter(rooms::id.eq_any(ids))
            .order(rooms::id.asc())
            .select(RoomRow::as_select())
            .for_update()
            .load(c)?,
        // On SQLite an `IN (…)` list is prepared afresh every time (diesel caches no
        // statement whose bind count varies); a batch of one room, the usual case at
        // light load, takes the cached `=`.
        DbConn::Sqlite(c) => {
            let query = rooms::table.select(RoomRow::as_select()).into_boxed();
            match ids {
                [id] => query.filter(rooms::id.eq(*id)),
                _ => query.filter(rooms::id.eq_any(ids)).order(rooms::id.asc()),
            }
            .load(c)?
        }
    };
    rows.into_iter().map(Room::try_from).collect()
}

/// The memberships of any of `users` in any of `rooms`, in one query.
pub(crate) fn memberships_among(
    conn: &mut DbConn,
    rooms: &[i64],
    users: &[i64],
) -> Result<Vec<Membership>> {
    let rows: Vec<MembershipRow> = match (conn, rooms, users) {
        // One member of one room: the cached `=` on SQLite (see `lock_many`).
        (DbConn::Sqlite(c), [room], [user]) => memberships::table
            .filter(memberships::room_id.eq(*room))
            .filter(memberships::user_id.eq(*user))
            .select(MembershipRow::as_select())
            .load(c)?,
        (conn, _, _) => memberships::table
            .filter(memberships::room_id.eq_any(rooms))
            .filter(memberships::user_id.eq_any(users))
            .select(MembershipRow::as_select())
            .load(conn)?,
    };
    Ok(rows.into_iter().map(Membership::from).collect())
}

/// The rooms a user belongs to, with their membership, by slug.
pub fn rooms_of(conn: &mut DbConn, user: UserId) -> Result<Vec<(Room, Membership)>> {
    let rows: Vec<(RoomRow, MembershipRow)> = rooms::table
        .inner_join(memberships::table)
        .filter(memberships::user_id.eq(user.0))
        .select((RoomRow::as_select(), MembershipRow::as_select()))
        .order(rooms::slug.asc())
        .load(conn)?;
    rows.into_iter()
        .map(|(r, m)| Ok((Room::try_from(r)?, Membership::from(m))))
        .collect()
}

/// Public rooms, a keyset page by id.
pub fn list_public(conn: &mut DbConn, after: Option<RoomId>, limit: i64) -> Result<Vec<Room>> {
    let mut q = rooms::table
        .filter(rooms::kind.eq(RoomKind::Public.as_str()))
        .select(RoomRow::as_select())
        .order(rooms::id.asc())
        .limit(crate::repo::clamp_limit(limit))
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(rooms::id.gt(after.0));
    }
    q.load::<RoomRow>(conn)?
        .into_iter()
        .map(Room::try_from)
        .collect()
}

pub fn member_ids(conn: &mut DbConn, room: RoomId) -> Result<Vec<UserId>> {
    let ids: Vec<i64> = memberships::table
        .filter(memberships::room_id.eq(room.0))
        .select(memberships::user_id)
        .load(conn)?;
    Ok(ids.into_iter().map(UserId).collect())
}

/// Moves the read marker forward only; an older id than the current marker is ignored.
pub fn mark_read(conn: &mut DbConn, room: RoomId, user: UserId, upto: MessageId) -> Result<()> {
    diesel::update(memberships::table.find((room.0, user.0)))
        .filter(
            memberships::last_read_message_id
                .is_null()
                .or(memberships::last_read_message_id.lt(upto.0)),
        )
        .set(memberships::last_read_message_id.eq(upto.0))
        .execute(conn)?;
    Ok(())
}

pub fn update(conn: &mut DbConn, room: RoomId, name: &str, topic: &str) -> Result<()> {
    let name = parse_label("name", name, 1, ROOM_NAME_MAX)?;
    let topic = parse_label("topic", topic, 0, TOPIC_MAX)?;
    let n = diesel::update(rooms::table.find(room.0))
        .set((rooms::name.eq(name), rooms::topic.eq(topic)))
        .execute(conn)?;
    if n == 0 {
        return Err(DomainError::NotFound);
    }
    Ok(())
}

pub fn set_archived(conn: &mut DbConn, room: RoomId, archived: bool) -> Result<()> {
    let n = diesel::update(rooms::table.find(room.0))
        .set(rooms::archived.eq(archived))
        .execute(conn)?;
    if n == 0 {
        return Err(DomainError::NotFound);
    }
    Ok(())
}

pub fn delete(conn: &mut DbConn, room: RoomId) -> Result<()> {
    if room_is_general(conn, room)? {
        return Err(DomainError::invalid(
            "room",
            "the general room cannot be deleted",
        ));
    }
    let n = diesel::delete(rooms::table.find(room.0)).execute(conn)?;
    if n == 0 {
        return Err(DomainError::NotFound);
    }
    Ok(())
}

fn room_is_general(conn: &mut DbConn, room: RoomId) -> Result<bool> {
    Ok(find_by_slug(conn, GENERAL)?.is_some_and(|g| g.id == room))
}
