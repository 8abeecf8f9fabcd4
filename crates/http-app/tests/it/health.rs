//! Probes and metrics.

use crate::{both_backends, helpers::*};
use diesel::RunQueryDsl;
use domain::db::Backend;
use reqwest::StatusCode;

async fn probes_and_metrics_answer(backend: Backend) {
    let app = spawn(backend).await;
    let c = client();
    let res = c.get(app.url("/healthz")).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::OK);
    let res = c.get(app.url("/readyz")).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body, serde_json::json!({"database": "ok", "bus": "ok"}));
    let _ = c.get(app.url("/login")).send().await.expect("GET");
    let res = c.get(app.url("/metrics")).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.expect("body");
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(text.contains("route=\"/login\""), "{text}");
}

/// With the database gone, `/readyz` says so (503) while `/healthz` still answers.
#[tokio::test]
async fn readyz_is_503_when_the_database_is_down() {
    let app = spawn(Backend::Postgres).await;
    let c = client();
    assert_eq!(
        c.get(app.url("/readyz"))
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::OK
    );
    let name = app
        .test_db
        .url
        .rsplit('/')
        .next()
        .expect("db name")
        .to_owned();
    let mut admin = diesel::PgConnection::establish_admin();
    diesel::sql_query(format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .expect("drop the database under the running app");
    let res = c.get(app.url("/readyz")).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["database"], "unavailable");
    assert_eq!(body["bus"], "ok");
    assert_eq!(
        c.get(app.url("/healthz"))
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::OK
    );
    // A page that needs the database gets the friendly 5xx page, no internals.
    let res = c.get(app.url("/login")).send().await.expect("GET");
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the sign-in form needs no database"
    );
    let token = csrf_from(&res.text().await.expect("body"));
    let res = post_login(&c, &app, "alice", PASSWORD, Some(&token)).await;
    assert!(res.status().is_server_error(), "{}", res.status());
    let body = res.text().await.expect("body");
    assert!(body.contains("Request id:"), "{body}");
    for leak in ["database", "postgres", "diesel", "confab_test", ".rs"] {
        assert!(
            !body.to_lowercase().contains(leak),
            "the page leaks {leak:?}:\n{body}"
        );
    }
}

trait EstablishAdmin {
    fn establish_admin() -> diesel::PgConnection;
}

impl EstablishAdmin for diesel::PgConnection {
    fn establish_admin() -> diesel::PgConnection {
        use diesel::Connection;
        diesel::PgConnection::establish(&domain::testing::postgres_admin_url()).expect("admin")
    }
}

both_backends!(probes_and_metrics_answer);

/// A graceful stop finishes and the port stops answering (no hang on keep-alive).
#[tokio::test]
async fn the_server_stops_gracefully() {
    let app = spawn(Backend::Sqlite).await;
    let c = client();
    assert_eq!(
        c.get(app.url("/healthz"))
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::OK
    );
    tokio::time::timeout(std::time::Duration::from_secs(10), app.stop())
        .await
        .expect("stopped within the shutdown timeout");
    assert!(bare_client().get(app.url("/healthz")).send().await.is_err());
}
