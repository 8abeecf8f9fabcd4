//! The group-commit writer: every guarantee of `repo::message::post`, many posts per
//! transaction.

use crate::{
    both,
    concurrency::{follow, read_all},
    keys, run, user,
};
use diesel::connection::SimpleConnection as _;
use domain::{
    DomainError,
    ids::{MessageId, RoomId},
    model::{Body, MessageKind, RoomKind, RoomRole},
    repo::{self, message::NewMessage},
    testing::TestDb,
    writer::{Checkpoints, MessageWriter},
};
use futures_util::future::join_all;
use std::collections::HashSet;

const MAX: usize = 4000;
const TASKS: usize = 16;
const PER_TASK: usize = 250;

fn text(room: RoomId, author: &domain::model::User, body: &str, cid: &str) -> NewMessage {
    NewMessage {
        room_id: room,
        author_id: Some(author.id),
        kind: MessageKind::Text,
        body: body.into(),
        client_id: Some(cid.into()),
    }
}

/// A guard that lets the post through.
fn pass() -> domain::writer::Guard {
    Box::new(|_, _| Ok(()))
}

fn two_rooms(db: &TestDb) -> (RoomId, RoomId) {
    let mut c = db.db.get().unwrap();
    let a = repo::room::ensure_general(&mut c).unwrap().id;
    let b = repo::room::create(
        &mut c,
        &repo::room::NewRoom {
            slug: "second".into(),
            name: String::new(),
            topic: String::new(),
            kind: RoomKind::Public,
            created_by: None,
        },
    )
    .unwrap()
    .id;
    (a, b)
}

