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
    let queue = 32;
    let gw = w
        .gateway(GatewayConfig {
            outbound_queue: queue,
            ..fast_config()
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
