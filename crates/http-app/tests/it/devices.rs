//! Devices: the "also signed in on" notice, the Devices page, signing out other devices,
//! single-session mode, and the bus events the gateway relies on.

use crate::{both_backends, helpers::*};
use domain::{
    bus::{Event, Topic},
    db::Backend,
    ids::UserId,
};
use reqwest::StatusCode;
use std::time::Duration;

async fn next_event(
    rx: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<domain::bus::Envelope>>,
) -> domain::bus::Envelope {
    let env = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event within 5 s")
        .expect("the bus is open");
    (*env).clone()
}

async fn live_ids(app: &TestApp, user: UserId) -> Vec<domain::ids::SessionId> {
    app.test_db
        .db
        .run(move |c| domain::repo::session::list_live(c, user))
        .await
        .expect("list")
        .into_iter()
        .map(|s| s.id)
        .collect()
}

async fn other_devices_are_shown_and_can_be_signed_out(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.create_user("alice", "Alice").await;
    app.bus
        .subscribe(Topic::User(alice.id))
        .await
        .expect("subscribe");
    let mut events = app.bus.events();

    let laptop = client_with_agent(UA_FIREFOX);
    sign_in(&laptop, &app, "alice").await;
    let first = next_event(&mut events).await;
    let laptop_session = match first.event {
        Event::SignedIn {
            user_id,
            session_id,
            ref device,
            ..
        } => {
            assert_eq!(user_id, alice.id);
            assert_eq!(device, "Firefox on Linux");
            session_id
        }
        other => panic!("expected SignedIn, got {other:?}"),
    };
    assert_eq!(first.topic, Topic::User(alice.id));
    let body = laptop
        .get(app.url("/"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(
        !body.contains("You are also signed in on"),
        "nothing else was signed in"
    );

    let phone = client_with_agent(UA_SAFARI);
    sign_in(&phone, &app, "alice").await;
    match next_event(&mut events).await.event {
        Event::SignedIn { device, .. } => assert_eq!(device, "Safari on iOS"),
        other => panic!("expected SignedIn, got {other:?}"),
    }
    let body = phone
        .get(app.url("/"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(body.contains("You are also signed in on"), "{body}");
    assert!(body.contains("Firefox on Linux · 127.0.0.1"), "{body}");
    let body = phone
        .get(app.url("/"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(
        !body.contains("You are also signed in on"),
        "the notice shows once"
    );

    let devices = phone
        .get(app.url("/devices"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(devices.contains("Firefox on Linux") && devices.contains("Safari on iOS"));
    assert_eq!(devices.matches("this device").count(), 1);
    let token = csrf_from(&devices);
    let res = phone
        .post(app.url("/devices/others/revoke"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    match next_event(&mut events).await.event {
        Event::SessionsRevoked {
            user_id,
            session_ids,
            ..
        } => {
            assert_eq!(user_id, alice.id);
            assert_eq!(session_ids, vec![laptop_session]);
        }
        other => panic!("expected SessionsRevoked, got {other:?}"),
    }
    assert!(!is_signed_in(&laptop, &app).await);
    assert!(is_signed_in(&phone, &app).await);
    assert_eq!(live_ids(&app, alice.id).await.len(), 1);
}

async fn one_device_can_be_signed_out_but_not_someone_elses(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.create_user("alice", "").await;
    let bob = app.create_user("bob", "").await;
    let (a1, a2, b) = (client(), client_with_agent(UA_SAFARI), client());
    sign_in(&a1, &app, "alice").await;
    sign_in(&a2, &app, "alice").await;
    sign_in(&b, &app, "bob").await;
    let bobs = live_ids(&app, bob.id).await[0];
    let alices = live_ids(&app, alice.id).await;
    let token = get_csrf(&a2, &app, "/devices").await;
    // Bob's session id is "not found" for Alice.
    let res = a2
        .post(app.url(&format!("/devices/{bobs}/revoke")))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(is_signed_in(&b, &app).await);
    // The laptop is the older of Alice's two sessions (newest first).
    let laptop = alices[1];
    let res = a2
        .post(app.url(&format!("/devices/{laptop}/revoke")))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(!is_signed_in(&a1, &app).await);
    assert!(is_signed_in(&a2, &app).await);
    // Signing out this very device is signing out.
    let current = alices[0];
    let res = a2
        .post(app.url(&format!("/devices/{current}/revoke")))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(location(&res), "/login");
    assert!(!is_signed_in(&a2, &app).await);
}

async fn single_session_mode_ends_other_sessions(backend: Backend) {
    let app = spawn_with(backend, |s, _| s.single_session = true).await;
    let alice = app.create_user("alice", "").await;
    app.bus
        .subscribe(Topic::User(alice.id))
        .await
        .expect("subscribe");
    let mut events = app.bus.events();
    let (first, second) = (client(), client_with_agent(UA_SAFARI));
    sign_in(&first, &app, "alice").await;
    let _signed_in = next_event(&mut events).await;
    sign_in(&second, &app, "alice").await;
    match next_event(&mut events).await.event {
        Event::SessionsRevoked { session_ids, .. } => assert_eq!(session_ids.len(), 1),
        other => panic!("expected SessionsRevoked, got {other:?}"),
    }
    assert!(!is_signed_in(&first, &app).await);
    assert!(is_signed_in(&second, &app).await);
}

both_backends!(
    other_devices_are_shown_and_can_be_signed_out,
    one_device_can_be_signed_out_but_not_someone_elses,
    single_session_mode_ends_other_sessions,
);
