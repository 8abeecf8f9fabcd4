//! Fault injection with real processes: gateways killed or restarted, Redis and
//! PostgreSQL stopped, the media disk full. Each scenario drives real clients over real
//! sockets, prints one line of what it measured and asserts it:
//!
//! `sent` (distinct `client_id`s sent), `acknowledged` (distinct `ack`s), `stored` (rows in
//! the database for the run's room), `delivered` (acknowledged message × member pairs
//! received), `lost` (acknowledged but never received by some member) and `duplicated` (a
//! message id received twice on one socket session, catch-up included). `lost` and
//! `duplicated` must be 0.
//!
//! Every scenario runs its own `redis-server` (own port, `--save ""`, fresh prefix) so the
//! shared Redis on 6379 is never disturbed, and SQLite unless it is about PostgreSQL (then
//! a private cluster, see [`PgCluster`]). The disk-full scenario mounts a tmpfs and so
//! needs root, as `scripts/test` has in CI.
//!
//! The mass-reconnect scenario opens 1,000 sockets by default; set
//! `CONFAB_FAULT_SOCKETS=5000` to run it at 5,000 (slower; meant for a bigger machine).
//! Run just this module with `cargo test -p confab-e2e faults`.

use crate::support::*;
use domain::{
    crypto::MessageKeys,
    db::{Backend, Db},
    ids::RoomId,
    repo::{self, Page},
    testing::{TestDb, unique_name},
};
use futures_util::{SinkExt, StreamExt};
use loadgen::prep::{Auth, Ident};
use serde_json::{Value, json};
use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    path::Path,
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};
use tokio_tungstenite::tungstenite::{
    Message, client::IntoClientRequest, http::HeaderValue, protocol::CloseFrame,
};

const ORIGIN: &str = "http://confab-faults.test";
const ROOM: &str = "faults";

/// One scenario at a time: their timings (outages, a thousand sockets) assume the two
/// cores are not shared with another scenario.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One scenario's world: a database, its own Redis, and the settings every service gets.
struct World {
    dir: tempfile::TempDir,
    db: Db,
    db_url: String,
    keys_line: String,
    keys: MessageKeys,
    secret: String,
    prefix: String,
    redis: RedisServer,
    _test_db: Option<TestDb>,
}

impl World {
    async fn new(pg: Option<&PgCluster>) -> World {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let (db, db_url, test_db) = match pg {
            Some(pg) => {
                let url = pg.url();
                let db = Db::connect(&url, 4).expect("the private PostgreSQL cluster");
                db.migrate().expect("migrations apply");
                (db, url, None)
            }
            None => {
                let t = TestDb::new(Backend::Sqlite);
                (t.db.clone(), t.url.clone(), Some(t))
            }
        };
        {
            let mut c = db.get().unwrap();
            repo::room::ensure_general(&mut c).unwrap();
        }
        let keys_line = MessageKeys::generate_line("faults");
        let keys = MessageKeys::parse(&keys_line).unwrap();
        let redis = RedisServer::start(dir.path()).await;
        let w = World {
            db,
            db_url,
            keys_line,
            keys,
            secret: "faults-secret-".repeat(5),
            prefix: unique_name("confab_faults"),
            redis,
            dir,
            _test_db: test_db,
        };
        loadgen::prep::rooms(&w.auth(), &[ROOM.to_owned()])
            .await
            .unwrap();
        w
    }

    fn auth(&self) -> Auth {
        Auth::Db {
            database_url: self.db_url.clone(),
            secret_key: self.secret.clone(),
            http_login: None,
        }
    }

    /// `n` users with a live session each (and the signed cookie for it).
    async fn users(&self, tag: &str, n: usize) -> Vec<Ident> {
        loadgen::prep::users(&self.auth(), &format!("{tag}{}", std::process::id()), n)
            .await
            .unwrap()
    }

    fn env(&self, cmd: &mut Command, port: u16) {
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("CONFAB_ENVIRONMENT", "production")
            .env("CONFAB_DATABASE_URL", &self.db_url)
            .env("CONFAB_DATABASE_POOL_SIZE", "4")
            .env("CONFAB_REDIS_URL", self.redis.url())
            .env("CONFAB_REDIS_PREFIX", &self.prefix)
            .env("CONFAB_SECRET_KEY", &self.secret)
            .env("CONFAB_MESSAGE_KEYS", &self.keys_line)
            .env("CONFAB_ALLOWED_ORIGINS", ORIGIN)
            .env("CONFAB_HTTPS", "false")
            .env("CONFAB_BCRYPT_COST", "4")
            .env("CONFAB_DATA_DIR", self.dir.path())
            .env("CONFAB_BIND", format!("127.0.0.1:{port}"))
            // The faults, not the rate limits, are under test here.
            .env("CONFAB_WS_FRAMES_PER_SEC", "1000")
            .env("CONFAB_WS_FRAMES_BURST", "2000")
            .env("CONFAB_WS_SENDS_PER_SEC", "1000")
            .env("CONFAB_WS_SENDS_BURST", "2000")
            .env("CONFAB_WS_USER_SENDS_PER_SEC", "1000")
            .env("CONFAB_WS_USER_SENDS_BURST", "2000");
    }

