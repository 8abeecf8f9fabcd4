//! Private chats and blocking, as JSON (see `docs/http-api.md`):
//! `POST /api/direct`, `GET|POST /api/blocks`, `DELETE /api/blocks/{username}`.
//! CSRF is checked by the middleware (the `X-CSRF-Token` header) before any of these run.

use super::api::{ApiError, ApiUser, UserView};
use crate::state::AppState;
use actix_web::{HttpResponse, delete, get, http::StatusCode, post, web};
use domain::{
    DomainError,
    bus::{Event, MembershipChange, Topic},
    repo,
};
use serde::{Deserialize, de::DeserializeOwned};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(open)
        .service(list_blocks)
        .service(add_block)
        .service(remove_block);
}

/// Parses a JSON body, answering a JSON 400 (not the HTML error page) when it is not.
fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenBody {
    usernames: Vec<String>,
}

/// `POST /api/direct {"usernames":["bob"]}`: the private chat with these people, found
/// or created. 201 when created (and every member hears of it), 200 when it existed.
#[post("/api/direct")]
async fn open(
    me: ApiUser,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let OpenBody { usernames } = json_body(&body)?;
    if usernames.is_empty() || usernames.len() > repo::direct::MAX_MEMBERS - 1 {
        return Err(ApiError::bad_request(format!(
            "usernames: name 1 to {} other people",
            repo::direct::MAX_MEMBERS - 1
        )));
    }
    let creator = me.user().clone();
    let direct = state
        .db
        .run(move |c| repo::direct::open(c, &creator, &usernames))
        .await
        .map_err(|e| match e {
            DomainError::Forbidden => ApiError::forbidden("blocked"),
            other => ApiError::from(other),
        })?;
    if direct.created {
        tracing::info!(room = %direct.room.slug, user_id = %me.user().id, members = direct.members.len(), "private chat created");
        // Every member's sidebars (all their sockets, on every gateway) learn of it.
        for member in &direct.members {
            let event = Event::Membership {
                room_id: direct.room.id,
                room: direct.room.slug.clone(),
                user_id: member.id,
                change: MembershipChange::Joined,
            };
            if let Err(e) = state.bus.publish(Topic::User(member.id), &event).await {
                tracing::warn!(error = %e, "could not announce a private chat");
            }
        }
    }
    let status = if direct.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let members: Vec<UserView> = direct.members.iter().map(UserView::from).collect();
    Ok(HttpResponse::build(status).json(serde_json::json!({
        "room": {
            "slug": direct.room.slug,
            "name": direct.room.name,
            "kind": direct.room.kind.as_str(),
            "members": members,
        },
        "created": direct.created,
    })))
}

/// `GET /api/blocks`: whom I block.
#[get("/api/blocks")]
async fn list_blocks(me: ApiUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let uid = me.user().id;
    let users = state.db.run(move |c| repo::block::list(c, uid)).await?;
    let users: Vec<UserView> = users.iter().map(UserView::from).collect();
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "users": users })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockBody {
    username: String,
}

/// `POST /api/blocks {"username":"bob"}`: block bob (idempotent).
#[post("/api/blocks")]
async fn add_block(
    me: ApiUser,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let BlockBody { username } = json_body(&body)?;
    set_block(me, state, username, true).await
}

/// `DELETE /api/blocks/{username}`: lift the block (idempotent).
#[delete("/api/blocks/{username}")]
async fn remove_block(
    me: ApiUser,
    state: web::Data<AppState>,
    username: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_block(me, state, username.into_inner(), false).await
}

async fn set_block(
    me: ApiUser,
    state: web::Data<AppState>,
    username: String,
    blocked: bool,
) -> Result<HttpResponse, ApiError> {
    let uid = me.user().id;
    let target = state
        .db
        .run(move |c| {
            let target =
                repo::user::find_by_username(c, &username)?.ok_or(DomainError::NotFound)?;
            if blocked {
                repo::block::block(c, uid, target.id)?;
            } else {
                repo::block::unblock(c, uid, target.id)?;
            }
            Ok(target)
        })
        .await?;
    tracing::info!(user_id = %uid, target_id = %target.id, blocked, "block changed");
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "username": target.username,
        "blocked": blocked,
    })))
}
