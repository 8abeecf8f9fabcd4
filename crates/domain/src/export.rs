//! Room export and import: one room, its members and every message, as a documented
//! JSON document (`docs/export-format.md`). Pure domain: the admin download and the
//! `confab export-room` / `import-room` commands are thin wrappers around this.
//!
//! Guarantees:
//! - Export holds plaintext bodies (decrypted with the source's keys), authors by
//!   username, and timestamps as stored (Unix microseconds), so nothing is lost.
//! - Import is one write transaction: all of it lands, or nothing does.
//! - Import is idempotent: a message already in the room (same author, kind, creation
//!   time and body) is skipped, so importing the same file twice changes nothing.
//! - Message order holds: messages are inserted in export id order while holding the
//!   room's write lock. Ids are kept exactly when every exported id is above the target's
//!   highest message id (a fresh database); otherwise new ids are taken, in the same order.
//! - Bodies are sealed with the target's current key; authors missing in the target are
//!   created as inactive accounts whose password hash matches no password.

use crate::{
    crypto::MessageKeys,
    db::{
        DbConn,
        schema::{attachments, memberships, messages, rooms, users},
        write_tx,
    },
    error::{DomainError, Result},
    ids::{MessageId, RoomId, UserId},
    model::{Body, MessageKind, RoomKind, RoomRole, RoomSlug, Username},
    per_backend,
    repo::{self, Page},
    time::Timestamp,
};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// The `format` field of every export.
pub const FORMAT: &str = "confab-room-export";
/// The version this code writes; it reads only this one.
pub const VERSION: u32 = 1;

/// Stored as the password hash of imported accounts: not a bcrypt hash, so no password
/// ever verifies against it.
const NO_PASSWORD: &str = "!imported";