    /// Starts a ws-gateway on `port` and waits until it is ready (database and bus).
    async fn gateway(&self, name: &str, port: u16, extra: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(binary("ws-gateway"));
        self.env(&mut cmd, port);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let p = Proc::spawn(name, cmd, self.dir.path());
        wait_ready(port).await;
        p
    }

    fn ws_url(port: u16) -> String {
        format!("ws://127.0.0.1:{port}/ws")
    }

    /// Every message of the run's room in the database: id → client_id.
    async fn stored(&self) -> BTreeMap<i64, Option<String>> {
        let keys = self.keys.clone();
        self.db
            .run(move |c| {
                let room = repo::room::find_by_slug(c, ROOM)?.expect("the room");
                let mut out = BTreeMap::new();
                let mut after = 0;
                loop {
                    let page = repo::message::history(c, &keys, room.id, Page::After(after), 500)?;
                    for m in &page.messages {
                        out.insert(m.id.0, m.client_id.clone());
                        after = m.id.0;
                    }
                    if !page.more || page.messages.is_empty() {
                        return Ok(out);
                    }
                }
            })
            .await
            .unwrap()
    }

    async fn room_id(&self) -> RoomId {
        self.db
            .run(|c| Ok(repo::room::find_by_slug(c, ROOM)?.expect("the room").id))
            .await
            .unwrap()
    }
}

async fn wait_ready(port: u16) {
    let url = format!("http://127.0.0.1:{port}/readyz");
    let http = reqwest::Client::new();
    eventually(
        &format!("{url} to answer 200"),
        Duration::from_secs(60),
        || {
            let (http, url) = (http.clone(), url.clone());
            async move { http.get(&url).send().await.is_ok_and(|r| r.status() == 200) }
        },
    )
    .await;
}

/// One Prometheus sample from a gateway's `/metrics` (the first series of that name).
async fn metric(port: u16, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let bare = series.split('{').next()?;
        (bare == name).then(|| value.parse().ok()).flatten()
    })
}

// ---------------------------------------------------------------------------------------
// The client: a socket that reconnects with jittered exponential back-off, joins with
// `since`, sends with idempotent `client_id`s (resending the unacknowledged ones) and
// counts what it sees.

#[derive(Debug, Default)]
struct Tally {
    /// Distinct client_ids sent, and send frames written (resends included).
    sent: u64,
    frames_sent: u64,
    acked: BTreeMap<String, i64>,
    /// When each acknowledged id was acknowledged.
    acked_at: BTreeMap<i64, Instant>,
    seen: BTreeSet<i64>,
    last: Option<i64>,
    /// An id received twice on one socket session.
    duplicated: u64,
    /// An id at or below one already received, not a repeat on this session (catch-up
    /// that went back too far after a reconnect).
    out_of_order: u64,
    sessions: u64,
    /// The current session has joined and caught up (`joined` with `more: false`).
    live: bool,
    closes: Vec<Option<u16>>,
    errors: BTreeMap<String, u64>,
    /// When each id arrived (for "still talks while X is down" checks).
    arrived: BTreeMap<i64, Instant>,
}

#[derive(Clone)]
struct Spec {
    cookie: String,
    /// Tried in order on every (re)connect.
    urls: Vec<String>,
    /// Send a new message this often once live (`None`: only listen).
    send_every: Option<Duration>,
    tag: String,
    reconnect: bool,
    /// Back-off: first delay and cap (full jitter in [d/2, d]).
    backoff: (Duration, Duration),
}

