//! Room export/import: a 10,000-message room survives the round trip exactly, a second
//! import changes nothing, and a non-empty target keeps the order.

use crate::{both, keys, user};
use diesel::prelude::*;
use domain::{
    crypto::MessageKeys,
    db::{DbConn, schema::attachments, write_tx},
    export::{self, RoomExport},
    model::{MessageKind, RoomKind, RoomRole},
    repo::{self, message::NewMessage, room::NewRoom},
    testing::TestDb,
};

const N: usize = 10_000;

fn body(i: usize) -> String {
    match i % 5 {
        0 => format!("message {i}"),
        1 => format!("Grüße, {i} — ünïcödé ✓ 🎉\nsecond line\ttab"),
        2 => format!("  leading and trailing spaces {i}  "),
        3 => format!("<b>not html</b> & \"quotes\" '{i}' \\ backslash"),
        _ => "x".repeat(1 + i % 300),
    }
}

/// A room with N messages by two authors and the system, some edited, some deleted,
/// two attachments; returns the room's slug.
fn fill(db: &TestDb, k: &MessageKeys) -> String {
    let ana = user(db, "ana");
    let bob = user(db, "Bob.B");
    let mut c = db.db.get().unwrap();
    let room = repo::room::create(
        &mut c,
        &NewRoom {
            slug: "big".into(),
            name: "Big room".into(),
            topic: "Lots of talk".into(),
            kind: RoomKind::Private,
            created_by: Some(ana.id),
        },
    )
    .unwrap();
    repo::room::add_member(&mut c, room.id, bob.id, RoomRole::Moderator).unwrap();
    // One transaction for all inserts keeps this to a couple of seconds per backend.
    write_tx(&mut c, |c: &mut DbConn| {
        for i in 0..N {
            let author = match i % 13 {
                0 => None,
                n if n % 2 == 0 => Some(bob.id),
                _ => Some(ana.id),
            };
            let posted = repo::message::post(
                c,
                k,
                &NewMessage {
                    room_id: room.id,
                    author_id: author,
                    kind: if author.is_none() {
                        MessageKind::System
                    } else {
                        MessageKind::Text
                    },
                    body: body(i),
                    client_id: (i % 3 == 0 && author.is_some()).then(|| format!("c-{i}")),
                },
                4000,
            )?;
            if i % 97 == 1 && author.is_some() {
                repo::message::edit(c, k, posted.message.id, &format!("edited {i}"), 4000)?;
            }
            if i % 101 == 2 {
                repo::message::set_deleted(c, k, posted.message.id, true)?;
            }
            if i == 5 {
                attach(
                    c,
                    room.id.0,
                    Some(posted.message.id.0),
                    "files/a",
                    Some(ana.id.0),
                );
            }
        }
        attach(c, room.id.0, None, "files/loose", None);
        Ok(())
    })
    .unwrap();
    room.slug
}

fn attach(c: &mut DbConn, room: i64, message: Option<i64>, key: &str, uploader: Option<i64>) {
    diesel::insert_into(attachments::table)
        .values((
            attachments::room_id.eq(room),
            attachments::message_id.eq(message),
            attachments::uploader_id.eq(uploader),
            attachments::content_type.eq("image/png"),
            attachments::size.eq(1234_i64),
            attachments::sha256.eq("ab".repeat(32)),
            attachments::storage_key.eq(key),
            attachments::thumbnail_key.eq(None::<String>),
            attachments::width.eq(Some(64)),
            attachments::height.eq(Some(32)),
            attachments::created_at.eq(1_764_000_000_000_001_i64),
        ))
        .execute(c)
        .unwrap();
}

fn export_of(db: &TestDb, k: &MessageKeys, slug: &str) -> RoomExport {
    let mut c = db.db.get().unwrap();
    export::export_room(&mut c, k, slug).unwrap()
}

/// Through the JSON text, as a file would carry it.
fn through_json(e: &RoomExport) -> RoomExport {
    let mut buf = Vec::new();
    export::write_json(e, &mut buf).unwrap();
    export::read_json(&buf[..]).unwrap()
}

fn without_time(mut e: RoomExport) -> RoomExport {
    e.exported_at = 0;
    e
}

