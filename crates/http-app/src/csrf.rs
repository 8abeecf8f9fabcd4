//! Cross-site request forgery protection for every state-changing request.
//!
//! - Signed in: the token lives in the server-side session (created at sign-in, so it
//!   changes with the session and a token from another session never matches).
//! - Signed out (sign-in and setup forms): a signed double-submit cookie holds the token.
//! - Forms send it as the `csrf_token` field, `fetch` calls as the `X-CSRF-Token` header.
//! - Behind HTTPS, the `Origin` (or else `Referer`) must also be one of the configured
//!   origins, so a leaked token alone is not enough from another site.
//!
//! The check runs as middleware, before any handler, for every method other than GET,
//! HEAD and OPTIONS, so a new handler cannot forget it.

use crate::{error::AppError, state::AppState};
use actix_session::SessionExt;
use actix_web::{
    FromRequest, HttpMessage, HttpRequest,
    body::{EitherBody, MessageBody},
    cookie::{Cookie, CookieJar, SameSite},
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::{Method, header},
    middleware::Next,
    web::{self, Bytes},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use std::future::{Ready, ready};

pub const FIELD: &str = "csrf_token";
pub const HEADER: &str = "x-csrf-token";
/// Where the signed-in token lives in the session state.
pub const SESSION_KEY: &str = "csrf";

pub fn cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-confab_csrf"
    } else {
        "confab_csrf"
    }
}

/// 256 random bits, URL-safe.
pub fn random_token() -> String {
    let mut raw = [0u8; 32];
    // No entropy means no safe token; failing loudly is right.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut raw).expect("the operating system's random number generator failed");
    URL_SAFE_NO_PAD.encode(raw)
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn plausible(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The token the current page must embed (forms, and a `<meta>` for scripts).
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

impl FromRequest for CsrfToken {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<CsrfToken>()
                .cloned()
                .ok_or_else(|| AppError::internal("the CSRF middleware is not installed")),
        )
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Behind HTTPS, the request must come from one of our own origins.
fn origin_allowed(req: &ServiceRequest, allowed: &[String]) -> bool {
    let get = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
    };
    if let Some(origin) = get(header::ORIGIN) {
        return allowed.iter().any(|a| a == origin);
    }
    if let Some(referer) = get(header::REFERER) {
        return allowed.iter().any(|a| {
            referer == a
                || referer
                    .strip_prefix(a.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        });
    }
    false
}

fn read_cookie_token(req: &ServiceRequest, state: &AppState) -> Option<String> {
    let name = cookie_name(state.settings.https);
    let cookie = req.cookie(name)?;
    let mut jar = CookieJar::new();
    jar.add_original(cookie);
    let value = jar.signed(&state.cookie_key).get(name)?.value().to_owned();
    plausible(&value).then_some(value)
}

fn token_cookie(state: &AppState, token: &str) -> Option<Cookie<'static>> {
    let name = cookie_name(state.settings.https);
    let cookie = Cookie::build(name, token.to_owned())
        .path("/")
        .http_only(true)
        .secure(state.settings.https)
        .same_site(SameSite::Lax)
        .finish();
    let mut jar = CookieJar::new();
    jar.signed_mut(&state.cookie_key).add(cookie);
    jar.get(name).cloned()
}

/// Reads the submitted token: the header, else the `csrf_token` field of a URL-encoded
/// form (the body is put back for the handler).
async fn submitted_token(req: &mut ServiceRequest) -> Result<Option<String>, actix_web::Error> {
    if let Some(v) = req.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
        return Ok(Some(v.to_owned()));
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok(None);
    }
    let body = req.extract::<Bytes>().await?;
    let token = std::str::from_utf8(&body).ok().and_then(|text| {
        web::Query::<Vec<(String, String)>>::from_query(text)
            .ok()?
            .into_inner()
            .into_iter()
            .find(|(k, _)| k == FIELD)
            .map(|(_, v)| v)
    });
    req.set_payload(Payload::from(body));
    Ok(token)
}

/// The middleware (see the module docs). Must run inside the session middleware.
pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Err(AppError::internal("AppState is not registered").into());
    };
    let from_session = req
        .get_session()
        .get::<String>(SESSION_KEY)
        .ok()
        .flatten()
        .filter(|t| plausible(t));
    let (expected, new_cookie) = match from_session {
        Some(t) => (t, false),
        None => match read_cookie_token(&req, &state) {
            Some(t) => (t, false),
            None => (random_token(), true),
        },
    };
    if !is_safe(req.method()) {
        if state.settings.https && !origin_allowed(&req, &state.settings.allowed_origins) {
            tracing::warn!("refused a request whose Origin/Referer is not ours");
            return Ok(req.error_response(AppError::Csrf).map_into_right_body());
        }
        let submitted = submitted_token(&mut req).await?;
        let ok = !new_cookie
            && submitted.is_some_and(|s| constant_time_eq(s.as_bytes(), expected.as_bytes()));
        if !ok {
            tracing::warn!("refused a request without a valid CSRF token");
            return Ok(req.error_response(AppError::Csrf).map_into_right_body());
        }
    }
    req.extensions_mut().insert(CsrfToken(expected.clone()));
    let mut res = next.call(req).await?;
    if new_cookie && let Some(cookie) = token_cookie(&state, &expected) {
        res.response_mut().add_cookie(&cookie)?;
    }
    Ok(res.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compare_exactly() {
        let a = random_token();
        let b = random_token();
        assert!(plausible(&a) && plausible(&b));
        assert_ne!(a, b);
        assert!(constant_time_eq(a.as_bytes(), a.clone().as_bytes()));
        assert!(!constant_time_eq(a.as_bytes(), b.as_bytes()));
        assert!(!constant_time_eq(a.as_bytes(), &a.as_bytes()[..42]));
        assert!(!plausible("short"));
    }
}
