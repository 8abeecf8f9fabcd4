//! Attachments: the metadata of an uploaded picture or video. The bytes live on disk
//! under `data_dir/media/<storage_key>` (http-app writes and serves them); this module
//! never touches files.
//!
//! An attachment is posted as a message of kind `attachment` whose body is a small JSON
//! document ([`AttachmentBody`]), in the same transaction as the row, so a room never
//! shows a message whose attachment is missing or the reverse.

use crate::{
    crypto::MessageKeys,
    db::{DbConn, schema::attachments, write_tx},
    error::Result,
    ids::{AttachmentId, MessageId, RoomId, UserId},
    model::MessageKind,
    per_backend,
    repo::{
        clamp_limit,
        message::{self, NewMessage, Posted},
    },
    time::Timestamp,
};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Queryable, Selectable)]
#[diesel(table_name = attachments)]
struct AttachmentRow {
    id: i64,
    room_id: i64,
    message_id: Option<i64>,
    uploader_id: Option<i64>,
    content_type: String,
    size: i64,
    sha256: String,
    storage_key: String,
    thumbnail_key: Option<String>,
    width: Option<i32>,
    height: Option<i32>,
    created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub id: AttachmentId,
    pub room_id: RoomId,
    pub message_id: Option<MessageId>,
    pub uploader_id: Option<UserId>,
    /// Decided by sniffing the bytes, never by what the client said.
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub storage_key: String,
    pub thumbnail_key: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub created_at: Timestamp,
}

impl From<AttachmentRow> for Attachment {
    fn from(r: AttachmentRow) -> Attachment {
        Attachment {
            id: AttachmentId(r.id),
            room_id: RoomId(r.room_id),
            message_id: r.message_id.map(MessageId),
            uploader_id: r.uploader_id.map(UserId),
            content_type: r.content_type,
            size: r.size,
            sha256: r.sha256,
            storage_key: r.storage_key,
            thumbnail_key: r.thumbnail_key,
            width: r.width,
            height: r.height,
            created_at: Timestamp(r.created_at),
        }
    }
}

impl Attachment {
    /// `image` or `video`, from the sniffed content type.
    pub fn kind(&self) -> &'static str {
        if self.content_type.starts_with("video/") {
            "video"
        } else {
            "image"
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub room_id: RoomId,
    pub uploader_id: Option<UserId>,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub storage_key: String,
    pub thumbnail_key: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
}

/// The body of an `attachment` message, as clients receive it (JSON text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentBody {
    pub attachment: AttachmentId,
    /// `image` or `video`.
    pub kind: String,
    pub content_type: String,
    pub size: i64,
    pub width: Option<i32>,
    pub height: Option<i32>,
    /// Whether `/media/<id>/thumb` exists.
    pub thumb: bool,
}

impl AttachmentBody {
    pub fn of(a: &Attachment) -> AttachmentBody {
        AttachmentBody {
            attachment: a.id,
            kind: a.kind().to_owned(),
            content_type: a.content_type.clone(),
            size: a.size,
            width: a.width,
            height: a.height,
            thumb: a.thumbnail_key.is_some(),
        }
    }
}

pub fn create(conn: &mut DbConn, new: &NewAttachment) -> Result<Attachment> {
    let values = (
        attachments::room_id.eq(new.room_id.0),
        attachments::uploader_id.eq(new.uploader_id.map(|u| u.0)),
        attachments::content_type.eq(&new.content_type),
        attachments::size.eq(new.size),
        attachments::sha256.eq(&new.sha256),
        attachments::storage_key.eq(&new.storage_key),
        attachments::thumbnail_key.eq(new.thumbnail_key.as_deref()),
        attachments::width.eq(new.width),
        attachments::height.eq(new.height),
        attachments::created_at.eq(Timestamp::now().0),
    );
    let row: AttachmentRow = per_backend!(conn, c => diesel::insert_into(attachments::table)
        .values(values)
        .returning(AttachmentRow::as_returning())
        .get_result(c))?;
    Ok(row.into())
}

/// Stores the attachment and posts its message, in one transaction.
pub fn create_and_post(
    conn: &mut DbConn,
    keys: &MessageKeys,
    new: &NewAttachment,
    max_chars: usize,
) -> Result<(Attachment, Posted)> {
    write_tx(conn, |conn| {
        let mut attachment = create(conn, new)?;
        let body = serde_json::to_string(&AttachmentBody::of(&attachment))
            .map_err(|e| crate::DomainError::Internal(e.to_string()))?;
        let posted = message::post(
            conn,
            keys,
            &NewMessage {
                room_id: new.room_id,
                author_id: new.uploader_id,
                kind: MessageKind::Attachment,
                body,
                client_id: None,
            },
            max_chars.max(1024),
        )?;
        diesel::update(attachments::table.find(attachment.id.0))
            .set(attachments::message_id.eq(posted.message.id.0))
            .execute(conn)?;
        attachment.message_id = Some(posted.message.id);
        Ok((attachment, posted))
    })
}

pub fn find(conn: &mut DbConn, id: AttachmentId) -> Result<Attachment> {
    let row: AttachmentRow = attachments::table
        .find(id.0)
        .select(AttachmentRow::as_select())
        .first(conn)?;
    Ok(row.into())
}

/// A room's attachments, newest first, a keyset page before `before`.
pub fn list_by_room(
    conn: &mut DbConn,
    room: RoomId,
    before: Option<AttachmentId>,
    limit: i64,
) -> Result<Vec<Attachment>> {
    let mut q = attachments::table
        .filter(attachments::room_id.eq(room.0))
        .select(AttachmentRow::as_select())
        .order(attachments::id.desc())
        .limit(clamp_limit(limit))
        .into_boxed();
    if let Some(b) = before {
        q = q.filter(attachments::id.lt(b.0));
    }
    Ok(q.load::<AttachmentRow>(conn)?
        .into_iter()
        .map(Attachment::from)
        .collect())
}

/// Deletes the row and returns it, so the caller can remove the files it names.
pub fn delete(conn: &mut DbConn, id: AttachmentId) -> Result<Attachment> {
    write_tx(conn, |conn| {
        let a = find(conn, id)?;
        diesel::delete(attachments::table.find(id.0)).execute(conn)?;
        Ok(a)
    })
}

/// The attachment, if `user` may see it: they are a member of its room and its message
/// is not deleted. Anything else is `NotFound`, exactly like an unknown id, so ids of
/// private media cannot be probed.
pub fn find_for_member(conn: &mut DbConn, id: AttachmentId, user: UserId) -> Result<Attachment> {
    use crate::db::schema::{memberships, messages, users};
    let a = find(conn, id)?;
    let member: bool = diesel::select(diesel::dsl::exists(
        memberships::table
            .inner_join(users::table)
            .filter(memberships::room_id.eq(a.room_id.0))
            .filter(memberships::user_id.eq(user.0))
            .filter(users::is_active.eq(true)),
    ))
    .get_result(conn)?;
    if !member {
        return Err(crate::DomainError::NotFound);
    }
    if let Some(m) = a.message_id {
        let deleted: Option<i64> = messages::table
            .find(m.0)
            .select(messages::deleted_at)
            .first(conn)?;
        if deleted.is_some() {
            return Err(crate::DomainError::NotFound);
        }
    }
    Ok(a)
}