both! {
    fn ten_thousand_messages_round_trip_exactly(db: &TestDb) {
        let k = keys();
        let slug = fill(db, &k);
        let source = export_of(db, &k, &slug);
        assert_eq!(source.messages.len(), N);
        assert!(source.messages.windows(2).all(|w| w[0].id < w[1].id));
        assert_eq!(source.messages[5].attachments.len(), 1);
        assert_eq!(source.attachments.len(), 1);
        assert!(source.messages.iter().any(|m| m.edited_at.is_some()));
        assert!(source.messages.iter().any(|m| m.deleted_at.is_some()));
        let file = through_json(&source);
        assert_eq!(file, source);

        // A fresh target with another key.
        let target = TestDb::new(db.backend);
        let tk = MessageKeys::parse(&MessageKeys::generate_line("t2")).unwrap();
        let report = {
            let mut c = target.db.get().unwrap();
            export::import_room(&mut c, &tk, &file).unwrap()
        };
        assert!(report.room_created && report.ids_preserved, "{report:?}");
        assert_eq!(report.messages_imported, N);
        assert_eq!(report.attachments_imported, 2);
        assert_eq!(report.users_created.len(), 2);

        // Everything reads back the same: bodies byte for byte, ids, order, times.
        let back = export_of(&target, &tk, &slug);
        assert_eq!(without_time(back.clone()), without_time(source.clone()));

        // Bodies are sealed with the target's key; imported authors cannot sign in.
        {
            let mut c = target.db.get().unwrap();
            let counts = repo::message::count_by_key(&mut c).unwrap();
            assert_eq!(counts, vec![("t2".to_owned(), N as i64)]);
            let ana = repo::user::find_by_username(&mut c, "ana").unwrap().unwrap();
            assert!(!ana.is_active);
            // The next post continues after the imported ids (the PostgreSQL sequence moved).
            let room = repo::room::find_by_slug(&mut c, &slug).unwrap().unwrap();
            let next = repo::message::post(&mut c, &tk, &NewMessage {
                room_id: room.id, author_id: None, kind: MessageKind::System, body: "after".into(), client_id: None,
            }, 4000).unwrap();
            assert!(next.message.id.0 > source.messages.last().unwrap().id);
        }
        let stranger = domain::auth::verify_password("correct horse battery", "!imported");
        assert!(!stranger);

        // Importing again changes nothing.
        let again = {
            let mut c = target.db.get().unwrap();
            export::import_room(&mut c, &tk, &file).unwrap()
        };
        assert!(!again.changed(), "{again:?}");
        assert_eq!(again.messages_skipped, N);
        let after = export_of(&target, &tk, &slug);
        assert_eq!(after.messages.len(), N + 1);
        assert_eq!(after.messages[..N], back.messages[..]);
    }

    fn a_non_empty_target_keeps_order_and_existing_data(db: &TestDb) {
        let k = keys();
        // A small source: the order check needs no volume.
        let src = TestDb::new(db.backend);
        let ana = user(&src, "ana");
        let mut c = src.db.get().unwrap();
        let room = repo::room::create(&mut c, &NewRoom {
            slug: "team".into(), name: String::new(), topic: String::new(), kind: RoomKind::Public, created_by: Some(ana.id),
        }).unwrap();
        for i in 0..30 {
            repo::message::post(&mut c, &k, &NewMessage {
                room_id: room.id, author_id: Some(ana.id), kind: MessageKind::Text, body: format!("m{i}"), client_id: Some(format!("c{i}")),
            }, 4000).unwrap();
        }
        drop(c);
        let file = through_json(&export_of(&src, &k, "team"));

        // The target already has ana (active), more messages than the source, and the
        // same client ids in use.
        let target_ana = user(db, "ANA");
        let mut c = db.db.get().unwrap();
        let general = repo::room::ensure_general(&mut c).unwrap();
        for i in 0..40 {
            repo::message::post(&mut c, &k, &NewMessage {
                room_id: general.id, author_id: Some(target_ana.id), kind: MessageKind::Text, body: format!("g{i}"), client_id: Some(format!("c{i}")),
            }, 4000).unwrap();
        }
        let report = export::import_room(&mut c, &k, &file).unwrap();
        assert!(!report.ids_preserved);
        assert!(report.users_created.is_empty(), "ana matched case-insensitively");
        assert_eq!(report.messages_imported, 30);
        let got = export::export_room(&mut c, &k, "team").unwrap();
        assert!(got.messages.windows(2).all(|w| w[0].id < w[1].id));
        let pairs: Vec<_> = got.messages.iter().map(|m| (m.body.clone(), m.created_at, m.author.clone())).collect();
        let want: Vec<_> = file.messages.iter().map(|m| (m.body.clone(), m.created_at, Some("ANA".to_owned()))).collect();
        assert_eq!(pairs, want);
        assert!(repo::user::find_by_username(&mut c, "ana").unwrap().unwrap().is_active, "existing accounts are left alone");
        let again = export::import_room(&mut c, &k, &file).unwrap();
        assert!(!again.changed(), "{again:?}");
    }

    fn a_bad_file_is_refused_and_writes_nothing(db: &TestDb) {
        let k = keys();
        let mut c = db.db.get().unwrap();
        assert!(export::read_json(&b"{\"format\": \"something else\"}"[..]).is_err());
        assert!(matches!(export::export_room(&mut c, &k, "nope"), Err(domain::DomainError::NotFound)));
        let mut e = RoomExport {
            format: export::FORMAT.into(),
            version: export::VERSION,
            exported_at: 0,
            room: export::ExportRoom {
                slug: "fine".into(), name: "Fine".into(), topic: String::new(), kind: RoomKind::Public,
                archived: false, created_at: 1, created_by: None, members: vec![],
            },
            users: vec![],
            messages: vec![],
            attachments: vec![],
        };
        e.messages.push(export::ExportMessage {
            id: 1, author: Some("not a valid name!".into()), kind: MessageKind::Text, body: "x".into(),
            client_id: None, created_at: 1, edited_at: None, deleted_at: None, attachments: vec![],
        });
        assert!(export::import_room(&mut c, &k, &e).is_err());
        assert!(repo::room::find_by_slug(&mut c, "fine").unwrap().is_none());
    }
}
