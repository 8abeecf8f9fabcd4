//! `/admin/messages`: messages filtered by room, author and date, newest first.
//!
//! Listing shows metadata to holders of `messages.view` or `messages.delete`; bodies are
//! decrypted only for `messages.view`, and each page of a private or direct room's
//! messages read that way is written to the audit log. Soft-delete and restore publish
//! `deleted` / `restored` on the room's topic so open clients update at once.

use super::{Errors, PAGE_SIZE, Staff, done, link, parse_date, when};
use crate::error::AppResult;
use actix_web::{HttpResponse, get, post, web};
use domain::{
    bus::{Event, Topic, WireMessage, WireUser},
    db::write_tx,
    ids::{MessageId, RoomId},
    model::{Body, Message, RoomKind},
    permissions::Permission,
    repo::{
        admin::{self, MessageMeta, MessageQuery},
        message, room, user,
    },
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(delete_confirm)
        .service(delete)
        .service(restore);
}

const SEE: &[Permission] = &[Permission::MessagesView, Permission::MessagesDelete];

#[derive(Serialize)]
struct MessageRow {
    id: i64,
    room: String,
    room_kind: String,
    author: String,
    kind: &'static str,
    created: String,
    edited: String,
    deleted: bool,
    body: Option<String>,
}

fn row(m: &MessageMeta, body: Option<String>) -> MessageRow {
    MessageRow {
        id: m.id.0,
        room: m.room_slug.clone(),
        room_kind: m.room_kind.clone(),
        author: m.author.clone().unwrap_or_default(),
        kind: m.kind.as_str(),
        created: when(m.created_at),
        edited: m.edited_at.map(when).unwrap_or_default(),
        deleted: m.deleted_at.is_some(),
        body,
    }
}

fn body_text(m: &Message) -> String {
    match &m.body {
        Body::Text(t) => t.clone(),
        Body::Undecryptable(_) => "⚠".to_owned(),
    }
}

#[derive(Deserialize, Serialize, Default)]
struct ListQuery {
    #[serde(default)]
    room: String,
    #[serde(default)]
    author: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    until: String,
    before: Option<i64>,
}

const FILTER_FIELDS: &[&str] = &["room", "author", "from", "until"];

#[get("/messages")]
async fn list(staff: Staff, q: web::Query<ListQuery>) -> AppResult<HttpResponse> {
    staff.require_any(SEE)?;
    let q = q.into_inner();
    let mut errors = Errors::default();
    let from = match q.from.trim() {
        "" => None,
        s => parse_date(s).or_else(|| {
            errors.add("from", staff.t("admin-error-date"));
            None
        }),
    };
    // "until" is inclusive for people: everything before the next day.
    let until = match q.until.trim() {
        "" => None,
        s => match parse_date(s) {
            Some(t) => Some(t.plus_secs(86_400)),
            None => {
                errors.add("until", staff.t("admin-error-date"));
                None
            }
        },
    };
    let (room_slug, author) = (q.room.trim().to_owned(), q.author.trim().to_owned());
    let (room, author) = staff
        .state()
        .db
        .run(move |c| {
            let room = match room_slug.as_str() {
                "" => Ok(None),
                s => room::find_by_slug(c, s)?.map(Some).ok_or(()),
            };
            let author = match author.as_str() {
                "" => Ok(None),
                s => user::find_by_username(c, s)?.map(Some).ok_or(()),
            };
            Ok((room, author))
        })
        .await?;
    if room.is_err() {
        errors.add("room", staff.t("admin-error-no-such-room"));
    }
    if author.is_err() {
        errors.add("author", staff.t("admin-error-no-such-user"));
    }
    let mut ctx = staff.context("messages");
    ctx.insert("query", &q);
    if !errors.is_empty() {
        ctx.insert("errors", &errors.into_context(FILTER_FIELDS));
        ctx.insert("messages", &Vec::<MessageRow>::new());
        ctx.insert("next", &None::<String>);
        ctx.insert("with_bodies", &false);
        return staff.render_invalid("admin/messages.html", &ctx);
    }
    let query = MessageQuery {
        room: room.ok().flatten().map(|r| r.id),
        author: author.ok().flatten().map(|u| u.id),
        from,
        until,
        before: q.before.map(MessageId),
    };
    let with_bodies = staff.can(Permission::MessagesView);
    let keys = staff.state().message_keys.clone();
    let staff_note = |room: RoomId, slug: &str, ids: &[i64]| {
        staff.note(
            "messages.view",
            "room",
            room,
            serde_json::json!({"slug": slug, "messages": ids}),
        )
    };
    let (page, bodies) = {
        let db = &staff.state().db;
        let page = db
            .run(move |c| admin::list_messages(c, &query, PAGE_SIZE))
            .await?;
        let mut bodies: BTreeMap<i64, String> = BTreeMap::new();
        if with_bodies && !page.rows.is_empty() {
            let ids: Vec<MessageId> = page.rows.iter().map(|m| m.id).collect();
            // Reading a private conversation is recorded, per room, with what was shown.
            let mut by_room: BTreeMap<(i64, String), Vec<i64>> = BTreeMap::new();
            for m in page
                .rows
                .iter()
                .filter(|m| m.room_kind != RoomKind::Public.as_str())
            {
                by_room
                    .entry((m.room_id.0, m.room_slug.clone()))
                    .or_default()
                    .push(m.id.0);
            }
            let mut notes = Vec::new();
            for ((rid, slug), ids) in &by_room {
                notes.push(staff_note(RoomId(*rid), slug, ids));
            }
            bodies = db
                .run(move |c| {
                    write_tx(c, |c| {
                        for n in &notes {
                            n.record(c)?;
                        }
                        let mut out = BTreeMap::new();
                        for id in ids {
                            let m = message::find(c, &keys, id)?;
                            out.insert(id.0, body_text(&m));
                        }
                        Ok(out)
                    })
                })
                .await?;
        }
        (page, bodies)
    };
    let rows: Vec<MessageRow> = page
        .rows
        .iter()
        .map(|m| row(m, bodies.get(&m.id.0).cloned()))
        .collect();
    let next = page.next.map(|before| {
        link(
            "/admin/messages",
            &[
                ("room", q.room.clone()),
                ("author", q.author.clone()),
                ("from", q.from.clone()),
                ("until", q.until.clone()),
                ("before", before.to_string()),
            ],
        )
    });
    ctx.insert("errors", &Errors::default().into_context(FILTER_FIELDS));
    ctx.insert("messages", &rows);
    ctx.insert("next", &next);
    ctx.insert("with_bodies", &with_bodies);
    staff.render("admin/messages.html", &ctx)
}

