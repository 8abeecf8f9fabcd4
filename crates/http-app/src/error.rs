//! `AppError`: how a failed request becomes a response. 4xx say what went wrong in the
//! user's language; 5xx log the whole cause chain and show a friendly page with the
//! request id, never SQL, file paths or other internals. The page itself is rendered by
//! [`render_error_page`], applied to every error response by the outer middleware, so
//! extractor errors and 404s get the same treatment as handler errors.

use crate::{i18n, state::AppState};
use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    body::BoxBody,
    dev::ServiceResponse,
    http::{StatusCode, header},
    web,
};
use domain::DomainError;
use tracing_actix_web::RequestId;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden,
    #[error("the CSRF check failed")]
    Csrf,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("sign-in required")]
    SignInRequired,
    #[error("too many attempts; retry after {retry_after_secs}s")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("a dependency is unavailable: {0}")]
    Unavailable(String),
    #[error("unexpected error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    pub fn internal(msg: impl std::fmt::Display) -> AppError {
        AppError::Internal(anyhow::anyhow!("{msg}"))
    }

    /// Fluent keys of the page's title and explanation.
    fn message_keys(&self) -> (&'static str, &'static str) {
        match self {
            AppError::Csrf => ("error-csrf-title", "error-csrf-body"),
            AppError::TooManyRequests { .. } => ("error-429-title", "error-429-body"),
            AppError::Conflict(_) => ("error-409-title", "error-409-body"),
            other => keys_for_status(other.status_code()),
        }
    }
}

fn keys_for_status(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 | 413 | 415 | 422 => ("error-400-title", "error-400-body"),
        401 | 403 => ("error-403-title", "error-403-body"),
        404 | 405 => ("error-404-title", "error-404-body"),
        409 => ("error-409-title", "error-409-body"),
        429 => ("error-429-title", "error-429-body"),
        503 => ("error-503-title", "error-503-body"),
        s if s >= 500 => ("error-500-title", "error-500-body"),
        _ => ("error-400-title", "error-400-body"),
    }
}

impl From<DomainError> for AppError {
    fn from(e: DomainError) -> AppError {
        match e {
            DomainError::NotFound => AppError::NotFound,
            DomainError::Forbidden => AppError::Forbidden,
            DomainError::InvalidCredentials => AppError::Forbidden,
            DomainError::Invalid { field, reason } => {
                AppError::BadRequest(format!("{field}: {reason}"))
            }
            DomainError::Conflict(m) => AppError::Conflict(m),
            DomainError::Unavailable(m) => AppError::Unavailable(m),
            other => AppError::Internal(anyhow::Error::new(other)),
        }
    }
}

impl From<tera::Error> for AppError {
    fn from(e: tera::Error) -> AppError {
        AppError::Internal(anyhow::Error::new(e).context("rendering a template"))
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Forbidden | AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::SignInRequired => StatusCode::SEE_OTHER,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        let status = self.status_code();
        match self {
            AppError::Internal(cause) => {
                tracing::error!(error.cause_chain = %format!("{cause:#}"), "request failed")
            }
            AppError::Unavailable(cause) => tracing::error!(%cause, "a dependency is unavailable"),
            _ => {}
        }
        let mut res = HttpResponse::build(status);
        match self {
            AppError::SignInRequired => {
                res.insert_header((header::LOCATION, "/login"));
            }
            AppError::TooManyRequests { retry_after_secs } => {
                res.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            _ => {}
        }
        // Plain and internal-free; the outer middleware replaces it with the page.
        res.content_type("text/plain; charset=utf-8")
            .body(status.canonical_reason().unwrap_or("Error"))
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// Is this response one the error page must replace? Our own pages (HTML) and API
/// answers (JSON) stay; anything else at 4xx/5xx — plain text from an extractor, an
/// empty 404 — becomes the friendly page.
pub fn needs_error_page(res: &ServiceResponse<BoxBody>) -> bool {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return false;
    }
    let ct = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    !(ct.starts_with("text/html") || ct.starts_with("application/json"))
}

/// What an error page needs from the request, captured before the request is handed on
/// (an `HttpRequest` clone held across routing would make actix panic).
#[derive(Clone)]
pub struct PageInfo {
    pub state: Option<web::Data<AppState>>,
    pub lang: &'static str,
    pub request_id: String,
}

impl PageInfo {
    pub fn of(req: &HttpRequest) -> PageInfo {
        use actix_web::HttpMessage;
        PageInfo {
            state: req.app_data::<web::Data<AppState>>().cloned(),
            lang: i18n::negotiate(None, req),
            request_id: req
                .extensions()
                .get::<RequestId>()
                .map_or_else(|| "-".to_owned(), |id| id.to_string()),
        }
    }
}

/// The error page for `status` (and the error, when it is ours), as a full response.
pub fn error_page(
    info: &PageInfo,
    status: StatusCode,
    error: Option<&actix_web::Error>,
    mut headers: Vec<(header::HeaderName, header::HeaderValue)>,
) -> HttpResponse<BoxBody> {
    let (title_key, body_key) = error
        .and_then(|e| e.as_error::<AppError>())
        .map(AppError::message_keys)
        .unwrap_or_else(|| keys_for_status(status));
    let html = error_page_html(info, status, title_key, body_key);
    let mut res = HttpResponse::with_body(status, BoxBody::new(html));
    headers.retain(|(n, _)| n != header::CONTENT_TYPE && n != header::CONTENT_LENGTH);
    for (name, value) in headers {
        res.headers_mut().append(name, value);
    }
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

/// Replaces the body of an error response with the error page, keeping its status and
/// headers (Retry-After, Set-Cookie, …).
pub fn render_error_page(
    res: ServiceResponse<BoxBody>,
    info: &PageInfo,
) -> ServiceResponse<BoxBody> {
    let (req, old) = res.into_parts();
    let headers = old
        .headers()
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    let new = error_page(info, old.status(), old.error(), headers);
    ServiceResponse::new(req, new)
}

fn error_page_html(info: &PageInfo, status: StatusCode, title_key: &str, body_key: &str) -> String {
    if let Some(state) = &info.state {
        let mut ctx = tera::Context::new();
        ctx.insert("lang", info.lang);
        ctx.insert("status", &status.as_u16());
        ctx.insert("title_key", title_key);
        ctx.insert("body_key", body_key);
        ctx.insert("request_id", &info.request_id);
        ctx.insert("languages", i18n::LANGUAGES);
        // The base layout's variables: no user menu, no forms on an error page.
        ctx.insert("user", &None::<()>);
        ctx.insert("csrf_token", "");
        ctx.insert("path", "/");
        match state.templates.render("error.html", &ctx) {
            Ok(html) => return html,
            Err(e) => tracing::error!(error = %e, "the error page itself failed to render"),
        }
    }
    // Last resort when templates are unusable: still friendly, still no internals.
    format!(
        "<!doctype html><meta charset=utf-8><title>{code}</title><h1>{code}</h1>\
         <p>Something went wrong. Request id: {id}</p>",
        code = status.as_u16(),
        id = i18n::escape_text(&info.request_id),
    )
}
