//! First-run setup: while the database has no user, `/setup/<token>` (the token is made
//! at start-up and printed by `confab serve`) creates the administrator and signs them
//! in. Any other token, or any request once a user exists, is a 404.

use super::{auth::start_session, invalid_field_key, password_policy_error};
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

/// The form's refusal: a general one at the top, or one shown next to the password field.
enum FormError {
    General(String),
    Password(String),
}

fn setup_page(
    page: &Page,
    token: &str,
    username: &str,
    display_name: &str,
    error: Option<FormError>,
) -> AppResult<HttpResponse> {
    let mut ctx = page.context();
    ctx.insert("token", token);
    ctx.insert("username", username);
    ctx.insert("display_name", display_name);
    let (general, password) = match &error {
        Some(FormError::General(e)) => (Some(e), None),
        Some(FormError::Password(e)) => (None, Some(e)),
        None => (None, None),
    };
    ctx.insert("error", &general);
    ctx.insert("password_error", &password);
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
        let msg = FormError::General(page.t("form-password-mismatch"));
        return setup_page(&page, &token, &form.username, &form.display_name, Some(msg));
    }
    let attributes = domain::password_policy::UserAttributes {
        username: form.username.trim(),
        display_name: &form.display_name,
    };
    if let Some(msg) = password_policy_error(
        &state.settings,
        page.lang,
        form.password.expose_secret(),
        &attributes,
    ) {
        let msg = FormError::Password(msg);
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
                let msg = FormError::General(page.t(key));
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
