//! Private chats over real sockets: only members read or hear them, blocks stop posting,
//! edit and delete frames, and read state kept in step across one user's sockets.

use crate::helpers::*;
use domain::{
    db::Backend,
    model::{RoomKind, RoomRole},
    repo,
};
use serde_json::json;

async fn direct(w: &World, from: &Person, to: &[&Person]) -> String {
    let creator = from.user.clone();
    let names: Vec<String> = to.iter().map(|p| p.user.username.clone()).collect();
    w.db()
        .run(move |c| repo::direct::open(c, &creator, &names))
        .await
        .expect("private chat")
        .room
        .slug
}

async fn set_block(w: &World, blocker: &Person, blocked: &Person, on: bool) {
    let (a, b) = (blocker.user.id, blocked.user.id);
    w.db()
        .run(move |c| {
            if on {
                repo::block::block(c, a, b).map(drop)
            } else {
                repo::block::unblock(c, a, b).map(drop)
            }
        })
        .await
        .expect("block");
}

async fn expect_error(ws: &mut Ws, code: &str) -> serde_json::Value {
    let e = ws.next().await;
    assert_eq!(e["type"], "error", "{e}");
    assert_eq!(e["code"], code, "{e}");
    e
}

async fn private_chats_reach_members_only_and_blocks_stop_posting(backend: Backend) {
    let _serial = REDIS_KILL.read().await;
    let w = World::new(backend);
    w.room("lobby", RoomKind::Public).await;
    let alice = w.person("alice").await;
    let bob = w.person("bob").await;
    let carol = w.person("carol").await;
    let dm = direct(&w, &alice, &[&bob]).await;
    let g = w.gateway(fast_config()).await;
    let mut a = Ws::connect(g.port, &alice).await;
    let mut b = Ws::connect(g.port, &bob).await;
    let mut c = Ws::connect(g.port, &carol).await;
    a.join(&dm, None).await;
    b.join(&dm, None).await;

    // Carol can neither read, write nor watch it.
    c.send(json!({"type":"join","room":dm})).await;
    expect_error(&mut c, "forbidden").await;
    c.send(json!({"type":"history","room":dm})).await;
    expect_error(&mut c, "forbidden").await;
    c.send(json!({"type":"send","room":dm,"body":"let me in","client_id":"c1"}))
        .await;
    assert_eq!(expect_error(&mut c, "forbidden").await["ref"], "c1");
    c.send(json!({"type":"typing","room":dm})).await;
    expect_error(&mut c, "forbidden").await;

    a.send(json!({"type":"typing","room":dm})).await;
    let t = b.next().await;
    assert_eq!(
        (t["type"].as_str(), t["room"].as_str()),
        (Some("typing"), Some(dm.as_str()))
    );
    let first = a.post(&dm, "hi bob", "a1").await;
    assert_eq!(a.next().await["id"], first);
    let got = b.next().await;
    assert_eq!(
        (got["id"].as_i64(), got["body"].as_str()),
        (Some(first), Some("hi bob"))
    );
    // Nothing of it reached Carol: her next frame answers her own next request.
    c.join("lobby", None).await;

    // Bob blocks Alice: she can no longer post or edit there; Bob still can.
    set_block(&w, &bob, &alice, true).await;
    a.send(json!({"type":"send","room":dm,"body":"hello?","client_id":"a2"}))
        .await;
    assert_eq!(expect_error(&mut a, "forbidden").await["ref"], "a2");
    a.send(json!({"type":"edit","room":dm,"id":first,"body":"edited"}))
        .await;
    expect_error(&mut a, "forbidden").await;
    let reply = b.post(&dm, "go away", "b1").await;
    assert_eq!(b.next().await["id"], reply);
    assert_eq!(a.next().await["id"], reply);
    // Public rooms are not affected by blocks.
    a.join("lobby", None).await;
    let lobby_msg = a.post("lobby", "still here", "a3").await;
    assert_eq!(a.next().await["id"], lobby_msg);
    assert_eq!(c.next().await["id"], lobby_msg);

    // Unblocked: edits and deletes, each reaching everyone following the room.
    set_block(&w, &bob, &alice, false).await;
    a.send(json!({"type":"edit","room":dm,"id":first,"body":"hi bob (edited)"}))
        .await;
    for ws in [&mut a, &mut b] {
        let e = ws.next().await;
        assert_eq!(e["type"], "edited", "{e}");
        assert_eq!(e["room"], dm.as_str());
        assert_eq!(e["message"]["id"], first);
        assert_eq!(e["message"]["body"], "hi bob (edited)");
        assert!(e["message"]["edited_ts"].as_i64().is_some());
    }
    b.send(json!({"type":"edit","room":dm,"id":first,"body":"not mine"}))
        .await;
    expect_error(&mut b, "forbidden").await;
    b.send(json!({"type":"delete","room":dm,"id":first})).await;
    expect_error(&mut b, "forbidden").await;
    b.send(json!({"type":"delete","room":dm,"id":999_999}))
        .await;
    expect_error(&mut b, "not_found").await;
    b.send(json!({"type":"delete","room":"lobby","id":first}))
        .await;
    expect_error(&mut b, "not_found").await;
    a.send(json!({"type":"delete","room":dm,"id":first})).await;
    for ws in [&mut a, &mut b] {
        let d = ws.next().await;
        assert_eq!(
            (d["type"].as_str(), d["id"].as_i64()),
            (Some("deleted"), Some(first))
        );
    }
    let joined = b.join(&dm, None).await;
    let gone = &joined["messages"][0];
    assert_eq!(
        (gone["deleted"].as_bool(), gone["body"].as_str()),
        (Some(true), Some(""))
    );

    // A moderator may delete anyone's message in their room.
    let lobby = w
        .db()
        .run(|c| repo::room::find_by_slug(c, "lobby"))
        .await
        .expect("db")
        .expect("lobby");
    let bid = bob.user.id;
    w.db()
        .run(move |c| repo::room::add_member(c, lobby.id, bid, RoomRole::Moderator))
        .await
        .expect("moderator");
    b.join("lobby", None).await;
    b.send(json!({"type":"delete","room":"lobby","id":lobby_msg}))
        .await;
    assert_eq!(b.next().await["type"], "deleted");
    assert_eq!(a.next().await["id"], lobby_msg);
    let d = c.next().await;
    assert_eq!(
        (d["type"].as_str(), d["id"].as_i64()),
        (Some("deleted"), Some(lobby_msg))
    );
    g.stop().await;
}

