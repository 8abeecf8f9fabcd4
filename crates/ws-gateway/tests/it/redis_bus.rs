//! The Redis bus on its own, against the real Redis.

use crate::helpers::*;
use domain::{
    bus::{Bus, Event, Topic, WireMessage},
    ids::{MessageId, RoomId},
};
use futures_util::StreamExt;
use std::time::{Duration, Instant};

async fn numsub(redis: &mut redis::aio::MultiplexedConnection, channel: &str) -> i64 {
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(redis)
        .await
        .expect("PUBSUB NUMSUB");
    n
}

async fn wait_numsub(redis: &mut redis::aio::MultiplexedConnection, channel: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while numsub(redis, channel).await != want {
        assert!(
            Instant::now() < deadline,
            "{channel} never had {want} subscribers"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn message(body: &str) -> Event {
    Event::Message {
        prev: None,
        room_id: RoomId(1),
        message: WireMessage {
            id: MessageId(1),
            room: "lobby".into(),
            author: None,
            kind: "text".into(),
            body: body.into(),
            ts: 0,
            edited_ts: None,
            deleted: false,
            client_id: None,
        },
    }
}

#[tokio::test]
async fn subscribes_only_counted_topics_and_redis_never_sees_plaintext() {
    let _serial = REDIS_KILL.read().await;
    let mut redis = require_redis().await;
    let w = World::new(default_backend());
    let gateway_bus = w.redis_bus().await;
    let other = w.redis_bus().await;
    let topic = Topic::Room(RoomId(1));
    let channel = topic.channel(&w.settings.redis_prefix);
    assert_eq!(numsub(&mut redis, &channel).await, 0);

    gateway_bus.subscribe(topic).await.expect("subscribe");
    gateway_bus.subscribe(topic).await.expect("subscribe");
    // Confirmed by Redis when `subscribe` returns: one connection, however many listeners.
    assert_eq!(numsub(&mut redis, &channel).await, 1);

    // What Redis carries is sealed.
    let client = redis::Client::open(redis_url()).expect("url");
    let mut spy = client.get_async_pubsub().await.expect("pubsub");
    spy.subscribe(&channel).await.expect("spy");
    let mut events = gateway_bus.events();
    other
        .publish(topic, &message("top secret words"))
        .await
        .expect("publish");
    let raw = tokio::time::timeout(Duration::from_secs(5), spy.on_message().next())
        .await
        .expect("spy got it")
        .expect("message");
    let bytes = raw.get_payload_bytes();
    assert!(
        !bytes.windows(6).any(|w| w == b"secret"),
        "no plaintext in Redis"
    );
    let got = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("delivered")
        .expect("event");
    assert_eq!(got.topic, topic);
    assert_eq!(got.event, message("top secret words"));

    gateway_bus.unsubscribe(topic).await.expect("unsubscribe");
    assert_eq!(
        numsub(&mut redis, &channel).await,
        2,
        "still one listener (and the spy)"
    );
    gateway_bus.unsubscribe(topic).await.expect("unsubscribe");
    wait_numsub(&mut redis, &channel, 1).await;
}

#[tokio::test]
async fn the_bus_reconnects_and_resubscribes_by_itself() {
    let _serial = REDIS_KILL.write().await;
    let mut redis = require_redis().await;
    let w = World::new(default_backend());
    let bus = w.redis_bus().await;
    let other = w.redis_bus().await;
    let topic = Topic::Room(RoomId(7));
    let channel = topic.channel(&w.settings.redis_prefix);
    bus.subscribe(topic).await.expect("subscribe");
    let mut resyncs = bus.resyncs().expect("the Redis bus reports resyncs");
    let before = bus.reconnects();

    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut redis)
        .await
        .expect("CLIENT KILL");
    tokio::time::timeout(Duration::from_secs(10), resyncs.changed())
        .await
        .expect("reconnected within 10 s")
        .expect("bus alive");
    assert!(bus.reconnects() > before);
    wait_numsub(&mut redis, &channel, 1).await;
    bus.ping().await.expect("ready again");

    let mut events = bus.events();
    other
        .publish(topic, &message("after"))
        .await
        .expect("publish");
    let got = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("delivered after reconnect")
        .expect("event");
    assert_eq!(got.event, message("after"));
}

#[tokio::test]
async fn credentials_in_the_url_are_used() {
    let _serial = REDIS_KILL.read().await;
    let mut redis = require_redis().await;
    let w = World::new(default_backend());
    // A throw-away ACL user that may only touch this test's prefix.
    let user = domain::testing::unique_name("confab_acl");
    let password = domain::testing::unique_name("pw");
    let prefix = &w.settings.redis_prefix;
    let () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("on")
        .arg(format!(">{password}"))
        .arg(format!("~{prefix}:*"))
        .arg(format!("&{prefix}:*"))
        .arg("+@all")
        .query_async(&mut redis)
        .await
        .expect("ACL SETUSER");
    let host = redis_url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let keys = w.settings.message_keys().expect("keys");
    let good = format!("redis://{user}:{password}@{host}");
    let bus = domain::bus::redis::RedisBus::connect(
        &good.into(),
        prefix,
        keys.clone(),
        Duration::from_secs(5),
    )
    .await;
    let wrong = format!("redis://{user}:not-the-password@{host}");
    let refused = domain::bus::redis::RedisBus::connect(
        &wrong.into(),
        prefix,
        keys,
        Duration::from_millis(500),
    )
    .await;
    let topic = Topic::Room(RoomId(3));
    let subscribed = match &bus {
        Ok(bus) => bus.subscribe(topic).await.is_ok() && bus.ping().await.is_ok(),
        Err(_) => false,
    };
    let () = redis::cmd("ACL")
        .arg("DELUSER")
        .arg(&user)
        .query_async(&mut redis)
        .await
        .map(|_: i64| ())
        .expect("ACL DELUSER");
    bus.expect("the right password connects");
    assert!(subscribed, "and subscribes and answers");
    assert!(refused.is_err(), "a wrong password does not");
}

/// PINGs the Redis server has answered, all clients together.
async fn pings_served(redis: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await
        .expect("INFO commandstats");
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_ping:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().expect("a count"))
}

async fn command_client_id(bus: &domain::bus::redis::RedisBus) -> i64 {
    redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut bus.commands().clone())
        .await
        .expect("CLIENT ID")
}

#[tokio::test]
async fn commands_share_one_connection_without_a_ping_each_and_replace_it_when_it_dies() {
    let _serial = REDIS_KILL.read().await;
    let mut redis = require_redis().await;
    let w = World::new(default_backend());
    let bus = w.redis_bus().await;
    let topic = Topic::Room(RoomId(1));
    let first = command_client_id(&bus).await;
    let pings = pings_served(&mut redis).await;
    const SENT: u64 = 50;
    for i in 0..SENT {
        bus.publish(topic, &message(&format!("m{i}")))
            .await
            .expect("publish");
    }
    // A pool checkout per publish would have PINGed Redis once each (other tests running
    // meanwhile add a few at most).
    let more = pings_served(&mut redis).await - pings;
    assert!(more < SENT, "{more} PINGs for {SENT} publishes");
    assert_eq!(command_client_id(&bus).await, first, "one connection");

    // Killed under it: the next command may fail; the one after runs on a new connection.
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(first)
        .query_async(&mut redis)
        .await
        .expect("CLIENT KILL");
    assert_eq!(killed, 1);
    let _ = bus
        .publish(topic, &message("lost with the connection"))
        .await;
    bus.publish(topic, &message("after"))
        .await
        .expect("a publish on a fresh connection");
    assert_ne!(command_client_id(&bus).await, first);
}
