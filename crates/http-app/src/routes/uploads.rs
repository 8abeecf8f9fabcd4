//! `POST /uploads`: a picture or video posted to a room as an `attachment` message.
//!
//! The body is `multipart/form-data` with a `file` field; the room's slug comes as
//! `?room=<slug>` (preferred: checked before a byte is stored) or as a `room` field
//! before `file`. The file is streamed to a temporary file, never held in memory; its
//! type is sniffed from its first bytes (the file name and declared type are ignored)
//! and its size limit follows from that type. Refusals are JSON: 413 too large, 415 not
//! an accepted type, 400 broken or malformed, 429 (with `Retry-After`) over the
//! per-user or per-address upload limit; a refused upload leaves no file behind.

use super::api::{ApiError, ApiUser};
use crate::{
    media::{
        MediaDirs, MediaError,
        process::{self, Processed, Received, hex},
        sniff::{HEAD_LEN, Sniffed, sniff},
    },
    state::AppState,
};
use actix_multipart::{Field, Multipart};
use actix_web::{HttpRequest, HttpResponse, http::header, post, web};
use domain::{
    DomainError,
    bus::{Event, Topic, WireMessage, WireUser},
    model::{Room, RoomRole},
    permissions::{self, Action},
    repo::{
        self,
        attachment::{AttachmentBody, NewAttachment},
    },
};
use futures_util::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// Room for the multipart framing around the file (boundaries, headers, small fields).
const MULTIPART_OVERHEAD: u64 = 64 * 1024;
/// The longest small field (`room`) accepted.
const SMALL_FIELD_MAX: usize = 256;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(upload);
}

#[derive(Deserialize)]
struct UploadQuery {
    room: Option<String>,
}

#[post("/uploads")]
async fn upload(
    req: HttpRequest,
    me: ApiUser,
    state: web::Data<AppState>,
    query: web::Query<UploadQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // Abuse limit, before a byte is read: uploads (attempts, accepted or not) per user and
    // per client address inside `CONFAB_UPLOADS_WINDOW_SECS`.
    let address = crate::extract::ClientInfo::of(&req).ip;
    if let Err(wait) = state.upload_limit.take(&me.user().id.to_string(), &address) {
        return Err(ApiError::rate_limited(
            wait,
            format!("too many uploads; try again in {wait} seconds"),
        ));
    }
    let settings = &state.settings;
    let biggest = settings.max_image_bytes.max(settings.max_video_bytes);
    // A declared length over every limit is refused before reading anything.
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > biggest + MULTIPART_OVERHEAD
    {
        return Err(MediaError::TooLarge(format!("uploads are limited to {biggest} bytes")).into());
    }
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !is_multipart {
        return Err(ApiError::bad_request(
            "send multipart/form-data with a `file` field",
        ));
    }
    let dirs = MediaDirs::new(&settings.data_dir);
    dirs.ensure().await.map_err(MediaError::from)?;

    let mut room_slug = query.into_inner().room;
    let mut room: Option<Room> = None;
    let mut received: Option<Received> = None;
    let mut multipart = Multipart::new(req.headers(), payload);
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(bad_multipart)?;
        match field.name() {
            Some("file") => {
                if received.is_some() {
                    return Err(ApiError::bad_request("one file per upload"));
                }
                if let Some(slug) = &room_slug
                    && room.is_none()
                {
                    room = Some(authorize(&state, &me, slug.clone()).await?);
                }
                received = Some(receive(&mut field, &state, &dirs).await?);
            }
            Some("room") => {
                let text = small_field(&mut field).await?;
                if room_slug.as_ref().is_some_and(|s| *s != text) {
                    return Err(ApiError::bad_request("two different rooms given"));
                }
                room_slug = Some(text);
            }
            _ => {
                // Ignored, but bounded.
                small_field(&mut field).await?;
            }
        }
    }
    let Some(received) = received else {
        return Err(ApiError::bad_request("no `file` field"));
    };
    let room = match (room, room_slug) {
        (Some(room), _) => room,
        (None, Some(slug)) => authorize(&state, &me, slug).await?,
        (None, None) => return Err(ApiError::bad_request("no room given (?room=<slug>)")),
    };

    let for_store = dirs.clone();
    let processed: Processed =
        tokio::task::spawn_blocking(move || process::store(received, &for_store))
            .await
            .map_err(|e| MediaError::Io(std::io::Error::other(e.to_string())))??;

    let new = NewAttachment {
        room_id: room.id,
        uploader_id: Some(me.user().id),
        content_type: processed.content_type.to_owned(),
        size: processed.size as i64,
        sha256: processed.sha256.clone(),
        storage_key: processed.storage_key.clone(),
        thumbnail_key: processed.thumbnail_key.clone(),
        width: processed.width.and_then(|w| i32::try_from(w).ok()),
        height: processed.height.and_then(|h| i32::try_from(h).ok()),
    };
    let keys = state.message_keys.clone();
    let max = settings.max_message_chars;
    let saved = state
        .db
        .run(move |c| repo::attachment::create_and_post(c, &keys, &new, max))
        .await;
    let (attachment, posted) = match saved {
        Ok(saved) => saved,
        Err(e) => {
            processed.stored.remove().await;
            return Err(e.into());
        }
    };
    tracing::info!(
        attachment_id = %attachment.id,
        room = %room.slug,
        user_id = %me.user().id,
        content_type = %attachment.content_type,
        size = attachment.size,
        "upload stored"
    );

    // Fanned out like a message sent over a socket: the same event, the same shape.
    let m = &posted.message;
    let message = WireMessage {
        id: m.id,
        room: room.slug.clone(),
        author: m.author.as_ref().map(|a| WireUser {
            username: a.username.clone(),
            display_name: a.display_name.clone(),
        }),
        kind: m.kind.as_str().to_owned(),
        body: m.body.text().unwrap_or_default().to_owned(),
        ts: m.created_at.micros(),
        edited_ts: None,
        deleted: false,
        client_id: None,
    };
    let event = Event::Message {
        prev: None,
        room_id: room.id,
        message,
    };
    if let Err(e) = state.bus.publish(Topic::Room(room.id), &event).await {
        // Stored already; sockets catch up from the database.
        tracing::warn!(error = %e, "bus publish failed");
    }

    let body = AttachmentBody::of(&attachment);
    Ok(HttpResponse::Created().json(serde_json::json!({
        "id": attachment.id,
        "message_id": m.id,
        "room": room.slug,
        "kind": body.kind,
        "content_type": body.content_type,
        "size": body.size,
        "width": body.width,
        "height": body.height,
        "sha256": attachment.sha256,
        "url": format!("/media/{}", attachment.id),
        "thumb_url": body.thumb.then(|| format!("/media/{}/thumb", attachment.id)),
    })))
}