/// How many messages one history query reads during export.
const EXPORT_BATCH: i64 = 500;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomExport {
    pub format: String,
    pub version: u32,
    /// Unix microseconds.
    pub exported_at: i64,
    pub room: ExportRoom,
    /// Everyone the export names (authors, members, uploaders, the creator).
    pub users: Vec<ExportUser>,
    /// Oldest first, by id.
    pub messages: Vec<ExportMessage>,
    /// Attachments not (or no longer) attached to a message.
    #[serde(default)]
    pub attachments: Vec<ExportAttachment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRoom {
    pub slug: String,
    pub name: String,
    pub topic: String,
    pub kind: RoomKind,
    pub archived: bool,
    pub created_at: i64,
    pub created_by: Option<String>,
    pub members: Vec<ExportMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportMember {
    pub username: String,
    pub role: RoomRole,
    pub joined_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportUser {
    pub username: String,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportMessage {
    /// The id in the source database.
    pub id: i64,
    /// `None` for system messages and deleted accounts.
    pub author: Option<String>,
    pub kind: MessageKind,
    /// The plaintext, exactly as stored.
    pub body: String,
    pub client_id: Option<String>,
    pub created_at: i64,
    pub edited_at: Option<i64>,
    pub deleted_at: Option<i64>,
    #[serde(default)]
    pub attachments: Vec<ExportAttachment>,
}

/// Attachment metadata; the files themselves are not in the export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportAttachment {
    pub id: i64,
    pub uploader: Option<String>,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub storage_key: String,
    pub thumbnail_key: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub created_at: i64,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub room_id: i64,
    pub slug: String,
    pub room_created: bool,
    pub users_created: Vec<String>,
    pub members_added: usize,
    pub messages_imported: usize,
    pub messages_skipped: usize,
    pub attachments_imported: usize,
    /// Whether the source's message ids were kept.
    pub ids_preserved: bool,
}

impl ImportReport {
    /// Did the import change anything?
    pub fn changed(&self) -> bool {
        self.room_created
            || !self.users_created.is_empty()
            || self.members_added > 0
            || self.messages_imported > 0
            || self.attachments_imported > 0
    }
}

// --------------------------------------------------------------------------- export

type AttachmentRow = (
    i64,
    Option<i64>,
    Option<i64>,
    String,
    i64,
    String,
    String,
    Option<String>,
    Option<i32>,
    Option<i32>,
    i64,
);

/// Reads a room into an export. A message that cannot be decrypted stops the export
/// (an export that silently lost a body would be worse than none).
pub fn export_room(conn: &mut DbConn, keys: &MessageKeys, slug: &str) -> Result<RoomExport> {
    conn.transaction(|conn| {
        if let DbConn::Postgres(c) = conn {
            // One snapshot for every query below, so a message posted meanwhile cannot
            // appear without its attachments or member.
            diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(c)?;
        }
        export_in_tx(conn, keys, slug)
    })
}

fn export_in_tx(conn: &mut DbConn, keys: &MessageKeys, slug: &str) -> Result<RoomExport> {
    let room = repo::room::find_by_slug(conn, slug)?.ok_or(DomainError::NotFound)?;
    let mut names: BTreeMap<i64, ExportUser> = BTreeMap::new();
    let mut name_of = |conn: &mut DbConn, id: Option<UserId>| -> Result<Option<String>> {
        let Some(id) = id else { return Ok(None) };
        if let Some(u) = names.get(&id.0) {
            return Ok(Some(u.username.clone()));
        }
        let u = match repo::user::find(conn, id) {
            Ok(u) => u,
            Err(DomainError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        names.insert(
            id.0,
            ExportUser {
                username: u.username.clone(),
                display_name: u.display_name,
            },
        );
        Ok(Some(u.username))
    };

    let created_by = name_of(conn, room.created_by)?;
    let member_rows: Vec<(i64, String, i64)> = memberships::table
        .filter(memberships::room_id.eq(room.id.0))
        .select((
            memberships::user_id,
            memberships::role,
            memberships::joined_at,
        ))
        .order(memberships::user_id.asc())
        .load(conn)?;
    let mut members = Vec::with_capacity(member_rows.len());
    for (uid, role, joined_at) in member_rows {
        if let Some(username) = name_of(conn, Some(UserId(uid)))? {
            members.push(ExportMember {
                username,
                role: RoomRole::parse(&role).unwrap_or(RoomRole::ReadOnly),
                joined_at,
            });
        }
    }

    let att_rows: Vec<AttachmentRow> = attachments::table
        .filter(attachments::room_id.eq(room.id.0))
        .select((
            attachments::id,
            attachments::message_id,
            attachments::uploader_id,
            attachments::content_type,
            attachments::size,
            attachments::sha256,
            attachments::storage_key,
            attachments::thumbnail_key,
            attachments::width,
            attachments::height,
            attachments::created_at,
        ))
        .order(attachments::id.asc())
        .load(conn)?;
    let mut by_message: HashMap<i64, Vec<ExportAttachment>> = HashMap::new();
    let mut loose = Vec::new();
    for r in att_rows {
        let a = ExportAttachment {
            id: r.0,
            uploader: name_of(conn, r.2.map(UserId))?,
            content_type: r.3,
            size: r.4,
            sha256: r.5,
            storage_key: r.6,
            thumbnail_key: r.7,
            width: r.8,
            height: r.9,
            created_at: r.10,
        };
        match r.1 {
            Some(m) => by_message.entry(m).or_default().push(a),
            None => loose.push(a),
        }
    }

    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = repo::message::history(conn, keys, room.id, Page::After(after), EXPORT_BATCH)?;
        for m in page.messages {
            after = m.id.0;
            let body = match m.body {
                Body::Text(t) => t,
                Body::Undecryptable(reason) => {
                    return Err(DomainError::Undecryptable {
                        message_id: m.id.0,
                        reason,
                    });
                }
            };
            let author = name_of(conn, m.author.map(|a| a.id))?;
            out.push(ExportMessage {
                id: m.id.0,
                author,
                kind: m.kind,
                body,
                client_id: m.client_id,
                created_at: m.created_at.0,
                edited_at: m.edited_at.map(|t| t.0),
                deleted_at: m.deleted_at.map(|t| t.0),
                attachments: by_message.remove(&m.id.0).unwrap_or_default(),
            });
        }
        if !page.more {
            break;
        }
    }
    // By name, not by source id, so a re-export from another database compares equal.
    members.sort_by_key(|m| m.username.to_ascii_lowercase());
    let mut users: Vec<ExportUser> = names.into_values().collect();
    users.sort_by_key(|u| u.username.to_ascii_lowercase());
    // Attachments pointing at a message of another room stay with this room, unattached.
    loose.extend(by_message.into_values().flatten());
    loose.sort_by_key(|a| a.id);

    Ok(RoomExport {
        format: FORMAT.to_owned(),
        version: VERSION,
        exported_at: Timestamp::now().0,
        room: ExportRoom {
            slug: room.slug,
            name: room.name,
            topic: room.topic,
            kind: room.kind,
            archived: room.archived,
            created_at: room.created_at.0,
            created_by,
            members,
        },
        users,
        messages: out,
        attachments: loose,
    })
}

/// Writes an export as pretty JSON.
pub fn write_json(export: &RoomExport, to: impl std::io::Write) -> Result<()> {
    serde_json::to_writer_pretty(to, export)
        .map_err(|e| DomainError::Internal(format!("writing the export: {e}")))
}

/// Reads and checks an export (format, version, names, order) before anything is written.
pub fn read_json(from: impl std::io::Read) -> Result<RoomExport> {
    let export: RoomExport = serde_json::from_reader(std::io::BufReader::new(from))
        .map_err(|e| DomainError::invalid("export", format!("not a room export: {e}")))?;
    validate(&export)?;
    Ok(export)
}

/// The checks [`import_room`] makes first.
pub fn validate(e: &RoomExport) -> Result<()> {
    if e.format != FORMAT {
        return Err(DomainError::invalid(
            "format",
            format!("expected {FORMAT:?}, found {:?}", e.format),
        ));
    }
    if e.version != VERSION {
        return Err(DomainError::invalid(
            "version",
            format!(
                "this Confab reads version {VERSION}, the file is {}",
                e.version
            ),
        ));
    }
    RoomSlug::parse(&e.room.slug)?;
    let check_name = |n: &str| Username::parse(n).map(|_| ());
    e.users.iter().try_for_each(|u| check_name(&u.username))?;
    e.room
        .members
        .iter()
        .try_for_each(|m| check_name(&m.username))?;
    e.room.created_by.iter().try_for_each(|n| check_name(n))?;
    let mut last = i64::MIN;
    for m in &e.messages {
        if m.id <= last {
            return Err(DomainError::invalid(
                "messages",
                format!("message ids must increase; {} follows {last}", m.id),
            ));
        }
        last = m.id;
        m.author.iter().try_for_each(|n| check_name(n))?;
        if let Some(cid) = &m.client_id
            && (cid.is_empty() || cid.len() > repo::message::CLIENT_ID_MAX)
        {
            return Err(DomainError::invalid(
                "client_id",
                format!("message {}: bad client id", m.id),
            ));
        }
    }
    for a in e
        .messages
        .iter()
        .flat_map(|m| m.attachments.iter())
        .chain(e.attachments.iter())
    {
        a.uploader.iter().try_for_each(|n| check_name(n))?;
        if a.storage_key.is_empty() || a.size < 0 {
            return Err(DomainError::invalid(
                "attachments",
                format!("attachment {} is malformed", a.id),
            ));
        }
    }
    Ok(())
}

// --------------------------------------------------------------------------- import

/// What identifies a message for idempotency: author, kind, creation time and body.
type MessageKey = (Option<i64>, String, i64, String);

/// Imports an export into this database (see the module docs for the guarantees).
pub fn import_room(conn: &mut DbConn, keys: &MessageKeys, e: &RoomExport) -> Result<ImportReport> {
    validate(e)?;
    write_tx(conn, |conn| import_in_tx(conn, keys, e))
}

fn import_in_tx(conn: &mut DbConn, keys: &MessageKeys, e: &RoomExport) -> Result<ImportReport> {
    let mut report = ImportReport {
        slug: e.room.slug.clone(),
        ..ImportReport::default()
    };

    // Users: every name the export mentions, by case-insensitive key.
    let display: HashMap<String, &str> = e
        .users
        .iter()
        .map(|u| (u.username.to_ascii_lowercase(), u.display_name.as_str()))
        .collect();
    let mut mentioned: BTreeSet<&str> = BTreeSet::new();
    mentioned.extend(e.users.iter().map(|u| u.username.as_str()));
    mentioned.extend(e.room.members.iter().map(|m| m.username.as_str()));
    mentioned.extend(e.room.created_by.as_deref());
    for m in &e.messages {
        mentioned.extend(m.author.as_deref());
        mentioned.extend(m.attachments.iter().filter_map(|a| a.uploader.as_deref()));
    }
    mentioned.extend(e.attachments.iter().filter_map(|a| a.uploader.as_deref()));
    let mut ids: HashMap<String, i64> = HashMap::new();
    for name in mentioned {
        let key = name.to_ascii_lowercase();
        if ids.contains_key(&key) {
            continue;
        }
        let id = match repo::user::find_by_username(conn, name)? {
            Some(u) => u.id.0,
            None => {
                let id = create_inactive(conn, name, display.get(&key).copied())?;
                report.users_created.push(name.to_owned());
                id
            }
        };
        ids.insert(key, id);
    }
    let user_id = |name: Option<&str>| name.and_then(|n| ids.get(&n.to_ascii_lowercase()).copied());

    // The room: found by slug, or created as exported.
    let room_id = match repo::room::find_by_slug(conn, &e.room.slug)? {
        Some(room) => room.id,
        None => {
            report.room_created = true;
            let values = (
                rooms::slug.eq(&e.room.slug),
                rooms::name.eq(&e.room.name),
                rooms::topic.eq(&e.room.topic),
                rooms::kind.eq(e.room.kind.as_str()),
                rooms::archived.eq(e.room.archived),
                rooms::created_by.eq(user_id(e.room.created_by.as_deref())),
                rooms::created_at.eq(e.room.created_at),
            );
            let id: i64 = per_backend!(conn, c => diesel::insert_into(rooms::table)
                .values(values)
                .returning(rooms::id)
                .get_result(c))?;
            RoomId(id)
        }
    };
    report.room_id = room_id.0;
    lock_room(conn, room_id)?;

    // Members missing in the target are added with their role; existing ones are kept.
    let existing: HashSet<i64> = memberships::table
        .filter(memberships::room_id.eq(room_id.0))
        .select(memberships::user_id)
        .load::<i64>(conn)?
        .into_iter()
        .collect();
    for m in &e.room.members {
        let Some(uid) = user_id(Some(&m.username)) else {
            continue;
        };
        if existing.contains(&uid) {
            continue;
        }
        diesel::insert_into(memberships::table)
            .values((
                memberships::room_id.eq(room_id.0),
                memberships::user_id.eq(uid),
                memberships::role.eq(m.role.as_str()),
                memberships::joined_at.eq(m.joined_at),
            ))
            .execute(conn)?;
        report.members_added += 1;
    }

    // What the room already holds, counted, so a repeated import skips every message.
    let mut present: HashMap<MessageKey, usize> = HashMap::new();
    if !report.room_created {
        let mut after = 0;
        loop {
            let page = repo::message::history(conn, keys, room_id, Page::After(after), 500)?;
            for m in page.messages {
                after = m.id.0;
                if let Body::Text(t) = m.body {
                    let k = (
                        m.author.map(|a| a.id.0),
                        m.kind.as_str().to_owned(),
                        m.created_at.0,
                        t,
                    );
                    *present.entry(k).or_default() += 1;
                }
            }
            if !page.more {
                break;
            }
        }
    }

    // Keep the source ids when they all lie above every id the target has used.
    let max_id: Option<i64> = messages::table
        .select(diesel::dsl::max(messages::id))
        .first(conn)?;
    let preserve = e
        .messages
        .first()
        .is_some_and(|m| m.id > max_id.unwrap_or(0));
    report.ids_preserved = preserve;

    // Client ids already used by these authors: the unique (author, client_id) index
    // must not reject an import, so a clashing one is dropped (it only guards retries).
    let authors: Vec<i64> = ids.values().copied().collect();
    let mut used_cids: HashSet<(i64, String)> = messages::table
        .filter(messages::author_id.eq_any(&authors))
        .filter(messages::client_id.is_not_null())
        .select((messages::author_id, messages::client_id))
        .load::<(Option<i64>, Option<String>)>(conn)?
        .into_iter()
        .filter_map(|(a, c)| Some((a?, c?)))
        .collect();
    let mut used_keys: HashSet<String> = attachments::table
        .select(attachments::storage_key)
        .load::<String>(conn)?
        .into_iter()
        .collect();

    let aad = repo::message::aad(room_id.0);
    for m in &e.messages {
        let author = user_id(m.author.as_deref());
        let key = (
            author,
            m.kind.as_str().to_owned(),
            m.created_at,
            m.body.clone(),
        );
        if let Some(n) = present.get_mut(&key)
            && *n > 0
        {
            *n -= 1;
            report.messages_skipped += 1;
            continue;
        }
        let client_id = match (author, &m.client_id) {
            (Some(a), Some(c)) if used_cids.insert((a, c.clone())) => Some(c.as_str()),
            _ => None,
        };
        let sealed = keys
            .seal(m.body.as_bytes(), &aad)
            .map_err(|e| DomainError::Crypto(e.to_string()))?;
        let values = (
            messages::room_id.eq(room_id.0),
            messages::author_id.eq(author),
            messages::kind.eq(m.kind.as_str()),
            messages::key_id.eq(&sealed.key_id),
            messages::body.eq(&sealed.bytes),
            messages::client_id.eq(client_id),
            messages::created_at.eq(m.created_at),
            messages::edited_at.eq(m.edited_at),
            messages::deleted_at.eq(m.deleted_at),
        );
        let new_id: i64 = if preserve {
            per_backend!(conn, c => diesel::insert_into(messages::table)
                .values((messages::id.eq(m.id), values))
                .returning(messages::id)
                .get_result(c))?
        } else {
            per_backend!(conn, c => diesel::insert_into(messages::table)
                .values(values)
                .returning(messages::id)
                .get_result(c))?
        };
        report.messages_imported += 1;
        for a in &m.attachments {
            if used_keys.insert(a.storage_key.clone()) {
                insert_attachment(conn, room_id, Some(MessageId(new_id)), a, &user_id)?;
                report.attachments_imported += 1;
            }
        }
    }
    for a in &e.attachments {
        if used_keys.insert(a.storage_key.clone()) {
            insert_attachment(conn, room_id, None, a, &user_id)?;
            report.attachments_imported += 1;
        }
    }
    if preserve
        && report.messages_imported > 0
        && let DbConn::Postgres(c) = conn
    {
        // Explicit ids do not advance a PostgreSQL sequence; the next post must not
        // collide with an imported id.
        diesel::sql_query(
            "SELECT setval(pg_get_serial_sequence('messages', 'id'), (SELECT MAX(id) FROM messages))",
        )
        .execute(c)?;
    }
    Ok(report)
}

fn insert_attachment(
    conn: &mut DbConn,
    room: RoomId,
    message: Option<MessageId>,
    a: &ExportAttachment,
    user_id: &dyn Fn(Option<&str>) -> Option<i64>,
) -> Result<()> {
    diesel::insert_into(attachments::table)
        .values((
            attachments::room_id.eq(room.0),
            attachments::message_id.eq(message.map(|m| m.0)),
            attachments::uploader_id.eq(user_id(a.uploader.as_deref())),
            attachments::content_type.eq(&a.content_type),
            attachments::size.eq(a.size),
            attachments::sha256.eq(&a.sha256),
            attachments::storage_key.eq(&a.storage_key),
            attachments::thumbnail_key.eq(&a.thumbnail_key),
            attachments::width.eq(a.width),
            attachments::height.eq(a.height),
            attachments::created_at.eq(a.created_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// An inactive account with an unusable password, for an author the target lacks.
fn create_inactive(conn: &mut DbConn, name: &str, display: Option<&str>) -> Result<i64> {
    let username = Username::parse(name)?;
    let display = display
        .map(str::trim)
        .filter(|d| !d.is_empty() && d.chars().count() <= crate::model::DISPLAY_NAME_MAX)
        .unwrap_or(username.as_str());
    let values = (
        users::username.eq(username.as_str()),
        users::username_key.eq(username.key()),
        users::display_name.eq(display),
        users::password_hash.eq(NO_PASSWORD),
        users::is_active.eq(false),
        users::is_staff.eq(false),
        users::is_superuser.eq(false),
        users::created_at.eq(Timestamp::now().0),
    );
    Ok(per_backend!(conn, c => diesel::insert_into(users::table)
        .values(values)
        .returning(users::id)
        .get_result(c))?)
}

/// The room's write lock for the rest of the transaction (see `repo::message`): SQLite
/// holds the database lock already; PostgreSQL locks the room row.
fn lock_room(conn: &mut DbConn, room: RoomId) -> Result<()> {
    if let DbConn::Postgres(c) = conn {
        rooms::table
            .find(room.0)
            .select(rooms::id)
            .for_update()
            .first::<i64>(c)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RoomExport {
        RoomExport {
            format: FORMAT.into(),
            version: VERSION,
            exported_at: 1,
            room: ExportRoom {
                slug: "team".into(),
                name: "Team".into(),
                topic: String::new(),
                kind: RoomKind::Private,
                archived: false,
                created_at: 5,
                created_by: Some("ana".into()),
                members: vec![],
            },
            users: vec![ExportUser {
                username: "ana".into(),
                display_name: "Ana".into(),
            }],
            messages: vec![],
            attachments: vec![],
        }
    }

    #[test]
    fn validation_names_the_problem() {
        assert!(validate(&sample()).is_ok());
        let mut e = sample();
        e.version = 2;
        assert!(validate(&e).unwrap_err().to_string().contains("version"));
        let mut e = sample();
        e.room.slug = "Not A Slug".into();
        assert!(validate(&e).is_err());
        let mut e = sample();
        let m = ExportMessage {
            id: 2,
            author: None,
            kind: MessageKind::Text,
            body: "x".into(),
            client_id: None,
            created_at: 1,
            edited_at: None,
            deleted_at: None,
            attachments: vec![],
        };
        e.messages = vec![m.clone(), ExportMessage { id: 1, ..m }];
        assert!(validate(&e).unwrap_err().to_string().contains("increase"));
    }

    #[test]
    fn json_round_trips_and_refuses_unknown_fields() {
        let mut buf = Vec::new();
        write_json(&sample(), &mut buf).unwrap();
        assert_eq!(read_json(&buf[..]).unwrap(), sample());
        let text = String::from_utf8(buf)
            .unwrap()
            .replacen("{", "{\"extra\": 1,", 1);
        assert!(read_json(text.as_bytes()).is_err());
    }
}