both! {
    fn concurrent_posts_are_stored_once_in_commit_order(db: &TestDb) {
        let k = keys();
        let authors: Vec<_> = (0..TASKS).map(|t| user(db, &format!("w{t}"))).collect();
        let (room_a, room_b) = two_rooms(db);
        {
            let mut c = db.db.get().unwrap();
            for r in [room_a, room_b] {
                repo::room::add_member(&mut c, r, authors[0].id, RoomRole::Member).unwrap();
            }
        }
        let started = std::time::Instant::now();
        let (writer, per_task, seen) = run(async {
            let writer = MessageWriter::start(&db.db, k.clone(), MAX).unwrap();
            let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let readers: Vec<_> = [room_a, room_b].into_iter().map(|room| {
                let (db, k, done) = (db.db.clone(), k.clone(), done.clone());
                tokio::spawn(async move { follow(db, k, room, done).await })
            }).collect();
            let tasks: Vec<_> = authors.iter().enumerate().map(|(t, author)| {
                let (writer, author) = (writer.clone(), author.clone());
                tokio::spawn(async move {
                    let mut ids = Vec::with_capacity(PER_TASK);
                    for i in 0..PER_TASK {
                        let room = if (t + i) % 2 == 0 { room_a } else { room_b };
                        let new = text(room, &author, &format!("task {t} message {i} @w0"), &format!("t{t}-m{i}"));
                        let posted = writer.post(new.clone()).await.unwrap();
                        assert!(posted.created);
                        assert_eq!(posted.message.body, Body::Text(new.body.clone()));
                        assert_eq!(posted.message.author.as_ref().map(|a| a.id), Some(author.id));
                        if i % 5 == 0 {
                            let again = writer.post(new).await.unwrap();
                            assert!(!again.created);
                            assert_eq!(again.message.id, posted.message.id);
                        }
                        ids.push(posted.message.id);
                    }
                    ids
                })
            }).collect();
            let per_task: Vec<Vec<MessageId>> = join_all(tasks).await.into_iter().map(Result::unwrap).collect();
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            let seen: Vec<Vec<MessageId>> = join_all(readers).await.into_iter().map(Result::unwrap).collect();
            (writer, per_task, seen)
        });
        let total = TASKS * PER_TASK + TASKS * PER_TASK / 5;
        eprintln!("{:?}: {total} posts in {} batches, {:?}", db.backend, writer.batches(), started.elapsed());
        assert!(writer.batches() < total as u64, "posts were grouped into fewer transactions");
        let all: Vec<MessageId> = per_task.iter().flatten().copied().collect();
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), TASKS * PER_TASK, "no id twice");
        for ids in &per_task {
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "a task's messages keep its order");
        }
        let mut c = db.db.get().unwrap();
        let stored: usize = [room_a, room_b].iter().map(|r| read_all(&mut c, &k, *r).len()).sum();
        assert_eq!(stored, TASKS * PER_TASK, "nothing lost, nothing duplicated");
        for (room, seen) in [room_a, room_b].iter().zip(&seen) {
            assert_eq!(seen, &read_all(&mut c, &k, *room), "a follower by id saw room {room} whole, in order");
        }
        // Mentions were recorded for every stored message (w0 is mentioned in each).
        let mentions: i64 = {
            use diesel::prelude::*;
            domain::db::schema::mentions::table.count().get_result(&mut c).unwrap()
        };
        assert_eq!(mentions as usize, (TASKS - 1) * PER_TASK, "w0 is mentioned by everyone else's messages");
    }

    fn each_created_message_links_to_its_rooms_previous_and_hooks_run_in_id_order(db: &TestDb) {
        let k = keys();
        let authors: Vec<_> = (0..4).map(|t| user(db, &format!("h{t}"))).collect();
        let (room_a, room_b) = two_rooms(db);
        type Seen = std::sync::Arc<std::sync::Mutex<Vec<(RoomId, MessageId, Option<MessageId>)>>>;
        let hooked: Seen = Default::default();
        let per_task = run(async {
            let writer = MessageWriter::start(&db.db, k.clone(), MAX).unwrap();
            let tasks: Vec<_> = authors.iter().enumerate().map(|(t, author)| {
                let (writer, author, hooked) = (writer.clone(), author.clone(), hooked.clone());
                tokio::spawn(async move {
                    // Queued back to back, answers awaited afterwards: a pipelining socket.
                    let mut answers = Vec::new();
                    for i in 0..100 {
                        let room = if (t + i) % 3 == 0 { room_a } else { room_b };
                        // Every tenth post repeats the previous one's client_id: no hook.
                        let cid = format!("t{t}-m{}", if i % 10 == 9 { i - 1 } else { i });
                        let hooked = hooked.clone();
                        let hook: domain::writer::OnCommit = Box::new(move |p, _| {
                            hooked.lock().unwrap().push((p.message.room_id, p.message.id, p.prev));
                        });
                        let new = text(room, &author, &format!("{t}/{i}"), &cid);
                        answers.push(writer.enqueue(new, pass(), hook).await.unwrap());
                    }
                    let mut ids = Vec::new();
                    for answer in answers {
                        let posted = answer.await;
                        // The repeat of a post in another room is refused; in the same
                        // room it gets the stored id.
                        if let Ok(posted) = posted && posted.created {
                            ids.push(posted.message.id);
                        }
                    }
                    ids
                })
            }).collect();
            join_all(tasks).await.into_iter().map(Result::unwrap).collect::<Vec<_>>()
        });
        for ids in &per_task {
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "posts queued in order are stored in order");
        }
        let hooked = hooked.lock().unwrap().clone();
        let created: usize = per_task.iter().map(Vec::len).sum();
        assert_eq!(hooked.len(), created, "one hook per created message, none for repeats");
        assert!(hooked.windows(2).all(|w| w[0].1 < w[1].1), "hooks run in id order");
        let mut c = db.db.get().unwrap();
        for room in [room_a, room_b] {
            let stored: Vec<MessageId> = read_all(&mut c, &k, room);
            let chain: Vec<_> = hooked.iter().filter(|h| h.0 == room).collect();
            assert_eq!(chain.iter().map(|h| h.1).collect::<Vec<_>>(), stored, "room {room}: every message hooked");
            let mut prev = MessageId(0);
            for (_, id, linked) in chain {
                assert_eq!(*linked, Some(prev), "room {room}: {id} follows its predecessor");
                prev = *id;
            }
        }
    }

    fn the_send_guard_reads_the_batch_view_as_fresh_as_its_own_reads(db: &TestDb) {
        let k = keys();
        let (ana, bob, cy, out) = (user(db, "ana"), user(db, "bob"), user(db, "cy"), user(db, "out"));
        let private = {
            let mut c = db.db.get().unwrap();
            let room = repo::room::create(
                &mut c,
                &repo::room::NewRoom {
                    slug: "private".into(),
                    name: String::new(),
                    topic: String::new(),
                    kind: RoomKind::Private,
                    created_by: None,
                },
            )
            .unwrap()
            .id;
            repo::room::add_member(&mut c, room, ana.id, RoomRole::Member).unwrap();
            repo::room::add_member(&mut c, room, bob.id, RoomRole::Member).unwrap();
            repo::room::add_member(&mut c, room, cy.id, RoomRole::ReadOnly).unwrap();
            room
        };
        let guard = |u: &domain::model::User| domain::writer::may_post(u.clone(), private);
        let (first, second) = run(async {
            let writer = MessageWriter::start(&db.db, k.clone(), MAX).unwrap();
            // One batch: a member, a read-only member, an outsider, a missing room.
            let first = join_all([
                writer.post_guarded(text(private, &ana, "in", "a1"), guard(&ana)),
                writer.post_guarded(text(private, &cy, "read-only", "c1"), guard(&cy)),
                writer.post_guarded(text(private, &out, "outsider", "o1"), guard(&out)),
                writer.post_guarded(text(RoomId(999_999), &bob, "nowhere", "b0"), domain::writer::may_post(bob.clone(), RoomId(999_999))),
            ])
            .await;
            // Bob removed by a committed transaction: his next post is refused.
            {
                let mut c = db.db.get().unwrap();
                assert!(repo::room::remove_member(&mut c, private, bob.id).unwrap());
            }
            let second = join_all([
                writer.post_guarded(text(private, &bob, "after removal", "b1"), guard(&bob)),
                writer.post_guarded(text(private, &ana, "still in", "a2"), guard(&ana)),
            ])
            .await;
            (first, second)
        });
        assert!(first[0].as_ref().is_ok_and(|p| p.created), "{:?}", first[0]);
        assert!(matches!(first[1], Err(DomainError::Forbidden)), "{:?}", first[1]);
        assert!(matches!(first[2], Err(DomainError::Forbidden)), "{:?}", first[2]);
        assert!(matches!(first[3], Err(DomainError::NotFound)), "{:?}", first[3]);
        assert!(matches!(second[0], Err(DomainError::Forbidden)), "{:?}", second[0]);
        assert!(second[1].as_ref().is_ok_and(|p| p.created), "{:?}", second[1]);
        let mut c = db.db.get().unwrap();
        assert_eq!(read_all(&mut c, &k, private).len(), 2, "only the two allowed posts");
    }

    fn one_bad_message_fails_alone_and_duplicates_share_an_id(db: &TestDb) {
        let k = keys();
        let ana = user(db, "ana");
        let (room, _) = two_rooms(db);
        let (writer, results) = run(async {
            let writer = MessageWriter::start(&db.db, k.clone(), MAX).unwrap();
            // The first post's guard holds the writer for a moment, so everything below is
            // queued meanwhile and written as one batch.
            let slow = writer.post_guarded(text(room, &ana, "first", "slow"), Box::new(|_, _| {
                std::thread::sleep(std::time::Duration::from_millis(300));
                Ok(())
            }));
            let rest = async {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                join_all([
                    writer.post_guarded(text(room, &ana, "one", "a"), pass()),
                    writer.post_guarded(text(RoomId(999_999), &ana, "no such room", "b"), pass()),
                    writer.post_guarded(text(room, &ana, "refused", "c"), Box::new(|_, _| Err(DomainError::Forbidden))),
                    writer.post_guarded(text(room, &ana, "dup first", "d"), pass()),
                    writer.post_guarded(text(room, &ana, "dup second", "d"), pass()),
                    writer.post_guarded(text(room, &ana, "   ", "e"), pass()),
                    writer.post_guarded(text(room, &ana, "two", "f"), pass()),
                    // A failed statement: the batch is rolled back and written again with a
                    // savepoint per message (on PostgreSQL the transaction was aborted).
                    writer.post_guarded(text(room, &ana, "bad sql", "g"), Box::new(|c, _| {
                        use diesel::RunQueryDsl;
                        diesel::sql_query("SELECT no_such_column FROM no_such_table").execute(c)?;
                        Ok(())
                    })),
                    writer.post_guarded(text(room, &ana, "three", "h"), pass()),
                ]).await
            };
            let (slow, rest) = tokio::join!(slow, rest);
            assert!(slow.unwrap().created);
            (writer, rest)
        });
        assert_eq!(writer.batches(), 2, "the queued posts went in one transaction");
        let [one, missing, refused, dup1, dup2, empty, two, bad_sql, three] = <[_; 9]>::try_from(results).ok().unwrap();
        assert!(matches!(bad_sql, Err(DomainError::Db(_))), "{bad_sql:?}");
        assert!(three.unwrap().created);
        let (one, two) = (one.unwrap(), two.unwrap());
        assert!(one.created && two.created && one.message.id < two.message.id);
        assert!(matches!(missing, Err(DomainError::NotFound)), "{missing:?}");
        assert!(matches!(refused, Err(DomainError::Forbidden)), "{refused:?}");
        assert!(matches!(empty, Err(DomainError::Invalid { .. })), "{empty:?}");
        let (dup1, dup2) = (dup1.unwrap(), dup2.unwrap());
        assert!(dup1.created && !dup2.created);
        assert_eq!(dup1.message.id, dup2.message.id, "both callers get the same id");
        assert_eq!(dup2.message.body, Body::Text("dup first".into()));
        let mut c = db.db.get().unwrap();
        let page = repo::message::history(&mut c, &k, room, repo::Page::Latest, 50).unwrap();
        let bodies: Vec<_> = page.messages.iter().map(|m| m.body.clone()).collect();
        assert_eq!(bodies, ["first", "one", "dup first", "two", "three"].map(|b| Body::Text(b.into())));
    }

    fn a_panicking_guard_fails_its_batch_and_the_writer_goes_on(db: &TestDb) {
        let k = keys();
        let ana = user(db, "ana");
        let (room, _) = two_rooms(db);
        run(async {
            let writer = MessageWriter::start(&db.db, k.clone(), MAX).unwrap();
            let boom = writer
                .post_guarded(text(room, &ana, "boom", "p1"), Box::new(|_, _| panic!("a bug in a guard")))
                .await;
            assert!(boom.is_err(), "{boom:?}");
            let after = writer.post(text(room, &ana, "after", "p2")).await.unwrap();
            assert!(after.created);
            let mut c = db.db.get().unwrap();
            let page = repo::message::history(&mut c, &k, room, repo::Page::Latest, 50).unwrap();
            let bodies: Vec<_> = page.messages.iter().map(|m| m.body.clone()).collect();
            assert_eq!(bodies, [Body::Text("after".into())], "nothing of the panicked batch was kept");
        });
    }

    fn a_clean_batch_with_duplicates_and_refusals_stores_each_key_once(db: &TestDb) {
        // No failed statement in this batch: PostgreSQL writes it as one multi-row insert.
        let k = keys();
        let ana = user(db, "ana");
        let bob = user(db, "bob");
        let (room, other) = two_rooms(db);
        let (writer, results) = run(async {
            let writer = MessageWriter::start(&db.db, k.clone(), MAX).unwrap();
            writer.post(text(room, &ana, "stored before", "old")).await.unwrap();
            let slow = writer.post_guarded(
                text(room, &ana, "first", "slow"),
                Box::new(|_, _| {
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    Ok(())
                }),
            );
            let rest = async {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                join_all([
                    writer.post_guarded(text(room, &ana, "x1", "x"), pass()),
                    writer.post_guarded(text(room, &bob, "bob's x", "x"), pass()),
                    writer.post_guarded(text(room, &ana, "x2", "x"), pass()),
                    writer.post_guarded(text(room, &ana, "again", "old"), pass()),
                    writer.post_guarded(text(other, &ana, "elsewhere", "old"), pass()),
                    writer.post_guarded(
                        text(room, &bob, "refused", "r"),
                        Box::new(|_, _| Err(DomainError::Forbidden)),
                    ),
                    writer.post_guarded(text(RoomId(999_999), &bob, "nowhere", "n"), pass()),
                    writer.post_guarded(text(other, &bob, "y", "y"), pass()),
                ])
                .await
            };
            let (slow, rest) = tokio::join!(slow, rest);
            assert!(slow.unwrap().created);
            (writer, rest)
        });
        assert_eq!(writer.batches(), 3, "the queued posts went in one transaction");
        let [x1, bob_x, x2, again, elsewhere, refused, nowhere, y] =
            <[_; 8]>::try_from(results).ok().unwrap();
        let (x1, bob_x, x2, again, y) = (x1.unwrap(), bob_x.unwrap(), x2.unwrap(), again.unwrap(), y.unwrap());
        assert!(x1.created && bob_x.created && !x2.created && !again.created && y.created);
        assert_eq!(x2.message.id, x1.message.id, "both callers get the first one's id");
        assert_eq!(x2.message.body, Body::Text("x1".into()));
        assert_ne!(bob_x.message.id, x1.message.id, "client ids are per author");
        assert_eq!(again.message.body, Body::Text("stored before".into()));
        assert_eq!(x1.message.author.as_ref().map(|a| a.username.as_str()), Some("ana"));
        assert!(matches!(elsewhere, Err(DomainError::Conflict(_))), "{elsewhere:?}");
        assert!(matches!(refused, Err(DomainError::Forbidden)), "{refused:?}");
        assert!(matches!(nowhere, Err(DomainError::NotFound)), "{nowhere:?}");
        let mut c = db.db.get().unwrap();
        let page = repo::message::history(&mut c, &k, room, repo::Page::Latest, 50).unwrap();
        let bodies: Vec<_> = page.messages.iter().map(|m| m.body.clone()).collect();
        assert_eq!(bodies, ["stored before", "first", "x1", "bob's x"].map(|b| Body::Text(b.into())));
    }
}

