use crate::helpers::*;
use domain::{
    bus::{Bus, Event, Topic},
    db::Backend,
    ids::MessageId,
    model::RoomKind,
    repo,
};
use serde_json::json;
use std::time::{Duration, Instant};

/// Reads `n` message frames (nothing else but notices in between).
async fn messages(ws: &mut Ws, n: usize) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while out.len() < n {
        let f = ws.next().await;
        assert_eq!(f["type"], "message", "{f}");
        out.push(f);
    }
    out
}

#[tokio::test]
async fn two_gateway_processes_deliver_once_in_order_and_catch_up_with_since() {
    let _serial = REDIS_KILL.read().await;
    require_redis().await;
    let w = World::new(Backend::Postgres);
    w.room("lobby", RoomKind::Public).await;
    let ann = w.person("ann").await;
    let bob = w.person("bob").await;
    let cat = w.person("cat").await;
    let a = w.spawn_process();
    let b = w.spawn_process();
    wait_ready(a.port).await;
    wait_ready(b.port).await;

    let mut ann_ws = Ws::connect(a.port, &ann).await;
    let mut bob_ws = Ws::connect(b.port, &bob).await;
    ann_ws.join("lobby", None).await;
    bob_ws.join("lobby", None).await;

    // 15 + 2 sends stay inside the default per-socket burst (20) of these processes.
    let mut acked = Vec::new();
    for i in 0..15 {
        let id = ann_ws
            .post("lobby", &format!("m{i}"), &format!("c{i}"))
            .await;
        // Ack first, then the sender's own copy.
        let echo = ann_ws.next().await;
        assert_eq!(echo["type"], "message");
        assert_eq!(echo["id"], id);
        acked.push(id);
    }
    let got = messages(&mut bob_ws, 15).await;
    let got_ids: Vec<i64> = got.iter().map(|m| m["id"].as_i64().expect("id")).collect();
    assert_eq!(got_ids, acked, "exactly once, in order, across gateways");
    assert_eq!(got[3]["body"], "m3");
    assert_eq!(got[3]["author"]["username"], "ann");

    // A re-send is acked with the same id and not delivered again.
    assert_eq!(ann_ws.post("lobby", "m0", "c0").await, acked[0]);
    let id = ann_ws.post("lobby", "after", "c-after").await;
    assert_eq!(ann_ws.next().await["id"], id);
    let next = messages(&mut bob_ws, 1).await;
    assert_eq!(next[0]["id"], id, "the duplicate was not fanned out");
    acked.push(id);

    // A third client, joining later, asks for what it missed after message 10.
    let mut cat_ws = Ws::connect(b.port, &cat).await;
    let joined = cat_ws.join("lobby", Some(MessageId(acked[9]))).await;
    assert_eq!(ids(&joined["messages"]), acked[10..].to_vec());
    assert_eq!(joined["more"], false);
}

