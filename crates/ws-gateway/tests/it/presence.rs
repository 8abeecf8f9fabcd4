//! Away presence across sockets and gateways, over the real Redis: a user is online if
//! any of their sockets anywhere is active, away if all are away, offline if none is open.

use crate::helpers::*;
use domain::bus::{Bus, Event, Topic};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The status in the next `presence` frame about `user` (other frames are skipped).
async fn next_presence_of(ws: &mut Ws, user: &str) -> String {
    loop {
        let f = ws.next_any().await;
        if let Some(status) = presence_in(&f, user) {
            return status;
        }
    }
}

/// Waits until every frame the socket sent before has been handled: frames are handled in
/// order, and a `presence` frame's announcement is published before the next one is read.
async fn round_trip(ws: &mut Ws) {
    ws.send(json!({"type":"history","room":"no-such-room"}))
        .await;
    let reply = ws.next().await;
    assert_eq!(reply["code"], "not_found", "{reply}");
}

fn names(hello: &Value, list: &str) -> Vec<String> {
    hello[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list} in {hello}"))
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// What a socket opened now learns from `hello` about `user`.
async fn snapshot_of(port: u16, observer: &Person, user: &str) -> &'static str {
    let (_ws, hello) = Ws::connect_hello(port, observer).await;
    let online = names(&hello, "online").contains(&user.to_owned());
    let away = names(&hello, "away").contains(&user.to_owned());
    match (online, away) {
        (true, false) => "online",
        (false, true) => "away",
        (false, false) => "offline",
        (true, true) => panic!("{user} both online and away in {hello}"),
    }
}

async fn away(ws: &mut Ws, status: &str) {
    ws.send(json!({"type":"presence","status":status})).await;
    round_trip(ws).await;
}