async fn read_state_follows_one_user_across_sockets(backend: Backend) {
    let _serial = REDIS_KILL.read().await;
    let w = World::new(backend);
    let lobby = w.room("lobby", RoomKind::Public).await;
    let alice = w.person("alice").await;
    let bob = w.person("bob").await;
    let g = w.gateway(fast_config()).await;
    let mut a1 = Ws::connect(g.port, &alice).await;
    let mut a2 = Ws::connect(g.port, &alice).await;
    let mut b = Ws::connect(g.port, &bob).await;
    for ws in [&mut a1, &mut a2, &mut b] {
        ws.join("lobby", None).await;
    }
    let mut ids = Vec::new();
    for (i, body) in ["one", "two for @alice", "three"].iter().enumerate() {
        let id = b.post("lobby", body, &format!("b{i}")).await;
        assert_eq!(b.next().await["id"], id);
        ids.push(id);
    }
    for ws in [&mut a1, &mut a2] {
        for id in &ids {
            assert_eq!(ws.next().await["id"], *id);
        }
    }
    let aid = alice.user.id;
    let counts = || async {
        w.db()
            .run(move |c| {
                let m = repo::room::membership(c, lobby.id, aid)?.expect("member");
                repo::mention::unread(c, lobby.id, aid, m.last_read, 100)
            })
            .await
            .expect("counts")
    };
    let before = counts().await;
    assert_eq!((before.unread, before.mentions), (3, 1));

    a1.send(json!({"type":"read","room":"lobby","id":ids[1]}))
        .await;
    for ws in [&mut a1, &mut a2] {
        let r = ws.next().await;
        assert_eq!(r["type"], "read", "{r}");
        assert_eq!(
            (r["room"].as_str(), r["id"].as_i64()),
            (Some("lobby"), Some(ids[1]))
        );
    }
    let after = counts().await;
    assert_eq!((after.unread, after.mentions), (1, 0));
    // A marker never moves back.
    a2.send(json!({"type":"read","room":"lobby","id":ids[0]}))
        .await;
    assert_eq!(a2.next().await["type"], "read");
    assert_eq!(counts().await, after);
    // Bob heard none of Alice's read markers: his next frame is his own ack.
    let id = b.post("lobby", "four", "b9").await;
    assert!(id > ids[2]);
    g.stop().await;
}

mod sqlite {
    use domain::db::Backend;

    #[tokio::test]
    async fn private_chats_reach_members_only_and_blocks_stop_posting() {
        super::private_chats_reach_members_only_and_blocks_stop_posting(Backend::Sqlite).await
    }

    #[tokio::test]
    async fn read_state_follows_one_user_across_sockets() {
        super::read_state_follows_one_user_across_sockets(Backend::Sqlite).await
    }
}

mod postgres {
    use domain::db::Backend;

    #[tokio::test]
    async fn private_chats_reach_members_only_and_blocks_stop_posting() {
        super::private_chats_reach_members_only_and_blocks_stop_posting(Backend::Postgres).await
    }

    #[tokio::test]
    async fn read_state_follows_one_user_across_sockets() {
        super::read_state_follows_one_user_across_sockets(Backend::Postgres).await
    }
}
