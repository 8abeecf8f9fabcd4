//! Rooms: create, list, join, settings — all through `domain::permissions`.

use crate::{both_backends, helpers::*};
use domain::{
    bus::{Event, MembershipChange, Topic},
    db::Backend,
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

both_backends!(
    rooms_can_be_created_listed_and_joined,
    only_owners_change_room_settings
);
