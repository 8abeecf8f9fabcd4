//! `/devices`: the user's live sessions, with "sign out this device" and "sign out
//! everywhere else". Revocations are published so the gateway closes those sockets.

use super::app::DeviceView;
use crate::{
    error::{AppError, AppResult},
    extract::{CurrentUser, Page, see_other},
    session_store::announce_revoked,
    state::AppState,
};
use actix_session::Session;
use actix_web::{HttpResponse, get, post, web};
use domain::{ids::SessionId, repo::session};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list).service(revoke_others).service(revoke_one);
}

#[get("/devices")]
async fn list(page: Page, me: CurrentUser, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let uid = me.id();
    let live = state.db.run(move |c| session::list_live(c, uid)).await?;
    let devices: Vec<DeviceView> = live
        .iter()
        .map(|s| DeviceView::of(s, me.session_id))
        .collect();
    let mut ctx = page.context();
    ctx.insert("devices", &devices);
    page.render("devices.html", &ctx)
}

#[post("/devices/others/revoke")]
async fn revoke_others(me: CurrentUser, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let (uid, keep) = (me.id(), me.session_id);
    let ids = state
        .db
        .run(move |c| session::revoke_others(c, uid, keep))
        .await?;
    tracing::info!(user_id = %uid, count = ids.len(), "signed out other devices");
    announce_revoked(&state.bus, uid, ids, "signed_out_elsewhere").await;
    Ok(see_other("/devices"))
}

#[post("/devices/{id}/revoke")]
async fn revoke_one(
    me: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    id: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let target = SessionId(id.into_inner());
    if target == me.session_id {
        // Signing this device out is signing out.
        session.purge();
        return Ok(see_other("/login"));
    }
    let uid = me.id();
    let revoked = state
        .db
        .run(move |c| {
            let s = session::find(c, target)?;
            // Someone else's session is "not found", never "forbidden": ids leak nothing.
            if s.user_id != uid {
                return Err(domain::DomainError::NotFound);
            }
            session::revoke(c, target)
        })
        .await
        .map_err(AppError::from)?;
    if revoked {
        announce_revoked(&state.bus, uid, vec![target], "signed_out_elsewhere").await;
    }
    Ok(see_other("/devices"))
}
