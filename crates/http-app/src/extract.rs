//! Extractors: who is asking (`CurrentUser`, `MaybeUser`), from where (`ClientInfo`),
//! and `Page`, which gathers what every template needs (language, CSRF token, user).

use crate::{
    csrf::CsrfToken,
    error::{AppError, AppResult},
    i18n,
    session_store::{SESSION_ID, USER_ID},
    state::AppState,
};
use actix_session::SessionExt;
use actix_web::{
    FromRequest, HttpMessage, HttpRequest, HttpResponse,
    dev::Payload,
    http::{StatusCode, header},
    web,
};
use domain::{
    DomainError,
    ids::{SessionId, UserId},
    model::User,
};
use futures_util::future::LocalBoxFuture;
use serde::Serialize;
use std::net::IpAddr;

fn app_state(req: &HttpRequest) -> AppResult<web::Data<AppState>> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::internal("AppState is not registered"))
}

/// The signed-in user of this request and their session.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: User,
    pub session_id: SessionId,
}

impl CurrentUser {
    pub fn id(&self) -> UserId {
        self.user.id
    }
}

/// Looks the user up once per request (several extractors may ask).
async fn load_current(req: &HttpRequest) -> AppResult<Option<CurrentUser>> {
    let cached = req.extensions().get::<Option<CurrentUser>>().cloned();
    if let Some(cached) = cached {
        return Ok(cached);
    }
    let session = req.get_session();
    let uid = session.get::<i64>(USER_ID).ok().flatten();
    let sid = session.get::<i64>(SESSION_ID).ok().flatten();
    let current = match (uid, sid) {
        (Some(uid), Some(sid)) => {
            let state = app_state(req)?;
            match state
                .db
                .run(move |c| domain::repo::user::find(c, UserId(uid)))
                .await
            {
                Ok(user) if user.is_active => Some(CurrentUser {
                    user,
                    session_id: SessionId(sid),
                }),
                Ok(_) | Err(DomainError::NotFound) => None,
                Err(e) => return Err(e.into()),
            }
        }
        _ => None,
    };
    req.extensions_mut().insert(current.clone());
    Ok(current)
}

impl FromRequest for CurrentUser {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { load_current(&req).await?.ok_or(AppError::SignInRequired) })
    }
}

/// The signed-in user, if any.
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Option<CurrentUser>);

impl FromRequest for MaybeUser {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Ok(MaybeUser(load_current(&req).await?)) })
    }
}

/// The client's address and user agent. Forwarded headers are believed only from a
/// loopback peer (nginx on the same host); anyone else could forge them to dodge the
/// per-address sign-in throttle.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub ip: String,
    pub user_agent: String,
}

impl ClientInfo {
    pub fn of(req: &HttpRequest) -> ClientInfo {
        let peer = req.peer_addr().map(|a| a.ip());
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let forwarded = || {
            header("x-real-ip")
                .and_then(|v| v.trim().parse::<IpAddr>().ok())
                .or_else(|| {
                    // nginx appends the address it saw; the rightmost entry is the one to trust.
                    header("x-forwarded-for")?
                        .rsplit(',')
                        .next()?
                        .trim()
                        .parse::<IpAddr>()
                        .ok()
                })
        };
        let ip = match peer {
            Some(p) if p.is_loopback() => forwarded().unwrap_or(p),
            Some(p) => p,
            None => IpAddr::from([0, 0, 0, 0]),
        };
        ClientInfo {
            ip: ip.to_string(),
            user_agent: req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
        }
    }
}

impl FromRequest for ClientInfo {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(ClientInfo::of(req)))
    }
}

#[derive(Debug, Serialize)]
struct UserView<'a> {
    username: &'a str,
    display_name: &'a str,
    is_staff: bool,
}

/// What every page needs, gathered once: language, CSRF token, the user if signed in.
pub struct Page {
    pub lang: &'static str,
    /// The request path, where the language switcher comes back to.
    pub path: String,
    pub csrf: String,
    pub user: Option<CurrentUser>,
    pub state: web::Data<AppState>,
}

impl Page {
    pub fn t(&self, key: &str) -> String {
        i18n::t(self.lang, key)
    }

    /// A context holding the common variables the base template uses.
    pub fn context(&self) -> tera::Context {
        let mut ctx = tera::Context::new();
        ctx.insert("lang", self.lang);
        ctx.insert("csrf_token", &self.csrf);
        ctx.insert("languages", i18n::LANGUAGES);
        ctx.insert("path", &self.path);
        // For the password fields' `minlength` and hint.
        ctx.insert(
            "password_min_length",
            &self.state.settings.password_min_length,
        );
        ctx.insert(
            "user",
            &self.user.as_ref().map(|u| UserView {
                username: &u.user.username,
                display_name: &u.user.display_name,
                is_staff: u.user.is_staff,
            }),
        );
        ctx
    }

    pub fn render(&self, template: &str, ctx: &tera::Context) -> AppResult<HttpResponse> {
        self.render_status(StatusCode::OK, template, ctx)
    }

    pub fn render_status(
        &self,
        status: StatusCode,
        template: &str,
        ctx: &tera::Context,
    ) -> AppResult<HttpResponse> {
        let html = self.state.templates.render(template, ctx)?;
        Ok(HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            // Pages can show private data; keep them out of shared and back-button caches.
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(html))
    }
}

impl FromRequest for Page {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = app_state(&req)?;
            let user = load_current(&req).await?;
            let csrf = req
                .extensions()
                .get::<CsrfToken>()
                .map(|t| t.0.clone())
                .ok_or_else(|| AppError::internal("the CSRF middleware is not installed"))?;
            let lang =
                i18n::negotiate(user.as_ref().and_then(|u| u.user.language.as_deref()), &req);
            Ok(Page {
                lang,
                path: req.path().to_owned(),
                csrf,
                user,
                state,
            })
        })
    }
}

/// Redirects after a successful form (303, so the browser follows with GET).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// Only local paths are followed after sign-in (`/rooms`), never `//evil` or `https://…`.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}
