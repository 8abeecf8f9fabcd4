//! `/admin/rooms`: every room (public, private, direct) — list and search, create, edit,
//! archive, delete (with a confirmation page), members and their roles, JSON export.
//! Export carries decrypted bodies, so it needs `messages.view` and is audited.

use super::{Errors, PAGE_SIZE, Staff, done, field_error, link, when};
use crate::error::{AppError, AppResult};
use actix_web::{HttpResponse, get, http::header, post, web};
use domain::{
    DomainError,
    bus::{Event, MembershipChange, Topic},
    db::write_tx,
    ids::{RoomId, UserId},
    model::{Room, RoomKind, RoomRole},
    permissions::Permission,
    repo::{
        admin::{self, RoomQuery},
        room::{self, NewRoom},
        user,
    },
};
use serde::{Deserialize, Serialize};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(new_form)
        .service(create)
        .service(detail)
        .service(edit)
        .service(archive)
        .service(set_member)
        .service(remove_member)
        .service(delete_confirm)
        .service(delete)
        .service(export);
}

#[derive(Serialize)]
struct RoomRow {
    id: i64,
    slug: String,
    name: String,
    topic: String,
    kind: &'static str,
    archived: bool,
    created: String,
}

impl RoomRow {
    fn of(r: &Room) -> RoomRow {
        RoomRow {
            id: r.id.0,
            slug: r.slug.clone(),
            name: r.name.clone(),
            topic: r.topic.clone(),
            kind: r.kind.as_str(),
            archived: r.archived,
            created: when(r.created_at),
        }
    }
}

#[derive(Deserialize, Serialize, Default)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    archived: String,
    after: Option<i64>,
}

#[get("/rooms")]
async fn list(staff: Staff, q: web::Query<ListQuery>) -> AppResult<HttpResponse> {
    staff.require(Permission::RoomsView)?;
    let q = q.into_inner();
    let query = RoomQuery {
        search: Some(q.q.clone()),
        kind: RoomKind::parse(&q.kind),
        archived: match q.archived.as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        },
        after: q.after.map(RoomId),
    };
    let page = staff
        .state()
        .db
        .run(move |c| admin::list_rooms(c, &query, PAGE_SIZE))
        .await?;
    let next = page.next.map(|after| {
        link(
            "/admin/rooms",
            &[
                ("q", q.q.clone()),
                ("kind", q.kind.clone()),
                ("archived", q.archived.clone()),
                ("after", after.to_string()),
            ],
        )
    });
    let mut ctx = staff.context("rooms");
    ctx.insert(
        "rooms",
        &page.rows.iter().map(RoomRow::of).collect::<Vec<_>>(),
    );
    ctx.insert("query", &q);
    ctx.insert("next", &next);
    staff.render("admin/rooms.html", &ctx)
}

#[derive(Deserialize, Serialize, Default)]
struct NewForm {
    #[serde(default)]
    slug: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    kind: String,
}

fn new_page(staff: &Staff, form: &NewForm, errors: Errors) -> AppResult<HttpResponse> {
    let invalid = !errors.is_empty();
    let mut ctx = staff.context("rooms");
    ctx.insert("form", form);
    ctx.insert("errors", &errors.into_context(&["slug", "name", "topic"]));
    staff.render_form("admin/room_new.html", &ctx, invalid)
}

#[get("/rooms/new")]
async fn new_form(staff: Staff) -> AppResult<HttpResponse> {
    staff.require(Permission::RoomsChange)?;
    new_page(&staff, &NewForm::default(), Errors::default())
}

#[post("/rooms/new")]
async fn create(staff: Staff, form: web::Form<NewForm>) -> AppResult<HttpResponse> {
    staff.require(Permission::RoomsChange)?;
    let form = form.into_inner();
    let new = NewRoom {
        slug: form.slug.trim().to_owned(),
        name: form.name.clone(),
        topic: form.topic.clone(),
        kind: if form.kind == "private" {
            RoomKind::Private
        } else {
            RoomKind::Public
        },
        // Created by staff for others: no owner until staff give the room one.
        created_by: None,
    };
    let mut note = staff.note(
        "rooms.create",
        "room",
        "",
        serde_json::json!({"slug": new.slug, "kind": new.kind.as_str()}),
    );
    let result = staff
        .state()
        .db
        .run(move |c| {
            write_tx(c, |c| {
                let r = room::create(c, &new)?;
                note.set_target(r.id);
                note.record(c)?;
                Ok(r)
            })
        })
        .await;
    match result {
        Ok(r) => Ok(done(&format!("/admin/rooms/{}", r.id))),
        Err(e) => {
            let mut errors = Errors::default();
            match &e {
                DomainError::Conflict(_) => errors.add("slug", staff.t("rooms-slug-taken")),
                other => match field_error(&staff, other) {
                    Some((field, msg)) => errors.add(field, msg),
                    None => return Err(e.into()),
                },
            }
            new_page(&staff, &form, errors)
        }
    }
}

#[derive(Serialize)]
struct MemberRow {
    id: i64,
    username: String,
    display_name: String,
    role: &'static str,
}

