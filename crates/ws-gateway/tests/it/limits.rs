use crate::helpers::*;
use domain::model::RoomKind;
use futures_util::SinkExt;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use ws_gateway::GatewayConfig;

#[tokio::test]
async fn bad_input_gets_the_documented_codes_and_others_stay_healthy() {
    let _serial = REDIS_KILL.read().await;
    let w = World::new(default_backend());
    let gw = w
        .gateway(GatewayConfig {
            frames_per_sec: 5.0,
            frames_burst: 10.0,
            ..GatewayConfig::default()
        })
        .await;
    w.room("lobby", RoomKind::Public).await;
    w.room("secret", RoomKind::Private).await;
    let ann = w.person("ann").await;
    let bob = w.person("bob").await;
    let mut bob_ws = Ws::connect(gw.port, &bob).await;
    bob_ws.join("lobby", None).await;

    let mut ann_ws = Ws::connect(gw.port, &ann).await;
    for (frame, code) in [
        ("{not json".to_owned(), "bad_request"),
        (
            json!({"type":"dance","room":"lobby"}).to_string(),
            "bad_request",
        ),
        (
            json!({"type":"send","room":"lobby"}).to_string(),
            "bad_request",
        ),
        (
            json!({"type":"send","room":"secret","body":"hi","client_id":"s1"}).to_string(),
            "forbidden",
        ),
        (
            json!({"type":"join","room":"secret"}).to_string(),
            "forbidden",
        ),
        (
            json!({"type":"join","room":"nowhere"}).to_string(),
            "not_found",
        ),
    ] {
        ann_ws.send_raw(frame.clone()).await;
        let e = ann_ws.next().await;
        assert_eq!(e["type"], "error", "{frame}");
        assert_eq!(e["code"], code, "{frame}");
    }

    // Flooding: beyond the burst, frames are refused with rate_limited.
    for i in 0..30 {
        ann_ws
            .send(json!({"type":"send","room":"lobby","body":"flood","client_id":format!("f{i}")}))
            .await;
    }
    let mut codes = Vec::new();
    for _ in 0..30 {
        codes.push(
            ann_ws.next().await["code"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        );
    }
    assert!(
        codes.iter().any(|c| c == "rate_limited"),
        "flooding is refused: {codes:?}"
    );

    // Bob is unaffected: he still talks and is answered.
    let id = bob_ws.post("lobby", "still here", "b1").await;
    assert_eq!(bob_ws.next().await["id"], id);

    // 1 MiB in one frame: too_large, then close 1009.
    let mut big = Ws::connect(gw.port, &ann).await;
    let payload =
        json!({"type":"send","room":"lobby","body":"x".repeat(1 << 20),"client_id":"big"});
    // The server may close before reading all of it; the write result does not matter.
    let _ = big.stream.send(Message::text(payload.to_string())).await;
    let e = big.next().await;
    assert_eq!(e["code"], "too_large");
    assert_eq!(big.closed(Duration::from_secs(5)).await, Some(1009));

    // The same bytes split into continuation frames are counted after joining.
    let mut split = Ws::connect(gw.port, &ann).await;
    let text = json!({"type":"send","room":"lobby","body":"y".repeat(200_000),"client_id":"split"})
        .to_string();
    let chunks: Vec<&[u8]> = text.as_bytes().chunks(16 * 1024).collect();
    use tokio_tungstenite::tungstenite::protocol::frame::{
        Frame,
        coding::{Data, OpCode},
    };
    for (i, chunk) in chunks.iter().enumerate() {
        let op = if i == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        let frame = Frame::message(chunk.to_vec(), op, i + 1 == chunks.len());
        if split.stream.send(Message::Frame(frame)).await.is_err() {
            break;
        }
    }
    let e = split.next().await;
    assert_eq!(e["code"], "too_large");
    assert_eq!(split.closed(Duration::from_secs(5)).await, Some(1009));

    assert_eq!(http_get(gw.port, "/readyz").await.0, 200);
    let id = bob_ws.post("lobby", "and still", "b2").await;
    assert_eq!(bob_ws.next().await["id"], id);
    gw.stop().await;
}

#[tokio::test]
async fn a_slow_reader_is_dropped_and_nobody_else_waits() {
    let _serial = REDIS_KILL.read().await;
    let w = World::new(default_backend());
    // The default queue: a smaller one leaves the fast reader only milliseconds of slack,
    // which a loaded 2-core machine's scheduler can take from it.
    let queue = 256;
    // Rate limits out of the way: an optimised build posts the 10,000 messages faster
    // than `fast_config`'s 1,000 frames/s, and this test is about the readers.
    let unlimited = 1_000_000.0;
    let gw = w
        .gateway(GatewayConfig {
            outbound_queue: queue,
            frames_per_sec: unlimited,
            frames_burst: unlimited,
            sends_per_sec: unlimited,
            sends_burst: unlimited,
            user_sends_per_sec: unlimited,
            user_sends_burst: unlimited,
            ..GatewayConfig::default()
        })
        .await;
    w.room("lobby", RoomKind::Public).await;
    let ann = w.person("ann").await;
    let bob = w.person("bob").await;
    let sid = w.person("sid").await;
    let mut ann_ws = Ws::connect(gw.port, &ann).await;
    let mut bob_ws = Ws::connect(gw.port, &bob).await;
    ann_ws.join("lobby", None).await;
    bob_ws.join("lobby", None).await;

    // Sid reads through a tiny receive buffer and then stops reading altogether.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let tcp = socket
        .connect(([127, 0, 0, 1], gw.port).into())
        .await
        .expect("connect");
    let (stream, _) = tokio_tungstenite::client_async(
        request(gw.port, Some(ORIGIN), Some(&sid.cookie)),
        tokio_tungstenite::MaybeTlsStream::Plain(tcp),
    )
    .await
    .expect("upgrade");
    let mut sid_ws = Ws { stream };
    assert_eq!(sid_ws.next().await["type"], "hello");
    sid_ws.join("lobby", None).await;
    assert_eq!(gw.gateway.connections(), 3);

    // Bob reads everything, concurrently, noting how long each message took to reach him
    // (the sender's clock is in the body).
    let n = 10_000;
    let rss_before = rss_kib();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut latencies = Vec::with_capacity(n);
        while got.len() < n {
            let f = bob_ws.next().await;
            if f["type"] == "message" {
                got.push(f["id"].as_i64().expect("id"));
                let sent_at: u128 = f["body"]
                    .as_str()
                    .and_then(|b| b.split(':').next())
                    .and_then(|t| t.parse().ok())
                    .expect("timestamped body");
                latencies.push(now_micros().saturating_sub(sent_at));
            }
        }
        (got, latencies, bob_ws)
    });
    let pad = "z".repeat(300);
    let mut sent = Vec::new();
    let started = Instant::now();
    for i in 0..n {
        let body = format!("{}:{pad}", now_micros());
        sent.push(ann_ws.post("lobby", &body, &format!("s{i}")).await);
        let echo = ann_ws.next().await;
        assert_eq!(echo["type"], "message");
    }
    let (got, mut latencies, _bob_ws) = tokio::time::timeout(Duration::from_secs(120), reader)
        .await
        .expect("bob keeps up")
        .expect("reader");
    assert_eq!(got, sent, "the fast reader got everything, in order");
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;

    // Sid fell more than the queue behind and was disconnected.
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.gateway.connections() > 2 {
        assert!(Instant::now() < deadline, "the slow reader was not dropped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // When Sid reads again, the socket ends (1008 if the close frame got through).
    let code = sid_ws.closed(Duration::from_secs(10)).await;
    assert!(matches!(code, None | Some(1008)), "{code:?}");
    eprintln!(
        "slow-reader: {n} messages to 2 readers in {elapsed:?}; the reader's latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
         the slow one was dropped with its queue capped at {queue} frames; test process RSS {rss_before} KiB -> {} KiB",
        pct(0.5),
        pct(0.99),
        pct(1.0),
        rss_kib()
    );
    gw.stop().await;
}

#[tokio::test]
async fn sigterm_closes_every_socket_with_1012_and_exits() {
    let _serial = REDIS_KILL.read().await;
    require_redis().await;
    let w = World::new(default_backend());
    let ann = w.person("ann").await;
    let mut p = w.spawn_process();
    wait_ready(p.port).await;
    let mut a = Ws::connect(p.port, &ann).await;
    let mut b = Ws::connect(p.port, &ann).await;
    p.terminate();
    assert_eq!(a.closed(Duration::from_secs(5)).await, Some(1012));
    assert_eq!(b.closed(Duration::from_secs(5)).await, Some(1012));
    let status = p.wait();
    assert!(status.success(), "clean exit: {status:?}");
}

fn now_micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros()
}

