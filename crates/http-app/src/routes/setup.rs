//! First-run setup: while the database has no user, `/setup/<token>` (the token is made
//! at start-up and printed by `confab serve`) creates the administrator and signs them
//! in. Any other token, or any request once a user exists, is a 404.

use super::{auth::start_session, invalid_field_key};
use crate::{
    error::{AppError, AppResult},
    extract::{ClientInfo, Page, see_other},
    state::AppState,
};
use actix_session::Session;
use actix_web::{HttpResponse, get, http::StatusCode, post, web};
use domain::{DomainError, repo::user::NewUser};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(setup_form).service(setup);
}

#[derive(Deserialize)]
struct SetupForm {
    username: String,
    #[serde(default)]
    display_name: String,
    password: SecretString,
    password_confirm: SecretString,
}

/// The link works only while it is open here and no user exists in the database (another
/// instance may have used its own link).
async fn check_open(state: &AppState, token: &str) -> AppResult<()> {
    if !state.setup.matches(token) {
        return Err(AppError::NotFound);
    }
    let users = state.db.run(domain::repo::user::count).await?;
    if users > 0 {
        state.setup.close();
        return Err(AppError::NotFound);
    }
    Ok(())
}

fn setup_page(
    page: &Page,
    token: &str,
    username: &str,
    display_name: &str,
    error: Option<String>,
) -> AppResult<HttpResponse> {
    let mut ctx = page.context();
    ctx.insert("token", token);
    ctx.insert("username", username);
    ctx.insert("display_name", display_name);
    ctx.insert("error", &error);
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    page.render_status(status, "setup.html", &ctx)
}

#[get("/setup/{token}")]
async fn setup_form(
    page: Page,
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> AppResult<HttpResponse> {
    check_open(&state, &token).await?;
    setup_page(&page, &token, "", "", None)
}

#[post("/setup/{token}")]
async fn setup(
    page: Page,
    state: web::Data<AppState>,
    session: Session,
    client: ClientInfo,
    token: web::Path<String>,
    form: web::Form<SetupForm>,
) -> AppResult<HttpResponse> {
    check_open(&state, &token).await?;
    let form = form.into_inner();
    if form.password.expose_secret() != form.password_confirm.expose_secret() {
        let msg = page.t("form-password-mismatch");
        return setup_page(&page, &token, &form.username, &form.display_name, Some(msg));
    }
    // Only one request may be creating the administrator at a time.
    if !state.setup.claim() {
        return Err(AppError::NotFound);
    }
    let new = NewUser {
        username: form.username.clone(),
        display_name: form.display_name.clone(),
        password: form.password.expose_secret().to_owned(),
        is_staff: true,
        is_superuser: true,
    };
    let cost = state.settings.bcrypt_cost;
    let created = state
        .db
        .run(move |c| {
            if domain::repo::user::count(c)? > 0 {
                return Err(DomainError::Conflict("setup was already done".into()));
            }
            domain::repo::user::create(c, &new, cost)
        })
        .await;
    match created {
        Ok(user) => {
            tracing::info!(user_id = %user.id, "first-run setup created the administrator");
            start_session(&session, &user, &client)?;
            Ok(see_other("/"))
        }
        Err(e) => {
            if let Some(key) = invalid_field_key(&e) {
                state.setup.reopen();
                let msg = page.t(key);
                return setup_page(&page, &token, &form.username, &form.display_name, Some(msg));
            }
            if matches!(e, DomainError::Conflict(_)) {
                return Err(AppError::NotFound);
            }
            state.setup.reopen();
            Err(e.into())
        }
    }
}
