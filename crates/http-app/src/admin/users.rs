//! `/admin/users`: list (search, filters, sort, keyset pages), create, edit, password
//! reset, deactivate/reactivate, groups and direct permissions.
//!
//! Rules beyond the permission of each action:
//! - only superusers may make someone a superuser, or change a superuser's account
//!   (otherwise `users.change` could reset an administrator's password and take over);
//! - staff may grant only permissions they hold themselves, and not change their own;
//! - nobody deactivates themselves from here.

use super::{Errors, PAGE_SIZE, PermissionView, Staff, done, field_error, link, values, when};
use crate::{
    error::{AppError, AppResult},
    session_store::announce_revoked,
};
use actix_web::{HttpResponse, get, post, web};
use domain::{
    DomainError,
    bus::{Event, Topic},
    db::write_tx,
    ids::{GroupId, UserId},
    model::User,
    permissions::Permission,
    repo::{
        admin::{self, GroupInfo, UserQuery, UserSort},
        session, user,
    },
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(new_form)
        .service(create)
        .service(detail)
        .service(edit)
        .service(password)
        .service(deactivate_confirm)
        .service(deactivate)
        .service(reactivate)
        .service(access);
}

#[derive(Serialize)]
struct UserRow {
    id: i64,
    username: String,
    display_name: String,
    is_active: bool,
    is_staff: bool,
    is_superuser: bool,
    created: String,
    last_login: String,
}

impl UserRow {
    fn of(u: &User) -> UserRow {
        UserRow {
            id: u.id.0,
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            is_active: u.is_active,
            is_staff: u.is_staff,
            is_superuser: u.is_superuser,
            created: when(u.created_at),
            last_login: u.last_login_at.map(when).unwrap_or_default(),
        }
    }
}

#[derive(Deserialize, Serialize, Default)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    active: String,
    #[serde(default)]
    staff: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    after: String,
}