struct Loaded {
    room: Room,
    members: Vec<MemberRow>,
    messages: i64,
}

async fn load(staff: &Staff, id: i64) -> AppResult<Loaded> {
    let id = RoomId(id);
    Ok(staff
        .state()
        .db
        .run(move |c| {
            let room = room::find(c, id)?;
            let members = user::members_of(c, id)?
                .into_iter()
                .map(|(u, role)| MemberRow {
                    id: u.id.0,
                    username: u.username,
                    display_name: u.display_name,
                    role: role.as_str(),
                })
                .collect();
            let (messages, _) = admin::room_size(c, id)?;
            Ok(Loaded {
                room,
                members,
                messages,
            })
        })
        .await?)
}

#[derive(Deserialize, Serialize, Default)]
struct EditForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    topic: String,
}

#[derive(Serialize, Default)]
struct MemberForm {
    username: String,
    role: String,
}

fn detail_page(
    staff: &Staff,
    l: &Loaded,
    edited: Option<&EditForm>,
    member: &MemberForm,
    errors: Errors,
) -> AppResult<HttpResponse> {
    let invalid = !errors.is_empty();
    let mut ctx = staff.context("rooms");
    let mut row = RoomRow::of(&l.room);
    if let Some(f) = edited {
        row.name = f.name.clone();
        row.topic = f.topic.clone();
    }
    ctx.insert("room", &row);
    ctx.insert("members", &l.members);
    ctx.insert("message_count", &l.messages);
    ctx.insert(
        "roles",
        &RoomRole::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
    );
    ctx.insert("member_form", member);
    ctx.insert(
        "errors",
        &errors.into_context(&["name", "topic", "username", "role"]),
    );
    staff.render_form("admin/room.html", &ctx, invalid)
}

#[get("/rooms/{id}")]
async fn detail(staff: Staff, id: web::Path<i64>) -> AppResult<HttpResponse> {
    staff.require(Permission::RoomsView)?;
    let l = load(&staff, id.into_inner()).await?;
    detail_page(&staff, &l, None, &MemberForm::default(), Errors::default())
}

#[post("/rooms/{id}")]
async fn edit(
    staff: Staff,
    id: web::Path<i64>,
    form: web::Form<EditForm>,
) -> AppResult<HttpResponse> {
    staff.require(Permission::RoomsChange)?;
    let l = load(&staff, id.into_inner()).await?;
    let form = form.into_inner();
    let rid = l.room.id;
    let (name, topic) = (form.name.clone(), form.topic.clone());
    let note = staff.note(
        "rooms.change",
        "room",
        rid,
        serde_json::json!({"name": name.trim(), "topic": topic.trim()}),
    );
    let result = staff
        .state()
        .db
        .run(move |c| {
            write_tx(c, |c| {
                room::update(c, rid, &name, &topic)?;
                note.record(c)
            })
        })
        .await;
    match result {
        Ok(()) => Ok(done(&format!("/admin/rooms/{rid}"))),
        Err(e) => match field_error(&staff, &e) {
            Some((field, msg)) => {
                let mut errors = Errors::default();
                errors.add(field, msg);
                detail_page(&staff, &l, Some(&form), &MemberForm::default(), errors)
            }
            None => Err(e.into()),
        },
    }
}

#[derive(Deserialize)]
struct ArchiveForm {
    #[serde(default)]
    archived: String,
}

#[post("/rooms/{id}/archive")]
async fn archive(
    staff: Staff,
    id: web::Path<i64>,
    form: web::Form<ArchiveForm>,
) -> AppResult<HttpResponse> {
    staff.require(Permission::RoomsChange)?;
    let rid = RoomId(id.into_inner());
    let archived = form.archived == "1";
    let note = staff.note(
        if archived {
            "rooms.archive"
        } else {
            "rooms.unarchive"
        },
        "room",
        rid,
        serde_json::json!({}),
    );
    staff
        .state()
        .db
        .run(move |c| {
            write_tx(c, |c| {
                room::set_archived(c, rid, archived)?;
                note.record(c)
            })
        })
        .await?;
    Ok(done(&format!("/admin/rooms/{rid}")))
}

#[derive(Deserialize)]
struct MemberInput {
    #[serde(default)]
    username: String,
    #[serde(default)]
    role: String,
}

