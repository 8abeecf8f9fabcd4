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
    /// Unread messages by other people, capped at [`UNREAD_CAP`] (shown as "99+").
    unread: i64,
    /// How many of those mention me (same cap), as in `GET /api/rooms`.
    mentions: i64,
    /// My read marker: the "new messages" divider goes after it.
    last_read: Option<i64>,
    /// The newest message id when the page was made: the script follows the room from
    /// there (`join … since`), so opening the page does not fetch every room's history.
    latest: Option<i64>,
    /// Private chats only: the other members, whom the sidebar names the chat after
    /// (and shows presence for).
    others: Vec<OtherMember>,
    /// `others` as JSON, for the script (`data-others`; the template escapes it).
    others_json: String,
}

#[derive(Serialize)]
struct OtherMember {
    username: String,
    display_name: String,
}

/// Counting stops here: a badge says "99+", not the exact backlog.
const UNREAD_CAP: i64 = 100;

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
        .run(move |c| {
            let mut out = Vec::new();
            for (r, m) in domain::repo::room::rooms_of(c, uid)? {
                let counts = domain::repo::mention::unread(c, r.id, uid, m.last_read, UNREAD_CAP)?;
                let latest = domain::repo::message::latest_id(c, r.id)?;
                let others = if r.kind == domain::model::RoomKind::Direct {
                    domain::repo::user::members_of(c, r.id)?
                        .into_iter()
                        .filter(|(u, _)| u.id != uid)
                        .map(|(u, _)| OtherMember {
                            username: u.username,
                            display_name: u.display_name,
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                let others_json = serde_json::to_string(&others).unwrap_or_default();
                out.push(RoomView {
                    slug: r.slug,
                    name: r.name,
                    topic: r.topic,
                    kind: r.kind.as_str(),
                    archived: r.archived,
                    role: m.role.as_str(),
                    unread: counts.unread,
                    mentions: counts.mentions,
                    last_read: m.last_read.map(|id| id.0),
                    latest: latest.map(|id| id.0),
                    others,
                    others_json,
                });
            }
            Ok(out)
        })
        .await?;
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
    ctx.insert("max_message_chars", &state.settings.max_message_chars);
    page.render("app.html", &ctx)
}