fn yes_no(s: &str) -> Option<bool> {
    match s {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

#[get("/users")]
async fn list(staff: Staff, q: web::Query<ListQuery>) -> AppResult<HttpResponse> {
    staff.require(Permission::UsersView)?;
    let q = q.into_inner();
    let query = UserQuery {
        search: Some(q.q.clone()),
        active: yes_no(&q.active),
        staff: yes_no(&q.staff),
        sort: UserSort::parse(&q.sort),
        after: Some(q.after.clone()),
    };
    let sort = query.sort;
    let page = staff
        .state()
        .db
        .run(move |c| admin::list_users(c, &query, PAGE_SIZE))
        .await
        .map_err(|e| match e {
            // A hand-edited cursor: the first page is the honest answer.
            DomainError::Invalid { .. } => AppError::BadRequest("bad cursor".into()),
            other => other.into(),
        })?;
    let next = page.next.map(|after| {
        link(
            "/admin/users",
            &[
                ("q", q.q.clone()),
                ("active", q.active.clone()),
                ("staff", q.staff.clone()),
                ("sort", sort.as_str().to_owned()),
                ("after", after),
            ],
        )
    });
    let mut ctx = staff.context("users");
    ctx.insert(
        "users",
        &page.rows.iter().map(UserRow::of).collect::<Vec<_>>(),
    );
    ctx.insert("query", &q);
    ctx.insert("sort", sort.as_str());
    ctx.insert("next", &next);
    staff.render("admin/users.html", &ctx)
}

// ------------------------------------------------------------------------- create

#[derive(Deserialize, Serialize, Default)]
struct NewForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    is_staff: Option<String>,
    #[serde(default)]
    is_superuser: Option<String>,
}

const NEW_FIELDS: &[&str] = &["username", "display_name", "password", "is_superuser"];

fn new_page(staff: &Staff, form: &NewForm, errors: Errors) -> AppResult<HttpResponse> {
    let invalid = !errors.is_empty();
    let mut ctx = staff.context("users");
    ctx.insert(
        "form",
        &serde_json::json!({
            "username": form.username,
            "display_name": form.display_name,
            "is_staff": form.is_staff.is_some(),
            "is_superuser": form.is_superuser.is_some(),
        }),
    );
    ctx.insert("errors", &errors.into_context(NEW_FIELDS));
    staff.render_form("admin/user_new.html", &ctx, invalid)
}

#[get("/users/new")]
async fn new_form(staff: Staff) -> AppResult<HttpResponse> {
    staff.require(Permission::UsersChange)?;
    new_page(&staff, &NewForm::default(), Errors::default())
}

#[post("/users/new")]
async fn create(staff: Staff, form: web::Form<NewForm>) -> AppResult<HttpResponse> {
    staff.require(Permission::UsersChange)?;
    let form = form.into_inner();
    let superuser = form.is_superuser.is_some();
    if superuser && !staff.is_superuser() {
        let mut errors = Errors::default();
        errors.add("is_superuser", staff.t("admin-error-superuser-only"));
        return new_page(&staff, &form, errors);
    }
    let attributes = domain::password_policy::UserAttributes {
        username: form.username.trim(),
        display_name: &form.display_name,
    };
    if let Some(msg) = staff.password_policy_error(&form.password, &attributes) {
        let mut errors = Errors::default();
        errors.add("password", msg);
        // A bad username is reported in the same answer, not one round trip later.
        if let Err(e) = domain::model::Username::parse(&form.username)
            && let Some((field, msg)) = field_error(&staff, &e)
        {
            errors.add(field, msg);
        }
        return new_page(&staff, &form, errors);
    }
    let new = user::NewUser {
        username: form.username.clone(),
        display_name: form.display_name.clone(),
        password: form.password.clone(),
        is_staff: form.is_staff.is_some(),
        is_superuser: superuser,
    };
    let cost = staff.state().settings.bcrypt_cost;
    let note = staff.note(
        "users.create",
        "user",
        "",
        serde_json::json!({"username": form.username.trim(), "staff": new.is_staff, "superuser": superuser}),
    );
    let result = staff
        .state()
        .db
        .run(move |c| {
            write_tx(c, |c| {
                let u = user::create(c, &new, cost)?;
                let mut note = note;
                note.set_target(u.id);
                note.record(c)?;
                Ok(u)
            })
        })
        .await;
    match result {
        Ok(u) => Ok(done(&format!("/admin/users/{}", u.id))),
        Err(DomainError::Conflict(_)) => {
            let mut errors = Errors::default();
            errors.add("username", staff.t("admin-error-username-taken"));
            new_page(&staff, &form, errors)
        }
        Err(e) => match field_error(&staff, &e) {
            Some((field, msg)) => {
                let mut errors = Errors::default();
                errors.add(field, msg);
                new_page(&staff, &form, errors)
            }
            None => Err(e.into()),
        },
    }
}

// ------------------------------------------------------------------------- detail

struct Loaded {
    user: User,
    groups: BTreeSet<GroupId>,
    perms: BTreeSet<Permission>,
    all_groups: Vec<GroupInfo>,
    live_sessions: usize,
}

async fn load(staff: &Staff, id: i64) -> AppResult<Loaded> {
    let id = UserId(id);
    Ok(staff
        .state()
        .db
        .run(move |c| {
            let user = user::find(c, id)?;
            let (groups, perms) = admin::user_access(c, id)?;
            let all_groups = admin::groups(c)?;
            let live_sessions = session::list_live(c, id)?.len();
            Ok(Loaded {
                user,
                groups,
                perms,
                all_groups,
                live_sessions,
            })
        })
        .await?)
}

#[derive(Serialize)]
struct GroupChoice {
    id: i64,
    name: String,
    checked: bool,
}

const DETAIL_FIELDS: &[&str] = &["display_name", "is_superuser", "password", "access"];

/// The user page; `display_name` overrides the stored one when a form is shown again.
fn detail_page(
    staff: &Staff,
    l: &Loaded,
    display_name: Option<&str>,
    errors: Errors,
    notice: Option<String>,
) -> AppResult<HttpResponse> {
    let invalid = !errors.is_empty();
    let mut ctx = staff.context("users");
    let mut row = UserRow::of(&l.user);
    if let Some(d) = display_name {
        row.display_name = d.to_owned();
    }
    ctx.insert("u", &row);
    ctx.insert("is_self", &(l.user.id == staff.me.id()));
    // A superuser's account is changed only by superusers.
    let may_touch = !l.user.is_superuser || staff.is_superuser();
    ctx.insert(
        "may_change",
        &(may_touch && staff.can(Permission::UsersChange)),
    );
    ctx.insert(
        "may_deactivate",
        &(may_touch && staff.can(Permission::UsersDeactivate) && l.user.id != staff.me.id()),
    );
    ctx.insert(
        "may_grant",
        &(may_touch && staff.can(Permission::GroupsChange) && l.user.id != staff.me.id()),
    );
    ctx.insert(
        "groups",
        &l.all_groups
            .iter()
            .map(|g| GroupChoice {
                id: g.id.0,
                name: g.name.clone(),
                checked: l.groups.contains(&g.id),
            })
            .collect::<Vec<_>>(),
    );
    ctx.insert(
        "permissions",
        &Permission::ALL
            .iter()
            .map(|p| PermissionView {
                name: p.as_str(),
                checked: l.perms.contains(p),
                grantable: staff.can(*p),
            })
            .collect::<Vec<_>>(),
    );
    ctx.insert("live_sessions", &l.live_sessions);
    ctx.insert("errors", &errors.into_context(DETAIL_FIELDS));
    ctx.insert("notice", &notice);
    staff.render_form("admin/user.html", &ctx, invalid)
}

#[derive(Deserialize)]
struct NoticeQuery {
    saved: Option<String>,
}

#[get("/users/{id}")]
async fn detail(
    staff: Staff,
    id: web::Path<i64>,
    q: web::Query<NoticeQuery>,
) -> AppResult<HttpResponse> {
    staff.require(Permission::UsersView)?;
    let l = load(&staff, id.into_inner()).await?;
    let notice = q.saved.as_ref().map(|_| staff.t("admin-saved"));
    detail_page(&staff, &l, None, Errors::default(), notice)
}

/// 403 unless the staff member may change this account at all.
fn check_touch(staff: &Staff, target: &User) -> AppResult<()> {
    if target.is_superuser && !staff.is_superuser() {
        return Err(AppError::Forbidden);
    }
    Ok(())
}

#[derive(Deserialize)]
struct EditForm {
    #[serde(default)]
    display_name: String,
    is_staff: Option<String>,
    is_superuser: Option<String>,
}

#[post("/users/{id}")]
async fn edit(
    staff: Staff,
    id: web::Path<i64>,
    form: web::Form<EditForm>,
) -> AppResult<HttpResponse> {
    staff.require(Permission::UsersChange)?;
    let l = load(&staff, id.into_inner()).await?;
    check_touch(&staff, &l.user)?;
    let form = form.into_inner();
    let superuser = form.is_superuser.is_some();
    let is_staff = form.is_staff.is_some() || superuser;
    let mut errors = Errors::default();
    if superuser != l.user.is_superuser && !staff.is_superuser() {
        errors.add("is_superuser", staff.t("admin-error-superuser-only"));
    }
    if l.user.id == staff.me.id() && (!is_staff || superuser != l.user.is_superuser) {
        // Losing one's own staff powers by a stray click is not undoable from here.
        errors.add("is_superuser", staff.t("admin-error-own-status"));
    }
    if !errors.is_empty() {
        return detail_page(&staff, &l, Some(&form.display_name), errors, None);
    }
    let uid = l.user.id;
    let name = form.display_name.clone();
    let note = staff.note(
        "users.change",
        "user",
        uid,
        serde_json::json!({
            "display_name": form.display_name.trim(),
            "staff": is_staff,
            "superuser": superuser,
        }),
    );
    let result = staff
        .state()
        .db
        .run(move |c| {
            write_tx(c, |c| {
                user::set_display_name(c, uid, &name)?;
                user::set_staff(c, uid, is_staff, superuser)?;
                note.record(c)
            })
        })
        .await;
    match result {
        Ok(()) => Ok(done(&format!("/admin/users/{uid}?saved=1"))),
        Err(e) => match field_error(&staff, &e) {
            Some((field, msg)) => {
                let mut errors = Errors::default();
                errors.add(field, msg);
                detail_page(&staff, &l, Some(&form.display_name), errors, None)
            }
            None => Err(e.into()),
        },
    }
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    password: String,
}

/// Sets a new password and signs the user out everywhere.
#[post("/users/{id}/password")]
async fn password(
    staff: Staff,
    id: web::Path<i64>,
    form: web::Form<PasswordForm>,
) -> AppResult<HttpResponse> {
    staff.require(Permission::UsersChange)?;
    let l = load(&staff, id.into_inner()).await?;
    check_touch(&staff, &l.user)?;
    let uid = l.user.id;
    let pw = form.into_inner().password;
    let attributes = domain::password_policy::UserAttributes {
        username: &l.user.username,
        display_name: &l.user.display_name,
    };
    if let Some(msg) = staff.password_policy_error(&pw, &attributes) {
        let mut errors = Errors::default();
        errors.add("password", msg);
        return detail_page(&staff, &l, None, errors, None);
    }
    let cost = staff.state().settings.bcrypt_cost;
    let note = staff.note(
        "users.password",
        "user",
        uid,
        serde_json::json!({"via": "admin"}),
    );
    let result = staff
        .state()
        .db
        .run(move |c| {
            write_tx(c, |c| {
                user::set_password(c, uid, &pw, cost)?;
                let revoked = session::revoke_all(c, uid)?;
                note.record(c)?;
                Ok(revoked)
            })
        })
        .await;
    match result {
        Ok(revoked) => {
            announce_revoked(&staff.state().bus, uid, revoked, "password_changed").await;
            Ok(done(&format!("/admin/users/{uid}?saved=1")))
        }
        Err(e) => match field_error(&staff, &e) {
            Some((_, msg)) => {
                let mut errors = Errors::default();
                errors.add("password", msg);
                detail_page(&staff, &l, None, errors, None)
            }
            None => Err(e.into()),
        },
    }
}

#[get("/users/{id}/deactivate")]
async fn deactivate_confirm(staff: Staff, id: web::Path<i64>) -> AppResult<HttpResponse> {
    staff.require(Permission::UsersDeactivate)?;
    let l = load(&staff, id.into_inner()).await?;
    check_touch(&staff, &l.user)?;
    let mut ctx = staff.context("users");
    ctx.insert("u", &UserRow::of(&l.user));
    ctx.insert("live_sessions", &l.live_sessions);
    ctx.insert("is_self", &(l.user.id == staff.me.id()));
    staff.render("admin/user_deactivate.html", &ctx)
}

/// Deactivation revokes every session and tells the gateways to close the sockets.
#[post("/users/{id}/deactivate")]
async fn deactivate(staff: Staff, id: web::Path<i64>) -> AppResult<HttpResponse> {
    staff.require(Permission::UsersDeactivate)?;
    let l = load(&staff, id.into_inner()).await?;
    check_touch(&staff, &l.user)?;
    let uid = l.user.id;
    if uid == staff.me.id() {
        return Err(AppError::BadRequest(
            "staff cannot deactivate themselves".into(),
        ));
    }
    let note = staff.note("users.deactivate", "user", uid, serde_json::json!({}));
    staff
        .state()
        .db
        .run(move |c| {
            write_tx(c, |c| {
                user::set_active(c, uid, false)?;
                note.record(c)
            })
        })
        .await?;
    if let Err(e) = staff
        .state()
        .bus
        .publish(Topic::User(uid), &Event::UserDeactivated { user_id: uid })
        .await
    {
        // The sessions are revoked in the database already; sockets re-check it.
        tracing::warn!(error = %e, "could not announce a deactivation");
    }
    Ok(done(&format!("/admin/users/{uid}?saved=1")))
}

#[post("/users/{id}/reactivate")]
async fn reactivate(staff: Staff, id: web::Path<i64>) -> AppResult<HttpResponse> {
    staff.require(Permission::UsersDeactivate)?;
    let l = load(&staff, id.into_inner()).await?;
    check_touch(&staff, &l.user)?;
    let uid = l.user.id;
    let note = staff.note("users.reactivate", "user", uid, serde_json::json!({}));
    staff
        .state()
        .db
        .run(move |c| {
            write_tx(c, |c| {
                user::set_active(c, uid, true)?;
                note.record(c)
            })
        })
        .await?;
    Ok(done(&format!("/admin/users/{uid}?saved=1")))
}

/// Groups and direct permissions. A permission the staff member does not hold keeps
/// its current state whatever the form says.
#[post("/users/{id}/access")]
async fn access(
    staff: Staff,
    id: web::Path<i64>,
    form: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    staff.require(Permission::GroupsChange)?;
    let l = load(&staff, id.into_inner()).await?;
    check_touch(&staff, &l.user)?;
    if l.user.id == staff.me.id() {
        return Err(AppError::Forbidden);
    }
    let mut errors = Errors::default();
    let mut groups = BTreeSet::new();
    for g in values(&form, "group") {
        match g.parse::<i64>() {
            Ok(id) if l.all_groups.iter().any(|x| x.id.0 == id) => {
                groups.insert(GroupId(id));
            }
            _ => errors.add("access", staff.t("admin-error-unknown-group")),
        }
    }
    let mut wanted = BTreeSet::new();
    for p in values(&form, "permission") {
        match Permission::parse(p) {
            Some(p) => {
                wanted.insert(p);
            }
            None => errors.add("access", staff.t("admin-error-unknown-permission")),
        }
    }
    if wanted
        .iter()
        .any(|p| !staff.can(*p) && !l.perms.contains(p))
    {
        errors.add("access", staff.t("admin-error-grant-own-only"));
    }
    // A group grants its permissions: staff may only hand out groups whose every
    // permission they hold (or leave group membership as it was).
    let added_groups: Vec<&GroupInfo> = l
        .all_groups
        .iter()
        .filter(|g| groups.contains(&g.id) && !l.groups.contains(&g.id))
        .collect();
    if added_groups
        .iter()
        .any(|g| g.permissions.iter().any(|p| !staff.can(*p)))
    {
        errors.add("access", staff.t("admin-error-grant-own-only"));
    }
    if !errors.is_empty() {
        return detail_page(&staff, &l, None, errors, None);
    }
    // Permissions this staff member does not hold stay as they were.
    let perms: BTreeSet<Permission> = Permission::ALL
        .iter()
        .copied()
        .filter(|p| {
            if staff.can(*p) {
                wanted.contains(p)
            } else {
                l.perms.contains(p)
            }
        })
        .collect();
    let uid = l.user.id;
    let note = staff.note(
        "users.access",
        "user",
        uid,
        serde_json::json!({
            "groups": groups.iter().map(|g| g.0).collect::<Vec<_>>(),
            "permissions": perms.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        }),
    );
    staff
        .state()
        .db
        .run(move |c| {
            write_tx(c, |c| {
                admin::set_user_access(c, uid, &groups, &perms)?;
                note.record(c)
            })
        })
        .await?;
    Ok(done(&format!("/admin/users/{uid}?saved=1")))
}
