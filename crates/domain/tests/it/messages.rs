use crate::{both, keys, user};
use diesel::prelude::*;
use domain::{
    DomainError,
    crypto::MessageKeys,
    db::schema::messages,
    ids::{MessageId, RoomId},
    model::{Body, MessageKind},
    repo::{self, Page, message::NewMessage},
    testing::TestDb,
};

const MAX: usize = 4000;

fn text(room: RoomId, author: &domain::model::User, body: &str, cid: Option<&str>) -> NewMessage {
    NewMessage {
        room_id: room,
        author_id: Some(author.id),
        kind: MessageKind::Text,
        body: body.into(),
        client_id: cid.map(str::to_owned),
    }
}

both! {
    fn posting_is_idempotent_by_client_id(db: &TestDb) {
        let k = keys();
        let u = user(db, "ana");
        let mut c = db.db.get().unwrap();
        let g = repo::room::ensure_general(&mut c).unwrap();
        let first = repo::message::post(&mut c, &k, &text(g.id, &u, "hello", Some("c-1")), MAX).unwrap();
        assert!(first.created);
        let again = repo::message::post(&mut c, &k, &text(g.id, &u, "hello (retry)", Some("c-1")), MAX).unwrap();
        assert!(!again.created);
        assert_eq!(again.message.id, first.message.id);
        assert_eq!(again.message.body, Body::Text("hello".into()), "the first one stands");
        let other = user(db, "bob");
        let theirs = repo::message::post(&mut c, &k, &text(g.id, &other, "hi", Some("c-1")), MAX).unwrap();
        assert!(theirs.created, "client ids are per author");
        let page = repo::message::history(&mut c, &k, g.id, Page::Latest, 50).unwrap();
        assert_eq!(page.messages.len(), 2);
        assert_eq!(page.messages[0].author.as_ref().unwrap().username, "ana");
    }

    fn bad_messages_are_refused_and_nothing_is_stored(db: &TestDb) {
        let k = keys();
        let u = user(db, "ana");
        let mut c = db.db.get().unwrap();
        let g = repo::room::ensure_general(&mut c).unwrap();
        for (body, cid) in [("   ", None), (&"x".repeat(MAX + 1)[..], None), ("ok", Some("")), ("ok", Some(&"c".repeat(65)[..]))] {
            let e = repo::message::post(&mut c, &k, &text(g.id, &u, body, cid), MAX).unwrap_err();
            assert!(matches!(e, DomainError::Invalid { .. }), "{e:?}");
        }
        let e = repo::message::post(&mut c, &k, &text(RoomId(9999), &u, "to nowhere", None), MAX).unwrap_err();
        assert!(matches!(e, DomainError::NotFound), "{e:?}");
        assert!(repo::message::history(&mut c, &k, g.id, Page::Latest, 10).unwrap().messages.is_empty());
    }

    fn history_pages_by_id_in_both_directions(db: &TestDb) {
        let k = keys();
        let u = user(db, "ana");
        let mut c = db.db.get().unwrap();
        let g = repo::room::ensure_general(&mut c).unwrap();
        let ids: Vec<MessageId> = (0..25)
            .map(|i| repo::message::post(&mut c, &k, &text(g.id, &u, &format!("m{i}"), None), MAX).unwrap().message.id)
            .collect();
        let latest = repo::message::history(&mut c, &k, g.id, Page::Latest, 10).unwrap();
        assert!(latest.more);
        assert_eq!(latest.messages.iter().map(|m| m.id).collect::<Vec<_>>(), ids[15..]);
        let before = repo::message::history(&mut c, &k, g.id, Page::Before(ids[15].0), 10).unwrap();
        assert_eq!(before.messages.iter().map(|m| m.id).collect::<Vec<_>>(), ids[5..15]);
        let oldest = repo::message::history(&mut c, &k, g.id, Page::Before(ids[5].0), 10).unwrap();
        assert!(!oldest.more);
        assert_eq!(oldest.messages.len(), 5);
        let after = repo::message::history(&mut c, &k, g.id, Page::After(ids[20].0), 10).unwrap();
        assert!(!after.more);
        assert_eq!(after.messages.iter().map(|m| m.body.text().unwrap().to_owned()).collect::<Vec<_>>(), ["m21", "m22", "m23", "m24"]);
        assert_eq!(repo::message::latest_id(&mut c, g.id).unwrap(), Some(ids[24]));
        assert_eq!(repo::message::count_after(&mut c, g.id, Some(ids[20]), 100).unwrap(), 4);
    }

    fn edits_and_deletes_keep_id_and_times(db: &TestDb) {
        let k = keys();
        let u = user(db, "ana");
        let mut c = db.db.get().unwrap();
        let g = repo::room::ensure_general(&mut c).unwrap();
        let m = repo::message::post(&mut c, &k, &text(g.id, &u, "tpyo", None), MAX).unwrap().message;
        let e = repo::message::edit(&mut c, &k, m.id, "typo", MAX).unwrap();
        assert_eq!((e.id, e.created_at), (m.id, m.created_at));
        assert_eq!(e.body.text(), Some("typo"));
        assert!(e.edited_at.is_some());
        let d = repo::message::set_deleted(&mut c, &k, m.id, true).unwrap();
        assert!(d.deleted_at.is_some());
        assert!(repo::message::edit(&mut c, &k, m.id, "again", MAX).is_err(), "deleted messages are not edited");
        let r = repo::message::set_deleted(&mut c, &k, m.id, false).unwrap();
        assert!(r.deleted_at.is_none());
        assert_eq!(repo::message::count_after(&mut c, g.id, None, 10).unwrap(), 1);
    }

    fn editing_recounts_mentions(db: &TestDb) {
        let k = keys();
        let ana = user(db, "ana");
        let bob = user(db, "bob");
        let cat = user(db, "cat");
        let mut c = db.db.get().unwrap();
        let g = repo::room::ensure_general(&mut c).unwrap();
        for u in [&ana, &bob, &cat] {
            if repo::room::membership(&mut c, g.id, u.id).unwrap().is_none() {
                repo::room::add_member(&mut c, g.id, u.id, domain::model::RoomRole::Member).unwrap();
            }
        }
        let counts = |c: &mut domain::db::DbConn, u: &domain::model::User| {
            let r = repo::mention::unread(c, g.id, u.id, None, 100).unwrap();
            (r.unread, r.mentions)
        };
        let m = repo::message::post(&mut c, &k, &text(g.id, &ana, "hi @bob", None), MAX).unwrap().message;
        assert_eq!(counts(&mut c, &bob), (1, 1));
        assert_eq!(counts(&mut c, &cat), (1, 0));
        // Bob out, Cat in (and the author naming herself counts for nobody).
        repo::message::edit(&mut c, &k, m.id, "hi @cat and @ana", MAX).unwrap();
        assert_eq!(counts(&mut c, &bob), (1, 0));
        assert_eq!(counts(&mut c, &cat), (1, 1));
        assert_eq!(counts(&mut c, &ana), (0, 0));
        // Both, once each however often named.
        repo::message::edit(&mut c, &k, m.id, "@bob @cat @BOB", MAX).unwrap();
        assert_eq!(counts(&mut c, &bob), (1, 1));
        assert_eq!(counts(&mut c, &cat), (1, 1));
        // Nobody.
        repo::message::edit(&mut c, &k, m.id, "never mind", MAX).unwrap();
        assert_eq!(counts(&mut c, &bob), (1, 0));
        assert_eq!(counts(&mut c, &cat), (1, 0));
        // A refused edit leaves the mentions as they were.
        repo::message::edit(&mut c, &k, m.id, "@bob", MAX).unwrap();
        assert!(repo::message::edit(&mut c, &k, m.id, "", MAX).is_err());
        assert_eq!(counts(&mut c, &bob), (1, 1));
    }

    fn bodies_are_ciphertext_bound_to_their_room(db: &TestDb) {
        let k = keys();
        let u = user(db, "ana");
        let mut c = db.db.get().unwrap();
        let g = repo::room::ensure_general(&mut c).unwrap();
        let secret = "the launch code is PLAINTEXT-CANARY-4711";
        let m = repo::message::post(&mut c, &k, &text(g.id, &u, secret, None), MAX).unwrap().message;
        let stored: (String, Vec<u8>) = messages::table.find(m.id.0).select((messages::key_id, messages::body)).first(&mut *c).unwrap();
        assert_eq!(stored.0, "k1");
        assert!(!contains(&stored.1, secret.as_bytes()));
        assert!(!contains(&stored.1, b"PLAINTEXT-CANARY"));
        // Moved to another room, the row no longer decrypts.
        let other = repo::room::create(&mut c, &repo::room::NewRoom {
            slug: "other".into(), name: String::new(), topic: String::new(), kind: domain::model::RoomKind::Public, created_by: None,
        }).unwrap();
        diesel::update(messages::table.find(m.id.0)).set(messages::room_id.eq(other.id.0)).execute(&mut *c).unwrap();
        assert!(matches!(repo::message::find(&mut c, &k, m.id).unwrap().body, Body::Undecryptable(_)));
    }

    fn a_wrong_key_or_corrupt_row_is_reported_for_that_row_only(db: &TestDb) {
        let k = keys();
        let u = user(db, "ana");
        let mut c = db.db.get().unwrap();
        let g = repo::room::ensure_general(&mut c).unwrap();
        let ids: Vec<MessageId> = (0..3)
            .map(|i| repo::message::post(&mut c, &k, &text(g.id, &u, &format!("m{i}"), None), MAX).unwrap().message.id)
            .collect();
        diesel::update(messages::table.find(ids[1].0)).set(messages::body.eq(vec![1u8, 2, 3])).execute(&mut *c).unwrap();
        let page = repo::message::history(&mut c, &k, g.id, Page::Latest, 10).unwrap();
        let bodies: Vec<_> = page.messages.iter().map(|m| m.body.clone()).collect();
        assert_eq!(bodies[0], Body::Text("m0".into()));
        assert!(matches!(&bodies[1], Body::Undecryptable(why) if why.contains("too short")), "{:?}", bodies[1]);
        assert_eq!(bodies[2], Body::Text("m2".into()));

        let wrong = MessageKeys::parse(&MessageKeys::generate_line("k1")).unwrap();
        let page = repo::message::history(&mut c, &wrong, g.id, Page::Latest, 10).unwrap();
        assert!(page.messages.iter().all(|m| matches!(&m.body, Body::Undecryptable(why) if why.contains("authentication") || why.contains("too short"))));
        let unknown = MessageKeys::parse(&MessageKeys::generate_line("k9")).unwrap();
        let m = repo::message::find(&mut c, &unknown, ids[0]).unwrap();
        assert!(matches!(&m.body, Body::Undecryptable(why) if why.contains("unknown key id")), "{:?}", m.body);
    }

    fn rotate_keys_reencrypts_in_batches_and_skips_bad_rows(db: &TestDb) {
        let old = keys();
        let u = user(db, "ana");
        let mut c = db.db.get().unwrap();
        let g = repo::room::ensure_general(&mut c).unwrap();
        let ids: Vec<MessageId> = (0..7)
            .map(|i| repo::message::post(&mut c, &old, &text(g.id, &u, &format!("m{i}"), None), MAX).unwrap().message.id)
            .collect();
        diesel::update(messages::table.find(ids[3].0)).set(messages::body.eq(vec![0u8; 60])).execute(&mut *c).unwrap();
        let k2 = MessageKeys::generate_line("k2");
        let both = MessageKeys::parse(&format!("{k2},k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")).unwrap();
        let (mut after, mut rotated, mut failed) = (0, 0, 0);
        loop {
            let b = repo::message::rotate_batch(&mut c, &both, after, 3).unwrap();
            rotated += b.rotated;
            failed += b.failed;
            match b.last_id { Some(id) => after = id, None => break }
        }
        assert_eq!((rotated, failed), (6, 1));
        let counts = repo::message::count_by_key(&mut c).unwrap();
        assert_eq!(counts, vec![("k1".to_owned(), 1), ("k2".to_owned(), 6)]);
        // The old key can now go; everything rotated still reads.
        let new_only = MessageKeys::parse(&k2).unwrap();
        let page = repo::message::history(&mut c, &new_only, g.id, Page::Latest, 10).unwrap();
        let readable = page.messages.iter().filter(|m| m.body.text().is_some()).count();
        assert_eq!(readable, 6);
    }
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn sqlite_file_holds_no_plaintext() {
    let db = TestDb::new(domain::db::Backend::Sqlite);
    let k = keys();
    let u = user(&db, "ana");
    let mut c = db.db.get().unwrap();
    let g = repo::room::ensure_general(&mut c).unwrap();
    for i in 0..50 {
        repo::message::post(
            &mut c,
            &k,
            &text(
                g.id,
                &u,
                &format!("PLAINTEXT-CANARY-{i:03} secret words"),
                None,
            ),
            MAX,
        )
        .unwrap();
    }
    drop(c);
    let path = db.sqlite_path().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend(std::fs::read(path.with_extension("sqlite3-wal")).unwrap_or_default());
    assert!(bytes.len() > 4096, "the database and its WAL were read");
    assert!(
        contains(&bytes, b"general"),
        "the file is readable as-is (room slugs are plaintext)"
    );
    assert!(
        !contains(&bytes, b"PLAINTEXT-CANARY"),
        "a message body is stored in clear"
    );
    assert!(!contains(&bytes, b"secret words"));
}
