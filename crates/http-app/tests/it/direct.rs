//! Private chats, blocking, the user picker and the sidebar's read state, over real HTTP.

use crate::{both_backends, helpers::*};
use domain::{
    bus::{Event, MembershipChange, Topic},
    db::Backend,
    ids::MessageId,
    model::{MessageKind, User},
    repo::{self, message::NewMessage},
};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

struct Person {
    user: User,
    client: Client,
    token: String,
}

async fn person(app: &TestApp, name: &str) -> Person {
    let user = app.create_user(name, &name.to_uppercase()).await;
    let client = client();
    sign_in(&client, app, name).await;
    let token = get_csrf(&client, app, "/rooms").await;
    Person {
        user,
        client,
        token,
    }
}

async fn post_json(p: &Person, app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    let res = p
        .client
        .post(app.url(path))
        .header("X-CSRF-Token", &p.token)
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = res.status();
    (status, res.json().await.expect("JSON"))
}

async fn get_json(p: &Person, app: &TestApp, path: &str) -> (StatusCode, Value) {
    let res = p.client.get(app.url(path)).send().await.expect("GET");
    let status = res.status();
    (status, res.json().await.expect("JSON"))
}

async fn direct_chats_are_found_again_and_announced_to_members(backend: Backend) {
    let app = spawn(backend).await;
    let alice = person(&app, "alice").await;
    let bob = person(&app, "bob").await;
    let carol = person(&app, "carol").await;
    app.bus
        .subscribe(Topic::User(bob.user.id))
        .await
        .expect("subscribe");
    let mut events = app.bus.events();

    let (status, first) =
        post_json(&alice, &app, "/api/direct", json!({"usernames":["bob"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let slug = first["room"]["slug"].as_str().expect("slug").to_owned();
    assert!(slug.starts_with("dm-"), "{slug}");
    assert_eq!(first["room"]["kind"], "direct");
    assert_eq!(first["room"]["name"], "ALICE, BOB");
    assert_eq!(first["created"], true);
    // Bob's sockets hear of it on his account topic.
    let env = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event")
        .expect("bus");
    assert_eq!(env.topic, Topic::User(bob.user.id));
    match &env.event {
        Event::Membership {
            room,
            user_id,
            change,
            ..
        } => {
            assert_eq!(room, &slug);
            assert_eq!(*user_id, bob.user.id);
            assert_eq!(*change, MembershipChange::Joined);
        }
        other => panic!("not a membership event: {other:?}"),
    }

    // The same people again, from either side and in any case: the same chat.
    let (status, again) = post_json(
        &alice,
        &app,
        "/api/direct",
        json!({"usernames":["BOB", "alice"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["room"]["slug"], slug.as_str());
    assert_eq!(again["created"], false);
    let (status, from_bob) =
        post_json(&bob, &app, "/api/direct", json!({"usernames":["alice"]})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(from_bob["room"]["slug"], slug.as_str());
    // A different set is a different chat.
    let (status, group) = post_json(
        &alice,
        &app,
        "/api/direct",
        json!({"usernames":["bob","carol"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(group["room"]["slug"], slug.as_str());
    assert_eq!(group["room"]["members"].as_array().map(Vec::len), Some(3));

    // It is in the members' sidebars, with who is in it; not in Carol's.
    let (_, rooms) = get_json(&bob, &app, "/api/rooms").await;
    let dm = rooms["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .find(|r| r["slug"] == slug.as_str())
        .expect("the chat is listed")
        .clone();
    assert_eq!(dm["kind"], "direct");
    assert_eq!(dm["role"], "member", "no one owns a private chat");
    let names: Vec<&str> = dm["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["username"].as_str())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    let (_, rooms) = get_json(&carol, &app, "/api/rooms").await;
    assert!(!rooms.to_string().contains(&slug));

    // Bad requests are JSON 400s.
    for body in [
        json!({"usernames": []}),
        json!({"usernames": ["nobody-here"]}),
        json!({"usernames": ["alice"]}),
        json!({"usernames": ["a1","a2","a3","a4","a5","a6","a7","a8"]}),
        json!({"names": ["bob"]}),
    ] {
        let (status, err) = post_json(&alice, &app, "/api/direct", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert_eq!(err["error"], "bad_request");
    }
    // No CSRF header: refused; not signed in: 401.
    let res = alice
        .client
        .post(app.url("/api/direct"))
        .json(&json!({"usernames":["bob"]}))
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = bare_client()
        .get(app.url("/api/rooms"))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

async fn blocking_stops_new_private_chats(backend: Backend) {
    let app = spawn(backend).await;
    let alice = person(&app, "alice").await;
    let bob = person(&app, "bob").await;
    let (status, v) = post_json(&bob, &app, "/api/blocks", json!({"username":"alice"})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["blocked"], true);
    let (status, _) = post_json(&bob, &app, "/api/blocks", json!({"username":"alice"})).await;
    assert_eq!(status, StatusCode::OK, "idempotent");
    let (_, list) = get_json(&bob, &app, "/api/blocks").await;
    assert_eq!(list["users"][0]["username"], "alice");

    let (status, err) = post_json(&alice, &app, "/api/direct", json!({"usernames":["bob"]})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(err["error"], "forbidden");
    // The blocker may still write to the person they blocked.
    let (status, _) = post_json(&bob, &app, "/api/direct", json!({"usernames":["alice"]})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = post_json(&bob, &app, "/api/blocks", json!({"username":"bob"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "not yourself");
    let (status, _) = post_json(&bob, &app, "/api/blocks", json!({"username":"nobody"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let res = bob
        .client
        .delete(app.url("/api/blocks/alice"))
        .header("X-CSRF-Token", &bob.token)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(res.status(), StatusCode::OK);
    let (status, _) = post_json(&alice, &app, "/api/direct", json!({"usernames":["bob"]})).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the existing chat, now reachable again"
    );
}

async fn the_user_picker_pages_by_username(backend: Backend) {
    let app = spawn(backend).await;
    let alice = person(&app, "alice").await;
    for i in 0..25 {
        app.create_user(&format!("u{i:02}"), "").await;
    }
    let gone = app.create_user("u-gone", "").await;
    app.test_db
        .db
        .run(move |c| repo::user::set_active(c, gone.id, false))
        .await
        .expect("deactivate");
    let (status, page) = get_json(&alice, &app, "/api/users?q=U").await;
    assert_eq!(status, StatusCode::OK);
    let users = page["users"].as_array().expect("users");
    assert_eq!(users.len(), 20);
    assert_eq!(users[0]["username"], "u00");
    assert_eq!(
        users[0].as_object().map(|o| o.len()),
        Some(2),
        "minimal fields"
    );
    let next = page["next"].as_str().expect("next");
    let (_, rest) = get_json(&alice, &app, &format!("/api/users?q=u&after={next}")).await;
    let rest: Vec<&str> = rest["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert_eq!(
        rest,
        ["u20", "u21", "u22", "u23", "u24"],
        "inactive users are not offered"
    );
    let (_, none) = get_json(&alice, &app, "/api/users?q=zz").await;
    assert_eq!(none["users"], json!([]));
    assert_eq!(none["next"], Value::Null);
}

async fn rooms_carry_unread_and_mention_counts(backend: Backend) {
    let app = spawn(backend).await;
    let alice = person(&app, "alice").await;
    let bob = person(&app, "bob").await;
    let (aid, bid) = (alice.user.id, bob.user.id);
    let keys = app.app_state.message_keys.clone();
    let ids: Vec<MessageId> = app
        .test_db
        .db
        .run(move |c| {
            let general = repo::room::find_by_slug(c, "general")?.expect("general");
            let mut ids = Vec::new();
            for (i, (author, body)) in [
                (bid, "hello all"),
                (bid, "@alice, look"),
                (aid, "mine do not count, @bob"),
                (bid, "mail alice@example.com is not a mention"),
                (bid, "@ALICE again, and @nobody"),
            ]
            .into_iter()
            .enumerate()
            {
                let posted = repo::message::post(
                    c,
                    &keys,
                    &NewMessage {
                        room_id: general.id,
                        author_id: Some(author),
                        kind: MessageKind::Text,
                        body: body.into(),
                        client_id: Some(format!("c{i}")),
                    },
                    4000,
                )?;
                ids.push(posted.message.id);
            }
            // Posting again (same client id) records nothing twice.
            repo::message::post(
                c,
                &keys,
                &NewMessage {
                    room_id: general.id,
                    author_id: Some(bid),
                    kind: MessageKind::Text,
                    body: "@alice, look".into(),
                    client_id: Some("c1".into()),
                },
                4000,
            )?;
            Ok(ids)
        })
        .await
        .expect("messages");
    let general = |v: &Value| {
        v["rooms"]
            .as_array()
            .expect("rooms")
            .iter()
            .find(|r| r["slug"] == "general")
            .expect("general")
            .clone()
    };
    let (_, rooms) = get_json(&alice, &app, "/api/rooms").await;
    let g = general(&rooms);
    assert_eq!(
        (g["unread"].as_i64(), g["mentions"].as_i64()),
        (Some(4), Some(2)),
        "{g}"
    );
    assert_eq!(g["latest"], ids[4].0);
    assert_eq!(g["last_read"], Value::Null);
    assert_eq!(rooms["count_cap"], 100);
    let (_, rooms) = get_json(&bob, &app, "/api/rooms").await;
    let g = general(&rooms);
    assert_eq!(
        (g["unread"].as_i64(), g["mentions"].as_i64()),
        (Some(1), Some(1))
    );

    // Reading up to the second message leaves three unread, one of them a mention.
    let (upto, general_id) = (ids[1], {
        app.test_db
            .db
            .run(|c| repo::room::find_by_slug(c, "general"))
            .await
            .expect("db")
            .expect("general")
            .id
    });
    app.test_db
        .db
        .run(move |c| repo::room::mark_read(c, general_id, aid, upto))
        .await
        .expect("mark read");
    let (_, rooms) = get_json(&alice, &app, "/api/rooms").await;
    let g = general(&rooms);
    assert_eq!(
        (g["unread"].as_i64(), g["mentions"].as_i64()),
        (Some(2), Some(1)),
        "{g}"
    );
    assert_eq!(g["last_read"], upto.0);
    // A deleted message no longer counts.
    let (keys, gone) = (app.app_state.message_keys.clone(), ids[4]);
    app.test_db
        .db
        .run(move |c| repo::message::set_deleted(c, &keys, gone, true))
        .await
        .expect("delete");
    let (_, rooms) = get_json(&alice, &app, "/api/rooms").await;
    let g = general(&rooms);
    assert_eq!(
        (g["unread"].as_i64(), g["mentions"].as_i64()),
        (Some(1), Some(0))
    );
}

both_backends!(
    direct_chats_are_found_again_and_announced_to_members,
    blocking_stops_new_private_chats,
    the_user_picker_pages_by_username,
    rooms_carry_unread_and_mention_counts,
);
