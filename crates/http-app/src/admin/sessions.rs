//! `/admin/sessions`: sessions, all or one user's, newest first; revoke one or all of a
//! user's. Revocations are published so the gateway closes those sockets at once.

use super::{Errors, PAGE_SIZE, Staff, done, link, when};
use crate::{error::AppResult, session_store::announce_revoked};
use actix_web::{HttpResponse, get, post, web};
use domain::{
    db::write_tx,
    ids::{SessionId, UserId},
    permissions::Permission,
    repo::{
        admin::{self, SessionQuery, SessionRowView},
        session, user,
    },
    time::Timestamp,
};
use serde::{Deserialize, Serialize};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(revoke_confirm)
        .service(revoke)
        .service(revoke_all);
}

#[derive(Serialize)]
struct Row {
    id: i64,
    user_id: i64,
    username: String,
    device: String,
    ip: String,
    created: String,
    last_seen: String,
    live: bool,
}

fn row(s: &SessionRowView, now: Timestamp) -> Row {
    Row {
        id: s.session.id.0,
        user_id: s.session.user_id.0,
        username: s.username.clone(),
        device: crate::device::describe(&s.session.user_agent),
        ip: s.session.ip.clone(),
        created: when(s.session.created_at),
        last_seen: when(s.session.last_seen_at),
        live: s.session.is_live(now),
    }
}

#[derive(Deserialize, Serialize, Default)]
struct ListQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    all: String,
    before: Option<i64>,
}

#[get("/sessions")]
async fn list(staff: Staff, q: web::Query<ListQuery>) -> AppResult<HttpResponse> {
    staff.require(Permission::SessionsRevoke)?;
    let q = q.into_inner();
    let name = q.user.trim().to_owned();
    let target = if name.is_empty() {
        Ok(None)
    } else {
        staff
            .state()
            .db
            .run(move |c| user::find_by_username(c, &name))
            .await?
            .map(Some)
            .ok_or(())
    };
    let mut ctx = staff.context("sessions");
    ctx.insert("query", &q);
    let Ok(target) = target else {
        let mut errors = Errors::default();
        errors.add("user", staff.t("admin-error-no-such-user"));
        ctx.insert("errors", &errors.into_context(&["user"]));
        ctx.insert("sessions", &Vec::<Row>::new());
        ctx.insert("next", &None::<String>);
        ctx.insert("target", &None::<i64>);
        return staff.render_invalid("admin/sessions.html", &ctx);
    };
    let query = SessionQuery {
        user: target.as_ref().map(|u| u.id),
        live_only: q.all != "1",
        before: q.before.map(SessionId),
    };
    let page = staff
        .state()
        .db
        .run(move |c| admin::list_sessions(c, &query, PAGE_SIZE))
        .await?;
    let now = Timestamp::now();
    let next = page.next.map(|b| {
        link(
            "/admin/sessions",
            &[
                ("user", q.user.clone()),
                ("all", q.all.clone()),
                ("before", b.to_string()),
            ],
        )
    });
    ctx.insert("errors", &Errors::default().into_context(&["user"]));
    ctx.insert(
        "sessions",
        &page.rows.iter().map(|s| row(s, now)).collect::<Vec<_>>(),
    );
    ctx.insert("next", &next);
    ctx.insert("target", &target.map(|u| u.id.0));
    staff.render("admin/sessions.html", &ctx)
}

#[get("/sessions/{id}/revoke")]
async fn revoke_confirm(staff: Staff, id: web::Path<i64>) -> AppResult<HttpResponse> {
    staff.require(Permission::SessionsRevoke)?;
    let sid = SessionId(id.into_inner());
    let (s, u) = staff
        .state()
        .db
        .run(move |c| {
            let s = session::find(c, sid)?;
            let u = user::find(c, s.user_id)?;
            Ok((s, u))
        })
        .await?;
    let mut ctx = staff.context("sessions");
    ctx.insert(
        "s",
        &row(
            &SessionRowView {
                session: s,
                username: u.username,
            },
            Timestamp::now(),
        ),
    );
    staff.render("admin/session_revoke.html", &ctx)
}

#[post("/sessions/{id}/revoke")]
async fn revoke(staff: Staff, id: web::Path<i64>) -> AppResult<HttpResponse> {
    staff.require(Permission::SessionsRevoke)?;
    let sid = SessionId(id.into_inner());
    let note = staff.note("sessions.revoke", "session", sid, serde_json::json!({}));
    let (uid, revoked) = staff
        .state()
        .db
        .run(move |c| {
            write_tx(c, |c| {
                let s = session::find(c, sid)?;
                let revoked = session::revoke(c, sid)?;
                if revoked {
                    note.record(c)?;
                }
                Ok((s.user_id, revoked))
            })
        })
        .await?;
    if revoked {
        announce_revoked(&staff.state().bus, uid, vec![sid], "revoked_by_staff").await;
    }
    Ok(done("/admin/sessions"))
}

/// Every session of one user.
#[post("/users/{id}/sessions/revoke")]
async fn revoke_all(staff: Staff, id: web::Path<i64>) -> AppResult<HttpResponse> {
    staff.require(Permission::SessionsRevoke)?;
    let uid = UserId(id.into_inner());
    let note = staff.note("sessions.revoke_all", "user", uid, serde_json::json!({}));
    let ids = staff
        .state()
        .db
        .run(move |c| {
            write_tx(c, |c| {
                let u = user::find(c, uid)?;
                let ids = session::revoke_all(c, u.id)?;
                note.record(c)?;
                Ok(ids)
            })
        })
        .await?;
    announce_revoked(&staff.state().bus, uid, ids, "revoked_by_staff").await;
    Ok(done(&format!("/admin/users/{uid}")))
}
