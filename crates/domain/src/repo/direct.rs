//! Private chats (`direct` rooms): one per set of people, found again rather than made
//! twice; and the user picker that starts them.
//!
//! A private chat has 2 to [`MAX_MEMBERS`] members, all with the plain `member` role (no
//! one moderates a private chat; `permissions` refuses managing it). Its slug is random
//! (`dm-<hex>`), so it says nothing about who is in it; only members can read it.

use crate::{
    db::{
        DbConn,
        schema::{memberships, rooms, users},
        write_tx,
    },
    error::{DomainError, Result},
    ids::{RoomId, UserId},
    model::{ROOM_NAME_MAX, Room, RoomKind, RoomRole, User},
    repo::{self, room::NewRoom, user::UserRow},
};
use diesel::prelude::*;

/// Most people in one private chat, the creator included.
pub const MAX_MEMBERS: usize = 8;

/// The outcome of [`open`].
#[derive(Debug, Clone)]
pub struct Direct {
    pub room: Room,
    /// Every member, by username.
    pub members: Vec<User>,
    /// False when an existing chat with exactly these people was returned.
    pub created: bool,
}

/// Opens the private chat between `creator` and the users named: the existing one with
/// exactly these members, else a new one. Unknown or inactive names are `Invalid`; a
/// named user who blocked the creator makes it `Forbidden`.
pub fn open(conn: &mut DbConn, creator: &User, usernames: &[String]) -> Result<Direct> {
    let mut others: Vec<User> = Vec::new();
    for name in usernames {
        let user = repo::user::find_by_username(conn, name)?
            .filter(|u| u.is_active)
            .ok_or_else(|| DomainError::invalid("usernames", format!("no such user: {name}")))?;
        if user.id != creator.id && !others.iter().any(|o| o.id == user.id) {
            others.push(user);
        }
    }
    if others.is_empty() || others.len() + 1 > MAX_MEMBERS {
        return Err(DomainError::invalid(
            "usernames",
            format!("name 1 to {} other people", MAX_MEMBERS - 1),
        ));
    }
    let other_ids: Vec<UserId> = others.iter().map(|u| u.id).collect();
    if repo::block::blocked_by_any(conn, creator.id, &other_ids)? {
        return Err(DomainError::Forbidden);
    }
    let mut members = others;
    members.push(creator.clone());
    members.sort_by_key(|u| u.username.to_ascii_lowercase());
    let mut ids: Vec<UserId> = members.iter().map(|u| u.id).collect();
    ids.sort();
    write_tx(conn, |conn| {
        lock_member_set(conn, &ids)?;
        if let Some(room) = find_existing(conn, &ids)? {
            return Ok(Direct {
                room,
                members: members.clone(),
                created: false,
            });
        }
        let room = repo::room::create(
            conn,
            &NewRoom {
                slug: random_slug()?,
                name: chat_name(&members),
                topic: String::new(),
                kind: RoomKind::Direct,
                // Set below: the creator is recorded but gets no owner powers.
                created_by: None,
            },
        )?;
        for id in &ids {
            repo::room::add_member(conn, room.id, *id, RoomRole::Member)?;
        }
        diesel::update(rooms::table.find(room.id.0))
            .set(rooms::created_by.eq(creator.id.0))
            .execute(conn)?;
        let room = repo::room::find(conn, room.id)?;
        Ok(Direct {
            room,
            members: members.clone(),
            created: true,
        })
    })
}

/// The direct room whose members are exactly `ids` (sorted, distinct), if any.
pub fn find_existing(conn: &mut DbConn, ids: &[UserId]) -> Result<Option<Room>> {
    let raw: Vec<i64> = ids.iter().map(|u| u.0).collect();
    let n = raw.len() as i64;
    // Direct rooms holding all of them...
    let candidates: Vec<i64> = memberships::table
        .inner_join(rooms::table)
        .filter(rooms::kind.eq(RoomKind::Direct.as_str()))
        .filter(memberships::user_id.eq_any(&raw))
        .group_by(memberships::room_id)
        .having(diesel::dsl::count_star().eq(n))
        .select(memberships::room_id)
        .load(conn)?;
    // ...and nobody else.
    for room in candidates {
        let total: i64 = memberships::table
            .filter(memberships::room_id.eq(room))
            .count()
            .get_result(conn)?;
        if total == n {
            return repo::room::find(conn, RoomId(room)).map(Some);
        }
    }
    Ok(None)
}

/// Serialises concurrent opens of the same chat. SQLite's write transaction already
/// holds the database lock; PostgreSQL takes an advisory lock on the member set.
fn lock_member_set(conn: &mut DbConn, ids: &[UserId]) -> Result<()> {
    if let DbConn::Postgres(c) = conn {
        // FNV-1a over the sorted ids: equal sets lock the same key.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for id in ids {
            for b in id.0.to_le_bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<diesel::sql_types::BigInt, _>(h as i64)
            .execute(c)?;
    }
    Ok(())
}

fn random_slug() -> Result<String> {
    let mut raw = [0u8; 8];
    getrandom::fill(&mut raw).map_err(|e| DomainError::Internal(format!("randomness: {e}")))?;
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("dm-{hex}"))
}

/// "Ann, Bob, Cat": display names by username, cut to fit a room name.
fn chat_name(members: &[User]) -> String {
    let full = members
        .iter()
        .map(|u| u.display_name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if full.chars().count() <= ROOM_NAME_MAX {
        return full;
    }
    let mut cut: String = full.chars().take(ROOM_NAME_MAX - 1).collect();
    cut.push('…');
    cut
}

/// The user picker: active users whose username starts with `prefix` (any case), by
/// username, a keyset page after the username `after`.
pub fn search_users(
    conn: &mut DbConn,
    prefix: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<User>> {
    let mut q = users::table
        .filter(users::is_active.eq(true))
        .select(UserRow::as_select())
        .order(users::username_key.asc())
        .limit(repo::clamp_limit(limit))
        .into_boxed();
    if let Some(p) = prefix.map(str::trim).filter(|p| !p.is_empty()) {
        let pattern = format!("{}%", repo::user::escape_like(&p.to_ascii_lowercase()));
        q = q.filter(users::username_key.like(pattern).escape('\\'));
    }
    if let Some(after) = after {
        q = q.filter(users::username_key.gt(after.to_ascii_lowercase()));
    }
    Ok(q.load::<UserRow>(conn)?
        .into_iter()
        .map(User::from)
        .collect())
}
