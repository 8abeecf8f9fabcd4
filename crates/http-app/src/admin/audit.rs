//! `/admin/audit`: the audit log, read-only, newest first, by keyset pages.

use super::{PAGE_SIZE, Staff, link, when};
use crate::error::AppResult;
use actix_web::{HttpResponse, get, web};
use domain::{model::AuditEntry, permissions::Permission, repo::admin};
use serde::{Deserialize, Serialize};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list);
}

#[derive(Serialize)]
pub(crate) struct EntryView {
    id: i64,
    at: String,
    actor: String,
    action: String,
    target: String,
    detail: String,
    ip: String,
}

impl EntryView {
    pub(crate) fn of((e, actor): &(AuditEntry, Option<String>)) -> EntryView {
        EntryView {
            id: e.id,
            at: when(e.created_at),
            actor: match (actor, e.actor_id) {
                (Some(name), _) => name.clone(),
                (None, Some(id)) => format!("#{id}"),
                (None, None) => "—".to_owned(),
            },
            action: e.action.clone(),
            target: format!("{} {}", e.target_type, e.target_id),
            detail: e.detail.to_string(),
            ip: e.ip.clone().unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
struct Query {
    before: Option<i64>,
}

#[get("/audit")]
async fn list(staff: Staff, q: web::Query<Query>) -> AppResult<HttpResponse> {
    staff.require(Permission::AuditView)?;
    let before = q.before;
    let page = staff
        .state()
        .db
        .run(move |c| admin::list_audit(c, before, PAGE_SIZE))
        .await?;
    let mut ctx = staff.context("audit");
    ctx.insert(
        "entries",
        &page.rows.iter().map(EntryView::of).collect::<Vec<_>>(),
    );
    ctx.insert(
        "next",
        &page
            .next
            .map(|id| link("/admin/audit", &[("before", id.to_string())])),
    );
    staff.render("admin/audit.html", &ctx)
}