#[tokio::test]
async fn killing_the_pubsub_connections_loses_and_duplicates_nothing() {
    let _serial = REDIS_KILL.write().await;
    let mut redis = require_redis().await;
    let w = World::new(Backend::Sqlite);
    let lobby = w.room("lobby", RoomKind::Public).await;
    let ann = w.person("ann").await;
    let bob = w.person("bob").await;
    let a = w.spawn_process();
    let b = w.spawn_process();
    wait_ready(a.port).await;
    wait_ready(b.port).await;
    let mut ann_ws = Ws::connect(a.port, &ann).await;
    let mut bob_ws = Ws::connect(b.port, &bob).await;
    ann_ws.join("lobby", None).await;
    bob_ws.join("lobby", None).await;

    let mut before = Vec::new();
    for i in 0..5 {
        let id = ann_ws
            .post("lobby", &format!("before {i}"), &format!("b{i}"))
            .await;
        ann_ws.next().await;
        before.push(id);
    }
    let seen: Vec<i64> = messages(&mut bob_ws, 5)
        .await
        .iter()
        .map(|m| m["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(seen, before);
    let last_seen = *seen.last().expect("five");

    let reconnects_a = metric(a.port, "confab_bus_reconnects_total").await;
    let reconnects_b = metric(b.port, "confab_bus_reconnects_total").await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut redis)
        .await
        .expect("CLIENT KILL");
    assert!(killed >= 2, "both gateways had a pub/sub connection");

    // Sent while the gateways may still be reconnecting: stored, acked.
    // Ann's own copies may arrive (re-synchronised) between her acks.
    let mut during = Vec::new();
    for i in 0..5 {
        ann_ws
            .send(json!({"type":"send","room":"lobby","body":format!("during {i}"),"client_id":format!("d{i}")}))
            .await;
        loop {
            let f = ann_ws.next().await;
            if f["type"] == "ack" {
                during.push(f["id"].as_i64().expect("id"));
                break;
            }
            assert_eq!(f["type"], "message", "{f}");
        }
    }
    // Both gateways come back by themselves.
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(a.port, "confab_bus_reconnects_total").await <= reconnects_a
        || metric(b.port, "confab_bus_reconnects_total").await <= reconnects_b
    {
        assert!(Instant::now() < deadline, "gateways did not reconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_ready(a.port).await;
    wait_ready(b.port).await;

    // Bob catches up with `join … since`: exactly the five, once. Whatever the gateway
    // already re-delivered on its own comes before and is never repeated.
    bob_ws
        .send(json!({"type":"join","room":"lobby","since":last_seen}))
        .await;
    let mut live = Vec::new();
    let joined = loop {
        let f = bob_ws.next().await;
        match f["type"].as_str() {
            Some("message") => live.push(f["id"].as_i64().expect("id")),
            Some("joined") => break f,
            _ => panic!("unexpected {f}"),
        }
    };
    assert_eq!(ids(&joined["messages"]), during, "nothing lost");
    let mut sorted = live.clone();
    sorted.dedup();
    assert_eq!(sorted, live, "no duplicates among live frames");
    assert!(live.iter().all(|id| during.contains(id)));

    // And afterwards the conversation simply goes on, nothing replayed.
    ann_ws
        .send(json!({"type":"send","room":"lobby","body":"after","client_id":"after"}))
        .await;
    let id = loop {
        let f = ann_ws.next().await;
        if f["type"] == "ack" {
            break f["id"].as_i64().expect("id");
        }
    };
    let next = messages(&mut bob_ws, 1).await;
    assert_eq!(next[0]["id"], id);
    let count = w
        .db()
        .run(move |c| repo::message::count_after(c, lobby.id, None, 100))
        .await
        .expect("count");
    assert_eq!(count, 11, "no message stored twice");
}

#[tokio::test]
async fn revocation_and_deactivation_close_sockets_within_a_second() {
    let _serial = REDIS_KILL.read().await;
    let w = World::new(default_backend());
    let gw = w.gateway(fast_config()).await;
    // What http-app does: change the database, then tell every gateway on the bus.
    let other_process = w.redis_bus().await;
    let ann = w.person("ann").await;
    let bob = w.person("bob").await;
    let mut ann_phone = Ws::connect(gw.port, &ann).await;
    let mut ann_laptop = Ws::connect(gw.port, &ann).await;
    let mut bob_ws = Ws::connect(gw.port, &bob).await;

    // A new sign-in elsewhere is a notice.
    other_process
        .publish(
            Topic::User(ann.user.id),
            &Event::SignedIn {
                user_id: ann.user.id,
                session_id: ann.session_id,
                device: "Firefox".into(),
                ip: "10.0.0.1".into(),
                ts: 1,
            },
        )
        .await
        .expect("publish");
    let notice = ann_phone.next().await;
    assert_eq!(notice["type"], "notice");
    assert_eq!(notice["kind"], "signed_in");
    assert_eq!(ann_laptop.next().await["type"], "notice");

    let uid = ann.user.id;
    let revoked = w
        .db()
        .run(move |c| repo::session::revoke_all(c, uid))
        .await
        .expect("revoke");
    let started = Instant::now();
    other_process
        .publish(
            Topic::User(uid),
            &Event::SessionsRevoked {
                user_id: uid,
                session_ids: revoked,
                reason: "signed out everywhere".into(),
            },
        )
        .await
        .expect("publish");
    assert_eq!(ann_phone.closed(Duration::from_secs(1)).await, Some(4001));
    assert_eq!(ann_laptop.closed(Duration::from_secs(1)).await, Some(4001));
    assert!(started.elapsed() < Duration::from_secs(1));

    let started = Instant::now();
    other_process
        .publish(
            Topic::User(bob.user.id),
            &Event::UserDeactivated {
                user_id: bob.user.id,
            },
        )
        .await
        .expect("publish");
    assert_eq!(bob_ws.closed(Duration::from_secs(1)).await, Some(4001));
    assert!(started.elapsed() < Duration::from_secs(1));
    gw.stop().await;
}

#[tokio::test]
async fn presence_spans_gateways_and_outlives_no_dead_gateway() {
    let _serial = REDIS_KILL.read().await;
    let w = World::new(default_backend());
    let ttl = Duration::from_millis(1500);
    let config = ws_gateway::GatewayConfig {
        presence_ttl: ttl,
        ..fast_config()
    };
    let a = w.gateway(config.clone()).await;
    let b = w.gateway(config).await;
    let ann = w.person("ann").await;
    let bob = w.person("bob").await;
    let mut bob_ws = Ws::connect(b.port, &bob).await;
    async fn presence_of(ws: &mut Ws, user: &str) -> String {
        loop {
            let f = ws.next_any().await;
            if let Some(status) = presence_in(&f, user) {
                return status;
            }
        }
    }

    let ann_ws = Ws::connect(a.port, &ann).await;
    assert_eq!(presence_of(&mut bob_ws, "ann").await, "online");
    // A socket opened now on the other gateway learns who is online from `hello`.
    let (_late, hello) = Ws::connect_hello(b.port, &bob).await;
    let online: Vec<&str> = hello["online"]
        .as_array()
        .expect("online")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        online.contains(&"ann") && online.contains(&"bob"),
        "{online:?}"
    );
    drop(ann_ws);
    assert_eq!(presence_of(&mut bob_ws, "ann").await, "offline");

    // A gateway that dies leaves entries nobody refreshes; a surviving gateway's
    // heartbeat expires them and announces the user offline.
    let dead_bus = w.redis_bus().await;
    let dead = ws_gateway::presence::Presence::redis(&dead_bus, ttl);
    dead.attach(1, ann.user.id);
    dead.sync(ann.user.id, |_| async {}).await;
    let started = Instant::now();
    assert_eq!(presence_of(&mut bob_ws, "ann").await, "offline");
    assert!(
        started.elapsed() < ttl * 4,
        "expired within a few heartbeats"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn concurrent_senders_on_two_gateways_reach_everyone_complete_and_in_order() {
    let _serial = REDIS_KILL.read().await;
    let w = World::new(Backend::Postgres);
    w.room("lobby", RoomKind::Public).await;
    let a = w.gateway(fast_config()).await;
    let b = w.gateway(fast_config()).await;
    let people = [
        w.person("ann").await,
        w.person("cat").await,
        w.person("bob").await,
        w.person("dan").await,
    ];
    let mut sockets = Vec::new();
    for (i, p) in people.iter().enumerate() {
        let port = if i % 2 == 0 { a.port } else { b.port };
        let mut ws = Ws::connect(port, p).await;
        ws.join("lobby", None).await;
        sockets.push(ws);
    }
    let dan = sockets.pop().expect("dan");
    let bob = sockets.pop().expect("bob");
    let n = 60;
    // Ann (gateway A) and Cat (gateway B) send at the same time; their publications race.
    let senders = sockets.into_iter().enumerate().map(|(who, mut ws)| {
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..n {
                ws.send(json!({"type":"send","room":"lobby","body":format!("{who}:{i}"),"client_id":format!("{who}-{i}")}))
                    .await;
                loop {
                    let f = ws.next().await;
                    if f["type"] == "ack" {
                        acked.push(f["id"].as_i64().expect("id"));
                        break;
                    }
                }
            }
            (acked, ws)
        })
    });
    let readers = [bob, dan].into_iter().map(|mut ws| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            while got.len() < 2 * n {
                let f = ws.next().await;
                if f["type"] == "message" {
                    got.push(f["id"].as_i64().expect("id"));
                }
            }
            got
        })
    });
    let senders: Vec<_> = senders.collect();
    let readers: Vec<_> = readers.collect();
    let mut all = Vec::new();
    let mut _keep = Vec::new();
    for s in senders {
        let (acked, ws) = s.await.expect("sender");
        all.extend(acked);
        _keep.push(ws);
    }
    all.sort();
    for r in readers {
        let got = tokio::time::timeout(Duration::from_secs(30), r)
            .await
            .expect("reader finishes")
            .expect("reader");
        assert_eq!(
            got, all,
            "every message, once, in id order, on both gateways"
        );
    }
    a.stop().await;
    b.stop().await;
}
