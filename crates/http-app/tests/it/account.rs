//! `/account`: display name and language, password change (current password required,
//! other sessions signed out and announced), CSRF, and escaping of the display name.

use crate::{both_backends, helpers::*};
use domain::{
    bus::{Event, Topic},
    db::Backend,
    ids::UserId,
    model::User,
};
use reqwest::{Client, StatusCode};
use std::time::Duration;

async fn post_account(c: &Client, app: &TestApp, fields: &[(&str, &str)]) -> reqwest::Response {
    let token = get_csrf(c, app, "/account").await;
    let mut form = vec![("csrf_token", token.as_str())];
    form.extend_from_slice(fields);
    c.post(app.url("/account"))
        .form(&form)
        .send()
        .await
        .expect("POST /account")
}

async fn page(c: &Client, app: &TestApp, path: &str) -> (StatusCode, String) {
    let res = c.get(app.url(path)).send().await.expect("GET");
    (res.status(), res.text().await.expect("body"))
}

async fn reload(app: &TestApp, id: UserId) -> User {
    app.test_db
        .db
        .run(move |c| domain::repo::user::find(c, id))
        .await
        .expect("user")
}

async fn display_name_and_language_are_saved(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.create_user("alice", "Alice").await;
    let c = client();
    sign_in(&c, &app, "alice").await;

    let (status, body) = page(&c, &app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("href=\"/account\""), "linked from the header");
    let (status, body) = page(&c, &app, "/account").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Your account") && body.contains("value=\"Alice\""));

    // An empty display name is refused next to its field, and nothing changes.
    let res = post_account(
        &c,
        &app,
        &[
            ("form", "profile"),
            ("display_name", "  "),
            ("language", "fr"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body = res.text().await.expect("body");
    assert!(body.contains("id=\"display_name-error\""), "{body}");
    assert!(body.contains("Display names have 1–64 characters."));
    let user = reload(&app, alice.id).await;
    assert_eq!((user.display_name.as_str(), user.language), ("Alice", None));
    // So is a language Confab does not have.
    let res = post_account(
        &c,
        &app,
        &[
            ("form", "profile"),
            ("display_name", "Ali"),
            ("language", "xx"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        res.text()
            .await
            .expect("body")
            .contains("id=\"language-error\"")
    );
    assert_eq!(reload(&app, alice.id).await.display_name, "Alice");

    let res = post_account(
        &c,
        &app,
        &[
            ("form", "profile"),
            ("display_name", "Alice Liddell"),
            ("language", "fr"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/account?saved=profile");
    let cookie = set_cookie(&res, http_app::i18n::COOKIE).expect("the language cookie");
    assert!(cookie.starts_with("confab_lang=fr"), "{cookie}");
    let user = reload(&app, alice.id).await;
    assert_eq!(
        (user.display_name.as_str(), user.language.as_deref()),
        ("Alice Liddell", Some("fr"))
    );
    // The page now speaks French, to this client and to a new one without the cookie.
    let (_, body) = page(&c, &app, "/account?saved=profile").await;
    assert!(body.contains("<html lang=\"fr\""));
    assert!(body.contains("Votre compte") && body.contains("Enregistré."));
    assert!(body.contains("value=\"Alice Liddell\""));
    let other = client();
    sign_in(&other, &app, "alice").await;
    let (_, body) = page(&other, &app, "/account").await;
    assert!(body.contains("Votre compte"));
}

async fn script_in_display_name_is_escaped(backend: Backend) {
    let app = spawn(backend).await;
    app.create_user("mallory", "Mallory").await;
    let c = client();
    sign_in(&c, &app, "mallory").await;
    let evil = "<script>alert(1)</script>";
    let res = post_account(
        &c,
        &app,
        &[
            ("form", "profile"),
            ("display_name", evil),
            ("language", "en"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    for path in ["/account", "/rooms", "/devices"] {
        let (status, body) = page(&c, &app, path).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!body.contains(evil), "{path} shows the raw script");
        assert!(
            body.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;")
                || body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}: {body}"
        );
    }
}

async fn a_wrong_current_password_changes_nothing(backend: Backend) {
    let app = spawn(backend).await;
    app.create_user("alice", "").await;
    let (c, other) = (client(), client_with_agent(UA_SAFARI));
    sign_in(&c, &app, "alice").await;
    sign_in(&other, &app, "alice").await;
    let res = post_account(
        &c,
        &app,
        &[
            ("form", "password"),
            ("current_password", "not my password"),
            ("new_password", "a brand new secret"),
            ("confirm_password", "a brand new secret"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body = res.text().await.expect("body");
    assert!(body.contains("id=\"current_password-error\""));
    assert!(body.contains("That is not your current password."));
    assert!(
        !body.contains("a brand new secret"),
        "passwords are never echoed"
    );
    // Mismatched new passwords are refused too.
    let res = post_account(
        &c,
        &app,
        &[
            ("form", "password"),
            ("current_password", PASSWORD),
            ("new_password", "a brand new secret"),
            ("confirm_password", "a brand new secreT"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.expect("body").contains("do not match"));
    // Still the old password, and both devices still signed in.
    assert!(is_signed_in(&other, &app).await);
    assert!(is_signed_in(&c, &app).await);
    let fresh = client();
    sign_in(&fresh, &app, "alice").await;
}

async fn a_password_change_signs_out_the_other_sessions_only(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.create_user("alice", "").await;
    app.bus
        .subscribe(Topic::User(alice.id))
        .await
        .expect("subscribe");
    let mut events = app.bus.events();
    let (c, other) = (client(), client_with_agent(UA_SAFARI));
    sign_in(&other, &app, "alice").await;
    sign_in(&c, &app, "alice").await;
    let new_password = "a brand new secret";
    let res = post_account(
        &c,
        &app,
        &[
            ("form", "password"),
            ("current_password", PASSWORD),
            ("new_password", new_password),
            ("confirm_password", new_password),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/account?saved=password");
    let revoked = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let env = events.recv().await.expect("the bus is open");
            if let Event::SessionsRevoked {
                user_id,
                session_ids,
                ..
            } = &env.event
            {
                return (*user_id, session_ids.clone());
            }
        }
    })
    .await
    .expect("SessionsRevoked within 5 s");
    assert_eq!(revoked.0, alice.id);
    assert_eq!(revoked.1.len(), 1);
    assert!(!is_signed_in(&other, &app).await);
    assert!(is_signed_in(&c, &app).await);
    let (_, body) = page(&c, &app, "/account?saved=password").await;
    assert!(body.contains("Password changed."));
    // The old password no longer works; the new one does.
    let fresh = client();
    let token = get_csrf(&fresh, &app, "/login").await;
    let res = post_login(&fresh, &app, "alice", PASSWORD, Some(&token)).await;
    assert_ne!(res.status(), StatusCode::SEE_OTHER);
    let res = post_login(&fresh, &app, "alice", new_password, Some(&token)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

async fn a_post_without_csrf_is_refused(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.create_user("alice", "Alice").await;
    let c = client();
    sign_in(&c, &app, "alice").await;
    let res = c
        .post(app.url("/account"))
        .form(&[
            ("form", "profile"),
            ("display_name", "Hijacked"),
            ("language", "de"),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let user = reload(&app, alice.id).await;
    assert_eq!((user.display_name.as_str(), user.language), ("Alice", None));
    // Signed out, the page sends you to sign in.
    let (status, _) = page(&client(), &app, "/account").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

async fn guessing_the_current_password_is_throttled(backend: Backend) {
    let app = spawn(backend).await;
    app.create_user("alice", "").await;
    let c = client();
    sign_in(&c, &app, "alice").await;
    let attempt = |current: &'static str| {
        let (c, app) = (&c, &app);
        async move {
            let res = post_account(
                c,
                app,
                &[
                    ("form", "password"),
                    ("current_password", current),
                    ("new_password", "a brand new secret"),
                    ("confirm_password", "a brand new secret"),
                ],
            )
            .await;
            res.text().await.expect("body")
        }
    };
    let mut throttled = false;
    for _ in 0..20 {
        if attempt("a wrong guess").await.contains("Too many failed") {
            throttled = true;
            break;
        }
    }
    assert!(
        throttled,
        "wrong guesses on /account are throttled like sign-in"
    );
    // Once throttled, even the right password is not checked.
    assert!(attempt(PASSWORD).await.contains("Too many failed"));
    let fresh = client();
    let token = get_csrf(&fresh, &app, "/login").await;
    let res = post_login(&fresh, &app, "alice", "a brand new secret", Some(&token)).await;
    assert_ne!(
        res.status(),
        StatusCode::SEE_OTHER,
        "the password did not change"
    );
}

both_backends!(
    guessing_the_current_password_is_throttled,
    display_name_and_language_are_saved,
    script_in_display_name_is_escaped,
    a_wrong_current_password_changes_nothing,
    a_password_change_signs_out_the_other_sessions_only,
    a_post_without_csrf_is_refused,
);
