//! The bare upper bound: a minimal tokio-tungstenite broadcast server with no auth, no
//! persistence, no Redis. It speaks just enough of protocol v1 (`hello`, `join` →
//! `joined`, `send` → `ack` + `message` to the room) for every loadgen scenario to run
//! against it unchanged, so each run can report Confab / bound ratios.
//!
//! It keeps what any honest broadcast server needs, and no more: a bounded outbound queue
//! per socket (a socket that does not read is dropped, never buffered forever), one
//! serialisation per message shared by every receiver, write coalescing per socket, and
//! the last messages of each room in memory so that `join … since` works for `reconnect`.

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes, protocol::WebSocketConfig};

/// Messages of a room kept for `join … since` (the reconnect scenario's catch-up).
const RING: usize = 4096;
/// Largest `joined` page, as Confab's (`more: true` asks for the next one).
const PAGE: usize = 200;
/// Frames waiting for one socket before it counts as too slow (Confab's default).
const OUTBOUND_QUEUE: usize = 256;

/// 4 KiB read buffers: the configuration the issue's idle-memory figure was taken with.
/// Frames are buffered up to 64 KiB (Confab's own write high-water mark) and written by
/// the flush after each batch: with tungstenite's `write_buffer_size(0)` every frame would
/// be its own `write` syscall, and the bound would lose to Confab's coalesced writes on
/// transport alone. An empty write buffer holds no allocation, so idle memory is the same.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(64 * 1024)
}

#[derive(Default)]
struct Room {
    next_id: i64,
    subs: Vec<(u64, mpsc::Sender<Utf8Bytes>)>,
    ring: VecDeque<(i64, Utf8Bytes)>,
}

#[derive(Default)]
struct State {
    // std Mutex, not tokio's: no critical section awaits (sends are `try_send`).
    rooms: Mutex<HashMap<String, Arc<Mutex<Room>>>>,
    next_conn: std::sync::atomic::AtomicU64,
}

impl State {
    fn room(&self, slug: &str) -> Arc<Mutex<Room>> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        rooms.entry(slug.to_owned()).or_default().clone()
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum In {
    Join {
        room: String,
        since: Option<i64>,
    },
    Send {
        room: String,
        body: String,
        client_id: String,
    },
    Leave {
        room: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Serialize)]
struct Author<'a> {
    username: &'a str,
    display_name: &'a str,
}

#[derive(Serialize)]
struct Out<'a> {
    #[serde(rename = "type")]
    frame: &'static str,
    id: i64,
    room: &'a str,
    author: Author<'a>,
    kind: &'static str,
    body: &'a str,
    ts: i64,
    client_id: &'a str,
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Serves until the listener fails. Each socket is its own task.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    let state = Arc::new(State::default());
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            if let Ok(ws) =
                tokio_tungstenite::accept_async_with_config(stream, Some(ws_config())).await
            {
                connection(ws, state).await;
            }
        });
    }
}

async fn connection(
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    state: Arc<State>,
) {
    let conn = state
        .next_conn
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let username = format!("u{conn}");
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(OUTBOUND_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            // Coalesce: queue everything already waiting, then one flush.
            if sink.feed(Message::Text(first)).await.is_err() {
                return;
            }
            while let Ok(more) = rx.try_recv() {
                if sink.feed(Message::Text(more)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let hello = serde_json::json!({
        "type": "hello", "protocol": 1,
        "user": {"username": username, "display_name": username}, "online": []
    });
    if tx.try_send(hello.to_string().into()).is_err() {
        return;
    }
    let mut following: Vec<Arc<Mutex<Room>>> = Vec::new();
    while let Some(Ok(frame)) = stream.next().await {
        let text = match frame {
            Message::Text(t) => t,
            Message::Close(_) => break,
            _ => continue,
        };
        let Ok(msg) = serde_json::from_str::<In>(&text) else {
            let _ = tx.try_send(r#"{"type":"error","code":"bad_request"}"#.into());
            continue;
        };
        match msg {
            In::Join { room: slug, since } => {
                let room = state.room(&slug);
                let mut r = room.lock().unwrap_or_else(|e| e.into_inner());
                let (messages, more) = match since {
                    // The page and the subscription are taken under one lock, so no
                    // message falls between them.
                    Some(since) => {
                        let after: Vec<&Utf8Bytes> = r
                            .ring
                            .iter()
                            .filter(|(id, _)| *id > since)
                            .map(|(_, m)| m)
                            .collect();
                        let more = after.len() > PAGE;
                        (
                            after.into_iter().take(PAGE).cloned().collect::<Vec<_>>(),
                            more,
                        )
                    }
                    None => (
                        r.ring
                            .iter()
                            .skip(r.ring.len().saturating_sub(50))
                            .map(|(_, m)| m.clone())
                            .collect(),
                        false,
                    ),
                };
                let body: Vec<&str> = messages.iter().map(|m| m.as_str()).collect();
                let joined = format!(
                    r#"{{"type":"joined","room":{},"role":"member","messages":[{}],"more":{more},"older":false}}"#,
                    serde_json::Value::from(slug.as_str()),
                    body.join(",")
                );
                if tx.try_send(joined.into()).is_err() {
                    break;
                }
                if !more && !r.subs.iter().any(|(c, _)| *c == conn) {
                    r.subs.push((conn, tx.clone()));
                    following.push(room.clone());
                }
            }
            In::Leave { room: slug } => {
                let room = state.room(&slug);
                room.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .subs
                    .retain(|(c, _)| *c != conn);
                following.retain(|r| !Arc::ptr_eq(r, &room));
                let _ = tx.try_send(
                    format!(
                        r#"{{"type":"left","room":{}}}"#,
                        serde_json::Value::from(slug)
                    )
                    .into(),
                );
            }
            In::Send {
                room: slug,
                body,
                client_id,
            } => {
                let room = state.room(&slug);
                let mut r = room.lock().unwrap_or_else(|e| e.into_inner());
                r.next_id += 1;
                let id = r.next_id;
                let ts = now_micros();
                let ack = format!(
                    r#"{{"type":"ack","client_id":{},"id":{id},"ts":{ts}}}"#,
                    serde_json::Value::from(client_id.as_str())
                );
                if tx.try_send(ack.into()).is_err() {
                    break;
                }
                let out = Out {
                    frame: "message",
                    id,
                    room: &slug,
                    author: Author {
                        username: &username,
                        display_name: &username,
                    },
                    kind: "text",
                    body: &body,
                    ts,
                    client_id: &client_id,
                };
                // Serialised once; every receiver shares the same bytes.
                let frame: Utf8Bytes = match serde_json::to_string(&out) {
                    Ok(s) => s.into(),
                    Err(_) => continue,
                };
                // A receiver whose queue is full is too slow: drop it, as Confab does.
                r.subs.retain(|(_, s)| s.try_send(frame.clone()).is_ok());
                r.ring.push_back((id, frame));
                if r.ring.len() > RING {
                    r.ring.pop_front();
                }
            }
            In::Other => {}
        }
    }
    for room in following {
        room.lock()
            .unwrap_or_else(|e| e.into_inner())
            .subs
            .retain(|(c, _)| *c != conn);
    }
    drop(tx);
    let _ = writer.await;
}
