//! Blocking between users. A block is one-way: when A blocks B, B can no longer open a
//! private chat with A nor post in any private chat (`direct` room) that A is in. A keeps
//! every right; public and private rooms are not affected (they have moderators).

use crate::{
    db::{
        DbConn,
        schema::{memberships, user_blocks, users},
        write_tx,
    },
    error::{DomainError, Result},
    ids::UserId,
    model::{Room, RoomKind, User},
    repo::user::UserRow,
    time::Timestamp,
};
use diesel::prelude::*;

/// Records that `blocker` blocks `blocked`. Returns false when it already did.
pub fn block(conn: &mut DbConn, blocker: UserId, blocked: UserId) -> Result<bool> {
    if blocker == blocked {
        return Err(DomainError::invalid(
            "username",
            "you cannot block yourself",
        ));
    }
    write_tx(conn, |conn| {
        if is_blocking(conn, blocker, blocked)? {
            return Ok(false);
        }
        diesel::insert_into(user_blocks::table)
            .values((
                user_blocks::blocker_id.eq(blocker.0),
                user_blocks::blocked_id.eq(blocked.0),
                user_blocks::created_at.eq(Timestamp::now().0),
            ))
            .execute(conn)?;
        Ok(true)
    })
}

/// Lifts a block. Returns false when there was none.
pub fn unblock(conn: &mut DbConn, blocker: UserId, blocked: UserId) -> Result<bool> {
    Ok(diesel::delete(user_blocks::table.find((blocker.0, blocked.0))).execute(conn)? > 0)
}

pub fn is_blocking(conn: &mut DbConn, blocker: UserId, blocked: UserId) -> Result<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        user_blocks::table.find((blocker.0, blocked.0)),
    ))
    .get_result(conn)?)
}

/// Has any of `others` blocked `user`?
pub fn blocked_by_any(conn: &mut DbConn, user: UserId, others: &[UserId]) -> Result<bool> {
    let others: Vec<i64> = others.iter().map(|u| u.0).collect();
    Ok(diesel::select(diesel::dsl::exists(
        user_blocks::table
            .filter(user_blocks::blocked_id.eq(user.0))
            .filter(user_blocks::blocker_id.eq_any(others)),
    ))
    .get_result(conn)?)
}

/// Whether a block stops `user` posting in `room`: only in private chats, and only when
/// another member of it has blocked them. Asked on every post (socket and upload), after
/// `permissions` allowed it.
pub fn stops_posting(conn: &mut DbConn, room: &Room, user: UserId) -> Result<bool> {
    if room.kind != RoomKind::Direct {
        return Ok(false);
    }
    Ok(diesel::select(diesel::dsl::exists(
        user_blocks::table
            .inner_join(
                memberships::table.on(memberships::user_id
                    .eq(user_blocks::blocker_id)
                    .and(memberships::room_id.eq(room.id.0))),
            )
            .filter(user_blocks::blocked_id.eq(user.0)),
    ))
    .get_result(conn)?)
}

/// The users `blocker` blocks, by username.
pub fn list(conn: &mut DbConn, blocker: UserId) -> Result<Vec<User>> {
    let rows: Vec<UserRow> = user_blocks::table
        .inner_join(users::table.on(users::id.eq(user_blocks::blocked_id)))
        .filter(user_blocks::blocker_id.eq(blocker.0))
        .select(UserRow::as_select())
        .order(users::username_key.asc())
        .limit(crate::repo::MAX_PAGE)
        .load(conn)?;
    Ok(rows.into_iter().map(User::from).collect())
}
