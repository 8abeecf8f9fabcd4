//! Rooms: browse public rooms, create one (public or private), join a public one, and
//! the owners' settings page. Every decision goes through `domain::permissions`; a room
//! the user may not read is a 404, so private rooms cannot be discovered by slug.

use super::invalid_field_key;
use crate::{
    error::{AppError, AppResult},
    extract::{CurrentUser, Page, see_other},
    state::AppState,
};
use actix_web::{HttpResponse, get, http::StatusCode, post, web};
use domain::{
    DomainError,
    bus::{Event, MembershipChange, Topic},
    ids::{RoomId, UserId},
    model::{Room, RoomKind, RoomRole},
    permissions::{self, Action},
    repo::{
        self,
        room::{self, NewRoom},
    },
};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

const PAGE_SIZE: i64 = 50;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(join)
        .service(settings_form)
        .service(save_settings)
        .service(member_list)
        .service(change_role)
        .service(remove_member);
}

#[derive(Serialize)]
struct PublicRoomView {
    slug: String,
    name: String,
    topic: String,
    archived: bool,
    member: bool,
}

#[derive(Deserialize)]
struct ListQuery {
    after: Option<i64>,
}

#[derive(Default, Deserialize, Serialize)]
struct CreateForm {
    slug: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    kind: String,
}

async fn list_page(
    page: &Page,
    state: &AppState,
    me: &CurrentUser,
    after: Option<i64>,
    form: &CreateForm,
    error: Option<String>,
) -> AppResult<HttpResponse> {
    let uid = me.id();
    let (public, mine) = state
        .db
        .run(move |c| {
            let public = room::list_public(c, after.map(RoomId), PAGE_SIZE)?;
            let mine: HashSet<RoomId> = room::rooms_of(c, uid)?
                .into_iter()
                .map(|(r, _)| r.id)
                .collect();
            Ok((public, mine))
        })
        .await?;
    let next_after = (public.len() as i64 == PAGE_SIZE)
        .then(|| public.last().map(|r| r.id.0))
        .flatten();
    let rooms: Vec<PublicRoomView> = public
        .into_iter()
        .map(|r| PublicRoomView {
            member: mine.contains(&r.id),
            slug: r.slug,
            name: r.name,
            topic: r.topic,
            archived: r.archived,
        })
        .collect();
    let mut ctx = page.context();
    ctx.insert("rooms", &rooms);
    ctx.insert("next_after", &next_after);
    ctx.insert("form", form);
    ctx.insert("error", &error);
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    page.render_status(status, "rooms.html", &ctx)
}

#[get("/rooms")]
async fn list(
    page: Page,
    me: CurrentUser,
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    list_page(&page, &state, &me, q.after, &CreateForm::default(), None).await
}

#[post("/rooms")]
async fn create(
    page: Page,
    me: CurrentUser,
    state: web::Data<AppState>,
    form: web::Form<CreateForm>,
) -> AppResult<HttpResponse> {
    let form = form.into_inner();
    let kind = match form.kind.as_str() {
        "private" => RoomKind::Private,
        _ => RoomKind::Public,
    };
    let new = NewRoom {
        slug: form.slug.trim().to_owned(),
        name: form.name.clone(),
        topic: form.topic.clone(),
        kind,
        created_by: Some(me.id()),
    };
    match state.db.run(move |c| room::create(c, &new)).await {
        Ok(room) => {
            tracing::info!(room = %room.slug, user_id = %me.id(), "room created");
            Ok(see_other(&format!("/#{}", room.slug)))
        }
        Err(e) => {
            let key = match &e {
                DomainError::Conflict(_) => Some("rooms-slug-taken"),
                other => invalid_field_key(other),
            };
            let Some(key) = key else {
                return Err(e.into());
            };
            let msg = page.t(key);
            list_page(&page, &state, &me, None, &form, Some(msg)).await
        }
    }
}

/// The room and the user's role in it, or 404 when the user may not even read it.
async fn readable_room(
    state: &AppState,
    me: &CurrentUser,
    slug: String,
) -> AppResult<(Room, Option<RoomRole>, permissions::Subject)> {
    let user = me.user.clone();
    state
        .db
        .run(move |c| {
            let room = room::find_by_slug(c, &slug)?.ok_or(DomainError::NotFound)?;
            let role = room::membership(c, room.id, user.id)?.map(|m| m.role);
            let subject = permissions::subject(c, user)?;
            if !permissions::decide(&subject, Action::ReadRoom, Some((&room, role))) {
                return Err(DomainError::NotFound);
            }
            Ok((room, role, subject))
        })
        .await
        .map_err(AppError::from)
}

