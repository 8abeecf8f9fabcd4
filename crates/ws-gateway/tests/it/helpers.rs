//! Shared test support: real databases, real Redis, real sockets. No mocks.

use actix_web::cookie::{Cookie, CookieJar, Key};
use domain::{
    auth::{SessionKey, cookie_key_material, session_cookie_name},
    bus::redis::RedisBus,
    db::{Backend, Db},
    ids::{MessageId, SessionId},
    model::{Room, RoomKind, User},
    repo::{self, room::NewRoom, session::Lifetimes, user::NewUser},
    settings::Settings,
    testing::{TestDb, settings},
};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, client::IntoClientRequest, http::HeaderValue},
};
use ws_gateway::{Application, Deps, GatewayConfig, StopHandle, presence::Presence};

pub const ORIGIN: &str = "http://127.0.0.1:8000";

/// Tests that kill every pub/sub connection on the Redis server take this for writing;
/// the others take it for reading, so a kill never lands in the middle of a test that
/// counts on an event that pub/sub would then lose (presence, revocation).
pub static REDIS_KILL: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Fails (never skips) when Redis is not there, saying how to start it.
pub async fn require_redis() -> redis::aio::MultiplexedConnection {
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).expect("Redis URL");
    match tokio::time::timeout(
        Duration::from_secs(3),
        client.get_multiplexed_async_connection(),
    )
    .await
    {
        Ok(Ok(c)) => c,
        other => panic!(
            "Redis is not reachable at {url} ({other:?}). Start it with \
             `redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no`, \
             or set TEST_REDIS_URL."
        ),
    }
}

/// A user with a live session, and the signed cookie http-app would have set.
#[derive(Clone)]
pub struct Person {
    pub user: User,
    pub key: SessionKey,
    pub session_id: SessionId,
    pub cookie: String,
}

pub fn signed_cookie(settings: &Settings, value: &str) -> String {
    let key = Key::from(&cookie_key_material(&settings.secret_key));
    let name = session_cookie_name(settings.https);
    let mut jar = CookieJar::new();
    jar.signed_mut(&key)
        .add(Cookie::new(name, value.to_owned()));
    let c = jar.get(name).expect("cookie just added");
    // Percent-encoded, as http-app sets it and a browser sends it back.
    c.encoded().to_string()
}

pub struct World {
    pub db: TestDb,
    pub settings: Settings,
}

impl World {
    pub fn new(backend: Backend) -> World {
        let db = TestDb::new(backend);
        let mut settings = settings(&db.url);
        settings.redis_url = Some(redis_url().into());
        World { db, settings }
    }

    pub fn db(&self) -> &Db {
        &self.db.db
    }

    pub async fn person(&self, name: &str) -> Person {
        let name = name.to_owned();
        let (user, key, session_id) = self
            .db()
            .run(move |c| {
                let user = repo::user::create(
                    c,
                    &NewUser {
                        username: name,
                        display_name: String::new(),
                        password: "correct horse battery".into(),
                        is_staff: false,
                        is_superuser: false,
                    },
                    4,
                )?;
                let (key, s) = repo::session::create(
                    c,
                    user.id,
                    "test",
                    "127.0.0.1",
                    "",
                    Lifetimes {
                        idle_secs: 3600,
                        absolute_secs: 7200,
                    },
                )?;
                Ok((user, key, s.id))
            })
            .await
            .expect("user and session");
        let cookie = signed_cookie(&self.settings, key.expose());
        Person {
            user,
            key,
            session_id,
            cookie,
        }
    }

    pub async fn room(&self, slug: &str, kind: RoomKind) -> Room {
        let new = NewRoom {
            slug: slug.into(),
            name: String::new(),
            topic: String::new(),
            kind,
            created_by: None,
        };
        self.db()
            .run(move |c| repo::room::create(c, &new))
            .await
            .expect("room")
    }