/// SQLite: the writer's commits never checkpoint the WAL (a commit that did waited for
/// the copy and its fsync); the checkpointer does, in the background, once enough
/// messages or enough time has gone by (each checkpoint makes the next commit fsync).
#[test]
fn sqlite_commits_leave_the_checkpoints_to_the_checkpointer() {
    let db = TestDb::new(domain::db::Backend::Sqlite);
    let file = std::path::PathBuf::from(db.url.trim_start_matches("sqlite://"));
    let wal = file.with_extension("sqlite3-wal");
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let room = repo::room::ensure_general(&mut db.db.get().unwrap())
        .unwrap()
        .id;
    let author = user(&db, "cp");
    let k = keys();
    // Settle what the setup wrote, then measure from there.
    db.db
        .get()
        .unwrap()
        .batch_execute("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let before = size(&file);
    run(async {
        let hour = std::time::Duration::from_secs(3600);
        let never = Checkpoints {
            every: hour,
            messages: u64::MAX,
            within: hour,
        };
        let writer = MessageWriter::start_with_checkpoints(&db.db, k.clone(), MAX, never).unwrap();
        // One commit each, well past SQLite's 1,000-page autocheckpoint.
        for i in 0..600 {
            let new = text(room, &author, &format!("m{i}"), &format!("c{i}"));
            writer.post(new).await.unwrap();
        }
        assert_eq!(
            size(&file),
            before,
            "a commit copied the WAL into the database"
        );
        assert!(
            size(&wal) > 1000 * 4096,
            "the WAL holds every commit: {}",
            size(&wal)
        );
        assert_eq!(writer.checkpoints(), 0);
        drop(writer);

        // The checkpointer looks every 20 ms; a commit alone is not reason enough.
        let tick = std::time::Duration::from_millis(20);
        let policy = Checkpoints {
            every: tick,
            messages: 50,
            within: hour,
        };
        let writer = MessageWriter::start_with_checkpoints(&db.db, k.clone(), MAX, policy).unwrap();
        for i in 0..49 {
            let new = text(room, &author, &format!("t{i}"), &format!("t{i}"));
            writer.post(new).await.unwrap();
            tokio::time::sleep(tick / 4).await;
        }
        tokio::time::sleep(tick * 5).await;
        assert_eq!(
            writer.checkpoints(),
            0,
            "a trickle of commits checkpointed before 50 messages"
        );
        writer
            .post(text(room, &author, "50th", "t49"))
            .await
            .unwrap();
        wait_for_checkpoint(&writer, tick).await;
        drop(writer);

        // A single message is checkpointed once it has waited `within`.
        let policy = Checkpoints {
            every: tick,
            messages: u64::MAX,
            within: std::time::Duration::from_millis(200),
        };
        let writer = MessageWriter::start_with_checkpoints(&db.db, k, MAX, policy).unwrap();
        writer
            .post(text(room, &author, "last", "c-last"))
            .await
            .unwrap();
        let posted = std::time::Instant::now();
        wait_for_checkpoint(&writer, tick).await;
        assert!(
            posted.elapsed() >= std::time::Duration::from_millis(180),
            "checkpointed {:?} after the message, before `within`",
            posted.elapsed()
        );
    });
    assert!(
        size(&file) > before,
        "the checkpoint copied the WAL into the database"
    );
    let stored: i64 = {
        use diesel::prelude::*;
        domain::db::schema::messages::table
            .count()
            .get_result(&mut db.db.get().unwrap())
            .unwrap()
    };
    assert_eq!(stored, 651);
}

async fn wait_for_checkpoint(writer: &MessageWriter, tick: std::time::Duration) {
    for _ in 0..500 {
        if writer.checkpoints() > 0 {
            return;
        }
        tokio::time::sleep(tick).await;
    }
    panic!("no checkpoint within 10 s");
}

/// When the database goes away, a post queued behind one that is waiting for a
/// connection is refused with it, not after a further pool timeout of its own.
#[test]
fn posts_queued_while_the_database_is_unreachable_are_refused_together() {
    use diesel::{Connection as _, PgConnection, RunQueryDsl as _};
    let db = TestDb::new(domain::db::Backend::Postgres);
    let room = repo::room::ensure_general(&mut db.db.get().unwrap())
        .unwrap()
        .id;
    let author = user(&db, "gone");
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    run(async {
        let writer = MessageWriter::start(&db.db, keys(), MAX).unwrap();
        writer
            .post(text(room, &author, "before", "c0"))
            .await
            .unwrap();
        // The database disappears: the writer's connection is cut, and every new one
        // is refused, so the pool waits its whole timeout (10 s) before giving up.
        let mut admin = PgConnection::establish(&domain::testing::postgres_admin_url()).unwrap();
        diesel::sql_query(format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut admin)
            .unwrap();
        // On the cut connection: refused at once.
        let first = writer.post(text(room, &author, "cut", "c1")).await;
        assert!(first.is_err(), "{first:?}");
        let start = std::time::Instant::now();
        let waiting = {
            let w = writer.clone();
            let new = text(room, &author, "waits", "c2");
            tokio::spawn(async move { (w.post(new).await, start.elapsed()) })
        };
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let queued = {
            let w = writer.clone();
            let new = text(room, &author, "queued", "c3");
            tokio::spawn(async move { (w.post(new).await, start.elapsed()) })
        };
        let (waited, waited_in) = waiting.await.unwrap();
        let (behind, behind_in) = queued.await.unwrap();
        assert!(
            matches!(waited, Err(DomainError::Unavailable(_))),
            "{waited:?}"
        );
        assert!(
            matches!(behind, Err(DomainError::Unavailable(_))),
            "{behind:?}"
        );
        assert!(
            behind_in < waited_in + std::time::Duration::from_secs(3),
            "the queued post was refused {behind_in:?} after the start, the one before \
             it {waited_in:?}: it waited for a pool timeout of its own"
        );
    });
}
