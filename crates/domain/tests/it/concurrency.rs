//! Many writers at once on one database: nothing lost, nothing duplicated, and ids in
//! each room appear in commit order (a reader catching up by "after my last id" never
//! misses a message).

use crate::{both, keys, run, user};
use domain::{
    ids::{MessageId, RoomId},
    model::MessageKind,
    repo::{self, Page, message::NewMessage},
    testing::TestDb,
};
use std::collections::HashSet;

const TASKS: usize = 8;
const PER_TASK: usize = 500;

both! {
    fn eight_writers_lose_and_duplicate_nothing(db: &TestDb) {
        let k = keys();
        let authors: Vec<_> = (0..TASKS).map(|t| user(db, &format!("writer{t}"))).collect();
        let (room_a, room_b) = {
            let mut c = db.db.get().unwrap();
            let a = repo::room::ensure_general(&mut c).unwrap().id;
            let b = repo::room::create(&mut c, &repo::room::NewRoom {
                slug: "second".into(), name: String::new(), topic: String::new(),
                kind: domain::model::RoomKind::Public, created_by: None,
            }).unwrap().id;
            (a, b)
        };
        let started = std::time::Instant::now();
        let (per_task_ids, seen_by_readers) = run(async {
            let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let readers: Vec<_> = [room_a, room_b].into_iter().map(|room| {
                let (db, k, done) = (db.db.clone(), k.clone(), done.clone());
                tokio::spawn(async move { follow(db, k, room, done).await })
            }).collect();
            let writers: Vec<_> = authors.iter().enumerate().map(|(t, author)| {
                let (db, k, author) = (db.db.clone(), k.clone(), author.id);
                tokio::spawn(async move {
                    let mut ids = Vec::with_capacity(PER_TASK);
                    for i in 0..PER_TASK {
                        let room = if (t + i) % 2 == 0 { room_a } else { room_b };
                        let new = NewMessage {
                            room_id: room, author_id: Some(author), kind: MessageKind::Text,
                            body: format!("task {t} message {i}"), client_id: Some(format!("t{t}-m{i}")),
                        };
                        let posted = {
                            let (k, new) = (k.clone(), new.clone());
                            db.run(move |c| repo::message::post(c, &k, &new, 4000)).await.unwrap()
                        };
                        assert!(posted.created);
                        // Every fifth message is sent again, as a client does when an ack is lost.
                        if i % 5 == 0 {
                            let k = k.clone();
                            let again = db.run(move |c| repo::message::post(c, &k, &new, 4000)).await.unwrap();
                            assert!(!again.created);
                            assert_eq!(again.message.id, posted.message.id);
                        }
                        ids.push((room, posted.message.id));
                    }
                    ids
                })
            }).collect();
            let mut per_task = Vec::new();
            for w in writers { per_task.push(w.await.unwrap()); }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            let mut seen = Vec::new();
            for r in readers { seen.push(r.await.unwrap()); }
            (per_task, seen)
        });
        eprintln!("{:?}: {} messages from {TASKS} tasks in {:?}", db.backend, TASKS * PER_TASK, started.elapsed());

        let all: Vec<MessageId> = per_task_ids.iter().flatten().map(|(_, id)| *id).collect();
        assert_eq!(all.len(), TASKS * PER_TASK);
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), all.len(), "no id twice");
        for ids in &per_task_ids {
            assert!(ids.windows(2).all(|w| w[0].1 < w[1].1), "a task's messages keep its order");
        }
        let mut c = db.db.get().unwrap();
        let stored: usize = [room_a, room_b].iter().map(|r| read_all(&mut c, &k, *r).len()).sum();
        assert_eq!(stored, TASKS * PER_TASK, "nothing lost, nothing duplicated");
        for (room, seen) in [room_a, room_b].iter().zip(&seen_by_readers) {
            let expected = read_all(&mut c, &k, *room);
            assert_eq!(seen, &expected, "a follower catching up by id saw every message of room {room} exactly once");
        }
    }
}

pub fn read_all(
    c: &mut domain::db::DbConn,
    k: &domain::crypto::MessageKeys,
    room: RoomId,
) -> Vec<MessageId> {
    let mut out = Vec::new();
    let mut page = Page::After(0);
    loop {
        let p = repo::message::history(c, k, room, page, 500).unwrap();
        let Some(last) = p.messages.last().map(|m| m.id) else {
            break;
        };
        out.extend(p.messages.iter().map(|m| m.id));
        page = Page::After(last.0);
    }
    out
}

/// Polls "messages after the last id I saw" while writers run, like a reconnecting client.
pub async fn follow(
    db: domain::db::Db,
    k: domain::crypto::MessageKeys,
    room: RoomId,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<MessageId> {
    let mut seen = Vec::new();
    let mut last = 0;
    loop {
        let finished = done.load(std::sync::atomic::Ordering::SeqCst);
        let k2 = k.clone();
        let page = db
            .run(move |c| repo::message::history(c, &k2, room, Page::After(last), 500))
            .await
            .unwrap();
        if let Some(m) = page.messages.last() {
            last = m.id.0;
        }
        seen.extend(page.messages.iter().map(|m| m.id));
        if finished && page.messages.is_empty() {
            return seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}
