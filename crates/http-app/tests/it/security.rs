//! Security headers on every response, and the HTTPS-only protections.

use crate::{both_backends, helpers::*};
use domain::db::Backend;
use reqwest::{Response, StatusCode};

fn assert_security_headers(res: &Response, what: &str, https: bool) {
    let h = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{what}: no {name} header"))
            .to_owned()
    };
    let csp = h("content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{what}: {csp}");
    assert!(csp.contains("script-src 'self';"), "{what}: {csp}");
    assert!(csp.contains("style-src 'self';"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{what}: {csp}"
    );
    assert!(csp.contains("connect-src 'self' "), "{what}: {csp}");
    assert!(csp.contains("wss://"), "{what}: {csp}");
    assert_eq!(csp.contains("ws://"), !https, "{what}: {csp}");
    assert_eq!(h("x-frame-options"), "DENY", "{what}");
    assert_eq!(h("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(h("referrer-policy"), "same-origin", "{what}");
    assert_eq!(
        res.headers().contains_key("strict-transport-security"),
        https,
        "{what}: HSTS only behind HTTPS"
    );
}

async fn every_response_carries_the_security_headers(backend: Backend) {
    let app = spawn(backend).await;
    app.create_user("alice", "").await;
    let c = client();
    let anonymous = [
        ("/login", StatusCode::OK),
        ("/", StatusCode::SEE_OTHER),
        ("/healthz", StatusCode::OK),
        ("/readyz", StatusCode::OK),
        ("/metrics", StatusCode::OK),
        ("/static/css/app.css", StatusCode::OK),
        ("/static/js/app.js", StatusCode::OK),
        ("/no/such/page", StatusCode::NOT_FOUND),
        ("/setup/not-the-token", StatusCode::NOT_FOUND),
    ];
    for (path, status) in anonymous {
        let res = c.get(app.url(path)).send().await.expect("GET");
        assert_eq!(res.status(), status, "{path}");
        assert_security_headers(&res, path, false);
    }
    let res = post_login(&c, &app, "alice", PASSWORD, None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_security_headers(&res, "403 CSRF", false);
    sign_in(&c, &app, "alice").await;
    for path in ["/", "/rooms", "/devices", "/rooms/general/settings"] {
        let res = c.get(app.url(path)).send().await.expect("GET");
        assert!(
            res.status() == StatusCode::OK || res.status() == StatusCode::FORBIDDEN,
            "{path}"
        );
        assert_security_headers(&res, path, false);
    }
    // A page is never cached; the 404 page is friendly and says nothing internal.
    let res = c.get(app.url("/")).send().await.expect("GET");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let res = c.get(app.url("/nope")).send().await.expect("GET");
    let body = res.text().await.expect("body");
    assert!(body.contains("Page not found"), "{body}");
    assert!(body.contains("Request id:"), "{body}");
}

async fn https_adds_hsts_secure_cookies_and_an_origin_check(backend: Backend) {
    let app = spawn_with(backend, |s, _| {
        s.https = true;
        s.allowed_origins = vec!["https://chat.example".into()];
    })
    .await;
    app.create_user("alice", "").await;
    let c = bare_client();
    let page = c.get(app.url("/login")).send().await.expect("GET");
    assert_security_headers(&page, "/login over https", true);
    let csrf_set = set_cookie(&page, "__Host-confab_csrf").expect("a __Host- CSRF cookie");
    assert_cookie_attributes(&csrf_set, true);
    let csrf_cookie = cookie_pair(&csrf_set);
    let token = csrf_from(&page.text().await.expect("body"));
    let post = |origin: Option<&'static str>, referer: Option<&'static str>| {
        let mut req = c
            .post(app.url("/login"))
            .header("cookie", &csrf_cookie)
            .form(&[
                ("username", "alice"),
                ("password", PASSWORD),
                ("csrf_token", token.as_str()),
            ]);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(r) = referer {
            req = req.header("referer", r);
        }
        req.send()
    };
    for (origin, referer) in [
        (Some("https://evil.example"), None),
        (Some("null"), Some("https://chat.example/login")),
        (None, Some("https://chat.example.evil.example/login")),
        (None, None),
    ] {
        let res = post(origin, referer).await.expect("POST");
        assert_eq!(
            res.status(),
            StatusCode::FORBIDDEN,
            "{origin:?} {referer:?}"
        );
    }
    let res = post(None, Some("https://chat.example/login"))
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = post(Some("https://chat.example"), None)
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let session = set_cookie(&res, "__Host-confab_session").expect("a __Host- session cookie");
    assert_cookie_attributes(&session, true);
}

/// OWASP ASVS 5.0 §3.3 for the session and CSRF cookies: `HttpOnly`, `SameSite=Lax`,
/// `Path=/`, no `Domain` (which `__Host-` requires), and `Secure` exactly when served
/// over HTTPS.
fn assert_cookie_attributes(set_cookie: &str, https: bool) {
    let attributes: Vec<String> = set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    let has = |a: &str| attributes.iter().any(|x| x == a);
    assert!(has("httponly"), "{set_cookie}");
    assert!(has("samesite=lax"), "{set_cookie}");
    assert!(has("path=/"), "{set_cookie}");
    assert_eq!(has("secure"), https, "{set_cookie}");
    assert!(
        !attributes.iter().any(|a| a.starts_with("domain=")),
        "no Domain: {set_cookie}"
    );
}

async fn plain_http_cookies_have_no_host_prefix_and_the_same_attributes(backend: Backend) {
    let app = spawn(backend).await;
    app.create_user("alice", "").await;
    let c = bare_client();
    let page = c.get(app.url("/login")).send().await.expect("GET");
    // Browsers refuse a __Host- cookie without Secure, so plain HTTP uses the bare names.
    assert!(set_cookie(&page, "__Host-confab_csrf").is_none());
    let csrf_set = set_cookie(&page, "confab_csrf").expect("a CSRF cookie");
    assert_cookie_attributes(&csrf_set, false);
    let token = csrf_from(&page.text().await.expect("body"));
    let res = c
        .post(app.url("/login"))
        .header("cookie", cookie_pair(&csrf_set))
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let session = set_cookie(&res, "confab_session").expect("a session cookie");
    assert_cookie_attributes(&session, false);
}

both_backends!(
    every_response_carries_the_security_headers,
    https_adds_hsts_secure_cookies_and_an_origin_check,
    plain_http_cookies_have_no_host_prefix_and_the_same_attributes,
);
