//! Users: creation, look-up, passwords, activation.

use crate::{
    auth,
    db::{DbConn, schema::users, write_tx},
    error::{DomainError, Result},
    ids::{RoomId, UserId},
    model::{DISPLAY_NAME_MAX, RoomRole, User, Username, parse_label},
    per_backend, repo,
    time::Timestamp,
};
use diesel::prelude::*;

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = users)]
pub(crate) struct UserRow {
    id: i64,
    username: String,
    display_name: String,
    is_active: bool,
    is_staff: bool,
    is_superuser: bool,
    language: Option<String>,
    created_at: i64,
    last_login_at: Option<i64>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> User {
        User {
            id: UserId(r.id),
            username: r.username,
            display_name: r.display_name,
            is_active: r.is_active,
            is_staff: r.is_staff,
            is_superuser: r.is_superuser,
            language: r.language,
            created_at: Timestamp(r.created_at),
            last_login_at: r.last_login_at.map(Timestamp),
        }
    }
}

/// What it takes to create an account.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    /// Empty means "same as the username".
    pub display_name: String,
    pub password: String,
    pub is_staff: bool,
    pub is_superuser: bool,
}

/// Creates a user (and makes them a member of `general`, when it exists). A taken
/// username, whatever its case, is a [`DomainError::Conflict`].
pub fn create(conn: &mut DbConn, new: &NewUser, bcrypt_cost: u32) -> Result<User> {
    let username = Username::parse(&new.username)?;
    let display = if new.display_name.trim().is_empty() {
        username.as_str()
    } else {
        &new.display_name
    };
    let display_name = parse_label("display_name", display, 1, DISPLAY_NAME_MAX)?;
    let hash = auth::hash_password(&new.password, bcrypt_cost)?;
    let now = Timestamp::now().0;
    write_tx(conn, |conn| {
        let taken: i64 = users::table
            .filter(users::username_key.eq(username.key()))
            .count()
            .get_result(conn)?;
        if taken > 0 {
            return Err(DomainError::Conflict(format!(
                "the username {username} is taken"
            )));
        }
        let values = (
            users::username.eq(username.as_str()),
            users::username_key.eq(username.key()),
            users::display_name.eq(&display_name),
            users::password_hash.eq(&hash),
            users::is_active.eq(true),
            users::is_staff.eq(new.is_staff || new.is_superuser),
            users::is_superuser.eq(new.is_superuser),
            users::created_at.eq(now),
        );
        let row: UserRow = per_backend!(conn, c => diesel::insert_into(users::table)
            .values(values)
            .returning(UserRow::as_returning())
            .get_result(c))?;
        let user = User::from(row);
        if let Some(general) = repo::room::find_by_slug(conn, repo::room::GENERAL)? {
            repo::room::add_member(conn, general.id, user.id, RoomRole::Member)?;
        }
        Ok(user)
    })
}

pub fn find(conn: &mut DbConn, id: UserId) -> Result<User> {
    let row: UserRow = users::table
        .find(id.0)
        .select(UserRow::as_select())
        .first(conn)?;
    Ok(row.into())
}

pub fn find_by_username(conn: &mut DbConn, name: &str) -> Result<Option<User>> {
    let Ok(name) = Username::parse(name) else {
        return Ok(None);
    };
    let row: Option<UserRow> = users::table
        .filter(users::username_key.eq(name.key()))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?;
    Ok(row.map(User::from))
}

/// The user and their password hash, for [`auth::authenticate`].
pub(crate) fn find_with_hash(conn: &mut DbConn, name: &Username) -> Result<Option<(User, String)>> {
    let row: Option<(UserRow, String)> = users::table
        .filter(users::username_key.eq(name.key()))
        .select((UserRow::as_select(), users::password_hash))
        .first(conn)
        .optional()?;
    Ok(row.map(|(u, h)| (u.into(), h)))
}

pub fn set_password(conn: &mut DbConn, id: UserId, password: &str, bcrypt_cost: u32) -> Result<()> {
    let hash = auth::hash_password(password, bcrypt_cost)?;
    let n = diesel::update(users::table.find(id.0))
        .set(users::password_hash.eq(hash))
        .execute(conn)?;
    if n == 0 {
        return Err(DomainError::NotFound);
    }
    Ok(())
}

/// Deactivating also revokes every session of the user.
pub fn set_active(conn: &mut DbConn, id: UserId, active: bool) -> Result<()> {
    write_tx(conn, |conn| {
        let n = diesel::update(users::table.find(id.0))
            .set(users::is_active.eq(active))
            .execute(conn)?;
        if n == 0 {
            return Err(DomainError::NotFound);
        }
        if !active {
            repo::session::revoke_all(conn, id)?;
        }
        Ok(())
    })
}

pub fn set_display_name(conn: &mut DbConn, id: UserId, name: &str) -> Result<()> {
    let name = parse_label("display_name", name, 1, DISPLAY_NAME_MAX)?;
    diesel::update(users::table.find(id.0))
        .set(users::display_name.eq(name))
        .execute(conn)?;
    Ok(())
}

pub fn set_language(conn: &mut DbConn, id: UserId, language: Option<&str>) -> Result<()> {
    diesel::update(users::table.find(id.0))
        .set(users::language.eq(language))
        .execute(conn)?;
    Ok(())
}

pub fn set_staff(conn: &mut DbConn, id: UserId, staff: bool, superuser: bool) -> Result<()> {
    diesel::update(users::table.find(id.0))
        .set((
            users::is_staff.eq(staff || superuser),
            users::is_superuser.eq(superuser),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn record_login(conn: &mut DbConn, id: UserId) -> Result<()> {
    diesel::update(users::table.find(id.0))
        .set(users::last_login_at.eq(Timestamp::now().0))
        .execute(conn)?;
    Ok(())
}

pub fn count(conn: &mut DbConn) -> Result<i64> {
    Ok(users::table.count().get_result(conn)?)
}

/// Users ordered by id, a page after `after`, optionally filtered by a username prefix.
pub fn list(
    conn: &mut DbConn,
    search: Option<&str>,
    after: Option<UserId>,
    limit: i64,
) -> Result<Vec<User>> {
    let mut q = users::table
        .select(UserRow::as_select())
        .order(users::id.asc())
        .limit(repo::clamp_limit(limit))
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(users::id.gt(after.0));
    }
    if let Some(s) = search.map(str::trim).filter(|s| !s.is_empty()) {
        let pattern = format!("{}%", escape_like(&s.to_ascii_lowercase()));
        q = q.filter(users::username_key.like(pattern).escape('\\'));
    }
    Ok(q.load::<UserRow>(conn)?
        .into_iter()
        .map(User::from)
        .collect())
}

/// The members of a room, for sidebars and member lists.
pub fn members_of(conn: &mut DbConn, room: RoomId) -> Result<Vec<(User, RoomRole)>> {
    use crate::db::schema::memberships;
    let rows: Vec<(UserRow, String)> = memberships::table
        .inner_join(users::table)
        .filter(memberships::room_id.eq(room.0))
        .select((UserRow::as_select(), memberships::role))
        .order(users::username_key.asc())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(u, role)| {
            (
                User::from(u),
                RoomRole::parse(&role).unwrap_or(RoomRole::ReadOnly),
            )
        })
        .collect())
}

pub(crate) fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
