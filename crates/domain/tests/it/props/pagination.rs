//! Keyset pagination of a room's history (`repo::message::history`): for any sequence of
//! messages — spread over two rooms, some deleted, creation times arbitrary and often
//! tied — paging backwards from the latest and forwards from any cursor, with arbitrary
//! page sizes, yields every message of the room exactly once, in order, with no gaps.
//!
//! The key is the id alone, so creation times are rewritten at random (ties, and times
//! that run backwards) to show the order never depends on them.

use crate::{keys, user};
use diesel::prelude::*;
use domain::{
    db::{Backend, schema::messages},
    ids::{MessageId, RoomId},
    model::{MessageKind, RoomKind},
    repo::{self, MAX_PAGE, Page, message::NewMessage, room::NewRoom},
    testing::TestDb,
};
use proptest::prelude::*;

/// One message of the generated history.
#[derive(Debug, Clone)]
struct Spec {
    /// In the second room, as noise the first room's pages must never show.
    other_room: bool,
    deleted: bool,
    /// Few values, so that many messages share a creation time.
    created_at: u8,
}

fn spec() -> impl Strategy<Value = Spec> {
    (any::<bool>(), prop::bool::weighted(0.2), 0u8..4).prop_map(
        |(other_room, deleted, created_at)| Spec {
            other_room,
            deleted,
            created_at,
        },
    )
}

#[derive(Debug, Clone)]
struct Case {
    messages: Vec<Spec>,
    /// Page sizes, used in turn. Out-of-range sizes are clamped to 1..=MAX_PAGE.
    sizes: Vec<i64>,
    /// Where a forward walk starts (an id or not; may lie outside the room's ids).
    start: i64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(spec(), 0..40),
        proptest::collection::vec(prop_oneof![8 => -1i64..12, 1 => Just(MAX_PAGE + 5)], 1..6),
        -2i64..45,
    )
        .prop_map(|(messages, sizes, start)| Case {
            messages,
            sizes,
            start,
        })
}

fn ids(page: &repo::message::HistoryPage) -> Vec<MessageId> {
    page.messages.iter().map(|m| m.id).collect()
}

fn check(backend: Backend, case: &Case) -> Result<(), TestCaseError> {
    let db = TestDb::new(backend);
    let k = keys();
    let author = user(&db, "ana");
    let mut c = db.db.get().expect("connection");
    let room = repo::room::ensure_general(&mut c).expect("general").id;
    let other = repo::room::create(
        &mut c,
        &NewRoom {
            slug: "other".into(),
            name: String::new(),
            topic: String::new(),
            kind: RoomKind::Public,
            created_by: None,
        },
    )
    .expect("room")
    .id;

    let mut expected: Vec<MessageId> = Vec::new();
    for (i, s) in case.messages.iter().enumerate() {
        let room_id: RoomId = if s.other_room { other } else { room };
        let posted = repo::message::post(
            &mut c,
            &k,
            &NewMessage {
                room_id,
                author_id: Some(author.id),
                kind: MessageKind::Text,
                body: format!("m{i}"),
                client_id: None,
            },
            4000,
        )
        .expect("post")
        .message;
        diesel::update(messages::table.find(posted.id.0))
            .set(messages::created_at.eq(1_000_000 * (4 - i64::from(s.created_at))))
            .execute(&mut *c)
            .expect("set created_at");
        if s.deleted {
            repo::message::set_deleted(&mut c, &k, posted.id, true).expect("delete");
        }
        if !s.other_room {
            expected.push(posted.id);
        }
    }
    let mut size = case.sizes.iter().copied().cycle();

    // Backwards from the latest page, as the client scrolls up.
    let mut page = repo::message::history(&mut c, &k, room, Page::Latest, size.next().unwrap_or(1))
        .expect("latest");
    let mut seen: Vec<MessageId> = ids(&page);
    while page.more {
        let Some(first) = page.messages.first() else {
            return Err(TestCaseError::fail("`more` on an empty page"));
        };
        let limit = size.next().unwrap_or(1);
        page = repo::message::history(&mut c, &k, room, Page::Before(first.id.0), limit)
            .expect("before");
        prop_assert!(!page.messages.is_empty(), "`more` promised older messages");
        prop_assert!(page.messages.len() as i64 <= limit.clamp(1, MAX_PAGE));
        let mut older = ids(&page);
        older.extend(seen);
        seen = older;
    }
    prop_assert_eq!(&seen, &expected, "backwards");

    // Forwards from an arbitrary cursor, as a client catching up after `since`.
    let start = case.start;
    let mut after = start;
    let mut seen: Vec<MessageId> = Vec::new();
    loop {
        let limit = size.next().unwrap_or(1);
        let page =
            repo::message::history(&mut c, &k, room, Page::After(after), limit).expect("after");
        prop_assert!(page.messages.len() as i64 <= limit.clamp(1, MAX_PAGE));
        seen.extend(ids(&page));
        match page.messages.last() {
            Some(last) if page.more => after = last.id.0,
            _ => {
                prop_assert!(!page.more, "`more` on an empty page");
                break;
            }
        }
    }
    let newer: Vec<MessageId> = expected.iter().copied().filter(|id| id.0 > start).collect();
    prop_assert_eq!(&seen, &newer, "forwards from {}", start);

    // Every page is oldest first, and deleted messages keep their place.
    let all = repo::message::history(&mut c, &k, room, Page::Latest, MAX_PAGE).expect("all");
    prop_assert_eq!(ids(&all), expected.clone());
    let deleted = case
        .messages
        .iter()
        .filter(|s| !s.other_room && s.deleted)
        .count();
    prop_assert_eq!(
        all.messages
            .iter()
            .filter(|m| m.deleted_at.is_some())
            .count(),
        deleted
    );
    Ok(())
}

proptest! {
    // Each case builds a fresh database: keep them few.
    #![proptest_config(ProptestConfig { cases: 16, max_shrink_iters: 64, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_pages_every_message_once_in_order(case in case()) {
        check(Backend::Sqlite, &case)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, max_shrink_iters: 32, ..ProptestConfig::default() })]

    #[test]
    fn postgres_pages_every_message_once_in_order(case in case()) {
        check(Backend::Postgres, &case)?;
    }
}