    /// A Redis bus of its own, like any other process would have.
    pub async fn redis_bus(&self) -> Arc<RedisBus> {
        require_redis().await;
        Arc::new(
            RedisBus::connect(
                self.settings.redis_url.as_ref().expect("redis url"),
                &self.settings.redis_prefix,
                self.settings.message_keys().expect("keys"),
                Duration::from_secs(5),
            )
            .await
            .expect("Redis bus"),
        )
    }

    /// An in-process gateway on port 0 over its own Redis bus.
    pub async fn gateway(&self, config: GatewayConfig) -> Gateway {
        let bus = self.redis_bus().await;
        let keys = self.settings.message_keys().expect("keys");
        let deps = Deps {
            presence: Arc::new(Presence::redis(&bus, config.presence_ttl)),
            ..Deps::redis(self.db().clone(), bus.clone(), keys)
        }
        .with_config(config);
        self.start(deps).await
    }

    pub async fn start(&self, deps: Deps) -> Gateway {
        let app = Application::build(self.settings.clone(), deps)
            .await
            .expect("gateway builds");
        let port = app.port();
        let gateway = app.gateway().clone();
        let stop = app.stop_handle();
        let task = tokio::spawn(app.run_until_stopped());
        Gateway {
            port,
            gateway,
            stop,
            task: Some(task),
        }
    }

    /// The `ws-gateway` binary in its own process, on a free port.
    pub fn spawn_process(&self) -> Process {
        let keys = self
            .settings
            .message_keys
            .as_ref()
            .map(|k| secrecy::ExposeSecret::expose_secret(k).to_owned())
            .expect("test settings carry keys");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ws-gateway"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CONFAB_DATABASE_URL", &self.db.url)
            .env("CONFAB_REDIS_URL", redis_url())
            .env("CONFAB_REDIS_PREFIX", &self.settings.redis_prefix)
            .env("CONFAB_MESSAGE_KEYS", keys)
            .env(
                "CONFAB_SECRET_KEY",
                secrecy::ExposeSecret::expose_secret(&self.settings.secret_key),
            )
            .env("CONFAB_ALLOWED_ORIGINS", ORIGIN)
            .env("CONFAB_BIND", "127.0.0.1:0")
            .env("CONFAB_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ws-gateway");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the log until the listening line names the port, then keeps draining so
        // the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["fields"]["message"] == "ws-gateway listening"
                    && let Some(port) = v["fields"]["port"].as_u64()
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(port as u16);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("ws-gateway reports its port within 30 s");
        Process { child, port }
    }
}

