//! The JSON API the chat UI uses (see `docs/http-api.md`): the sidebar's rooms with
//! unread and mention counts, and the user picker. Also the pieces every JSON endpoint
//! shares: [`ApiError`] (errors as `{"error": code, "message": …}`, never an HTML page)
//! and [`ApiUser`] (401 instead of a redirect to the sign-in page).

use crate::{error::AppError, extract::CurrentUser, media::MediaError, state::AppState};
use actix_web::{
    FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, get, http::StatusCode, web,
};
use domain::{
    DomainError,
    ids::MessageId,
    model::{RoomKind, User},
    repo,
};
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};

/// Unread and mention counts stop here ("99+" in the UI), so a busy room costs a bounded
/// index scan.
pub const COUNT_CAP: i64 = 100;
/// Users per picker page.
const USERS_PAGE: i64 = 20;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(rooms).service(users);
}

/// A JSON error: `{"error":"<code>","message":"<for humans>"}` with its status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Sent as `Retry-After` (429).
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// 429 `rate_limited`, with `Retry-After: secs`.
    pub fn rate_limited(secs: u64, message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after_secs: Some(secs),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
    }

    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "not found")
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error.cause_chain = %cause, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"));
        if let Some(secs) = self.retry_after_secs {
            res.insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()));
        }
        res.json(serde_json::json!({"error": self.code, "message": self.message}))
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> ApiError {
        match e {
            DomainError::NotFound => ApiError::not_found(),
            DomainError::Forbidden | DomainError::InvalidCredentials => {
                ApiError::forbidden("not allowed")
            }
            DomainError::Invalid { field, reason } => {
                ApiError::bad_request(format!("{field}: {reason}"))
            }
            DomainError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            DomainError::Unavailable(m) => {
                tracing::error!(cause = %m, "a dependency is unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "temporarily unavailable",
                )
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> ApiError {
        match e {
            AppError::SignInRequired => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "sign in first")
            }
            AppError::NotFound => ApiError::not_found(),
            AppError::Forbidden | AppError::Csrf => ApiError::forbidden("not allowed"),
            AppError::BadRequest(m) => ApiError::bad_request(m),
            AppError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            AppError::TooManyRequests { retry_after_secs } => {
                ApiError::rate_limited(retry_after_secs, "too many requests")
            }
            AppError::Unavailable(m) => ApiError::from(DomainError::Unavailable(m)),
            AppError::Internal(cause) => ApiError::internal(format!("{cause:#}")),
        }
    }
}

impl From<MediaError> for ApiError {
    fn from(e: MediaError) -> ApiError {
        match e {
            MediaError::TooLarge(m) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", m),
            MediaError::Unsupported(m) => {
                ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_type", m)
            }
            MediaError::Broken(m) => ApiError::new(StatusCode::BAD_REQUEST, "broken_file", m),
            // A full disk is the operator's problem, but the user deserves to know the
            // upload was refused for lack of room rather than "something went wrong".
            MediaError::Io(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                ) =>
            {
                tracing::error!(error = %e, "media storage is full; upload refused");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "storage_full",
                    "The server has no room for this file right now; try again later or ask an administrator.",
                )
            }
            MediaError::Io(e) => ApiError::internal(e),
        }
    }
}

/// The signed-in user of a JSON request; `401` JSON when there is none.
#[derive(Debug, Clone)]
pub struct ApiUser(pub CurrentUser);

impl ApiUser {
    pub fn user(&self) -> &User {
        &self.0.user
    }
}

impl FromRequest for ApiUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let fut = CurrentUser::from_request(req, payload);
        Box::pin(async move { fut.await.map(ApiUser).map_err(ApiError::from) })
    }
}

/// A user as lists show them.
#[derive(Debug, Serialize)]
pub struct UserView {
    pub username: String,
    pub display_name: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> UserView {
        UserView {
            username: u.username.clone(),
            display_name: u.display_name.clone(),
        }
    }
}

#[derive(Serialize)]
struct RoomView {
    slug: String,
    name: String,
    topic: String,
    kind: &'static str,
    archived: bool,
    role: &'static str,
    last_read: Option<MessageId>,
    latest: Option<MessageId>,
    unread: i64,
    mentions: i64,
    /// Private chats only: who is in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    members: Option<Vec<UserView>>,
}

/// `GET /api/rooms`: the user's rooms, by slug, with their read state.
#[get("/api/rooms")]
async fn rooms(me: ApiUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let uid = me.user().id;
    let rooms = state
        .db
        .run(move |c| {
            let mut out = Vec::new();
            for (room, m) in repo::room::rooms_of(c, uid)? {
                let counts = repo::mention::unread(c, room.id, uid, m.last_read, COUNT_CAP)?;
                let latest = repo::message::latest_id(c, room.id)?;
                let members = if room.kind == RoomKind::Direct {
                    Some(
                        repo::user::members_of(c, room.id)?
                            .iter()
                            .map(|(u, _)| UserView::from(u))
                            .collect(),
                    )
                } else {
                    None
                };
                out.push(RoomView {
                    slug: room.slug,
                    name: room.name,
                    topic: room.topic,
                    kind: room.kind.as_str(),
                    archived: room.archived,
                    role: m.role.as_str(),
                    last_read: m.last_read,
                    latest,
                    unread: counts.unread,
                    mentions: counts.mentions,
                    members,
                });
            }
            Ok(out)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({"rooms": rooms, "count_cap": COUNT_CAP})))
}

#[derive(Deserialize)]
struct UsersQuery {
    q: Option<String>,
    after: Option<String>,
}

/// `GET /api/users?q=an&after=anna`: the user picker.
#[get("/api/users")]
async fn users(
    _me: ApiUser,
    state: web::Data<AppState>,
    query: web::Query<UsersQuery>,
) -> Result<HttpResponse, ApiError> {
    let UsersQuery { q, after } = query.into_inner();
    if q.as_deref().is_some_and(|q| q.len() > 64) || after.as_deref().is_some_and(|a| a.len() > 64)
    {
        return Err(ApiError::bad_request(
            "q and after are at most 64 characters",
        ));
    }
    let found = state
        .db
        .run(move |c| repo::direct::search_users(c, q.as_deref(), after.as_deref(), USERS_PAGE))
        .await?;
    let next = (found.len() as i64 == USERS_PAGE)
        .then(|| found.last().map(|u| u.username.to_ascii_lowercase()))
        .flatten();
    let users: Vec<UserView> = found.iter().map(UserView::from).collect();
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({"users": users, "next": next})))
}