/// A message's metadata, for the confirmation page and the actions.
async fn load(staff: &Staff, id: i64) -> AppResult<(Message, domain::model::Room)> {
    let keys = staff.state().message_keys.clone();
    Ok(staff
        .state()
        .db
        .run(move |c| {
            let m = message::find(c, &keys, MessageId(id))?;
            let r = room::find(c, m.room_id)?;
            Ok((m, r))
        })
        .await?)
}

#[get("/messages/{id}/delete")]
async fn delete_confirm(staff: Staff, id: web::Path<i64>) -> AppResult<HttpResponse> {
    staff.require(Permission::MessagesDelete)?;
    let (m, r) = load(&staff, id.into_inner()).await?;
    let with_body = staff.can(Permission::MessagesView);
    if with_body && r.kind != RoomKind::Public {
        let note = staff.note(
            "messages.view",
            "room",
            r.id,
            serde_json::json!({"slug": r.slug, "messages": [m.id.0]}),
        );
        staff.state().db.run(move |c| note.record(c)).await?;
    }
    let meta = MessageMeta {
        id: m.id,
        room_id: r.id,
        room_slug: r.slug.clone(),
        room_kind: r.kind.as_str().to_owned(),
        author: m.author.as_ref().map(|a| a.username.clone()),
        kind: m.kind,
        created_at: m.created_at,
        edited_at: m.edited_at,
        deleted_at: m.deleted_at,
    };
    let mut ctx = staff.context("messages");
    ctx.insert("m", &row(&meta, with_body.then(|| body_text(&m))));
    staff.render("admin/message_delete.html", &ctx)
}

fn wire(room: &str, m: &Message) -> WireMessage {
    let deleted = m.deleted_at.is_some();
    WireMessage {
        id: m.id,
        room: room.to_owned(),
        author: m.author.as_ref().map(|a| WireUser {
            username: a.username.clone(),
            display_name: a.display_name.clone(),
        }),
        kind: m.kind.as_str().to_owned(),
        body: match (&m.body, deleted) {
            (Body::Text(t), false) => t.clone(),
            _ => String::new(),
        },
        ts: m.created_at.micros(),
        edited_ts: m.edited_at.map(|t| t.micros()),
        deleted,
        client_id: m.client_id.clone(),
    }
}

async fn set_deleted(staff: &Staff, id: i64, deleted: bool) -> AppResult<HttpResponse> {
    staff.require(Permission::MessagesDelete)?;
    let (m, r) = load(staff, id).await?;
    if m.deleted_at.is_some() == deleted {
        // Already so: nothing to change, nothing to announce.
        return Ok(done(&format!("/admin/messages?room={}", r.slug)));
    }
    let keys = staff.state().message_keys.clone();
    let note = staff.note(
        if deleted {
            "messages.delete"
        } else {
            "messages.restore"
        },
        "message",
        m.id,
        serde_json::json!({"room": r.slug, "author": m.author.as_ref().map(|a| a.username.clone())}),
    );
    let mid = m.id;
    let updated = staff
        .state()
        .db
        .run(move |c| {
            write_tx(c, |c| {
                let m = message::set_deleted(c, &keys, mid, deleted)?;
                note.record(c)?;
                Ok(m)
            })
        })
        .await?;
    let event = if deleted {
        Event::Deleted {
            room_id: r.id,
            room: r.slug.clone(),
            id: updated.id,
        }
    } else {
        Event::Restored {
            room_id: r.id,
            message: wire(&r.slug, &updated),
        }
    };
    if let Err(e) = staff.state().bus.publish(Topic::Room(r.id), &event).await {
        // Stored already; clients catch up on their next join.
        tracing::warn!(error = %e, "could not announce a message deletion or restoration");
    }
    Ok(done(&format!("/admin/messages?room={}", r.slug)))
}

#[post("/messages/{id}/delete")]
async fn delete(staff: Staff, id: web::Path<i64>) -> AppResult<HttpResponse> {
    set_deleted(&staff, id.into_inner(), true).await
}

#[post("/messages/{id}/restore")]
async fn restore(staff: Staff, id: web::Path<i64>) -> AppResult<HttpResponse> {
    set_deleted(&staff, id.into_inner(), false).await
}
