//! Rooms: create, list, join, settings — all through `domain::permissions`.

use crate::{both_backends, helpers::*};
use domain::{
    bus::{Event, MembershipChange, Topic},
    db::Backend,
    ids::RoomId,
    model::RoomRole,
};
use reqwest::{Client, StatusCode};
use std::time::Duration;

async fn post_form(
    c: &Client,
    app: &TestApp,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let token = get_csrf(c, app, "/rooms").await;
    let mut form = vec![("csrf_token", token.as_str())];
    form.extend_from_slice(fields);
    c.post(app.url(path))
        .form(&form)
        .send()
        .await
        .expect("POST")
}

async fn page(c: &Client, app: &TestApp, path: &str) -> (StatusCode, String) {
    let res = c.get(app.url(path)).send().await.expect("GET");
    (res.status(), res.text().await.expect("body"))
}

async fn rooms_can_be_created_listed_and_joined(backend: Backend) {
    let app = spawn(backend).await;
    app.create_user("alice", "").await;
    let bob = app.create_user("bob", "").await;
    let (a, b) = (client(), client());
    sign_in(&a, &app, "alice").await;
    sign_in(&b, &app, "bob").await;

    let res = post_form(
        &a,
        &app,
        "/rooms",
        &[
            ("slug", "design"),
            ("name", "Design"),
            ("topic", "Pixels"),
            ("kind", "public"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/#design");
    let res = post_form(
        &a,
        &app,
        "/rooms",
        &[("slug", "secret"), ("name", "Secret"), ("kind", "private")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, shell) = page(&a, &app, "/").await;
    assert!(shell.contains("data-room=\"design\"") && shell.contains("data-room=\"secret\""));
    assert!(
        shell.contains("/rooms/design/settings"),
        "owners get the settings link"
    );

    let res = post_form(
        &a,
        &app,
        "/rooms",
        &[("slug", "design"), ("kind", "public")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.expect("body").contains("already exists"));

    // Bob sees the public room, not the private one, and can join only the public one.
    let (_, list) = page(&b, &app, "/rooms").await;
    assert!(list.contains("#design") && list.contains("Pixels"));
    assert!(!list.contains("secret"), "private rooms are not listed");
    let design = app
        .test_db
        .db
        .run(|c| domain::repo::room::find_by_slug(c, "design"))
        .await
        .expect("query")
        .expect("room");
    app.bus
        .subscribe(Topic::Room(design.id))
        .await
        .expect("subscribe");
    let mut events = app.bus.events();
    let res = post_form(&b, &app, "/rooms/design/join", &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/#design");
    let env = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event")
        .expect("bus");
    assert_eq!(
        env.event,
        Event::Membership {
            room_id: design.id,
            room: "design".into(),
            user_id: bob.id,
            change: MembershipChange::Joined
        }
    );
    let (_, shell) = page(&b, &app, "/").await;
    assert!(shell.contains("data-room=\"design\""));
    assert!(
        !shell.contains("/rooms/design/settings"),
        "members are not owners"
    );

    let res = post_form(&b, &app, "/rooms/secret/join", &[]).await;
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "private rooms are not discoverable"
    );
    let (status, _) = page(&b, &app, "/rooms/secret/settings").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let res = post_form(&b, &app, "/rooms/nonexistent/join", &[]).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Signed out, nothing of this is reachable.
    let res = client().get(app.url("/rooms")).send().await.expect("GET");
    assert_eq!(location(&res), "/login");
}

async fn only_owners_change_room_settings(backend: Backend) {
    let app = spawn(backend).await;
    app.create_user("alice", "").await;
    app.create_user("bob", "").await;
    app.create_user("carol", "").await;
    let (a, b, c) = (client(), client(), client());
    for (cl, name) in [(&a, "alice"), (&b, "bob"), (&c, "carol")] {
        sign_in(cl, &app, name).await;
    }
    post_form(
        &a,
        &app,
        "/rooms",
        &[("slug", "design"), ("kind", "public")],
    )
    .await;
    post_form(&b, &app, "/rooms/design/join", &[]).await;
    let (status, _) = page(&b, &app, "/rooms/design/settings").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let res = post_form(&b, &app, "/rooms/design/settings", &[("name", "Hijacked")]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Not even the general room, which nobody owns.
    let (status, _) = page(&a, &app, "/rooms/general/settings").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, body) = page(&a, &app, "/rooms/design/settings").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("value=\"design\""));
    let res = post_form(
        &a,
        &app,
        "/rooms/design/settings",
        &[
            ("name", "Design team"),
            ("topic", "New topic"),
            ("archived", "1"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, body) = page(&a, &app, &location(&res)).await;
    assert!(
        body.contains("Saved.")
            && body.contains("value=\"Design team\"")
            && body.contains("checked")
    );
    let room = app
        .test_db
        .db
        .run(|c| domain::repo::room::find_by_slug(c, "design"))
        .await
        .expect("query")
        .expect("room");
    assert_eq!(
        (room.name.as_str(), room.topic.as_str(), room.archived),
        ("Design team", "New topic", true)
    );
    // An archived room takes no new members.
    let res = post_form(&c, &app, "/rooms/design/join", &[]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Invalid values are refused with a message, and nothing changes.
    let res = post_form(
        &a,
        &app,
        "/rooms/design/settings",
        &[("name", ""), ("topic", "x")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        res.text()
            .await
            .expect("body")
            .contains("Room names have 1–80 characters")
    );
}

/// A private room `secret` owned by alice, with bob as a plain member; carol is not in it.
async fn private_room_with_members(app: &TestApp) -> (Client, Client, Client, domain::model::Room) {
    app.create_user("alice", "Alice Owner").await;
    let bob = app.create_user("bob", "Bob Member").await;
    app.create_user("carol", "Carol Outsider").await;
    let (a, b, c) = (client(), client(), client());
    for (cl, name) in [(&a, "alice"), (&b, "bob"), (&c, "carol")] {
        sign_in(cl, app, name).await;
    }
    let res = post_form(
        &a,
        app,
        "/rooms",
        &[("slug", "secret"), ("kind", "private")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let room = app
        .test_db
        .db
        .run(move |c| {
            let room = domain::repo::room::find_by_slug(c, "secret")?.expect("room");
            domain::repo::room::add_member(c, room.id, bob.id, RoomRole::Member)?;
            Ok(room)
        })
        .await
        .expect("room");
    (a, b, c, room)
}

async fn role_of(app: &TestApp, room: RoomId, username: &'static str) -> Option<RoomRole> {
    app.test_db
        .db
        .run(move |c| {
            let u = domain::repo::user::find_by_username(c, username)?.expect("user");
            Ok(domain::repo::room::membership(c, room, u.id)?.map(|m| m.role))
        })
        .await
        .expect("membership")
}

async fn members_see_the_member_list_with_roles(backend: Backend) {
    let app = spawn(backend).await;
    let (a, b, c, _) = private_room_with_members(&app).await;
    let (status, body) = page(&b, &app, "/rooms/secret/members").await;
    assert_eq!(status, StatusCode::OK);
    for text in [
        "Alice Owner",
        "@alice",
        "Owner",
        "Bob Member",
        "@bob",
        "Member",
    ] {
        assert!(body.contains(text), "{text} missing from the member list");
    }
    assert!(!body.contains("Carol"));
    assert!(
        !body.contains("/members/"),
        "a plain member gets no role controls"
    );
    // The owner gets the controls, and the settings page links here.
    let (_, body) = page(&a, &app, "/rooms/secret/members").await;
    assert!(body.contains("/rooms/secret/members/") && body.contains("name=\"role\""));
    let (_, body) = page(&a, &app, "/rooms/secret/settings").await;
    assert!(body.contains("href=\"/rooms/secret/members\""));
    // A private room's members are as invisible as the room: 404, like an unknown room.
    let (status, _) = page(&c, &app, "/rooms/secret/members").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = page(&c, &app, "/rooms/no-such-room/members").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A public room's list is open to anyone signed in, and linked from the rooms list.
    let (status, body) = page(&c, &app, "/rooms/general/members").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Members"));
    let (_, body) = page(&c, &app, "/rooms").await;
    assert!(body.contains("href=\"/rooms/general/members\""));
    // Signed out: sign in first.
    let (status, _) = page(&client(), &app, "/rooms/general/members").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

async fn only_owners_change_member_roles(backend: Backend) {
    let app = spawn(backend).await;
    let (a, b, c, room) = private_room_with_members(&app).await;
    let alice = app
        .test_db
        .db
        .run(|c| domain::repo::user::find_by_username(c, "alice"))
        .await
        .expect("query")
        .expect("alice");
    let bob_id = app
        .test_db
        .db
        .run(|c| domain::repo::user::find_by_username(c, "bob"))
        .await
        .expect("query")
        .expect("bob")
        .id;
    let alice_path = format!("/rooms/secret/members/{}/role", alice.id);
    let bob_path = format!("/rooms/secret/members/{bob_id}/role");

    // A plain member may neither change roles nor remove anyone.
    let res = post_form(&b, &app, &bob_path, &[("role", "owner")]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = post_form(&b, &app, &alice_path, &[("role", "member")]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = post_form(
        &b,
        &app,
        &format!("/rooms/secret/members/{}/remove", alice.id),
        &[],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // An outsider does not even learn the room exists.
    let res = post_form(&c, &app, &bob_path, &[("role", "owner")]).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(role_of(&app, room.id, "bob").await, Some(RoomRole::Member));
    assert_eq!(role_of(&app, room.id, "alice").await, Some(RoomRole::Owner));
    // Without the CSRF token, nothing happens.
    let res = a
        .post(app.url(&bob_path))
        .form(&[("role", "moderator")])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    app.bus
        .subscribe(Topic::Room(room.id))
        .await
        .expect("subscribe");
    let mut events = app.bus.events();
    // The owner can, and the change is announced to the room.
    let res = post_form(&a, &app, &bob_path, &[("role", "moderator")]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/rooms/secret/members");
    assert_eq!(
        role_of(&app, room.id, "bob").await,
        Some(RoomRole::Moderator)
    );
    let env = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event")
        .expect("open");
    assert_eq!(
        env.event,
        Event::Membership {
            room_id: room.id,
            room: "secret".into(),
            user_id: bob_id,
            change: MembershipChange::RoleChanged,
        }
    );
    let (_, body) = page(&b, &app, "/rooms/secret/members").await;
    assert!(body.contains("Moderator"));
    // A moderator manages members but cannot hand out or take away ownership.
    let res = post_form(&b, &app, &alice_path, &[("role", "member")]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // The last owner cannot step down.
    let res = post_form(&a, &app, &alice_path, &[("role", "member")]).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        res.text()
            .await
            .expect("body")
            .contains("at least one owner")
    );
    assert_eq!(role_of(&app, room.id, "alice").await, Some(RoomRole::Owner));
    // Removing a member.
    let res = post_form(
        &a,
        &app,
        &format!("/rooms/secret/members/{bob_id}/remove"),
        &[],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(role_of(&app, room.id, "bob").await, None);
    let env = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event")
        .expect("open");
    assert!(matches!(
        env.event,
        Event::Membership {
            change: MembershipChange::Left,
            ..
        }
    ));
    let (status, _) = page(&b, &app, "/rooms/secret/members").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

both_backends!(
    rooms_can_be_created_listed_and_joined,
    only_owners_change_room_settings,
    members_see_the_member_list_with_roles,
    only_owners_change_member_roles,
);