/// Polls the shared store until the user has entries on exactly `n` gateways.
async fn wait_nodes(w: &World, user: domain::ids::UserId, n: usize) {
    let mut redis = require_redis().await;
    let key = format!("{}:presence:user:{user}", w.settings.redis_prefix);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got: usize = redis::cmd("ZCARD")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .expect("ZCARD");
        if got == n {
            return;
        }
        assert!(Instant::now() < deadline, "{key} never had {n} nodes");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn away_needs_every_socket_on_every_gateway_to_be_away() {
    let _serial = REDIS_KILL.read().await;
    let w = World::new(default_backend());
    let g1 = w.gateway(fast_config()).await;
    let g2 = w.gateway(fast_config()).await;
    let ann = w.person("ann").await;
    // Bob shares no room with Ann: presence goes to every socket (docs/protocol.md).
    let bob = w.person("bob").await;
    let mut bob_ws = Ws::connect(g2.port, &bob).await;

    let mut a1 = Ws::connect(g1.port, &ann).await;
    assert_eq!(next_presence_of(&mut bob_ws, "ann").await, "online");
    let mut a2 = Ws::connect(g2.port, &ann).await;

    // One socket away: Ann is still online, and nothing is announced.
    away(&mut a1, "away").await;
    assert_eq!(snapshot_of(g1.port, &bob, "ann").await, "online");
    assert_eq!(snapshot_of(g2.port, &bob, "ann").await, "online");
    // Saying it twice changes nothing either.
    away(&mut a1, "away").await;

    // Both away: `away`, and the very next frame about Ann says so.
    away(&mut a2, "away").await;
    assert_eq!(next_presence_of(&mut bob_ws, "ann").await, "away");
    assert_eq!(snapshot_of(g1.port, &bob, "ann").await, "away");
    assert_eq!(snapshot_of(g2.port, &bob, "ann").await, "away");

    // One back: online.
    away(&mut a1, "online").await;
    assert_eq!(next_presence_of(&mut bob_ws, "ann").await, "online");
    assert_eq!(snapshot_of(g2.port, &bob, "ann").await, "online");

    // A new socket is active: with the other two away, it brings Ann back online.
    away(&mut a1, "away").await;
    assert_eq!(next_presence_of(&mut bob_ws, "ann").await, "away");
    let a3 = Ws::connect(g2.port, &ann).await;
    assert_eq!(next_presence_of(&mut bob_ws, "ann").await, "online");
    // Closing the only active socket leaves Ann away.
    drop(a3);
    assert_eq!(next_presence_of(&mut bob_ws, "ann").await, "away");

    // Closing one away socket changes nothing; closing the last one: offline.
    away(&mut a1, "online").await;
    assert_eq!(next_presence_of(&mut bob_ws, "ann").await, "online");
    drop(a2);
    wait_nodes(&w, ann.user.id, 1).await;
    drop(a1);
    assert_eq!(next_presence_of(&mut bob_ws, "ann").await, "offline");
    assert_eq!(snapshot_of(g1.port, &bob, "ann").await, "offline");
    g1.stop().await;
    g2.stop().await;
}

#[tokio::test]
async fn a_bad_status_is_a_bad_request_and_the_socket_carries_on() {
    let _serial = REDIS_KILL.read().await;
    let w = World::new(default_backend());
    let g = w.gateway(fast_config()).await;
    let ann = w.person("ann").await;
    let bob = w.person("bob").await;
    let mut bob_ws = Ws::connect(g.port, &bob).await;
    let mut a = Ws::connect(g.port, &ann).await;
    assert_eq!(next_presence_of(&mut bob_ws, "ann").await, "online");
    for bad in [
        json!({"type":"presence","status":"busy"}),
        json!({"type":"presence","status":"offline"}),
        json!({"type":"presence","status":7}),
        json!({"type":"presence"}),
        json!({"type":"presence","status":"away","extra":1}),
    ] {
        a.send(bad.clone()).await;
        let e = a.next().await;
        assert_eq!(e["type"], "error", "{bad}: {e}");
        assert_eq!(e["code"], "bad_request", "{bad}: {e}");
    }
    // Still open, still heard, and nothing was announced meanwhile.
    away(&mut a, "away").await;
    assert_eq!(next_presence_of(&mut bob_ws, "ann").await, "away");
    w.room("lobby", domain::model::RoomKind::Public).await;
    let joined = a.join("lobby", None).await;
    assert_eq!(joined["room"], "lobby");
    g.stop().await;
}

#[tokio::test]
async fn a_dead_gateways_active_socket_expires_into_away() {
    let _serial = REDIS_KILL.read().await;
    let w = World::new(default_backend());
    let ttl = Duration::from_millis(1500);
    let config = ws_gateway::GatewayConfig {
        presence_ttl: ttl,
        ..fast_config()
    };
    let g = w.gateway(config).await;
    let ann = w.person("ann").await;
    let bob = w.person("bob").await;
    let mut bob_ws = Ws::connect(g.port, &bob).await;
    let mut a = Ws::connect(g.port, &ann).await;
    assert_eq!(next_presence_of(&mut bob_ws, "ann").await, "online");
    away(&mut a, "away").await;
    assert_eq!(next_presence_of(&mut bob_ws, "ann").await, "away");

    // Another gateway has an active socket of Ann's, then dies without a word.
    let dead_bus = w.redis_bus().await;
    let dead = ws_gateway::presence::Presence::redis(&dead_bus, ttl);
    dead.attach(1, ann.user.id);
    let (id, name) = (ann.user.id, ann.user.username.clone());
    dead.sync(id, |status| async move {
        let event = Event::Presence {
            user_id: id,
            username: name,
            status,
        };
        dead_bus
            .publish(Topic::Presence, &event)
            .await
            .expect("publish");
    })
    .await;
    assert_eq!(next_presence_of(&mut bob_ws, "ann").await, "online");
    let started = Instant::now();
    assert_eq!(next_presence_of(&mut bob_ws, "ann").await, "away");
    assert!(
        started.elapsed() < ttl * 4,
        "expired within a few heartbeats"
    );
    assert_eq!(snapshot_of(g.port, &bob, "ann").await, "away");
    drop(a);
    assert_eq!(next_presence_of(&mut bob_ws, "ann").await, "offline");
    g.stop().await;
}

#[tokio::test]
async fn a_crowd_arriving_together_is_announced_in_a_few_frames_carrying_everyone() {
    let _serial = REDIS_KILL.read().await;
    let w = World::new(default_backend());
    let g = w
        .gateway(ws_gateway::GatewayConfig {
            max_sockets_per_address: 1000,
            ..fast_config()
        })
        .await;
    let watcher = w.person("watcher").await;
    let mut crowd = Vec::new();
    for i in 0..100 {
        crowd.push(w.person(&format!("crowd{i}")).await);
    }
    let mut watch_ws = Ws::connect(g.port, &watcher).await;
    // Everyone at once, as after a gateway restart.
    let sockets =
        futures_util::future::join_all(crowd.iter().map(|p| Ws::connect(g.port, p))).await;

    // Every arrival is announced, in far fewer frames than arrivals.
    let mut pending: std::collections::HashSet<String> =
        crowd.iter().map(|p| p.user.username.clone()).collect();
    let mut frames = 0;
    while !pending.is_empty() {
        let f = watch_ws.next_any().await;
        if f["type"] != "presence" {
            continue;
        }
        frames += 1;
        pending.retain(|name| presence_in(&f, name).is_none_or(|s| s != "online"));
    }
    assert!(frames < 50, "{frames} presence frames for 100 arrivals");

    // A socket opened now has them all in `hello`, itself included.
    let (_late, hello) = Ws::connect_hello(g.port, &watcher).await;
    let online = names(&hello, "online");
    assert!(online.contains(&"watcher".to_owned()), "{online:?}");
    for p in &crowd {
        assert!(
            online.contains(&p.user.username),
            "{} in {online:?}",
            p.user.username
        );
    }

    // And everyone leaving together: every departure, few frames.
    drop(sockets);
    let mut pending: std::collections::HashSet<String> =
        crowd.iter().map(|p| p.user.username.clone()).collect();
    let mut frames = 0;
    while !pending.is_empty() {
        let f = watch_ws.next_any().await;
        if f["type"] != "presence" {
            continue;
        }
        frames += 1;
        pending.retain(|name| presence_in(&f, name).is_none_or(|s| s != "offline"));
    }
    assert!(frames < 50, "{frames} presence frames for 100 departures");
    g.stop().await;
}