/// Adds a member, or changes the role of one.
#[post("/rooms/{id}/members")]
async fn set_member(
    staff: Staff,
    id: web::Path<i64>,
    form: web::Form<MemberInput>,
) -> AppResult<HttpResponse> {
    staff.require(Permission::RoomsChange)?;
    let l = load(&staff, id.into_inner()).await?;
    let form = form.into_inner();
    let mut errors = Errors::default();
    let role = RoomRole::parse(&form.role);
    if role.is_none() {
        errors.add("role", staff.t("admin-error-role"));
    }
    let name = form.username.clone();
    let target = staff
        .state()
        .db
        .run(move |c| user::find_by_username(c, &name))
        .await?;
    if target.is_none() {
        errors.add("username", staff.t("admin-error-no-such-user"));
    }
    let (Some(role), Some(target)) = (role, target) else {
        let again = MemberForm {
            username: form.username,
            role: form.role,
        };
        return detail_page(&staff, &l, None, &again, errors);
    };
    let rid = l.room.id;
    let was_member = l.members.iter().any(|m| m.id == target.id.0);
    let note = staff.note(
        "rooms.member",
        "room",
        rid,
        serde_json::json!({"user": target.username, "role": role.as_str()}),
    );
    let uid = target.id;
    staff
        .state()
        .db
        .run(move |c| {
            write_tx(c, |c| {
                room::add_member(c, rid, uid, role)?;
                note.record(c)
            })
        })
        .await?;
    announce(
        &staff,
        &l.room,
        uid,
        if was_member {
            MembershipChange::RoleChanged
        } else {
            MembershipChange::Joined
        },
    )
    .await;
    Ok(done(&format!("/admin/rooms/{rid}")))
}

#[post("/rooms/{id}/members/{user}/remove")]
async fn remove_member(staff: Staff, path: web::Path<(i64, i64)>) -> AppResult<HttpResponse> {
    staff.require(Permission::RoomsChange)?;
    let (rid, uid) = path.into_inner();
    let l = load(&staff, rid).await?;
    let (rid, uid) = (l.room.id, UserId(uid));
    let note = staff.note(
        "rooms.member_remove",
        "room",
        rid,
        serde_json::json!({"user_id": uid.0}),
    );
    let removed = staff
        .state()
        .db
        .run(move |c| {
            write_tx(c, |c| {
                let removed = room::remove_member(c, rid, uid)?;
                if removed {
                    note.record(c)?;
                }
                Ok(removed)
            })
        })
        .await?;
    if !removed {
        return Err(AppError::NotFound);
    }
    announce(&staff, &l.room, uid, MembershipChange::Left).await;
    Ok(done(&format!("/admin/rooms/{rid}")))
}

async fn announce(staff: &Staff, room: &Room, user: UserId, change: MembershipChange) {
    let event = Event::Membership {
        room_id: room.id,
        room: room.slug.clone(),
        user_id: user,
        change,
    };
    if let Err(e) = staff
        .state()
        .bus
        .publish(Topic::Room(room.id), &event)
        .await
    {
        tracing::warn!(error = %e, "could not announce a membership change");
    }
}

fn delete_page(staff: &Staff, l: &Loaded, error: Option<String>) -> AppResult<HttpResponse> {
    let mut ctx = staff.context("rooms");
    ctx.insert("room", &RoomRow::of(&l.room));
    ctx.insert("message_count", &l.messages);
    ctx.insert("member_count", &l.members.len());
    ctx.insert("error", &error);
    if error.is_some() {
        staff.render_invalid("admin/room_delete.html", &ctx)
    } else {
        staff.render("admin/room_delete.html", &ctx)
    }
}

#[get("/rooms/{id}/delete")]
async fn delete_confirm(staff: Staff, id: web::Path<i64>) -> AppResult<HttpResponse> {
    staff.require(Permission::RoomsDelete)?;
    let l = load(&staff, id.into_inner()).await?;
    delete_page(&staff, &l, None)
}

#[post("/rooms/{id}/delete")]
async fn delete(staff: Staff, id: web::Path<i64>) -> AppResult<HttpResponse> {
    staff.require(Permission::RoomsDelete)?;
    let l = load(&staff, id.into_inner()).await?;
    let rid = l.room.id;
    let note = staff.note(
        "rooms.delete",
        "room",
        rid,
        serde_json::json!({"slug": l.room.slug, "messages": l.messages}),
    );
    let result = staff
        .state()
        .db
        .run(move |c| {
            write_tx(c, |c| {
                room::delete(c, rid)?;
                note.record(c)
            })
        })
        .await;
    match result {
        Ok(()) => Ok(done("/admin/rooms")),
        Err(DomainError::Invalid { .. }) => {
            delete_page(&staff, &l, Some(staff.t("admin-error-general-room")))
        }
        Err(e) => Err(e.into()),
    }
}

/// The room as a JSON download (`docs/export-format.md`).
#[get("/rooms/{id}/export")]
async fn export(staff: Staff, id: web::Path<i64>) -> AppResult<HttpResponse> {
    staff.require(Permission::RoomsView)?;
    staff.require(Permission::MessagesView)?;
    let rid = RoomId(id.into_inner());
    let keys = staff.state().message_keys.clone();
    let mut note = staff.note("rooms.export", "room", rid, serde_json::json!({}));
    let (slug, json) = staff
        .state()
        .db
        .run(move |c| {
            let r = room::find(c, rid)?;
            let e = domain::export::export_room(c, &keys, &r.slug)?;
            let mut buf = Vec::new();
            domain::export::write_json(&e, &mut buf)?;
            note.set_detail(serde_json::json!({"slug": r.slug, "messages": e.messages.len()}));
            note.record(c)?;
            Ok((r.slug, buf))
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"confab-room-{slug}.json\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(json))
}
