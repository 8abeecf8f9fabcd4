//! Templates escape user-controlled text; the shell and its assets are served.

use crate::{both_backends, helpers::*};
use domain::{
    db::Backend,
    model::RoomKind,
    repo::room::{self, NewRoom},
};
use reqwest::StatusCode;

const EVIL: &str = "<script>alert(1)</script>";

async fn user_text_is_escaped_everywhere(backend: Backend) {
    let app = spawn(backend).await;
    let owner = app.create_user("owner", EVIL).await;
    let new = NewRoom {
        slug: "evil".into(),
        name: format!("{EVIL} room\"'"),
        topic: format!("topic {EVIL} <img src=x onerror=alert(2)>"),
        kind: RoomKind::Public,
        created_by: Some(owner.id),
    };
    app.test_db
        .db
        .run(move |c| room::create(c, &new))
        .await
        .expect("room");
    let c = client();
    sign_in(&c, &app, "owner").await;
    for path in ["/", "/rooms", "/rooms/evil/settings", "/devices"] {
        let res = c.get(app.url(path)).send().await.expect("GET");
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let body = res.text().await.expect("body");
        assert!(
            !body.contains("<script>alert"),
            "{path} has raw script:\n{body}"
        );
        assert!(!body.contains("<img src=x"), "{path} has a raw tag");
        // ASVS 7.4.4: every signed-in page offers sign-out, as a POST with the token.
        assert!(
            body.contains(r#"<form method="post" action="/logout""#)
                && body.contains(r#"name="csrf_token""#),
            "{path} has no sign-out form"
        );
        assert!(
            !body.contains("room\"'"),
            "{path}: quotes are escaped in attributes too"
        );
        if path != "/devices" {
            assert!(
                body.contains("&lt;script&gt;"),
                "{path} shows the text, escaped"
            );
        }
    }
    // The display name shows (escaped) in the header of every page.
    let body = c
        .get(app.url("/devices"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(
        body.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;")
            || body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{body}"
    );
    // Form values echoed back after an error are escaped too.
    let token = csrf_from(&body);
    let res = c
        .post(app.url("/rooms"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("slug", "Bad Slug"),
            ("name", EVIL),
            ("topic", ""),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body = res.text().await.expect("body");
    assert!(!body.contains("<script>alert"));
    assert!(
        body.contains("Room addresses use lowercase letters"),
        "{body}"
    );
}

async fn the_shell_lists_my_rooms_and_loads_its_script(backend: Backend) {
    let app = spawn(backend).await;
    app.create_user("alice", "Alice").await;
    let c = client();
    sign_in(&c, &app, "alice").await;
    let body = c
        .get(app.url("/"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(
        body.contains("data-room=\"general\""),
        "new users are in #general:\n{body}"
    );
    assert!(body.contains("<script type=\"module\" src=\"/static/js/app.js\"></script>"));
    assert!(body.contains("<meta name=\"csrf-token\""));
    assert!(
        !body.contains(" style="),
        "no inline styles (the CSP forbids them)"
    );
    assert!(!body.contains("<script>"), "no inline scripts");
    let js = c
        .get(app.url("/static/js/app.js"))
        .send()
        .await
        .expect("GET");
    assert!(
        js.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .contains("javascript")
    );
    let js = js.text().await.expect("body");
    assert!(js.contains("/ws") && js.contains("textContent"));
    assert!(
        !js.contains("innerHTML"),
        "user text never goes through innerHTML"
    );
    let css = c
        .get(app.url("/static/css/app.css"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(css.contains("prefers-color-scheme: dark"));
}

both_backends!(
    user_text_is_escaped_everywhere,
    the_shell_lists_my_rooms_and_loads_its_script
);