struct Member {
    tally: Arc<Mutex<Tally>>,
    sending: Arc<AtomicBool>,
    quit: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Member {
    fn start(spec: Spec) -> Member {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let sending = Arc::new(AtomicBool::new(spec.send_every.is_some()));
        let quit = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(member_loop(
            spec,
            tally.clone(),
            sending.clone(),
            quit.clone(),
        ));
        Member {
            tally,
            sending,
            quit,
            task,
        }
    }

    fn t(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap()
    }

    fn live(&self) -> bool {
        self.t().live
    }

    async fn stop(self) -> Tally {
        self.quit.store(true, Ordering::SeqCst);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        std::mem::take(&mut *self.tally.lock().unwrap())
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(url: &str, cookie: &str) -> Result<Ws, String> {
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    req.headers_mut()
        .insert("Origin", HeaderValue::from_static(ORIGIN));
    req.headers_mut()
        .insert("Cookie", HeaderValue::from_str(cookie).unwrap());
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .map_err(|_| "handshake timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    Ok(ws)
}

fn backoff(attempt: u32, (base, cap): (Duration, Duration)) -> Duration {
    let d = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    let ms = d.as_millis().max(2) as u64;
    Duration::from_millis(rand::random_range(ms / 2..=ms))
}

async fn member_loop(
    spec: Spec,
    tally: Arc<Mutex<Tally>>,
    sending: Arc<AtomicBool>,
    quit: Arc<AtomicBool>,
) {
    // client_id → when to (re)send it; `None` while a send is in flight.
    let mut pending: BTreeMap<String, Option<Instant>> = BTreeMap::new();
    let mut seq = 0u64;
    let mut attempt = 0u32;
    'reconnect: while !quit.load(Ordering::SeqCst) {
        let mut ws = None;
        for url in &spec.urls {
            if let Ok(w) = open(url, &spec.cookie).await {
                ws = Some(w);
                break;
            }
        }
        let Some(mut ws) = ws else {
            if !spec.reconnect {
                return;
            }
            tokio::time::sleep(backoff(attempt, spec.backoff)).await;
            attempt += 1;
            continue;
        };
        let since = {
            let mut t = tally.lock().unwrap();
            t.sessions += 1;
            t.live = false;
            t.last
        };
        let mut session: HashSet<i64> = HashSet::new();
        let join = |since: Option<i64>| {
            let mut f = json!({"type": "join", "room": ROOM});
            if let Some(s) = since {
                f["since"] = s.into();
            }
            Message::text(f.to_string())
        };
        if ws.send(join(since)).await.is_err() {
            continue;
        }
        // In-flight sends from before the reconnect go again (idempotent by client_id).
        for due in pending.values_mut() {
            *due = Some(Instant::now());
        }
        let mut tick = tokio::time::interval(spec.send_every.unwrap_or(Duration::from_millis(50)));
        let mut last_new = Instant::now();
        let code = loop {
            if quit.load(Ordering::SeqCst) {
                let _ = ws.close(None).await;
                break 'reconnect;
            }
            tokio::select! {
                frame = ws.next() => {
                    let text = match frame {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(c))) => break c.map(|c: CloseFrame| u16::from(c.code)),
                        Some(Ok(_)) => continue,
                        Some(Err(_)) | None => break None,
                    };
                    let f: Value = serde_json::from_str(&text).unwrap();
                    // The guard is dropped before any await (the task must be Send).
                    let again = {
                        let mut t = tally.lock().unwrap();
                        let mut record = |t: &mut Tally, m: &Value| {
                            let id = m["id"].as_i64().unwrap();
                            if !session.insert(id) {
                                t.duplicated += 1;
                                return;
                            }
                            if t.last.is_some_and(|l| id <= l) {
                                t.out_of_order += 1;
                            }
                            t.seen.insert(id);
                            t.arrived.entry(id).or_insert_with(Instant::now);
                            t.last = Some(t.last.map_or(id, |l| l.max(id)));
                        };
                        match f["type"].as_str().unwrap_or("") {
                            "joined" => {
                                for m in f["messages"].as_array().unwrap() {
                                    record(&mut t, m);
                                }
                                if f["more"] == true {
                                    Some(t.last)
                                } else {
                                    t.live = true;
                                    attempt = 0;
                                    None
                                }
                            }
                            "message" if f["room"] == ROOM => {
                                record(&mut t, &f);
                                None
                            }
                            "ack" => {
                                let cid = f["client_id"].as_str().unwrap().to_owned();
                                pending.remove(&cid);
                                let id = f["id"].as_i64().unwrap();
                                t.acked.insert(cid, id);
                                t.acked_at.entry(id).or_insert_with(Instant::now);
                                None
                            }
                            "error" => {
                                *t.errors.entry(f["code"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
                                if let Some(due) = f["ref"].as_str().and_then(|r| pending.get_mut(r)) {
                                    *due = Some(Instant::now() + Duration::from_millis(300));
                                }
                                None
                            }
                            _ => None,
                        }
                    };
                    // A catch-up page with more after it: ask for the next one.
                    if let Some(since) = again
                        && ws.send(join(since)).await.is_err()
                    {
                        break None;
                    }
                }
                _ = tick.tick() => {
                    if !tally.lock().unwrap().live {
                        continue;
                    }
                    let now = Instant::now();
                    let resend = pending
                        .iter()
                        .find(|(_, due)| due.is_some_and(|d| d <= now))
                        .map(|(cid, _)| cid.clone());
                    let cid = match resend {
                        Some(cid) => cid,
                        None if sending.load(Ordering::SeqCst)
                            && spec.send_every.is_some_and(|every| last_new.elapsed() >= every) =>
                        {
                            seq += 1;
                            last_new = now;
                            tally.lock().unwrap().sent += 1;
                            format!("{}-{seq}", spec.tag)
                        }
                        None => continue,
                    };
                    pending.insert(cid.clone(), None);
                    tally.lock().unwrap().frames_sent += 1;
                    let f = json!({"type": "send", "room": ROOM, "body": format!("body of {cid}"), "client_id": cid});
                    if ws.send(Message::text(f.to_string())).await.is_err() {
                        break None;
                    }
                }
            }
        };
        {
            let mut t = tally.lock().unwrap();
            t.closes.push(code);
            t.live = false;
        }
        if !spec.reconnect {
            return;
        }
        tokio::time::sleep(backoff(attempt, spec.backoff)).await;
        attempt += 1;
    }
}

fn spec(ident: &Ident, urls: Vec<String>, send_every: Option<Duration>) -> Spec {
    Spec {
        cookie: ident.cookie.clone().unwrap(),
        urls,
        send_every,
        tag: format!("{}-{}", ident.username, rand::random::<u32>()),
        reconnect: true,
        backoff: (Duration::from_millis(50), Duration::from_secs(2)),
    }
}

async fn all_live(members: &[Member], what: &str, limit: Duration) {
    eventually(what, limit, || async { members.iter().all(Member::live) }).await;
}

/// What a scenario measured, printed as one line and checked.
struct Measured {
    sent: u64,
    acknowledged: usize,
    stored: usize,
    delivered: usize,
    lost: usize,
    duplicated: u64,
}

/// Stops sending, waits until every send is acknowledged and every member has every
/// acknowledged message, then stops the members and counts.
async fn settle(w: &World, members: Vec<Member>, limit: Duration) -> (Measured, Vec<Tally>) {
    for m in &members {
        m.sending.store(false, Ordering::SeqCst);
    }
    eventually("every send acknowledged", limit, || async {
        members.iter().all(|m| {
            let t = m.t();
            t.acked.len() as u64 == t.sent
        })
    })
    .await;
    let acked_ids = |ms: &[Member]| -> BTreeSet<i64> {
        ms.iter()
            .flat_map(|m| m.t().acked.values().copied().collect::<Vec<_>>())
            .collect()
    };
    let want = acked_ids(&members);
    // Not an assertion: when this times out, the counts below say who lacks what.
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline
        && !members
            .iter()
            .all(|m| want.iter().all(|id| m.t().seen.contains(id)))
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut tallies = Vec::new();
    for m in members {
        tallies.push(m.stop().await);
    }
    let stored = w.stored().await;
    let mut acked_cids: BTreeMap<String, i64> = BTreeMap::new();
    for t in &tallies {
        acked_cids.extend(t.acked.iter().map(|(c, i)| (c.clone(), *i)));
    }
    for (cid, id) in &acked_cids {
        assert_eq!(
            stored.get(id).cloned().flatten().as_deref(),
            Some(cid.as_str()),
            "acknowledged {cid} (id {id}) is in the database"
        );
    }
    let delivered = tallies
        .iter()
        .map(|t| want.iter().filter(|id| t.seen.contains(id)).count())
        .sum();
    let lost = tallies
        .iter()
        .map(|t| want.iter().filter(|id| !t.seen.contains(id)).count())
        .sum();
    let m = Measured {
        sent: tallies.iter().map(|t| t.sent).sum(),
        acknowledged: want.len(),
        stored: stored.len(),
        delivered,
        lost,
        duplicated: tallies.iter().map(|t| t.duplicated + t.out_of_order).sum(),
    };
    (m, tallies)
}

fn report(scenario: &str, m: &Measured, extra: &str) {
    println!(
        "faults/{scenario}: sent={} acknowledged={} stored={} delivered={} lost={} duplicated={}{}{extra}",
        m.sent,
        m.acknowledged,
        m.stored,
        m.delivered,
        m.lost,
        m.duplicated,
        if extra.is_empty() { "" } else { " " },
    );
    assert_eq!(m.lost, 0, "{scenario}: acknowledged messages lost");
    assert_eq!(m.duplicated, 0, "{scenario}: messages delivered twice");
    assert!(
        m.stored >= m.acknowledged,
        "{scenario}: fewer rows than acknowledgements"
    );
}

// ---------------------------------------------------------------------------------------

/// 1. kill -9 one of two gateways mid-conversation: its clients reconnect to the other,
/// join with `since`, resend what was not acknowledged; every acknowledged message
/// reaches every member exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_conversation_loses_and_repeats_nothing() {
    let _serial = SERIAL.lock().await;
    let w = World::new(None).await;
    let (pa, pb) = (free_port(), free_port());
    let a = w.gateway("gw-a", pa, &[]).await;
    let _b = w.gateway("gw-b", pb, &[]).await;
    let users = w.users("k", 6).await;
    let (ua, ub) = (World::ws_url(pa), World::ws_url(pb));
    let members: Vec<Member> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let urls = if i % 2 == 0 {
                vec![ua.clone(), ub.clone()]
            } else {
                vec![ub.clone(), ua.clone()]
            };
            Member::start(spec(u, urls, Some(Duration::from_millis(40))))
        })
        .collect();
    all_live(&members, "every member live", Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.signal("KILL");
    let killed_at = Instant::now();
    eventually(
        "the killed gateway's members back and caught up",
        Duration::from_secs(30),
        || async {
            members
                .iter()
                .step_by(2)
                .all(|m| m.t().sessions >= 2 && m.live())
        },
    )
    .await;
    let back = killed_at.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (m, tallies) = settle(&w, members, Duration::from_secs(30)).await;
    drop(a);
    let moved = tallies
        .iter()
        .step_by(2)
        .filter(|t| t.sessions >= 2)
        .count();
    report(
        "kill9",
        &m,
        &format!(
            "reconnected={moved}/3 back_in={}ms resent={}",
            back.as_millis(),
            tallies.iter().map(|t| t.frames_sent - t.sent).sum::<u64>()
        ),
    );
    assert_eq!(moved, 3, "every member of the killed gateway reconnected");
    assert!(m.acknowledged > 100, "the conversation was going on");
}

/// 2. Redis restarted, then stopped for 30 s: each gateway keeps serving its own rooms
/// (two clients on one gateway still talk), reconnects and resubscribes when Redis is
/// back, and what was stored meanwhile reaches the other gateway's clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_ride_out_a_redis_restart_and_outage() {
    let _serial = SERIAL.lock().await;
    let mut w = World::new(None).await;
    let (pa, pb) = (free_port(), free_port());
    let _a = w.gateway("gw-a", pa, &[]).await;
    let _b = w.gateway("gw-b", pb, &[]).await;
    let users = w.users("r", 3).await;
    let every = Some(Duration::from_millis(200));
    let members = vec![
        Member::start(spec(&users[0], vec![World::ws_url(pa)], every)),
        Member::start(spec(&users[1], vec![World::ws_url(pa)], every)),
        // Only listens: its own sends would ring its gateway's pump, which reads every
        // new message of the room from the database, bus or no bus.
        Member::start(spec(&users[2], vec![World::ws_url(pb)], None)),
    ];
    all_live(&members, "every member live", Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A restart: down and straight back up.
    w.redis.stop();
    w.redis.resume().await;
    for port in [pa, pb] {
        eventually(
            "the gateway's bus reconnected after the Redis restart",
            Duration::from_secs(30),
            || async move { metric(port, "confab_bus_reconnects_total").await >= Some(1.0) },
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // An outage of 30 s.
    w.redis.stop();
    let down_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let up_at = Instant::now();
    w.redis.resume().await;
    for port in [pa, pb] {
        eventually(
            "the gateway's bus reconnected after the outage",
            Duration::from_secs(30),
            || async move { metric(port, "confab_bus_reconnects_total").await >= Some(2.0) },
        )
        .await;
        wait_ready(port).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // What a's first member sent during the outage: its neighbour on the same gateway got
    // it live, before Redis came back.
    let sent_down: Vec<i64> = {
        let t = members[0].t();
        t.acked_at
            .iter()
            .filter(|(_, at)| **at > down_at + Duration::from_secs(1) && **at < up_at)
            .map(|(id, _)| *id)
            .collect::<Vec<i64>>()
    };
    let neighbour_live = {
        let t = members[1].t();
        sent_down
            .iter()
            .filter(|id| t.arrived.get(id).is_some_and(|at| *at < up_at))
            .count()
    };
    let (m, tallies) = settle(&w, members, Duration::from_secs(30)).await;
    // The other gateway's member got them once the bus was back (settle checked "all").
    let other_after_return = sent_down
        .iter()
        .filter(|id| tallies[2].arrived.get(id).is_some_and(|at| *at >= up_at))
        .count();
    report(
        "redis",
        &m,
        &format!(
            "outage_sent={} neighbour_live={} other_gateway_after_return={} sessions={:?}",
            sent_down.len(),
            neighbour_live,
            other_after_return,
            tallies.iter().map(|t| t.sessions).collect::<Vec<_>>()
        ),
    );
    assert!(
        sent_down.len() > 50,
        "the sender kept being acknowledged during the outage"
    );
    assert_eq!(
        neighbour_live,
        sent_down.len(),
        "two clients on one gateway keep talking while Redis is down"
    );
    assert_eq!(
        other_after_return,
        sent_down.len(),
        "what was sent during the outage reached the other gateway when Redis returned"
    );
    assert!(
        tallies.iter().all(|t| t.sessions == 1),
        "no socket was dropped because of Redis"
    );
}

/// 3. PostgreSQL stopped for a while: `send` gets an `unavailable` error frame (not a hang,
/// not a dropped socket), nothing acknowledged is lost, and once it is back sends succeed
/// again without restarting the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_refuses_sends_cleanly_and_recovers() {
    let _serial = SERIAL.lock().await;
    let pg = PgCluster::start();
    let w = World::new(Some(&pg)).await;
    let port = free_port();
    let mut gw = w.gateway("gw", port, &[]).await;
    let users = w.users("p", 3).await;
    let url = World::ws_url(port);
    let members = vec![
        Member::start(spec(
            &users[0],
            vec![url.clone()],
            Some(Duration::from_millis(200)),
        )),
        Member::start(spec(&users[1], vec![url.clone()], None)),
    ];
    all_live(&members, "every member live", Duration::from_secs(30)).await;
    // A socket of its own, opened while the database is up (the handshake needs it).
    let mut probe = open(&url, users[2].cookie.as_deref().unwrap())
        .await
        .unwrap();
    assert!(
        next_of(&mut probe, &["hello"], Duration::from_secs(10))
            .await
            .is_some(),
        "hello on the probe socket"
    );
    let join = json!({"type": "join", "room": ROOM});
    probe.send(Message::text(join.to_string())).await.unwrap();
    assert!(
        next_of(&mut probe, &["joined"], Duration::from_secs(10))
            .await
            .is_some(),
        "the probe joined the room"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    pg.stop();
    let down_at = Instant::now();
    let send = json!({"type": "send", "room": ROOM, "body": "while the database is down", "client_id": "probe-1"});
    probe.send(Message::text(send.to_string())).await.unwrap();
    let answer = next_of(&mut probe, &["error", "ack"], Duration::from_secs(30))
        .await
        .expect("an answer to a send while the database is down, not a closed socket");
    let answered_in = down_at.elapsed();
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["code"], "unavailable", "{answer}");
    assert_eq!(answer["ref"], "probe-1", "{answer}");
    // Stay down a little longer than the pool waits for a connection (10 s), so the
    // members' sends are refused too, not just slow.
    tokio::time::sleep(Duration::from_secs(12).saturating_sub(down_at.elapsed())).await;
    let refused_while_down = members[0]
        .t()
        .errors
        .get("unavailable")
        .copied()
        .unwrap_or(0);
    pg.resume();
    let up_at = Instant::now();

    // The same socket, the same gateway process: the resend is acknowledged.
    let mut acked_after = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked_after.is_none() && Instant::now() < deadline {
        probe.send(Message::text(send.to_string())).await.unwrap();
        let f = next_of(&mut probe, &["error", "ack"], Duration::from_secs(30))
            .await
            .expect("the probe socket stays open");
        if f["type"] == "ack" {
            acked_after = Some(up_at.elapsed());
        } else {
            assert_eq!(f["code"], "unavailable", "{f}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let acked_after = acked_after.expect("sends succeed again once the database is back");
    assert!(
        gw.child.try_wait().unwrap().is_none(),
        "the gateway was not restarted"
    );
    let before = members[0].t().acked.len();
    eventually(
        "the sender acknowledged again",
        Duration::from_secs(30),
        || async { members[0].t().acked.len() > before + 5 },
    )
    .await;
    let (m, tallies) = settle(&w, members, Duration::from_secs(30)).await;
    report(
        "postgres",
        &m,
        &format!(
            "probe_error_in={}ms member_unavailable={} recovered_in={}ms sessions={:?}",
            answered_in.as_millis(),
            refused_while_down,
            acked_after.as_millis(),
            tallies.iter().map(|t| t.sessions).collect::<Vec<_>>()
        ),
    );
    assert!(
        answered_in < Duration::from_secs(15),
        "the refusal came in {answered_in:?}: a hang, not an answer"
    );
    assert!(
        refused_while_down > 0,
        "the member's sends were refused with `unavailable` during the outage"
    );
    assert!(
        tallies.iter().all(|t| t.sessions == 1),
        "no socket was dropped by the outage"
    );
    drop(probe);
    let _ = gw.child.kill();
}

/// The next frame of one of `kinds` (any frame when empty); `None` when the socket closed
/// or `limit` passed.
async fn next_of(ws: &mut Ws, kinds: &[&str], limit: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if kinds.is_empty() || kinds.iter().any(|k| v["type"] == *k) {
                    return Some(v);
                }
            }
            Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) | Err(_) => return None,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// 4. The media disk is full: an upload larger than the free space is refused with a
/// clear error (507 `storage_full`), leaves no partial file behind, and an attachment
/// stored before still downloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_media_disk_refuses_uploads_cleanly() {
    let _serial = SERIAL.lock().await;
    let w = World::new(None).await;
    let media = Tmpfs::mount(&w.dir.path().join("media"), "2m");
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let mut cmd = Command::new(binary("http-app"));
    w.env(&mut cmd, port);
    cmd.env("CONFAB_ALLOWED_ORIGINS", &origin);
    let _app = Proc::spawn("http-app", cmd, w.dir.path());
    wait_ready(port).await;
    let password = "a long fault test password";
    w.db.run(move |c| {
        repo::user::create(
            c,
            &repo::user::NewUser {
                username: "dana".into(),
                display_name: String::new(),
                password: password.into(),
                is_staff: false,
                is_superuser: false,
            },
            4,
        )
    })
    .await
    .unwrap();
    let dana = Browser::plain(&origin);
    dana.sign_in("dana", password).await;
    let page = dana.page("/").await;
    let marker = "name=\"csrf-token\" content=\"";
    let at = page.find(marker).expect("the CSRF meta tag") + marker.len();
    let token = page[at..].split('"').next().unwrap().to_owned();
    let upload = |bytes: Vec<u8>| {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name("photo.png")
            .mime_str("image/png")
            .unwrap();
        dana.http
            .post(format!("{origin}/uploads?room=general"))
            .header("Origin", &origin)
            .header("X-CSRF-Token", &token)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
    };
    let r = upload(noise_png(64, 48)).await.unwrap();
    assert_eq!(r.status(), 201, "a small picture fits");
    let small: Value = r.json().await.unwrap();
    let small_url = format!("{origin}{}", small["url"].as_str().unwrap());
    let files_before = files_under(&media.path);

    // About 3 MB of noise does not compress: more than the 2 MB disk.
    let big = noise_png(1000, 1000);
    let r = upload(big.clone()).await.unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    let files_after = files_under(&media.path);
    let r = dana.http.get(&small_url).send().await.unwrap();
    let still = r.status().as_u16();
    let bytes = r.bytes().await.unwrap();
    println!(
        "faults/disk_full: upload_bytes={} status={status} message={body:?} files_before={} files_after={} existing_download={still}",
        big.len(),
        files_before.len(),
        files_after.len()
    );
    assert!(
        status == 507 && body.contains("storage_full"),
        "a full disk is a clear refusal (507 storage_full), not {status}: {body}"
    );
    assert!(
        body.contains("space") || body.contains("large") || body.contains("storage"),
        "the refusal says why: {body}"
    );
    assert_eq!(files_after, files_before, "no partial file is left");
    assert_eq!(still, 200, "an existing attachment still downloads");
    assert_eq!(bytes.len() as u64, small["size"].as_u64().unwrap());
}

fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out
}

/// A real PNG of random pixels (does not compress).
fn noise_png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |_, _| {
        image::Rgb([rand::random(), rand::random(), rand::random()])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// 5. SIGTERM during heavy traffic: every socket is closed with 1012 and every
/// acknowledged `client_id` is in the database afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_closes_with_1012_and_keeps_every_ack() {
    let _serial = SERIAL.lock().await;
    let w = World::new(None).await;
    let port = free_port();
    let mut gw = w.gateway("gw", port, &[]).await;
    let users = w.users("t", 6).await;
    let members: Vec<Member> = users
        .iter()
        .map(|u| {
            Member::start(Spec {
                reconnect: false,
                ..spec(u, vec![World::ws_url(port)], Some(Duration::from_millis(5)))
            })
        })
        .collect();
    all_live(&members, "every member live", Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let term_at = Instant::now();
    gw.signal("TERM");
    eventually("every socket closed", Duration::from_secs(20), || async {
        members.iter().all(|m| !m.t().closes.is_empty())
    })
    .await;
    let closed_in = term_at.elapsed();
    let exit = tokio::task::spawn_blocking(move || {
        let status = gw.child.wait();
        (gw, status)
    })
    .await
    .unwrap();
    let mut tallies = Vec::new();
    for m in members {
        tallies.push(m.stop().await);
    }
    let stored = w.stored().await;
    let mut lost = 0;
    let mut acked = 0;
    for t in &tallies {
        for (cid, id) in &t.acked {
            acked += 1;
            if stored.get(id).cloned().flatten().as_deref() != Some(cid) {
                lost += 1;
            }
        }
    }
    let codes: Vec<Option<u16>> = tallies.iter().flat_map(|t| t.closes.clone()).collect();
    let m = Measured {
        sent: tallies.iter().map(|t| t.sent).sum(),
        acknowledged: acked,
        stored: stored.len(),
        delivered: tallies.iter().map(|t| t.seen.len()).sum(),
        lost,
        duplicated: tallies.iter().map(|t| t.duplicated + t.out_of_order).sum(),
    };
    report(
        "sigterm",
        &m,
        &format!(
            "closed_in={}ms close_codes={codes:?} exit={:?}",
            closed_in.as_millis(),
            exit.1.as_ref().map(|s| s.code())
        ),
    );
    assert!(
        codes.iter().all(|c| *c == Some(1012)),
        "every client saw 1012: {codes:?}"
    );
    assert!(m.acknowledged > 200, "the traffic was heavy");
    assert!(
        exit.1.as_ref().is_ok_and(|s| s.success()),
        "the gateway exited cleanly: {:?}",
        exit.1
    );
}

/// 6. Mass reconnect: N sockets on one gateway (1,000; `CONFAB_FAULT_SOCKETS` to change),
/// the gateway restarted; the clients come back with jittered exponential back-off and
/// catch up with `since`, while the gateway runs at most `CONFAB_WS_CATCHUP_CONCURRENCY`
/// catch-up reads at once (read back from its `/metrics`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_reconnect_catches_everyone_up_with_bounded_database_work() {
    let _serial = SERIAL.lock().await;
    const LIMIT: usize = 4;
    const MISSED: usize = 20;
    let n: usize = std::env::var("CONFAB_FAULT_SOCKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let w = World::new(None).await;
    let port = free_port();
    let limit = LIMIT.to_string();
    let sockets = n.to_string();
    let extra: [(&str, &str); 3] = [
        ("CONFAB_WS_CATCHUP_CONCURRENCY", &limit),
        ("CONFAB_WS_MAX_SOCKETS_PER_ADDRESS", &sockets),
        ("CONFAB_DATABASE_POOL_SIZE", "8"),
    ];
    let gw = w.gateway("gw-1", port, &extra).await;
    let per_user = 10;
    let users = w.users("m", n.div_ceil(per_user)).await;
    let url = World::ws_url(port);
    let members: Vec<Member> = (0..n)
        .map(|i| {
            Member::start(Spec {
                backoff: (Duration::from_millis(100), Duration::from_secs(5)),
                ..spec(&users[i / per_user], vec![url.clone()], None)
            })
        })
        .collect();
    let opened = Instant::now();
    all_live(&members, "every socket live", Duration::from_secs(180)).await;
    let first_in = opened.elapsed();

    gw.signal("TERM");
    let down_at = Instant::now();
    let mut gw = gw;
    tokio::task::spawn_blocking(move || {
        let _ = gw.child.wait();
    })
    .await
    .unwrap();
    // Messages that arrive while the gateway is down (written by another service).
    let room = w.room_id().await;
    let keys = w.keys.clone();
    let missed: Vec<i64> =
        w.db.run(move |c| {
            (0..MISSED)
                .map(|i| {
                    repo::message::post(
                        c,
                        &keys,
                        &repo::message::NewMessage {
                            room_id: room,
                            author_id: None,
                            kind: domain::model::MessageKind::System,
                            body: format!("missed {i}"),
                            client_id: None,
                        },
                        4000,
                    )
                    .map(|p| p.message.id.0)
                })
                .collect()
        })
        .await
        .unwrap();
    let gw2 = w.gateway("gw-2", port, &extra).await;
    eventually(
        "every socket back and caught up",
        Duration::from_secs(300),
        || async {
            members.iter().all(|m| {
                let t = m.t();
                t.live && t.sessions >= 2 && missed.iter().all(|id| t.seen.contains(id))
            })
        },
    )
    .await;
    let back_in = down_at.elapsed();
    let peak = metric(port, "confab_ws_catchup_peak").await.unwrap_or(-1.0);
    let reads = metric(port, "confab_ws_catchup_reads_total")
        .await
        .unwrap_or(-1.0);
    let mut tallies = Vec::new();
    for m in members {
        tallies.push(m.stop().await);
    }
    let delivered = tallies
        .iter()
        .map(|t| missed.iter().filter(|id| t.seen.contains(id)).count())
        .sum();
    let closes_1012 = tallies
        .iter()
        .filter(|t| t.closes.first() == Some(&Some(1012)))
        .count();
    let m = Measured {
        sent: MISSED as u64,
        acknowledged: missed.len(),
        stored: w.stored().await.len(),
        delivered,
        lost: n * MISSED - delivered,
        duplicated: tallies.iter().map(|t| t.duplicated + t.out_of_order).sum(),
    };
    drop(gw2);
    report(
        "mass_reconnect",
        &m,
        &format!(
            "sockets={n} first_connect={}ms all_back_and_caught_up={}ms closed_1012={closes_1012} catchup_peak={peak}/{LIMIT} catchup_reads={reads}",
            first_in.as_millis(),
            back_in.as_millis()
        ),
    );
    assert_eq!(closes_1012, n, "the restart closed every socket with 1012");
    assert!(
        peak >= 1.0 && peak <= LIMIT as f64,
        "catch-up reads at once: {peak}, bound {LIMIT}"
    );
    assert!(
        reads >= n as f64,
        "every socket's catch-up was counted: {reads}"
    );
}
