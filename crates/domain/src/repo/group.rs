//! Groups and permissions, Django-style: a staff member's powers are the permissions
//! granted to them directly plus those of their groups.

use crate::{
    db::{
        DbConn,
        schema::{auth_groups, group_permissions, user_groups, user_permissions},
    },
    error::Result,
    ids::{GroupId, UserId},
    per_backend,
    permissions::Permission,
};
use diesel::prelude::*;
use std::collections::BTreeSet;

pub fn create(conn: &mut DbConn, name: &str) -> Result<GroupId> {
    let name = crate::model::parse_label("name", name, 1, 80)?;
    let id: i64 = per_backend!(conn, c => diesel::insert_into(auth_groups::table)
        .values(auth_groups::name.eq(&name))
        .returning(auth_groups::id)
        .get_result(c))?;
    Ok(GroupId(id))
}

pub fn list(conn: &mut DbConn) -> Result<Vec<(GroupId, String)>> {
    let rows: Vec<(i64, String)> = auth_groups::table
        .select((auth_groups::id, auth_groups::name))
        .order(auth_groups::name.asc())
        .load(conn)?;
    Ok(rows.into_iter().map(|(id, n)| (GroupId(id), n)).collect())
}

pub fn grant_to_group(conn: &mut DbConn, group: GroupId, perm: Permission) -> Result<()> {
    let exists: i64 = group_permissions::table
        .filter(group_permissions::group_id.eq(group.0))
        .filter(group_permissions::permission.eq(perm.as_str()))
        .count()
        .get_result(conn)?;
    if exists == 0 {
        diesel::insert_into(group_permissions::table)
            .values((
                group_permissions::group_id.eq(group.0),
                group_permissions::permission.eq(perm.as_str()),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn add_user(conn: &mut DbConn, group: GroupId, user: UserId) -> Result<()> {
    let exists: i64 = user_groups::table
        .find((user.0, group.0))
        .count()
        .get_result(conn)?;
    if exists == 0 {
        diesel::insert_into(user_groups::table)
            .values((
                user_groups::user_id.eq(user.0),
                user_groups::group_id.eq(group.0),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn remove_user(conn: &mut DbConn, group: GroupId, user: UserId) -> Result<()> {
    diesel::delete(user_groups::table.find((user.0, group.0))).execute(conn)?;
    Ok(())
}

pub fn grant_to_user(conn: &mut DbConn, user: UserId, perm: Permission) -> Result<()> {
    let exists: i64 = user_permissions::table
        .find((user.0, perm.as_str()))
        .count()
        .get_result(conn)?;
    if exists == 0 {
        diesel::insert_into(user_permissions::table)
            .values((
                user_permissions::user_id.eq(user.0),
                user_permissions::permission.eq(perm.as_str()),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn revoke_from_user(conn: &mut DbConn, user: UserId, perm: Permission) -> Result<()> {
    diesel::delete(user_permissions::table.find((user.0, perm.as_str()))).execute(conn)?;
    Ok(())
}

/// Direct and group permissions of a user. Names no longer known are skipped.
pub fn effective_permissions(conn: &mut DbConn, user: UserId) -> Result<BTreeSet<Permission>> {
    let direct: Vec<String> = user_permissions::table
        .filter(user_permissions::user_id.eq(user.0))
        .select(user_permissions::permission)
        .load(conn)?;
    let via_groups: Vec<String> = group_permissions::table
        .inner_join(user_groups::table.on(user_groups::group_id.eq(group_permissions::group_id)))
        .filter(user_groups::user_id.eq(user.0))
        .select(group_permissions::permission)
        .load(conn)?;
    Ok(direct
        .iter()
        .chain(via_groups.iter())
        .filter_map(|p| Permission::parse(p))
        .collect())
}