pub struct Gateway {
    pub port: u16,
    pub gateway: ws_gateway::Gateway,
    pub stop: StopHandle,
    pub task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Gateway {
    pub async fn stop(mut self) {
        self.stop.stop();
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("clean stop");
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub struct Process {
    pub child: Child,
    pub port: u16,
}

impl Process {
    /// SIGTERM, as systemd would send.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET: status and body.
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Waits until `/readyz` answers 200.
pub async fn wait_ready(port: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if http_get(port, "/readyz").await.0 == 200 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gateway on port {port} not ready within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A metric's value from `/metrics` (0 when absent).
pub async fn metric(port: u16, name: &str) -> f64 {
    let (_, body) = http_get(port, "/metrics").await;
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Ws {
    pub stream: Stream,
}

pub fn request(
    port: u16,
    origin: Option<&str>,
    cookie: Option<&str>,
) -> tungstenite::handshake::client::Request {
    let mut req = format!("ws://127.0.0.1:{port}/ws")
        .into_client_request()
        .expect("request");
    if let Some(o) = origin {
        req.headers_mut()
            .insert("Origin", HeaderValue::from_str(o).expect("header"));
    }
    if let Some(c) = cookie {
        req.headers_mut()
            .insert("Cookie", HeaderValue::from_str(c).expect("header"));
    }
    req
}

/// The HTTP status of a refused handshake (panics if the upgrade succeeded).
pub async fn refused(port: u16, origin: Option<&str>, cookie: Option<&str>) -> u16 {
    match tokio_tungstenite::connect_async(request(port, origin, cookie)).await {
        Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("the upgrade should have been refused"),
    }
}

impl Ws {
    pub async fn connect(port: u16, who: &Person) -> Ws {
        Ws::connect_hello(port, who).await.0
    }

    /// Connects and returns the `hello` frame too.
    pub async fn connect_hello(port: u16, who: &Person) -> (Ws, Value) {
        let (stream, _) =
            tokio_tungstenite::connect_async(request(port, Some(ORIGIN), Some(&who.cookie)))
                .await
                .expect("upgrade");
        let mut ws = Ws { stream };
        let hello = ws.next().await;
        assert_eq!(hello["type"], "hello");
        (ws, hello)
    }

    pub async fn send(&mut self, v: Value) {
        self.stream
            .send(Message::text(v.to_string()))
            .await
            .expect("send");
    }

    pub async fn send_raw(&mut self, text: String) {
        self.stream.send(Message::text(text)).await.expect("send");
    }

    /// The next JSON frame, skipping presence and membership notices.
    pub async fn next(&mut self) -> Value {
        loop {
            let v = self.next_any().await;
            if v["type"] != "presence" && v["type"] != "membership" {
                return v;
            }
        }
    }

    /// The next JSON frame of any type.
    pub async fn next_any(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.stream.next())
                .await
                .expect("a frame within 10 s")
                .expect("socket open")
                .expect("frame");
            match msg {
                Message::Text(t) => return serde_json::from_str(&t).expect("json"),
                Message::Close(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    }

    /// Reads until the close frame; returns its code (None if the socket just ended).
    pub async fn closed(&mut self, within: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => panic!("not closed within {within:?}"),
                Ok(None) | Ok(Some(Err(_))) => return None,
                Ok(Some(Ok(Message::Close(c)))) => return c.map(|c| u16::from(c.code)),
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    pub async fn join(&mut self, room: &str, since: Option<MessageId>) -> Value {
        let mut v = serde_json::json!({"type":"join","room":room});
        if let Some(s) = since {
            v["since"] = s.0.into();
        }
        self.send(v).await;
        let joined = self.next().await;
        assert_eq!(joined["type"], "joined", "{joined}");
        joined
    }

    /// Sends a message and returns its acked id (the ack is the next frame).
    pub async fn post(&mut self, room: &str, body: &str, client_id: &str) -> i64 {
        self.send(serde_json::json!({"type":"send","room":room,"body":body,"client_id":client_id}))
            .await;
        let ack = self.next().await;
        assert_eq!(ack["type"], "ack", "{ack}");
        assert_eq!(ack["client_id"], client_id);
        ack["id"].as_i64().expect("id")
    }
}

/// The status a `presence` frame gives `user`, in either form: one change (`user`,
/// `status`) or several (names listed under `online`, `away`, `offline`).
pub fn presence_in(f: &Value, user: &str) -> Option<String> {
    if f["type"] != "presence" {
        return None;
    }
    if f["user"] == user {
        return f["status"].as_str().map(str::to_owned);
    }
    ["online", "away", "offline"]
        .into_iter()
        .find(|status| {
            f[*status]
                .as_array()
                .is_some_and(|names| names.iter().any(|n| n == user))
        })
        .map(str::to_owned)
}

pub fn ids(messages: &Value) -> Vec<i64> {
    messages
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["id"].as_i64().expect("id"))
        .collect()
}

pub fn fast_config() -> GatewayConfig {
    GatewayConfig {
        frames_per_sec: 1000.0,
        frames_burst: 1000.0,
        sends_per_sec: 1000.0,
        sends_burst: 1000.0,
        user_sends_per_sec: 1000.0,
        user_sends_burst: 1000.0,
        ..GatewayConfig::default()
    }
}

pub fn default_backend() -> Backend {
    Backend::Sqlite
}