fn bad_multipart(e: actix_multipart::MultipartError) -> ApiError {
    ApiError::bad_request(format!("malformed multipart body: {e}"))
}

/// The room, if the user may post in it. A room they cannot see is 404, like an unknown
/// one; a block in a private chat is 403.
async fn authorize(state: &AppState, me: &ApiUser, slug: String) -> Result<Room, ApiError> {
    let user = me.user().clone();
    state
        .db
        .run(move |c| {
            let room = repo::room::find_by_slug(c, &slug)?.ok_or(DomainError::NotFound)?;
            let role: Option<RoomRole> =
                repo::room::membership(c, room.id, user.id)?.map(|m| m.role);
            let subject = permissions::subject(c, user.clone())?;
            if !permissions::decide(&subject, Action::ReadRoom, Some((&room, role))) {
                return Err(DomainError::NotFound);
            }
            if !permissions::decide(&subject, Action::PostMessage, Some((&room, role)))
                || repo::block::stops_posting(c, &room, user.id)?
            {
                return Err(DomainError::Forbidden);
            }
            Ok(room)
        })
        .await
        .map_err(ApiError::from)
}

/// A small text field, at most [`SMALL_FIELD_MAX`] bytes.
async fn small_field(field: &mut Field) -> Result<String, ApiError> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(bad_multipart)?;
        if buf.len() + chunk.len() > SMALL_FIELD_MAX {
            return Err(ApiError::bad_request("a form field is too long"));
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf)
        .map(|s| s.trim().to_owned())
        .map_err(|_| ApiError::bad_request("a form field is not UTF-8"))
}

/// Streams the file field to a temporary file under `media/tmp`, sniffing its type from
/// the first bytes and enforcing that type's size limit as the bytes arrive. On any
/// error the temporary file is dropped, which deletes it.
async fn receive(
    field: &mut Field,
    state: &AppState,
    dirs: &MediaDirs,
) -> Result<Received, ApiError> {
    let file = tempfile::Builder::new()
        .prefix("up-")
        .tempfile_in(&dirs.tmp)
        .map_err(MediaError::from)?;
    let mut out = tokio::fs::File::from_std(file.reopen().map_err(MediaError::from)?);
    let mut head: Vec<u8> = Vec::with_capacity(HEAD_LEN);
    let mut kind: Option<Sniffed> = None;
    let mut size: u64 = 0;
    let mut hash = Sha256::new();
    let limit_for = |k: Sniffed| {
        if k.is_video() {
            state.settings.max_video_bytes
        } else {
            state.settings.max_image_bytes
        }
    };
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(bad_multipart)?;
        size += chunk.len() as u64;
        if kind.is_none() {
            let take = chunk.len().min(HEAD_LEN - head.len());
            head.extend_from_slice(&chunk[..take]);
            if head.len() == HEAD_LEN {
                kind = Some(sniffed(&head)?);
            }
        }
        if let Some(k) = kind
            && size > limit_for(k)
        {
            return Err(MediaError::TooLarge(format!(
                "{} files are limited to {} bytes",
                k.content_type(),
                limit_for(k)
            ))
            .into());
        }
        hash.update(&chunk);
        out.write_all(&chunk).await.map_err(MediaError::from)?;
    }
    if size == 0 {
        return Err(MediaError::Broken("the file is empty".into()).into());
    }
    let kind = match kind {
        Some(k) => k,
        None => sniffed(&head)?,
    };
    out.flush().await.map_err(MediaError::from)?;
    out.sync_all().await.map_err(MediaError::from)?;
    Ok(Received {
        file,
        kind,
        size,
        sha256: hex(&hash.finalize()),
    })
}

fn sniffed(head: &[u8]) -> Result<Sniffed, ApiError> {
    sniff(head).ok_or_else(|| {
        MediaError::Unsupported(
            "only PNG, JPEG, GIF and WebP pictures and MP4 and WebM videos are accepted".into(),
        )
        .into()
    })
}
