//! Sign-in, CSRF, fixation, sign-out, throttling, garbage cookies — on both backends.

use crate::{both_backends, helpers::*};
use domain::db::Backend;
use reqwest::StatusCode;
use std::time::Duration;

const SESSION: &str = "confab_session";

async fn sign_in_with_a_valid_token(backend: Backend) {
    let app = spawn(backend).await;
    app.create_user("alice", "Alice Example").await;
    let c = client();
    assert!(!is_signed_in(&c, &app).await);
    let token = get_csrf(&c, &app, "/login").await;
    let res = post_login(&c, &app, "alice", PASSWORD, Some(&token)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = set_cookie(&res, SESSION).expect("a session cookie");
    let lower = cookie.to_ascii_lowercase();
    assert!(lower.contains("httponly"), "{cookie}");
    assert!(lower.contains("samesite=lax"), "{cookie}");
    assert!(lower.contains("path=/"), "{cookie}");
    assert!(!lower.contains("secure"), "plain HTTP in tests: {cookie}");
    let page = c.get(app.url("/")).send().await.expect("GET /");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.expect("body").contains("Alice Example"));
    // Case-insensitive usernames.
    let c2 = client();
    let token = get_csrf(&c2, &app, "/login").await;
    let res = post_login(&c2, &app, "ALICE", PASSWORD, Some(&token)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

async fn sign_in_without_a_token_is_refused(backend: Backend) {
    let app = spawn(backend).await;
    app.create_user("alice", "").await;
    let c = client();
    let _ = get_csrf(&c, &app, "/login").await; // has the cookie, not sending the field
    let res = post_login(&c, &app, "alice", PASSWORD, None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&res, SESSION).is_none());
    let body = res.text().await.expect("body");
    assert!(body.contains("This form has expired"), "{body}");
    assert!(!is_signed_in(&c, &app).await);
    // Without even the cookie (a cross-site form post from a fresh browser).
    let res = post_login(&client(), &app, "alice", PASSWORD, None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

async fn a_forged_token_is_refused(backend: Backend) {
    let app = spawn(backend).await;
    app.create_user("alice", "").await;
    let c = client();
    let real = get_csrf(&c, &app, "/login").await;
    for forged in [
        "A".repeat(43),
        format!("{}x", &real[..42]),
        String::new(),
        "garbage".into(),
    ] {
        let res = post_login(&c, &app, "alice", PASSWORD, Some(&forged)).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "token {forged:?}");
    }
    assert!(!is_signed_in(&c, &app).await);
    // The header works like the field, and is checked just the same.
    let res = c
        .post(app.url("/login"))
        .header("x-csrf-token", "B".repeat(43))
        .form(&[("username", "alice"), ("password", PASSWORD)])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = c
        .post(app.url("/login"))
        .header("x-csrf-token", &real)
        .form(&[("username", "alice"), ("password", PASSWORD)])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

async fn a_token_from_another_session_is_refused(backend: Backend) {
    let app = spawn(backend).await;
    app.create_user("alice", "").await;
    app.create_user("bob", "").await;
    let (a, b) = (client(), client());
    // Signed out: Bob's token in Alice's browser.
    let _ = get_csrf(&a, &app, "/login").await;
    let bobs = get_csrf(&b, &app, "/login").await;
    let res = post_login(&a, &app, "alice", PASSWORD, Some(&bobs)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Signed in: each session has its own token.
    sign_in(&a, &app, "alice").await;
    sign_in(&b, &app, "bob").await;
    let alices = get_csrf(&a, &app, "/").await;
    let bobs = get_csrf(&b, &app, "/").await;
    assert_ne!(alices, bobs);
    let res = a
        .post(app.url("/logout"))
        .form(&[("csrf_token", bobs.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        is_signed_in(&a, &app).await,
        "the forged sign-out did nothing"
    );
    // The pre-sign-in token does not carry over into the session either.
    let c = client();
    let before = get_csrf(&c, &app, "/login").await;
    sign_in(&c, &app, "alice").await;
    let res = c
        .post(app.url("/logout"))
        .form(&[("csrf_token", before.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

async fn session_fixation_is_impossible(backend: Backend) {
    let app = spawn(backend).await;
    app.create_user("alice", "").await;
    app.create_user("mallory", "").await;
    // Mallory signs in and gets a genuine, signed session cookie...
    let m = client();
    let token = get_csrf(&m, &app, "/login").await;
    let res = post_login(&m, &app, "mallory", PASSWORD, Some(&token)).await;
    let planted = cookie_pair(&set_cookie(&res, SESSION).expect("cookie"));
    // ...and plants it in Alice's browser, which then signs in as Alice.
    let alice = bare_client();
    let page = alice
        .get(app.url("/login"))
        .header("cookie", &planted)
        .send()
        .await
        .expect("GET");
    let csrf_cookie = cookie_pair(&set_cookie(&page, "confab_csrf").unwrap_or_default());
    let html = page.text().await.expect("body");
    // Mallory's session is live, so /login redirects; the form is on `/login` only when
    // signed out. Alice's browser signs in with the session's own token.
    let token = if html.contains("csrf_token") {
        csrf_from(&html)
    } else {
        let shell = alice
            .get(app.url("/"))
            .header("cookie", &planted)
            .send()
            .await
            .expect("GET /")
            .text()
            .await
            .expect("body");
        csrf_from(&shell)
    };
    let cookies = if csrf_cookie.is_empty() {
        planted.clone()
    } else {
        format!("{planted}; {csrf_cookie}")
    };
    let res = alice
        .post(app.url("/login"))
        .header("cookie", &cookies)
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let fresh = cookie_pair(&set_cookie(&res, SESSION).expect("a new session cookie"));
    assert_ne!(fresh, planted, "the session key must change at sign-in");
    // The planted key is dead, for Mallory too; Alice's new one is hers.
    let res = bare_client()
        .get(app.url("/"))
        .header("cookie", &planted)
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = bare_client()
        .get(app.url("/"))
        .header("cookie", &fresh)
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.expect("body").contains("alice"));

    // A planted signed cookie for a key that was never issued is ignored and replaced.
    let forged = app.signed_cookie(SESSION, &"k".repeat(43));
    let c = bare_client();
    let page = c
        .get(app.url("/login"))
        .header("cookie", &forged)
        .send()
        .await
        .expect("GET");
    let csrf_cookie = cookie_pair(&set_cookie(&page, "confab_csrf").expect("csrf cookie"));
    let token = csrf_from(&page.text().await.expect("body"));
    let res = c
        .post(app.url("/login"))
        .header("cookie", format!("{forged}; {csrf_cookie}"))
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let issued = cookie_pair(&set_cookie(&res, SESSION).expect("cookie"));
    assert_ne!(issued, forged);
}

async fn sign_out_revokes_the_session_server_side(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.create_user("alice", "").await;
    let c = client();
    let token = get_csrf(&c, &app, "/login").await;
    let res = post_login(&c, &app, "alice", PASSWORD, Some(&token)).await;
    let old = cookie_pair(&set_cookie(&res, SESSION).expect("cookie"));
    assert!(is_signed_in(&c, &app).await);
    let token = get_csrf(&c, &app, "/").await;
    // GET /logout is not a way to sign out (it must be a POST with the token).
    let res = c.get(app.url("/logout")).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = c
        .post(app.url("/logout"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login");
    assert!(!is_signed_in(&c, &app).await);
    // The old cookie, replayed by someone who kept it, no longer works.
    let res = bare_client()
        .get(app.url("/"))
        .header("cookie", &old)
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let id = alice.id;
    let live = app
        .test_db
        .db
        .run(move |c| domain::repo::session::list_live(c, id))
        .await
        .expect("list");
    assert!(live.is_empty(), "the row is revoked: {live:?}");
}

fn error_text(html: &str) -> String {
    let start = html.find("class=\"alert\"").expect("an error message");
    let rest = &html[start..];
    rest[rest.find('>').expect(">") + 1..rest.find("</p>").expect("</p>")].to_owned()
}

async fn failed_sign_ins_are_throttled_without_revealing_users(backend: Backend) {
    let app = spawn_with(backend, |s, _| {
        s.login_account_failures = 3;
        s.login_address_failures = 100;
    })
    .await;
    app.create_user("alice", "").await;
    let c = client();
    let token = get_csrf(&c, &app, "/login").await;
    let mut messages = Vec::new();
    for (user, password) in [("alice", "wrong password"), ("nobody", PASSWORD)] {
        for _ in 0..3 {
            let res = post_login(&c, &app, user, password, Some(&token)).await;
            assert_eq!(res.status(), StatusCode::OK);
            messages.push(error_text(&res.text().await.expect("body")));
        }
    }
    assert!(
        messages.windows(2).all(|w| w[0] == w[1]),
        "the same message for a wrong password and an unknown user: {messages:?}"
    );
    let mut throttled = Vec::new();
    for user in ["alice", "nobody"] {
        // Even the right password is refused while the account is throttled.
        let res = post_login(&c, &app, user, PASSWORD, Some(&token)).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = res
            .headers()
            .get("retry-after")
            .expect("Retry-After")
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((1..=900).contains(&retry), "{retry}");
        let body = res.text().await.expect("body");
        throttled.push(error_text(&body));
    }
    assert_eq!(
        throttled[0], throttled[1],
        "throttling reveals nothing either"
    );
    assert!(throttled[0].contains("Too many failed sign-in attempts"));
    // Other accounts are not locked out by Alice's.
    app.create_user("bob", "").await;
    let res = post_login(&c, &app, "bob", PASSWORD, Some(&token)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

async fn failed_sign_ins_are_throttled_per_address(backend: Backend) {
    let app = spawn_with(backend, |s, _| {
        s.login_account_failures = 100;
        s.login_address_failures = 4;
    })
    .await;
    app.create_user("alice", "").await;
    let c = client();
    let token = get_csrf(&c, &app, "/login").await;
    let attempt = |ip: &'static str, user: &'static str, password: &'static str| {
        let c = c.clone();
        let url = app.url("/login");
        let token = token.clone();
        async move {
            c.post(url)
                // From a loopback peer, as nginx would send it.
                .header("x-real-ip", ip)
                .form(&[
                    ("username", user),
                    ("password", password),
                    ("csrf_token", &token),
                ])
                .send()
                .await
                .expect("POST")
                .status()
        }
    };
    for user in ["u1", "u2", "u3", "u4"] {
        assert_eq!(
            attempt("203.0.113.9", user, "nope nope").await,
            StatusCode::OK
        );
    }
    assert_eq!(
        attempt("203.0.113.9", "alice", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        attempt("198.51.100.7", "alice", PASSWORD).await,
        StatusCode::SEE_OTHER,
        "another address is not affected"
    );
}

async fn garbage_cookies_mean_signed_out(backend: Backend) {
    let app = spawn(backend).await;
    app.create_user("alice", "").await;
    let signed_junk = app.signed_cookie(SESSION, "not a key at all");
    let well_formed_unknown = app.signed_cookie(SESSION, &"Z".repeat(43));
    let bad_csrf = app.signed_cookie("confab_csrf", "<script>");
    let cases = [
        format!("{SESSION}=garbage"),
        format!("{SESSION}="),
        format!("{SESSION}=%%%%; confab_csrf=%00%ff"),
        format!("{SESSION}={}", "A".repeat(5000)),
        signed_junk,
        well_formed_unknown,
        bad_csrf,
        "=x; ;;; a=b=c; \"q\"=\"".into(),
    ];
    let mut cases: Vec<reqwest::header::HeaderValue> = cases
        .iter()
        .map(|c| reqwest::header::HeaderValue::from_str(c).expect("header"))
        .collect();
    // Bytes that are not UTF-8 at all.
    cases.push(
        reqwest::header::HeaderValue::from_bytes(b"confab_session=\xff\xfe; confab_csrf=\x80")
            .expect("opaque header bytes"),
    );
    for cookie in cases {
        for path in ["/", "/login", "/rooms", "/devices", "/healthz"] {
            let res = bare_client()
                .get(app.url(path))
                .header("cookie", &cookie)
                .send()
                .await
                .expect("GET");
            let status = res.status();
            assert!(
                status == StatusCode::OK || status == StatusCode::SEE_OTHER,
                "{path} with {cookie:?}: {status}"
            );
            if status == StatusCode::SEE_OTHER {
                assert_eq!(location(&res), "/login");
            }
        }
    }
    // A signed-in cookie from one deployment means nothing to another (other secret).
    let other = spawn_with(backend, |s, _| {
        s.secret_key = "another-secret-key-at-least-32-chars-long"
            .to_owned()
            .into();
    })
    .await;
    other.create_user("alice", "").await;
    let c = bare_client();
    let page = c.get(app.url("/login")).send().await.expect("GET");
    let csrf_cookie = cookie_pair(&set_cookie(&page, "confab_csrf").expect("cookie"));
    let token = csrf_from(&page.text().await.expect("body"));
    let res = c
        .post(app.url("/login"))
        .header("cookie", &csrf_cookie)
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .expect("POST");
    let session = cookie_pair(&set_cookie(&res, SESSION).expect("cookie"));
    let res = bare_client()
        .get(other.url("/"))
        .header("cookie", &session)
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

async fn next_parameter_stays_on_site(backend: Backend) {
    let app = spawn(backend).await;
    app.create_user("alice", "").await;
    for (next, expect) in [
        ("/rooms", "/rooms"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
    ] {
        let c = client();
        let token = get_csrf(&c, &app, "/login").await;
        let res = c
            .post(app.url("/login"))
            .form(&[
                ("username", "alice"),
                ("password", PASSWORD),
                ("csrf_token", token.as_str()),
                ("next", next),
            ])
            .send()
            .await
            .expect("POST");
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), expect, "next={next}");
    }
}

async fn idle_sessions_expire(backend: Backend) {
    let app = spawn_with(backend, |s, _| {
        s.session_idle_timeout_secs = 1;
        s.session_absolute_timeout_secs = 1;
    })
    .await;
    app.create_user("alice", "").await;
    let c = client();
    sign_in(&c, &app, "alice").await;
    assert!(is_signed_in(&c, &app).await);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(!is_signed_in(&c, &app).await, "the absolute limit passed");
}

both_backends!(
    sign_in_with_a_valid_token,
    sign_in_without_a_token_is_refused,
    a_forged_token_is_refused,
    a_token_from_another_session_is_refused,
    session_fixation_is_impossible,
    sign_out_revokes_the_session_server_side,
    failed_sign_ins_are_throttled_without_revealing_users,
    failed_sign_ins_are_throttled_per_address,
    garbage_cookies_mean_signed_out,
    next_parameter_stays_on_site,
    idle_sessions_expire,
);
