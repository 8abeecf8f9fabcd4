//! First-run setup: the one-time link creates the administrator, then stops working.

use crate::{both_backends, helpers::*};
use domain::db::Backend;
use reqwest::StatusCode;

async fn the_setup_link_creates_the_administrator_once(backend: Backend) {
    let app = spawn(backend).await;
    let link = app
        .setup_url
        .clone()
        .expect("a setup link while there are no users");
    let path = link
        .strip_prefix(&app.address)
        .expect("same address")
        .to_owned();
    assert!(
        path.starts_with("/setup/") && path.len() > "/setup/".len() + 30,
        "{path}"
    );
    // Guessing does not work.
    let res = client()
        .get(app.url("/setup/guess"))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let c = client();
    let res = c.get(&link).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::OK);
    let token = csrf_from(&res.text().await.expect("body"));
    let form = |password2: &'static str| {
        vec![
            ("csrf_token", token.clone()),
            ("username", "root".to_owned()),
            ("display_name", "The Admin".to_owned()),
            ("password", PASSWORD.to_owned()),
            ("password_confirm", password2.to_owned()),
        ]
    };
    // Without the token: refused like any other form.
    let res = c
        .post(&link)
        .form(&[
            ("username", "root"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // A mistake keeps the link open.
    let res = c
        .post(&link)
        .form(&form("different!"))
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        res.text()
            .await
            .expect("body")
            .contains("The two passwords differ")
    );
    let res = c
        .post(&link)
        .form(&form(PASSWORD))
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/");
    let body = c
        .get(app.url("/"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(
        body.contains("The Admin"),
        "signed in as the new administrator"
    );
    let admin = app
        .test_db
        .db
        .run(|c| domain::repo::user::find_by_username(c, "root"))
        .await
        .expect("query")
        .expect("created");
    assert!(admin.is_superuser && admin.is_staff && admin.is_active);
    // The link is spent.
    assert_eq!(
        c.get(&link).send().await.expect("GET").status(),
        StatusCode::NOT_FOUND
    );
    let other = client();
    let token = get_csrf(&other, &app, "/login").await;
    let res = other
        .post(&link)
        .form(&[
            ("csrf_token", token.as_str()),
            ("username", "second"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(app.app_state.setup_path().is_none());
}

async fn no_setup_link_when_users_exist(backend: Backend) {
    let first = spawn(backend).await;
    first.create_user("alice", "").await;
    // A second instance on the same database, started after a user exists.
    let settings = first.settings().clone();
    let keys = first.app_state.message_keys.clone();
    let options = http_app::Options {
        workers: Some(1),
        shutdown_timeout_secs: 1,
        ..Default::default()
    };
    let second = {
        let db = first.test_db.db.clone();
        let bus: domain::bus::SharedBus =
            std::sync::Arc::new(domain::bus::memory::MemoryBus::new());
        let mut deps = http_app::Deps::new(db, bus, keys);
        deps.options = options;
        http_app::Application::build(settings, deps)
            .await
            .expect("build")
    };
    assert!(second.setup_url().is_none());
    // And the first instance's link stops working as soon as a user exists.
    let link = first
        .setup_url
        .clone()
        .expect("opened before the user was made");
    let res = client().get(&link).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

both_backends!(
    the_setup_link_creates_the_administrator_once,
    no_setup_link_when_users_exist
);