/// This process's resident memory, from /proc (the gateway runs in it).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Opens a socket as `who` from `address` (told by the trusted local proxy in
/// `X-Forwarded-For`); `Err` carries the refusal's status and `Retry-After`.
async fn open_from(port: u16, who: &Person, address: &str) -> Result<Ws, (u16, Option<String>)> {
    let mut req = request(port, Some(ORIGIN), Some(&who.cookie));
    req.headers_mut()
        .insert("X-Forwarded-For", address.parse().expect("header value"));
    match tokio_tungstenite::connect_async(req).await {
        Ok((stream, _)) => {
            let mut ws = Ws { stream };
            assert_eq!(ws.next().await["type"], "hello");
            Ok(ws)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err((
            resp.status().as_u16(),
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        )),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[tokio::test]
async fn sockets_are_limited_per_user_and_per_address_before_the_upgrade() {
    let _serial = REDIS_KILL.read().await;
    let w = World::new(default_backend());
    let gw = w
        .gateway(GatewayConfig {
            max_sockets_per_user: 2,
            max_sockets_per_address: 3,
            ..fast_config()
        })
        .await;
    w.room("lobby", RoomKind::Public).await;
    let ann = w.person("ann").await;
    let bob = w.person("bob").await;
    let home = "203.0.113.10";
    let mut ann1 = open_from(gw.port, &ann, home).await.expect("first");
    let ann2 = open_from(gw.port, &ann, "198.51.100.20")
        .await
        .expect("second");
    // A third socket for Ann, from anywhere: 429 with Retry-After, no upgrade.
    let (status, retry) = open_from(gw.port, &ann, "192.0.2.30")
        .await
        .err()
        .expect("refused");
    assert_eq!(status, 429);
    assert!(
        retry
            .as_deref()
            .and_then(|r| r.parse::<u64>().ok())
            .is_some_and(|s| s >= 1),
        "{retry:?}"
    );
    // The address is shared: Bob gets its last slot, then it is full for him too.
    let _bob1 = open_from(gw.port, &bob, home).await.expect("bob's first");
    let _bob_elsewhere = open_from(gw.port, &bob, "192.0.2.31")
        .await
        .expect("another address");
    let (status, retry) = open_from(gw.port, &bob, home)
        .await
        .err()
        .expect("the address is full");
    assert_eq!(status, 429);
    assert!(retry.is_some());
    assert_eq!(
        gw.gateway.connections(),
        4,
        "refused handshakes hold nothing"
    );

    // The sockets already open are unaffected.
    ann1.join("lobby", None).await;
    let id = ann1.post("lobby", "still here", "a1").await;
    assert_eq!(ann1.next().await["id"], id);

    // Closing one frees its slot.
    drop(ann2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.gateway.connections() > 3 {
        assert!(
            Instant::now() < deadline,
            "the closed socket was not released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    open_from(gw.port, &ann, "192.0.2.30")
        .await
        .expect("a slot was freed");
    gw.stop().await;
}

#[tokio::test]
async fn joins_are_rate_limited_per_connection() {
    let _serial = REDIS_KILL.read().await;
    let w = World::new(default_backend());
    let gw = w
        .gateway(GatewayConfig {
            joins_per_sec: 1.0,
            joins_burst: 3.0,
            ..fast_config()
        })
        .await;
    w.room("lobby", RoomKind::Public).await;
    w.room("attic", RoomKind::Public).await;
    let ann = w.person("ann").await;
    let mut ws = Ws::connect(gw.port, &ann).await;
    ws.join("lobby", None).await;
    ws.join("attic", None).await;
    ws.join("lobby", None).await;
    ws.send(json!({"type":"join","room":"attic"})).await;
    let e = ws.next().await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("rate_limited")),
        "{e}"
    );
    // The socket stays open, and the rooms joined before keep working.
    let id = ws.post("lobby", "after the limit", "j1").await;
    let m = ws.next().await;
    assert_eq!(
        (m["type"].as_str(), m["id"].as_i64()),
        (Some("message"), Some(id))
    );
    // Another socket has its own budget.
    let mut other = Ws::connect(gw.port, &ann).await;
    other.join("attic", None).await;
    // After a second, one more join is allowed again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ws.join("attic", None).await;
    gw.stop().await;
}

#[tokio::test]
async fn continuation_frames_are_joined_before_the_size_limit() {
    use tokio_tungstenite::tungstenite::protocol::frame::{
        Frame,
        coding::{Data, OpCode},
    };
    async fn send_split(ws: &mut Ws, text: &str, chunk: usize) {
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(chunk).collect();
        for (i, part) in chunks.iter().enumerate() {
            let op = if i == 0 {
                OpCode::Data(Data::Text)
            } else {
                OpCode::Data(Data::Continue)
            };
            let frame = Frame::message(part.to_vec(), op, i + 1 == chunks.len());
            if ws.stream.send(Message::Frame(frame)).await.is_err() {
                break;
            }
        }
    }
    let _serial = REDIS_KILL.read().await;
    let mut w = World::new(default_backend());
    w.settings.max_frame_bytes = 8 * 1024;
    w.settings.max_message_chars = 100_000;
    let gw = w.gateway(fast_config()).await;
    w.room("lobby", RoomKind::Public).await;
    let ann = w.person("ann").await;
    let mut ws = Ws::connect(gw.port, &ann).await;
    ws.join("lobby", None).await;
    // Under the limit in four pieces: joined into one frame and accepted.
    let small = json!({"type":"send","room":"lobby","body":"s".repeat(6000),"client_id":"ok"});
    send_split(&mut ws, &small.to_string(), 1600).await;
    let ack = ws.next().await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let kept = ack["id"].as_i64().expect("id");
    assert_eq!(ws.next().await["body"].as_str().map(str::len), Some(6000));
    // Over the limit only once joined: every piece is small, the whole is not.
    let big = json!({"type":"send","room":"lobby","body":"b".repeat(12_000),"client_id":"big"});
    send_split(&mut ws, &big.to_string(), 2000).await;
    let e = ws.next().await;
    assert_eq!(e["code"], "too_large", "{e}");
    assert_eq!(ws.closed(Duration::from_secs(5)).await, Some(1009));
    // What was accepted before stays; the refused one was never stored.
    let mut again = Ws::connect(gw.port, &ann).await;
    let joined = again.join("lobby", None).await;
    assert_eq!(ids(&joined["messages"]), vec![kept]);
    gw.stop().await;
}

/// A person whose session has the given lifetimes (the shared helper's last an hour).
async fn person_with_lifetimes(
    w: &World,
    name: &str,
    idle_secs: u64,
    absolute_secs: u64,
) -> Person {
    use domain::repo::{self, session::Lifetimes, user::NewUser};
    let name = name.to_owned();
    let (user, key, session_id) = w
        .db()
        .run(move |c| {
            let user = match repo::user::find_by_username(c, &name)? {
                Some(u) => u,
                None => repo::user::create(
                    c,
                    &NewUser {
                        username: name,
                        display_name: String::new(),
                        password: "correct horse battery".into(),
                        is_staff: false,
                        is_superuser: false,
                    },
                    4,
                )?,
            };
            let (key, s) = repo::session::create(
                c,
                user.id,
                "test",
                "127.0.0.1",
                "",
                Lifetimes {
                    idle_secs,
                    absolute_secs,
                },
            )?;
            Ok((user, key, s.id))
        })
        .await
        .expect("user and session");
    let cookie = signed_cookie(&w.settings, key.expose());
    Person {
        user,
        key,
        session_id,
        cookie,
    }
}

#[tokio::test]
async fn sessions_that_expire_close_their_live_sockets() {
    use domain::repo::{self, session::Lifetimes};
    let _serial = REDIS_KILL.read().await;
    let w = World::new(default_backend());
    // The periodic revalidation is far away: only the expiry watcher can close in time.
    let gw = w
        .gateway(GatewayConfig {
            revalidate_interval: Duration::from_secs(600),
            ..fast_config()
        })
        .await;
    w.room("lobby", RoomKind::Public).await;
    // Idle expiry: nobody uses the session for a second.
    let idle = person_with_lifetimes(&w, "ann", 1, 3600).await;
    let lasting = person_with_lifetimes(&w, "ann", 3600, 7200).await;
    let mut idle_ws = Ws::connect(gw.port, &idle).await;
    let mut lasting_ws = Ws::connect(gw.port, &lasting).await;
    lasting_ws.join("lobby", None).await;
    let started = Instant::now();
    assert_eq!(idle_ws.closed(Duration::from_secs(5)).await, Some(4001));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The same user's other session is untouched.
    let id = lasting_ws.post("lobby", "still signed in", "l1").await;
    assert_eq!(lasting_ws.next().await["id"], id);

    // Absolute expiry: use keeps pushing the idle expiry, never past the absolute one.
    let busy = person_with_lifetimes(&w, "bob", 1, 3).await;
    let mut busy_ws = Ws::connect(gw.port, &busy).await;
    busy_ws.join("lobby", None).await;
    let started = Instant::now();
    let lifetimes = Lifetimes {
        idle_secs: 1,
        absolute_secs: 3,
    };
    let sid = busy.session_id;
    while started.elapsed() < Duration::from_millis(2500) {
        w.db()
            .run(move |c| repo::session::touch(c, sid, lifetimes))
            .await
            .expect("touch");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Past the idle second, still open: the page views kept it alive.
    let id = busy_ws.post("lobby", "kept alive", "k1").await;
    assert_eq!(busy_ws.next().await["id"], id);
    assert_eq!(busy_ws.closed(Duration::from_secs(5)).await, Some(4001));
    let lived = started.elapsed();
    assert!(lived < Duration::from_millis(4500), "{lived:?}");
    // A new handshake with the expired session is refused.
    assert_eq!(
        refused(gw.port, Some(ORIGIN), Some(&busy.cookie)).await,
        401
    );
    gw.stop().await;
}
