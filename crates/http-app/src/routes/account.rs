//! `/account`: the signed-in user's own settings — display name and language on one
//! form, password on another (both post to `/account`, told apart by `form`).
//!
//! A password change needs the current password, checked by `domain::auth::authenticate`
//! (same constant-work path as sign-in), and then ends every other session of the user,
//! announced on the bus so the gateway closes those sockets; this device stays signed in.

use super::{invalid_field_key, password_policy_error};
use crate::{
    error::{AppError, AppResult},
    extract::{ClientInfo, CurrentUser, Page, see_other},
    i18n,
    session_store::announce_revoked,
    state::AppState,
};
use actix_web::{
    HttpResponse,
    cookie::{Cookie, SameSite, time::Duration},
    get,
    http::{StatusCode, header},
    post, web,
};
use domain::{DomainError, db::write_tx, repo};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(show).service(save);
}

#[derive(Default, Deserialize)]
struct AccountForm {
    #[serde(default)]
    form: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    language: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

/// What the profile form shows (never a password).
#[derive(Serialize)]
struct ProfileView {
    display_name: String,
    language: String,
}

#[derive(Deserialize)]
struct SavedQuery {
    saved: Option<String>,
}

/// Field name → translated error message.
type FieldErrors = BTreeMap<&'static str, String>;

fn account_page(
    page: &Page,
    profile: ProfileView,
    errors: &FieldErrors,
    saved: Option<&str>,
) -> AppResult<HttpResponse> {
    let mut ctx = page.context();
    ctx.insert("profile", &profile);
    ctx.insert("errors", errors);
    ctx.insert("saved", &saved);
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    page.render_status(status, "account.html", &ctx)
}

fn current_profile(me: &CurrentUser, page: &Page) -> ProfileView {
    ProfileView {
        display_name: me.user.display_name.clone(),
        language: me
            .user
            .language
            .as_deref()
            .and_then(i18n::supported)
            .unwrap_or(page.lang)
            .to_owned(),
    }
}

#[get("/account")]
async fn show(page: Page, me: CurrentUser, q: web::Query<SavedQuery>) -> AppResult<HttpResponse> {
    let saved = match q.saved.as_deref() {
        Some("profile") => Some("profile"),
        Some("password") => Some("password"),
        _ => None,
    };
    account_page(
        &page,
        current_profile(&me, &page),
        &FieldErrors::new(),
        saved,
    )
}

#[post("/account")]
async fn save(
    page: Page,
    me: CurrentUser,
    state: web::Data<AppState>,
    client: ClientInfo,
    form: web::Form<AccountForm>,
) -> AppResult<HttpResponse> {
    let form = form.into_inner();
    match form.form.as_str() {
        "profile" => save_profile(&page, &me, &state, form).await,
        "password" => change_password(&page, &me, &state, &client.ip, form).await,
        _ => Err(AppError::BadRequest("unknown form".into())),
    }
}

async fn save_profile(
    page: &Page,
    me: &CurrentUser,
    state: &AppState,
    form: AccountForm,
) -> AppResult<HttpResponse> {
    let mut errors = FieldErrors::new();
    let lang = i18n::supported(&form.language);
    if lang.is_none() {
        errors.insert("language", page.t("account-invalid-language"));
    }
    let profile = ProfileView {
        display_name: form.display_name.clone(),
        language: form.language.clone(),
    };
    let Some(lang) = lang else {
        return account_page(page, profile, &errors, None);
    };
    let (uid, name) = (me.id(), form.display_name.clone());
    // One transaction: a refused display name leaves the language unchanged too.
    let result = state
        .db
        .run(move |c| {
            write_tx(c, |c| {
                repo::user::set_display_name(c, uid, &name)?;
                repo::user::set_language(c, uid, Some(lang))
            })
        })
        .await;
    if let Err(e) = result {
        let Some(key) = invalid_field_key(&e) else {
            return Err(e.into());
        };
        errors.insert("display_name", page.t(key));
        return account_page(page, profile, &errors, None);
    }
    tracing::info!(user_id = %uid, "account settings changed");
    // The same cookie as the switcher's, so signed-out pages on this device follow too.
    let cookie = Cookie::build(i18n::COOKIE, lang)
        .path("/")
        .same_site(SameSite::Lax)
        .secure(state.settings.https)
        .max_age(Duration::days(365))
        .finish();
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/account?saved=profile"))
        .cookie(cookie)
        .finish())
}

async fn change_password(
    page: &Page,
    me: &CurrentUser,
    state: &AppState,
    ip: &str,
    form: AccountForm,
) -> AppResult<HttpResponse> {
    let mut errors = FieldErrors::new();
    let profile = current_profile(me, page);
    let cost = state.settings.bcrypt_cost;
    let account = me.user.username.clone();
    // Guessing the current password here is throttled like signing in: a stolen session
    // must not become an unlimited password oracle.
    if let Err(wait) = state.throttle.check(&account, ip) {
        let minutes = wait.div_ceil(60).to_string();
        errors.insert(
            "current_password",
            i18n::t_args(page.lang, "login-throttled", &[("minutes", minutes)]),
        );
        return account_page(page, profile, &errors, None);
    }
    let current = SecretString::from(form.current_password);
    match domain::auth::authenticate(&state.db, cost, &account, &current).await {
        Ok(_) => state.throttle.record_success(&account),
        Err(DomainError::InvalidCredentials) => {
            state.throttle.record_failure(&account, ip);
            errors.insert("current_password", page.t("account-wrong-password"));
            return account_page(page, profile, &errors, None);
        }
        Err(e) => return Err(e.into()),
    }
    if form.new_password != form.confirm_password {
        errors.insert("confirm_password", page.t("account-password-mismatch"));
        return account_page(page, profile, &errors, None);
    }
    let attributes = domain::password_policy::UserAttributes {
        username: &me.user.username,
        display_name: &me.user.display_name,
    };
    if let Some(msg) =
        password_policy_error(&state.settings, page.lang, &form.new_password, &attributes)
    {
        errors.insert("new_password", msg);
        return account_page(page, profile, &errors, None);
    }
    let (uid, keep, new) = (me.id(), me.session_id, form.new_password);
    let result = state
        .db
        .run(move |c| {
            write_tx(c, |c| {
                repo::user::set_password(c, uid, &new, cost)?;
                repo::session::revoke_others(c, uid, keep)
            })
        })
        .await;
    match result {
        Ok(revoked) => {
            tracing::info!(user_id = %uid, count = revoked.len(), "password changed");
            announce_revoked(&state.bus, uid, revoked, "password_changed").await;
            Ok(see_other("/account?saved=password"))
        }
        Err(e) => {
            let Some(key) = invalid_field_key(&e) else {
                return Err(e.into());
            };
            errors.insert("new_password", page.t(key));
            account_page(page, profile, &errors, None)
        }
    }
}
