//! Read state across tabs and gateways: a `read` on one gateway reaches the user's sockets
//! on the others, and the unread and mention counts follow (edits included).

use crate::helpers::*;
use domain::{
    ids::{MessageId, RoomId, UserId},
    model::RoomKind,
    repo::{self, mention::Unread},
};

/// The counts the app shows for a room (`/api/rooms` and the page use exactly these
/// calls: the membership's read marker, then `mention::unread`).
async fn counts(w: &World, room: RoomId, user: UserId) -> (Option<MessageId>, Unread) {
    w.db()
        .run(move |c| {
            let m = repo::room::membership(c, room, user)?.expect("a member");
            let counts = repo::mention::unread(c, room, user, m.last_read, 100)?;
            Ok((m.last_read, counts))
        })
        .await
        .expect("counts")
}

/// Skips frames until one of `kind`.
async fn next_of(ws: &mut Ws, kind: &str) -> serde_json::Value {
    loop {
        let f = ws.next().await;
        if f["type"] == kind {
            return f;
        }
    }
}

#[tokio::test]
async fn a_read_on_one_gateway_reaches_the_other_tab_and_the_counts_follow() {
    let _serial = REDIS_KILL.read().await;
    let w = World::new(default_backend());
    let g1 = w.gateway(fast_config()).await;
    let g2 = w.gateway(fast_config()).await;
    let room = w.room("team", RoomKind::Public).await;
    let uma = w.person("uma").await;
    let pat = w.person("pat").await;
    let mut u1 = Ws::connect(g1.port, &uma).await;
    let mut u2 = Ws::connect(g2.port, &uma).await;
    let mut p = Ws::connect(g2.port, &pat).await;
    u1.join("team", None).await;
    u2.join("team", None).await;
    // Pat is a member but does not follow the room, so `post` sees only its acks.
    p.join("team", None).await;
    p.send(serde_json::json!({"type":"leave","room":"team"}))
        .await;
    next_of(&mut p, "left").await;

    let mut posted = Vec::new();
    for (i, body) in ["one", "two, @uma", "three"].iter().enumerate() {
        posted.push(p.post("team", body, &format!("c{i}")).await);
    }
    for ws in [&mut u1, &mut u2] {
        for &id in &posted {
            let m = next_of(ws, "message").await;
            assert_eq!(m["id"], id, "{m}");
        }
    }
    let (marker, c) = counts(&w, room.id, uma.user.id).await;
    assert_eq!(marker, None);
    assert_eq!((c.unread, c.mentions), (3, 1));

    // Read up to the last one on gateway 1: the tab on gateway 2 hears of it.
    let last = posted[2];
    u1.send(serde_json::json!({"type":"read","room":"team","id":last}))
        .await;
    for ws in [&mut u2, &mut u1] {
        let r = next_of(ws, "read").await;
        assert_eq!(r["room"], "team");
        assert_eq!(r["id"], last);
    }
    let (marker, c) = counts(&w, room.id, uma.user.id).await;
    assert_eq!(marker, Some(MessageId(last)));
    assert_eq!((c.unread, c.mentions), (0, 0));

    // The marker only moves forward: an older `read` changes nothing.
    u2.send(serde_json::json!({"type":"read","room":"team","id":posted[0]}))
        .await;
    for ws in [&mut u2, &mut u1] {
        next_of(ws, "read").await;
    }
    assert_eq!(
        counts(&w, room.id, uma.user.id).await.0,
        Some(MessageId(last))
    );

    // Gateway 2's tab rejoins from where it was: nothing missed, nothing unread.
    u2.send(serde_json::json!({"type":"leave","room":"team"}))
        .await;
    next_of(&mut u2, "left").await;
    let joined = u2.join("team", Some(MessageId(last))).await;
    assert_eq!(ids(&joined["messages"]), Vec::<i64>::new());
    assert_eq!(joined["more"], false);

    // One more message: one unread on both; a mention counts on its own.
    let four = p.post("team", "four", "c3").await;
    for ws in [&mut u1, &mut u2] {
        assert_eq!(next_of(ws, "message").await["id"], four);
    }
    let (_, c) = counts(&w, room.id, uma.user.id).await;
    assert_eq!((c.unread, c.mentions), (1, 0));
    // Mentions follow edits: added, then taken out again.
    for (body, mentions) in [("four, @uma", 1), ("four", 0)] {
        p.send(serde_json::json!({"type":"edit","room":"team","id":four,"body":body}))
            .await;
        for ws in [&mut u1, &mut u2] {
            let e = next_of(ws, "edited").await;
            assert_eq!(e["message"]["body"], body, "{e}");
        }
        let (_, c) = counts(&w, room.id, uma.user.id).await;
        assert_eq!(
            (c.unread, c.mentions),
            (1, mentions),
            "after editing to {body:?}"
        );
    }
    let five = p.post("team", "@uma look", "c4").await;
    for ws in [&mut u1, &mut u2] {
        assert_eq!(next_of(ws, "message").await["id"], five);
    }
    let (_, c) = counts(&w, room.id, uma.user.id).await;
    assert_eq!((c.unread, c.mentions), (2, 1));

    // Read on gateway 2 this time: gateway 1 hears of it, the counts are back to zero.
    u2.send(serde_json::json!({"type":"read","room":"team","id":five}))
        .await;
    assert_eq!(next_of(&mut u1, "read").await["id"], five);
    let (_, c) = counts(&w, room.id, uma.user.id).await;
    assert_eq!((c.unread, c.mentions), (0, 0));
    g1.stop().await;
    g2.stop().await;
}
