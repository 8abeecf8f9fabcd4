//! `POST /language`: the switcher. Remembered in a cookie, and on the account when
//! signed in (so it follows the user to other devices).

use crate::{
    error::AppResult,
    extract::{MaybeUser, safe_next},
    i18n,
    state::AppState,
};
use actix_web::{
    HttpResponse,
    cookie::{Cookie, SameSite, time::Duration},
    http::header,
    post, web,
};
use serde::Deserialize;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(set_language);
}

#[derive(Deserialize)]
struct LanguageForm {
    lang: String,
    next: Option<String>,
}

#[post("/language")]
async fn set_language(
    user: MaybeUser,
    state: web::Data<AppState>,
    form: web::Form<LanguageForm>,
) -> AppResult<HttpResponse> {
    let lang = i18n::supported(&form.lang).unwrap_or(i18n::DEFAULT);
    if let Some(me) = user.0 {
        let id = me.id();
        state
            .db
            .run(move |c| domain::repo::user::set_language(c, id, Some(lang)))
            .await?;
    }
    let cookie = Cookie::build(i18n::COOKIE, lang)
        .path("/")
        .same_site(SameSite::Lax)
        .secure(state.settings.https)
        .max_age(Duration::days(365))
        .finish();
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, safe_next(form.next.as_deref())))
        .cookie(cookie)
        .finish())
}
