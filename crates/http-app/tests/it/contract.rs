//! What `confab serve` and the gateway rely on: the service mounts beside `/ws` in one
//! `App`, and the session cookie is the signed session key under the agreed name and key.

use crate::{both_backends, helpers::*};
use actix_web::{
    App, HttpServer,
    cookie::{Cookie, CookieJar, Key},
    web,
};
use domain::{auth::SessionKey, db::Backend};
use reqwest::StatusCode;
use tracing_actix_web::TracingLogger;

async fn the_session_cookie_is_the_signed_session_key(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.create_user("alice", "").await;
    let c = client();
    let token = get_csrf(&c, &app, "/login").await;
    let res = post_login(&c, &app, "alice", PASSWORD, Some(&token)).await;
    let name = domain::auth::session_cookie_name(app.settings().https);
    let raw = set_cookie(&res, name).expect("session cookie");
    // Exactly what the gateway does: actix hands it the cookie percent-decoded
    // (`HttpRequest::cookie` parses with `Cookie::parse_encoded`), then a signed
    // CookieJar with the shared key checks it.
    let key = Key::from(&domain::auth::cookie_key_material(
        &app.settings().secret_key,
    ));
    let mut jar = CookieJar::new();
    jar.add_original(Cookie::parse_encoded(raw).expect("cookie").into_owned());
    let verified = jar.signed(&key).get(name).expect("the signature verifies");
    let session_key = SessionKey::from_cookie(verified.value()).expect("a session key");
    let live = app
        .test_db
        .db
        .run(move |c| domain::repo::session::find_live(c, &session_key))
        .await
        .expect("query")
        .expect("a live session behind the key");
    assert_eq!(live.user.id, alice.id);
    // A key from another secret does not verify.
    let other = Key::from(&domain::auth::cookie_key_material(
        &"some-other-secret-of-sufficient-length".to_owned().into(),
    ));
    assert!(jar.signed(&other).get(name).is_none());
}

async fn the_service_mounts_beside_the_gateway_in_one_app(backend: Backend) {
    let first = spawn(backend).await;
    first.create_user("alice", "").await;
    let state = first.app_state.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(TracingLogger::default())
            // The gateway's route first: http-app's service matches every other path.
            .route("/ws", web::get().to(|| async { "gateway" }))
            .service(http_app::service(state.clone()))
    })
    .workers(1)
    .shutdown_timeout(1)
    .listen(listener)
    .expect("listen")
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    let base = format!("http://127.0.0.1:{port}");
    let c = client();
    let res = c.get(format!("{base}/ws")).send().await.expect("GET");
    assert_eq!(res.text().await.expect("body"), "gateway");
    let page = c.get(format!("{base}/login")).send().await.expect("GET");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers().contains_key("content-security-policy"));
    let token = csrf_from(&page.text().await.expect("body"));
    let res = c
        .post(format!("{base}/login"))
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = c.get(format!("{base}/")).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::OK);
    let res = c.get(format!("{base}/nope")).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    handle.stop(false).await;
}

both_backends!(
    the_session_cookie_is_the_signed_session_key,
    the_service_mounts_beside_the_gateway_in_one_app,
);
