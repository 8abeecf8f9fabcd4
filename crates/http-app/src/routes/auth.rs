//! Sign-in and sign-out.
//!
//! - The same message for an unknown user, a wrong password and a deactivated account,
//!   after the same bcrypt work (`domain::auth::authenticate`).
//! - Throttled per submitted account name and per client address (429 + Retry-After).
//! - The session key is new at every sign-in (`renew`), so a planted cookie is useless.
//! - Sign-out revokes the session in the database, not only the cookie.

use crate::{
    csrf,
    error::{AppError, AppResult},
    extract::{ClientInfo, MaybeUser, Page, safe_next, see_other},
    i18n,
    session_store::{IP, USER_AGENT, USER_ID},
    state::AppState,
};
use actix_session::Session;
use actix_web::{HttpResponse, get, http::StatusCode, post, web};
use domain::{DomainError, model::User};
use secrecy::SecretString;
use serde::Deserialize;

/// Set at sign-in; the app shell shows "you are also signed in on …" once, then clears it.
pub const SIGNED_IN_NOTICE: &str = "signed_in_notice";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(login_form).service(login).service(logout);
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: SecretString,
    next: Option<String>,
}

fn login_page(
    page: &Page,
    status: StatusCode,
    username: &str,
    next: &str,
    error: Option<String>,
) -> AppResult<HttpResponse> {
    let mut ctx = page.context();
    ctx.insert("username", username);
    ctx.insert("next", next);
    ctx.insert("error", &error);
    page.render_status(status, "login.html", &ctx)
}

#[get("/login")]
async fn login_form(page: Page, q: web::Query<NextQuery>) -> AppResult<HttpResponse> {
    let next = safe_next(q.next.as_deref());
    if page.user.is_some() {
        return Ok(see_other(next));
    }
    login_page(&page, StatusCode::OK, "", next, None)
}

/// Starts a fresh session for `user`: new key, new CSRF token, nothing carried over.
pub(crate) fn start_session(session: &Session, user: &User, client: &ClientInfo) -> AppResult<()> {
    session.renew();
    session.clear();
    let insert = |k: &str, v: serde_json::Value| {
        session
            .insert(k, v)
            .map_err(|e| AppError::internal(format!("session insert: {e}")))
    };
    insert(USER_ID, user.id.0.into())?;
    insert(USER_AGENT, client.user_agent.clone().into())?;
    insert(IP, client.ip.clone().into())?;
    insert(csrf::SESSION_KEY, csrf::random_token().into())?;
    insert(SIGNED_IN_NOTICE, true.into())?;
    Ok(())
}

#[post("/login")]
async fn login(
    page: Page,
    state: web::Data<AppState>,
    session: Session,
    client: ClientInfo,
    form: web::Form<LoginForm>,
) -> AppResult<HttpResponse> {
    let form = form.into_inner();
    let account = form.username.trim().to_owned();
    let next = safe_next(form.next.as_deref()).to_owned();
    if let Err(wait) = state.throttle.check(&account, &client.ip) {
        let minutes = wait.div_ceil(60).to_string();
        let msg = i18n::t_args(page.lang, "login-throttled", &[("minutes", minutes)]);
        let mut res = login_page(
            &page,
            StatusCode::TOO_MANY_REQUESTS,
            &account,
            &next,
            Some(msg),
        )?;
        res.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderValue::from(wait),
        );
        return Ok(res);
    }
    let cost = state.settings.bcrypt_cost;
    match domain::auth::authenticate(&state.db, cost, &account, &form.password).await {
        Ok(user) => {
            state.throttle.record_success(&account);
            start_session(&session, &user, &client)?;
            let id = user.id;
            state
                .db
                .run(move |c| domain::repo::user::record_login(c, id))
                .await?;
            tracing::info!(user_id = %user.id, "signed in");
            Ok(see_other(&next))
        }
        Err(DomainError::InvalidCredentials) => {
            state.throttle.record_failure(&account, &client.ip);
            tracing::info!("a sign-in attempt failed");
            let msg = page.t("login-invalid");
            login_page(&page, StatusCode::OK, &account, &next, Some(msg))
        }
        Err(e) => Err(e.into()),
    }
}

#[post("/logout")]
async fn logout(session: Session, user: MaybeUser) -> HttpResponse {
    if let Some(u) = user.0 {
        tracing::info!(user_id = %u.id(), "signed out");
    }
    // The store revokes the row and tells the gateway to close this session's sockets.
    session.purge();
    see_other("/login")
}
