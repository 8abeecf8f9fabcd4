//! `/admin/attachments`: uploaded files' metadata, newest first; delete one (after a
//! confirmation page). Deleting removes the row, then the stored file and its thumbnail
//! through `media::remove_files` (the storage layout stays the media code's business).

use super::{PAGE_SIZE, Staff, done, link, when};
use crate::{error::AppResult, media};
use actix_web::{HttpResponse, get, post, web};
use domain::{
    db::write_tx,
    ids::AttachmentId,
    permissions::Permission,
    repo::admin::{self, AttachmentMeta, AttachmentQuery},
};
use serde::{Deserialize, Serialize};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list).service(delete_confirm).service(delete);
}

#[derive(Serialize)]
struct Row {
    id: i64,
    room: String,
    message_id: Option<i64>,
    uploader: String,
    content_type: String,
    size: i64,
    sha256: String,
    created: String,
}

fn row(a: &AttachmentMeta) -> Row {
    Row {
        id: a.id.0,
        room: a.room_slug.clone(),
        message_id: a.message_id.map(|m| m.0),
        uploader: a.uploader.clone().unwrap_or_default(),
        content_type: a.content_type.clone(),
        size: a.size,
        sha256: a.sha256.clone(),
        created: when(a.created_at),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    before: Option<i64>,
}

#[get("/attachments")]
async fn list(staff: Staff, q: web::Query<ListQuery>) -> AppResult<HttpResponse> {
    staff.require(Permission::AttachmentsDelete)?;
    let query = AttachmentQuery {
        room: None,
        before: q.before.map(AttachmentId),
    };
    let page = staff
        .state()
        .db
        .run(move |c| admin::list_attachments(c, &query, PAGE_SIZE))
        .await?;
    let mut ctx = staff.context("attachments");
    ctx.insert(
        "attachments",
        &page.rows.iter().map(row).collect::<Vec<_>>(),
    );
    ctx.insert(
        "next",
        &page
            .next
            .map(|b| link("/admin/attachments", &[("before", b.to_string())])),
    );
    staff.render("admin/attachments.html", &ctx)
}

#[get("/attachments/{id}/delete")]
async fn delete_confirm(staff: Staff, id: web::Path<i64>) -> AppResult<HttpResponse> {
    staff.require(Permission::AttachmentsDelete)?;
    let aid = AttachmentId(id.into_inner());
    let a = staff
        .state()
        .db
        .run(move |c| admin::find_attachment(c, aid))
        .await?;
    let mut ctx = staff.context("attachments");
    ctx.insert("a", &row(&a));
    staff.render("admin/attachment_delete.html", &ctx)
}

#[post("/attachments/{id}/delete")]
async fn delete(staff: Staff, id: web::Path<i64>) -> AppResult<HttpResponse> {
    staff.require(Permission::AttachmentsDelete)?;
    let aid = AttachmentId(id.into_inner());
    let mut note = staff.note(
        "attachments.delete",
        "attachment",
        aid,
        serde_json::json!({}),
    );
    let (storage_key, thumbnail_key) = staff
        .state()
        .db
        .run(move |c| {
            write_tx(c, |c| {
                let a = admin::delete_attachment(c, aid)?;
                note.set_detail(serde_json::json!({
                    "room": a.room_slug,
                    "sha256": a.sha256,
                    "storage_key": a.storage_key,
                }));
                note.record(c)?;
                Ok((a.storage_key, a.thumbnail_key))
            })
        })
        .await?;
    // Only after the commit: a failed deletion must not lose the file of a kept row.
    let dirs = media::MediaDirs::new(&staff.state().settings.data_dir);
    media::remove_files(&dirs, &storage_key, thumbnail_key.as_deref()).await;
    Ok(done("/admin/attachments"))
}
