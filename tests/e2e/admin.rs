//! Staff actions reach live sockets: a real http-app and a real ws-gateway, as separate
//! processes that share only PostgreSQL and Redis.

use crate::support::*;
use domain::{
    crypto::MessageKeys,
    db::Backend,
    repo,
    testing::{TestDb, unique_name},
};
use futures_util::StreamExt;
use std::{
    process::Command,
    time::{Duration, Instant},
};
use tokio_tungstenite::tungstenite::Message;

const PASSWORD: &str = "a long test password";

struct Stack {
    app: String,
    ws: String,
    _procs: Vec<Proc>,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

async fn stack() -> (Stack, domain::ids::UserId) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(Backend::Postgres);
    let carl = {
        let mut c = db.db.get().unwrap();
        repo::room::ensure_general(&mut c).unwrap();
        let new = |name: &str, superuser: bool| repo::user::NewUser {
            username: name.into(),
            display_name: String::new(),
            password: PASSWORD.into(),
            is_staff: superuser,
            is_superuser: superuser,
        };
        repo::user::create(&mut c, &new("root", true), 4).unwrap();
        repo::user::create(&mut c, &new("carl", false), 4)
            .unwrap()
            .id
    };
    let (app_port, ws_port) = (free_port(), free_port());
    let app = format!("http://127.0.0.1:{app_port}");
    let keys = MessageKeys::generate_line("e2e");
    let prefix = unique_name("confab_e2e");
    let mut procs = Vec::new();
    for (name, bin, port) in [
        ("http-app", "http-app", app_port),
        ("ws-gateway", "ws-gateway", ws_port),
    ] {
        let mut cmd = Command::new(binary(bin));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("CONFAB_DATABASE_URL", &db.url)
            .env("CONFAB_REDIS_URL", "redis://127.0.0.1:6379")
            .env("CONFAB_REDIS_PREFIX", &prefix)
            .env("CONFAB_MESSAGE_KEYS", &keys)
            .env("CONFAB_ALLOWED_ORIGINS", &app)
            .env("CONFAB_BCRYPT_COST", "4")
            .env("CONFAB_DATA_DIR", dir.path())
            .env("CONFAB_BIND", format!("127.0.0.1:{port}"));
        procs.push(Proc::spawn(name, cmd, dir.path()));
    }
    let plain = reqwest::Client::new();
    for port in [app_port, ws_port] {
        let url = format!("http://127.0.0.1:{port}/readyz");
        eventually(&url, Duration::from_secs(60), || {
            let (plain, url) = (plain.clone(), url.clone());
            async move {
                plain
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            }
        })
        .await;
    }
    let s = Stack {
        app,
        ws: format!("ws://127.0.0.1:{ws_port}/ws"),
        _procs: procs,
        _db: db,
        _dir: dir,
    };
    (s, carl)
}

/// Fetches a confirmation page and posts its form, as a staff member's browser does.
async fn confirm(admin: &Browser, path: &str) -> reqwest::StatusCode {
    let page = admin
        .http
        .get(format!("{}{path}", admin.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "confirmation page {path}");
    let token = csrf_token(&page.text().await.unwrap());
    admin
        .http
        .post(format!("{}{path}", admin.origin))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_actions_reach_open_sockets_through_redis() {
    let (s, carl_id) = stack().await;
    let admin = Browser::plain(&s.app);
    admin.sign_in("root", PASSWORD).await;
    let carl = Browser::plain(&s.app);
    carl.sign_in("carl", PASSWORD).await;
    let mut watcher = admin.socket_at(&s.ws).await;
    watcher.join("general", None).await;
    let mut sock = carl.socket_at(&s.ws).await;
    sock.join("general", None).await;

    // A message deleted in the admin disappears from a connected client.
    let id = sock.say("general", "please remove me", "c-1").await;
    assert_eq!(watcher.next_of("message").await["id"].as_i64(), Some(id));
    assert!(
        confirm(&admin, &format!("/admin/messages/{id}/delete"))
            .await
            .is_redirection()
    );
    let deleted = watcher.next_of("deleted").await;
    assert_eq!(
        (deleted["room"].as_str(), deleted["id"].as_i64()),
        (Some("general"), Some(id))
    );
    let joined = watcher.join("general", None).await;
    let gone = joined["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"].as_i64() == Some(id))
        .unwrap();
    assert!(
        gone["deleted"].as_bool().unwrap_or(false) && gone["body"] == "",
        "catch-up shows it deleted: {gone}"
    );

    // Deactivating the user in the admin closes their socket within a second.
    let started = Instant::now();
    assert!(
        confirm(&admin, &format!("/admin/users/{carl_id}/deactivate"))
            .await
            .is_redirection()
    );
    let code = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(frame) = sock.ws.next().await {
            if let Ok(Message::Close(close)) = frame {
                return close.map(|c| u16::from(c.code));
            }
        }
        None
    })
    .await
    .expect("the socket closed within a second of the deactivation");
    println!(
        "socket closed {:?} after the admin's POST, code {code:?}",
        started.elapsed()
    );
    assert!(matches!(code, Some(4001 | 1008)), "closed with {code:?}");
    // And the account is really off: its cookie opens nothing any more.
    let r = carl.http.get(format!("{}/", s.app)).send().await.unwrap();
    assert!(r.status().is_redirection(), "signed out: {}", r.status());
}
