//! `@username` mentions and the read state built on them. Bodies are encrypted at rest,
//! so mentions are found when a message is posted (and again when it is edited) and stored
//! as rows; unread and mention counts are then plain, bounded index scans.

use crate::{
    db::{
        DbConn,
        schema::{memberships, mentions, messages, users},
    },
    error::Result,
    ids::{MessageId, RoomId, UserId},
    model::USERNAME_MAX,
};
use diesel::prelude::*;

/// At most this many people are recorded as mentioned by one message.
pub const MAX_MENTIONS_PER_MESSAGE: usize = 50;

fn username_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// The username keys (lowercase) mentioned in a text: `@name` at the start or after a
/// character that cannot be part of a username (so `ann@example.com` mentions nobody).
/// A trailing `.`/`-`/`_` is also tried without it (`thanks @bob.`).
pub fn extract(body: &str) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let mut prev: Option<char> = None;
    for (i, c) in body.char_indices() {
        if c == '@' && !prev.is_some_and(username_char) && prev != Some('@') {
            let rest = &body[i + 1..];
            let end = rest
                .char_indices()
                .find(|(_, c)| !username_char(*c))
                .map_or(rest.len(), |(j, _)| j);
            let name = &rest[..end];
            let trimmed = name.trim_end_matches(['.', '-', '_']);
            for candidate in [name, trimmed] {
                let n = candidate.chars().count();
                if (2..=USERNAME_MAX).contains(&n) {
                    let key = candidate.to_ascii_lowercase();
                    if !keys.contains(&key) {
                        keys.push(key);
                    }
                }
            }
        }
        prev = Some(c);
        if keys.len() >= MAX_MENTIONS_PER_MESSAGE * 2 {
            break;
        }
    }
    keys
}

/// Stores who `body` mentions: active members of the room other than the author. Called
/// inside `message::post`'s transaction, only when the message is new.
pub(crate) fn record(
    conn: &mut DbConn,
    message: MessageId,
    room: RoomId,
    author: Option<UserId>,
    body: &str,
) -> Result<usize> {
    let keys = extract(body);
    if keys.is_empty() {
        return Ok(0);
    }
    let mut ids: Vec<i64> = users::table
        .inner_join(memberships::table)
        .filter(memberships::room_id.eq(room.0))
        .filter(users::username_key.eq_any(&keys))
        .filter(users::is_active.eq(true))
        .select(users::id)
        .load(conn)?;
    ids.retain(|id| Some(UserId(*id)) != author);
    ids.truncate(MAX_MENTIONS_PER_MESSAGE);
    for id in &ids {
        diesel::insert_into(mentions::table)
            .values((
                mentions::message_id.eq(message.0),
                mentions::user_id.eq(id),
                mentions::room_id.eq(room.0),
            ))
            .execute(conn)?;
    }
    Ok(ids.len())
}

/// Replaces the mentions of an edited message with those of its new text (people named
/// only in the old text are no longer mentioned). Called inside `message::edit`'s
/// transaction.
pub(crate) fn rerecord(
    conn: &mut DbConn,
    message: MessageId,
    room: RoomId,
    author: Option<UserId>,
    body: &str,
) -> Result<usize> {
    diesel::delete(mentions::table.filter(mentions::message_id.eq(message.0))).execute(conn)?;
    record(conn, message, room, author, body)
}

/// A room's unread state for one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unread {
    /// Live messages by others after the read marker, at most the cap.
    pub unread: i64,
    /// Of those, the ones mentioning the member, at most the cap.
    pub mentions: i64,
}

/// Counts, bounded by `cap` so a busy room costs at most `cap` index entries each.
pub fn unread(
    conn: &mut DbConn,
    room: RoomId,
    user: UserId,
    last_read: Option<MessageId>,
    cap: i64,
) -> Result<Unread> {
    let after = last_read.map_or(0, |m| m.0);
    let unread: Vec<i64> = messages::table
        .filter(messages::room_id.eq(room.0))
        .filter(messages::id.gt(after))
        .filter(messages::deleted_at.is_null())
        .filter(
            messages::author_id
                .is_null()
                .or(messages::author_id.ne(user.0)),
        )
        .select(messages::id)
        .order(messages::id.asc())
        .limit(cap)
        .load(conn)?;
    let mentioned: Vec<i64> = mentions::table
        .inner_join(messages::table)
        .filter(mentions::user_id.eq(user.0))
        .filter(mentions::room_id.eq(room.0))
        .filter(mentions::message_id.gt(after))
        .filter(messages::deleted_at.is_null())
        .select(mentions::message_id)
        .order(mentions::message_id.asc())
        .limit(cap)
        .load(conn)?;
    Ok(Unread {
        unread: unread.len() as i64,
        mentions: mentioned.len() as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::extract;

    #[test]
    fn mentions_are_found_at_word_starts_only() {
        assert_eq!(extract("hi @Ann and @bob."), vec!["ann", "bob.", "bob"]);
        assert!(extract("mail ann@example.com").is_empty());
        assert!(extract("@a is too short, @@ann neither").is_empty());
        assert_eq!(extract("(@cat_9)"), vec!["cat_9"]);
        assert_eq!(extract("@dan @dan @DAN"), vec!["dan"]);
    }
}
