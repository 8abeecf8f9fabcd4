//! `/admin/groups`: create groups and choose their permissions (`groups.change`).
//! Staff may put into a group only permissions they hold themselves.

use super::{Errors, PermissionView, Staff, done, field_error, value, values};
use crate::error::AppResult;
use actix_web::{HttpResponse, get, post, web};
use domain::{
    DomainError,
    db::write_tx,
    ids::GroupId,
    permissions::Permission,
    repo::admin::{self, GroupInfo},
};
use serde::Serialize;
use std::collections::BTreeSet;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(detail)
        .service(save);
}

#[derive(Serialize)]
struct GroupRow {
    id: i64,
    name: String,
    permissions: Vec<&'static str>,
    members: i64,
}

fn row(g: &GroupInfo) -> GroupRow {
    GroupRow {
        id: g.id.0,
        name: g.name.clone(),
        permissions: g.permissions.iter().map(|p| p.as_str()).collect(),
        members: g.members,
    }
}

async fn list_page(staff: &Staff, name: &str, errors: Errors) -> AppResult<HttpResponse> {
    let groups = staff.state().db.run(admin::groups).await?;
    let invalid = !errors.is_empty();
    let mut ctx = staff.context("groups");
    ctx.insert("groups", &groups.iter().map(row).collect::<Vec<_>>());
    ctx.insert("name", name);
    ctx.insert("errors", &errors.into_context(&["name"]));
    staff.render_form("admin/groups.html", &ctx, invalid)
}

#[get("/groups")]
async fn list(staff: Staff) -> AppResult<HttpResponse> {
    staff.require(Permission::GroupsChange)?;
    list_page(&staff, "", Errors::default()).await
}

#[post("/groups")]
async fn create(staff: Staff, form: web::Form<Vec<(String, String)>>) -> AppResult<HttpResponse> {
    staff.require(Permission::GroupsChange)?;
    let name = value(&form, "name").to_owned();
    let mut note = staff.note(
        "groups.create",
        "group",
        "",
        serde_json::json!({"name": name.trim()}),
    );
    let n = name.clone();
    let result = staff
        .state()
        .db
        .run(move |c| {
            write_tx(c, |c| {
                let id = admin::create_group(c, &n)?;
                note.set_target(id);
                note.record(c)?;
                Ok(id)
            })
        })
        .await;
    match result {
        Ok(id) => Ok(done(&format!("/admin/groups/{id}"))),
        Err(e) => {
            let msg = match &e {
                DomainError::Conflict(_) => staff.t("admin-error-group-taken"),
                other => match field_error(&staff, other) {
                    Some(_) => staff.t("admin-error-group-name"),
                    None => return Err(e.into()),
                },
            };
            let mut errors = Errors::default();
            errors.add("name", msg);
            list_page(&staff, &name, errors).await
        }
    }
}

fn detail_page(
    staff: &Staff,
    g: &GroupInfo,
    name: &str,
    errors: Errors,
) -> AppResult<HttpResponse> {
    let invalid = !errors.is_empty();
    let mut ctx = staff.context("groups");
    ctx.insert("group", &row(g));
    ctx.insert("name", name);
    ctx.insert(
        "permissions",
        &Permission::ALL
            .iter()
            .map(|p| PermissionView {
                name: p.as_str(),
                checked: g.permissions.contains(p),
                grantable: staff.can(*p),
            })
            .collect::<Vec<_>>(),
    );
    ctx.insert("errors", &errors.into_context(&["name", "permissions"]));
    staff.render_form("admin/group.html", &ctx, invalid)
}

#[get("/groups/{id}")]
async fn detail(staff: Staff, id: web::Path<i64>) -> AppResult<HttpResponse> {
    staff.require(Permission::GroupsChange)?;
    let id = GroupId(id.into_inner());
    let g = staff.state().db.run(move |c| admin::group(c, id)).await?;
    detail_page(&staff, &g, &g.name.clone(), Errors::default())
}

#[post("/groups/{id}")]
async fn save(
    staff: Staff,
    id: web::Path<i64>,
    form: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    staff.require(Permission::GroupsChange)?;
    let id = GroupId(id.into_inner());
    let g = staff.state().db.run(move |c| admin::group(c, id)).await?;
    let name = value(&form, "name").to_owned();
    let mut errors = Errors::default();
    let mut wanted = BTreeSet::new();
    for p in values(&form, "permission") {
        match Permission::parse(p) {
            Some(p) => {
                wanted.insert(p);
            }
            None => errors.add("permissions", staff.t("admin-error-unknown-permission")),
        }
    }
    if wanted
        .iter()
        .any(|p| !staff.can(*p) && !g.permissions.contains(p))
    {
        errors.add("permissions", staff.t("admin-error-grant-own-only"));
    }
    if !errors.is_empty() {
        return detail_page(&staff, &g, &name, errors);
    }
    // What this staff member does not hold stays as it was.
    let perms: BTreeSet<Permission> = Permission::ALL
        .iter()
        .copied()
        .filter(|p| {
            if staff.can(*p) {
                wanted.contains(p)
            } else {
                g.permissions.contains(p)
            }
        })
        .collect();
    let note = staff.note(
        "groups.change",
        "group",
        id,
        serde_json::json!({
            "name": name.trim(),
            "permissions": perms.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        }),
    );
    let n = name.clone();
    let result = staff
        .state()
        .db
        .run(move |c| {
            write_tx(c, |c| {
                admin::update_group(c, id, &n, &perms)?;
                note.record(c)
            })
        })
        .await;
    match result {
        Ok(()) => Ok(done(&format!("/admin/groups/{id}"))),
        Err(e) => {
            let msg = match &e {
                DomainError::Conflict(_) => staff.t("admin-error-group-taken"),
                other => match field_error(&staff, other) {
                    Some(_) => staff.t("admin-error-group-name"),
                    None => return Err(e.into()),
                },
            };
            let mut errors = Errors::default();
            errors.add("name", msg);
            detail_page(&staff, &g, &name, errors)
        }
    }
}
