//! The audit log: who did what, to what, when. Append-only.

use crate::{
    db::{DbConn, schema::audit_log},
    error::Result,
    ids::UserId,
    model::AuditEntry,
    repo::clamp_limit,
    time::Timestamp,
};
use diesel::prelude::*;

#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub actor: Option<UserId>,
    /// `users.deactivate`, `messages.delete`, `keys.rotate`, …
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: String,
    pub detail: serde_json::Value,
    pub ip: Option<&'a str>,
}

pub fn record(conn: &mut DbConn, e: &NewEntry<'_>) -> Result<()> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::actor_id.eq(e.actor.map(|a| a.0)),
            audit_log::action.eq(e.action),
            audit_log::target_type.eq(e.target_type),
            audit_log::target_id.eq(&e.target_id),
            audit_log::detail.eq(e.detail.to_string()),
            audit_log::ip.eq(e.ip),
            audit_log::created_at.eq(Timestamp::now().0),
        ))
        .execute(conn)?;
    Ok(())
}

/// Newest first, a keyset page before `before`.
pub fn list(conn: &mut DbConn, before: Option<i64>, limit: i64) -> Result<Vec<AuditEntry>> {
    type Row = (
        i64,
        Option<i64>,
        String,
        String,
        String,
        String,
        Option<String>,
        i64,
    );
    let mut q = audit_log::table
        .select((
            audit_log::id,
            audit_log::actor_id,
            audit_log::action,
            audit_log::target_type,
            audit_log::target_id,
            audit_log::detail,
            audit_log::ip,
            audit_log::created_at,
        ))
        .order(audit_log::id.desc())
        .limit(clamp_limit(limit))
        .into_boxed();
    if let Some(b) = before {
        q = q.filter(audit_log::id.lt(b));
    }
    let rows: Vec<Row> = q.load(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |(id, actor, action, target_type, target_id, detail, ip, at)| AuditEntry {
                id,
                actor_id: actor.map(UserId),
                action,
                target_type,
                target_id,
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
                ip,
                created_at: Timestamp(at),
            },
        )
        .collect())
}
