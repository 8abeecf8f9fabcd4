//! `/`: the app shell. The sidebar lists the user's rooms; `static/js/app.js` connects to
//! `/ws` and fills the message pane.

use super::auth::SIGNED_IN_NOTICE;
use crate::{
    error::AppResult,
    extract::{CurrentUser, Page},
    state::AppState,
};
use actix_session::Session;
use actix_web::{HttpResponse, get, web};
use domain::{model::Session as DbSession, time::Timestamp};
use serde::Serialize;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(index);
}

#[derive(Serialize)]
struct RoomView {
    slug: String,
    name: String,
    topic: String,
    kind: &'static str,
    archived: bool,
    role: &'static str,
}

/// A session as the Devices page and the sign-in notice show it.
#[derive(Serialize)]
pub(crate) struct DeviceView {
    pub id: i64,
    pub device: String,
    pub ip: String,
    pub created: String,
    pub last_seen: String,
    pub current: bool,
}

/// `2026-11-27 14:05 UTC`: unambiguous in every language.
pub(crate) fn short_time(t: Timestamp) -> String {
    let s = t.to_rfc3339();
    match (s.get(..10), s.get(11..16)) {
        (Some(d), Some(hm)) => format!("{d} {hm} UTC"),
        _ => s,
    }
}

impl DeviceView {
    pub(crate) fn of(s: &DbSession, current: domain::ids::SessionId) -> DeviceView {
        DeviceView {
            id: s.id.0,
            device: crate::device::describe(&s.user_agent),
            ip: s.ip.clone(),
            created: short_time(s.created_at),
            last_seen: short_time(s.last_seen_at),
            current: s.id == current,
        }
    }
}

#[get("/")]
async fn index(
    page: Page,
    me: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
) -> AppResult<HttpResponse> {
    let uid = me.id();
    let rooms = state
        .db
        .run(move |c| domain::repo::room::rooms_of(c, uid))
        .await?;
    let rooms: Vec<RoomView> = rooms
        .into_iter()
        .map(|(r, m)| RoomView {
            slug: r.slug,
            name: r.name,
            topic: r.topic,
            kind: r.kind.as_str(),
            archived: r.archived,
            role: m.role.as_str(),
        })
        .collect();
    // Right after sign-in: other live sessions, once.
    let mut others = Vec::new();
    if session.remove(SIGNED_IN_NOTICE).is_some() {
        let current = me.session_id;
        let live = state
            .db
            .run(move |c| domain::repo::session::list_live(c, uid))
            .await?;
        others = live
            .iter()
            .filter(|s| s.id != current)
            .map(|s| DeviceView::of(s, current))
            .collect();
    }
    let mut ctx = page.context();
    ctx.insert("rooms", &rooms);
    ctx.insert("other_sessions", &others);
    page.render("app.html", &ctx)
}