#[post("/rooms/{slug}/join")]
async fn join(
    me: CurrentUser,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> AppResult<HttpResponse> {
    let (room, role, subject) = readable_room(&state, &me, slug.into_inner()).await?;
    if !permissions::decide(&subject, Action::JoinRoom, Some((&room, role))) {
        return Err(AppError::Forbidden);
    }
    if role.is_none() {
        let (rid, uid) = (room.id, me.id());
        state
            .db
            .run(move |c| room::add_member(c, rid, uid, RoomRole::Member))
            .await?;
        let event = Event::Membership {
            room_id: room.id,
            room: room.slug.clone(),
            user_id: me.id(),
            change: MembershipChange::Joined,
        };
        if let Err(e) = state.bus.publish(Topic::Room(room.id), &event).await {
            tracing::warn!(error = %e, "could not announce a new member");
        }
    }
    Ok(see_other(&format!("/#{}", room.slug)))
}

#[derive(Deserialize, Serialize)]
struct SettingsForm {
    name: String,
    #[serde(default)]
    topic: String,
    /// A checkbox: present when ticked.
    archived: Option<String>,
}

#[derive(Serialize)]
struct RoomSettingsView {
    slug: String,
    name: String,
    topic: String,
    archived: bool,
}

fn settings_page(
    page: &Page,
    room: RoomSettingsView,
    error: Option<String>,
    saved: bool,
) -> AppResult<HttpResponse> {
    let mut ctx = page.context();
    ctx.insert("room", &room);
    ctx.insert("error", &error);
    ctx.insert("saved", &saved);
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    page.render_status(status, "room_settings.html", &ctx)
}

#[derive(Deserialize)]
struct SavedQuery {
    saved: Option<String>,
}

#[get("/rooms/{slug}/settings")]
async fn settings_form(
    page: Page,
    me: CurrentUser,
    state: web::Data<AppState>,
    slug: web::Path<String>,
    q: web::Query<SavedQuery>,
) -> AppResult<HttpResponse> {
    let (room, role, subject) = readable_room(&state, &me, slug.into_inner()).await?;
    if !permissions::decide(&subject, Action::ManageRoom, Some((&room, role))) {
        return Err(AppError::Forbidden);
    }
    let view = RoomSettingsView {
        slug: room.slug,
        name: room.name,
        topic: room.topic,
        archived: room.archived,
    };
    settings_page(&page, view, None, q.saved.is_some())
}

#[post("/rooms/{slug}/settings")]
async fn save_settings(
    page: Page,
    me: CurrentUser,
    state: web::Data<AppState>,
    slug: web::Path<String>,
    form: web::Form<SettingsForm>,
) -> AppResult<HttpResponse> {
    let (room, role, subject) = readable_room(&state, &me, slug.into_inner()).await?;
    if !permissions::decide(&subject, Action::ManageRoom, Some((&room, role))) {
        return Err(AppError::Forbidden);
    }
    let form = form.into_inner();
    let archived = form.archived.is_some();
    let (rid, name, topic) = (room.id, form.name.clone(), form.topic.clone());
    let result = state
        .db
        .run(move |c| {
            domain::db::write_tx(c, |c| {
                room::update(c, rid, &name, &topic)?;
                room::set_archived(c, rid, archived)
            })
        })
        .await;
    match result {
        Ok(()) => {
            tracing::info!(room = %room.slug, user_id = %me.id(), "room settings changed");
            Ok(see_other(&format!("/rooms/{}/settings?saved=1", room.slug)))
        }
        Err(e) => {
            let Some(key) = invalid_field_key(&e) else {
                return Err(e.into());
            };
            let view = RoomSettingsView {
                slug: room.slug,
                name: form.name,
                topic: form.topic,
                archived,
            };
            settings_page(&page, view, Some(page.t(key)), false)
        }
    }
}

#[derive(Serialize)]
struct MemberView {
    id: i64,
    username: String,
    display_name: String,
    role: &'static str,
}

/// The member list, with the role controls when the viewer may manage members.
async fn members_page(
    page: &Page,
    state: &AppState,
    me: &CurrentUser,
    slug: String,
    error: Option<String>,
) -> AppResult<HttpResponse> {
    let (room, role, subject) = readable_room(state, me, slug).await?;
    let rid = room.id;
    let rows = state
        .db
        .run(move |c| repo::user::members_of(c, rid))
        .await?;
    let views: Vec<MemberView> = rows
        .into_iter()
        .map(|(u, role)| MemberView {
            id: u.id.0,
            username: u.username,
            display_name: u.display_name,
            role: role.as_str(),
        })
        .collect();
    let can_manage = permissions::decide(&subject, Action::ManageMembers, Some((&room, role)));
    let can_settings = permissions::decide(&subject, Action::ManageRoom, Some((&room, role)));
    let mut ctx = page.context();
    ctx.insert(
        "room",
        &RoomHeading {
            slug: room.slug,
            name: room.name,
        },
    );
    ctx.insert("members", &views);
    ctx.insert("can_manage", &can_manage);
    ctx.insert("is_owner", &(role == Some(RoomRole::Owner)));
    ctx.insert("can_settings", &can_settings);
    ctx.insert("roles", &["owner", "moderator", "member", "readonly"]);
    ctx.insert("error", &error);
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    page.render_status(status, "room_members.html", &ctx)
}

#[derive(Serialize)]
struct RoomHeading {
    slug: String,
    name: String,
}

#[get("/rooms/{slug}/members")]
async fn member_list(
    page: Page,
    me: CurrentUser,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> AppResult<HttpResponse> {
    members_page(&page, &state, &me, slug.into_inner(), None).await
}

#[derive(Deserialize)]
struct RoleForm {
    role: String,
}

/// Why a member change was refused, to show on the member list.
enum MemberChange {
    Done(Option<MembershipChange>),
    LastOwner,
}

/// Applies `new_role` (`None`: remove) to member `target`, after the checks every
/// change shares: the viewer manages members here; only an owner grants or takes away
/// ownership; the room never loses its last owner.
async fn change_member(
    state: &AppState,
    me: &CurrentUser,
    slug: String,
    target: UserId,
    new_role: Option<RoomRole>,
) -> AppResult<(Room, MemberChange)> {
    let (room, role, subject) = readable_room(state, me, slug).await?;
    if !permissions::decide(&subject, Action::ManageMembers, Some((&room, role))) {
        return Err(AppError::Forbidden);
    }
    let rid = room.id;
    let viewer_is_owner = role == Some(RoomRole::Owner);
    let outcome = state
        .db
        .run(move |c| {
            domain::db::write_tx(c, |c| {
                let current = room::membership(c, rid, target)?
                    .ok_or(DomainError::NotFound)?
                    .role;
                let touches_owner = current == RoomRole::Owner || new_role == Some(RoomRole::Owner);
                if touches_owner && !viewer_is_owner {
                    return Err(DomainError::Forbidden);
                }
                if current == RoomRole::Owner && new_role != Some(RoomRole::Owner) {
                    let owners = repo::user::members_of(c, rid)?
                        .into_iter()
                        .filter(|(_, r)| *r == RoomRole::Owner)
                        .count();
                    if owners <= 1 {
                        return Ok(MemberChange::LastOwner);
                    }
                }
                match new_role {
                    Some(r) if r == current => Ok(MemberChange::Done(None)),
                    Some(r) => {
                        room::add_member(c, rid, target, r)?;
                        Ok(MemberChange::Done(Some(MembershipChange::RoleChanged)))
                    }
                    None => {
                        let removed = room::remove_member(c, rid, target)?;
                        Ok(MemberChange::Done(
                            removed.then_some(MembershipChange::Left),
                        ))
                    }
                }
            })
        })
        .await
        .map_err(AppError::from)?;
    if let MemberChange::Done(Some(change)) = &outcome {
        tracing::info!(room = %room.slug, user_id = %me.id(), member = %target, "membership changed");
        let event = Event::Membership {
            room_id: room.id,
            room: room.slug.clone(),
            user_id: target,
            change: *change,
        };
        if let Err(e) = state.bus.publish(Topic::Room(room.id), &event).await {
            tracing::warn!(error = %e, "could not announce a membership change");
        }
    }
    Ok((room, outcome))
}

async fn after_change(
    page: &Page,
    state: &AppState,
    me: &CurrentUser,
    room: Room,
    outcome: MemberChange,
) -> AppResult<HttpResponse> {
    match outcome {
        MemberChange::Done(_) => Ok(see_other(&format!("/rooms/{}/members", room.slug))),
        MemberChange::LastOwner => {
            let msg = page.t("members-last-owner");
            members_page(page, state, me, room.slug, Some(msg)).await
        }
    }
}

#[post("/rooms/{slug}/members/{user}/role")]
async fn change_role(
    page: Page,
    me: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    form: web::Form<RoleForm>,
) -> AppResult<HttpResponse> {
    let (slug, target) = path.into_inner();
    let role =
        RoomRole::parse(&form.role).ok_or_else(|| AppError::BadRequest("role: unknown".into()))?;
    let (room, outcome) = change_member(&state, &me, slug, UserId(target), Some(role)).await?;
    after_change(&page, &state, &me, room, outcome).await
}

#[post("/rooms/{slug}/members/{user}/remove")]
async fn remove_member(
    page: Page,
    me: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let (slug, target) = path.into_inner();
    let (room, outcome) = change_member(&state, &me, slug, UserId(target), None).await?;
    after_change(&page, &state, &me, room, outcome).await
}
