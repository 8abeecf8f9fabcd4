//! One loadgen socket: connect (from a chosen loopback source address), wait for
//! `hello`, `join` (paging through `more`), then read every frame, counting acks, unique
//! and duplicated deliveries and end-to-end latency; a sender's writer half posts at the
//! rate it is told.
//!
//! Each message body is `"{sender} {seq} {sent_at_us} {padding}"`: the sender's id and
//! sequence number identify it (loss and duplicates), the timestamp (microseconds since
//! the run's epoch, one clock for every socket of the process) gives the latency.

use crate::prep::Ident;
use anyhow::{Context as _, bail};
use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use hdrhistogram::Histogram;
use serde::Deserialize;
use std::{
    borrow::Cow,
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};
use tokio::{net::TcpSocket, sync::watch};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Message, client::IntoClientRequest, http::HeaderValue, protocol::WebSocketConfig,
    },
};

pub type Ws = WebSocketStream<tokio::net::TcpStream>;

/// Latency shards: a socket records into shard `index % SHARDS`, so the two runtime
/// threads rarely meet on one lock.
const SHARDS: usize = 16;

/// Where sockets go.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    pub addr: SocketAddr,
    pub origin: Option<String>,
}

impl Endpoint {
    pub async fn parse(url: &str, origin: Option<String>) -> anyhow::Result<Endpoint> {
        let req = url.into_client_request().context("gateway URL")?;
        let host = req.uri().host().context("gateway URL without host")?;
        let port = req.uri().port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((host, port))
            .await?
            .find(SocketAddr::is_ipv4)
            .context("gateway host has no IPv4 address")?;
        Ok(Endpoint {
            url: url.to_owned(),
            addr,
            origin,
        })
    }
}

/// Counters shared by every socket of a run.
pub struct Counters {
    pub epoch: Instant,
    pub sent: AtomicU64,
    pub acks: AtomicU64,
    pub errors: AtomicU64,
    /// Deliveries owed: each ack adds the number of sockets following its room.
    pub expected: AtomicU64,
    pub unique: AtomicU64,
    pub duplicates: AtomicU64,
    pub closed: AtomicU64,
    /// Gateways the sockets are spread over (socket `i` on endpoint `i % gateways`).
    gateways: usize,
    latency: Vec<Mutex<Latency>>,
}

/// Latencies of one period, split by where the receiving socket is: on the sender's
/// gateway, or on another one (the message crossed the bus).
pub struct Latency {
    pub same: Histogram<u64>,
    pub other: Histogram<u64>,
}

impl Latency {
    fn new() -> Latency {
        Latency {
            same: histogram(),
            other: histogram(),
        }
    }

    /// Every latency, wherever the socket was.
    pub fn all(&self) -> Histogram<u64> {
        let mut all = self.same.clone();
        let _ = all.add(&self.other);
        all
    }
}

pub fn histogram() -> Histogram<u64> {
    // 1 µs .. 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant, valid histogram bounds")
}

impl Counters {
    /// Counters for sockets spread over `gateways` endpoints.
    pub fn new(gateways: usize) -> Arc<Counters> {
        Arc::new(Counters {
            epoch: Instant::now(),
            sent: AtomicU64::new(0),
            acks: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            unique: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            gateways: gateways.max(1),
            latency: (0..SHARDS).map(|_| Mutex::new(Latency::new())).collect(),
        })
    }

    pub fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Takes the latencies recorded since the last call (and starts afresh).
    pub fn take_latency(&self) -> Latency {
        let mut all = Latency::new();
        for shard in &self.latency {
            let mut h = shard.lock().unwrap_or_else(|e| e.into_inner());
            let _ = all.same.add(&h.same);
            let _ = all.other.add(&h.other);
            h.same.reset();
            h.other.reset();
        }
        all
    }

    /// Records one latency seen by socket `receiver` of a message from socket `sender`
    /// (in the traffic scenarios a sender's id is its socket's index).
    fn record_latency(&self, receiver: usize, sender: u32, us: u64) {
        let mut h = self.latency[receiver % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let same = sender as usize % self.gateways == receiver % self.gateways;
        let h = if same { &mut h.same } else { &mut h.other };
        h.saturating_record(us.max(1));
    }
}

/// Which message ids a socket has seen, per sender (a growable bitset).
#[derive(Debug, Default)]
struct Seen(Vec<u64>);

impl Seen {
    /// True when `seq` is new.
    fn insert(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        let new = self.0[word] & (1 << bit) == 0;
        self.0[word] |= 1 << bit;
        new
    }
}

/// What a socket knows; kept across a reconnect.
#[derive(Debug)]
pub struct SockState {
    pub index: usize,
    pub room: String,
    /// Sockets following the room: the deliveries one ack of this socket owes.
    pub room_sockets: u64,
    pub last_id: i64,
    /// Unique loadgen messages this socket received (the reconnect check reads it).
    pub unique: Arc<AtomicU64>,
    seen: HashMap<u32, Seen>,
}

impl SockState {
    pub fn new(index: usize, room: String, room_sockets: u64) -> SockState {
        SockState {
            index,
            room,
            room_sockets,
            last_id: 0,
            unique: Arc::new(AtomicU64::new(0)),
            seen: HashMap::new(),
        }
    }

    /// Counts one delivered body; `live` ones (not history) also give a latency.
    fn record(&mut self, body: &str, live: bool, c: &Counters) {
        let mut parts = body.splitn(4, ' ');
        let (Some(Ok(sender)), Some(Ok(seq)), Some(Ok(at))) = (
            parts.next().map(str::parse::<u32>),
            parts.next().map(str::parse::<u64>),
            parts.next().map(str::parse::<u64>),
        ) else {
            return; // not one of ours
        };
        if self.seen.entry(sender).or_default().insert(seq) {
            c.unique.fetch_add(1, Relaxed);
            self.unique.fetch_add(1, Relaxed);
            if live {
                c.record_latency(self.index, sender, c.now_us().saturating_sub(at));
            }
        } else {
            c.duplicates.fetch_add(1, Relaxed);
        }
    }

    /// Handles one frame after the join.
    fn handle(&mut self, text: &str, c: &Counters) {
        let Ok(f) = serde_json::from_str::<Frame<'_>>(text) else {
            return;
        };
        match &*f.kind {
            "message" => {
                if let Some(id) = f.id {
                    self.last_id = self.last_id.max(id);
                }
                if let Some(body) = f.body {
                    self.record(&body, true, c);
                }
            }
            "ack" => {
                c.acks.fetch_add(1, Relaxed);
                c.expected.fetch_add(self.room_sockets, Relaxed);
            }
            "error" => {
                c.errors.fetch_add(1, Relaxed);
            }
            _ => {}
        }
    }
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    id: Option<i64>,
    #[serde(default, borrow)]
    body: Option<Cow<'a, str>>,
    #[serde(default)]
    more: Option<bool>,
    #[serde(default, borrow)]
    messages: Option<Vec<HistoryMessage<'a>>>,
    #[serde(default)]
    code: Option<String>,
}

#[derive(Deserialize)]
struct HistoryMessage<'a> {
    id: i64,
    #[serde(borrow)]
    body: Cow<'a, str>,
}

fn client_config() -> WebSocketConfig {
    // Small buffers: thousands of client sockets share the machine with the servers.
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
}

/// Opens a socket from `source` (a 127.0.0.x address, so tens of thousands of sockets do
/// not exhaust one address's ports) and waits for `hello`.
pub async fn connect(ep: &Endpoint, ident: &Ident, source: Option<IpAddr>) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = source {
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(ep.addr).await?;
    stream.set_nodelay(true)?;
    let mut req = ep.url.as_str().into_client_request()?;
    if let Some(origin) = &ep.origin {
        req.headers_mut()
            .insert("Origin", HeaderValue::from_str(origin)?);
    }
    if let Some(cookie) = &ident.cookie {
        req.headers_mut()
            .insert("Cookie", HeaderValue::from_str(cookie)?);
    }
    // A server out of descriptors leaves connections in its accept queue: the TCP connect
    // succeeds and the upgrade never answers. Count that as a failed connect.
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(30),
        tokio_tungstenite::client_async_with_config(req, stream, Some(client_config())),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no answer to the upgrade within 30 s"))??;
    loop {
        let text = next_text(&mut ws).await?;
        if text.contains("\"hello\"") {
            return Ok(ws);
        }
    }
}

async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Err(_) => bail!("no frame within 30 s"),
            Ok(Some(Ok(Message::Text(t)))) => return Ok(t.as_str().to_owned()),
            Ok(Some(Ok(Message::Close(f)))) => bail!("closed by the server: {f:?}"),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) => bail!("closed"),
        }
    }
}

/// Joins the socket's room. With `since`, the missed messages count as deliveries (the
/// catch-up), paging while the server says `more`.
pub async fn join(
    ws: &mut Ws,
    st: &mut SockState,
    since: Option<i64>,
    c: &Counters,
) -> anyhow::Result<()> {
    let mut since = since;
    loop {
        let frame = match since {
            Some(s) => serde_json::json!({"type": "join", "room": st.room, "since": s}),
            None => serde_json::json!({"type": "join", "room": st.room}),
        };
        ws.send(Message::text(frame.to_string())).await?;
        let more = loop {
            let text = next_text(ws).await?;
            let Ok(f) = serde_json::from_str::<Frame<'_>>(&text) else {
                continue;
            };
            match &*f.kind {
                "joined" => {
                    for m in f.messages.unwrap_or_default() {
                        st.last_id = st.last_id.max(m.id);
                        if since.is_some() {
                            st.record(&m.body, false, c);
                        }
                    }
                    break f.more.unwrap_or(false);
                }
                "error" => bail!("join refused: {:?}", f.code),
                _ => {}
            }
        };
        if !more {
            return Ok(());
        }
        since = Some(st.last_id);
    }
}

/// Reads until told to stop (or the socket closes), then gives the state back.
pub async fn read_loop(
    mut stream: SplitStream<Ws>,
    mut st: SockState,
    c: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> SockState {
    loop {
        tokio::select! {
            biased;
            r = stop.wait_for(|s| *s) => { let _ = r; break }
            f = stream.next() => match f {
                Some(Ok(Message::Text(t))) => st.handle(t.as_str(), &c),
                Some(Ok(Message::Close(_)) | Err(_)) | None => {
                    c.closed.fetch_add(1, Relaxed);
                    break;
                }
                Some(Ok(_)) => {}
            }
        }
    }
    st
}

/// A message body of about `len` bytes.
pub fn body(sender: u32, seq: u64, at_us: u64, len: usize) -> String {
    let mut b = format!("{sender} {seq} {at_us} ");
    while b.len() < len {
        b.push('x');
    }
    b
}

/// Where in its period sender `sender` posts, as a fraction of a period: the golden-ratio
/// sequence spreads any number of senders evenly, whatever their ids' spacing.
fn phase(sender: u32) -> f64 {
    (f64::from(sender) * 0.618_033_988_749_895).fract()
}

/// Posts at `rate` messages/s (told through the watch; a negative rate ends it).
/// Open loop: it does not wait for acks, so a slow server shows up as latency.
/// Each sender starts a rate at its own [`phase`]: senders that all started together
/// would post in the same tick, and a light 1,000 deliveries/s would arrive as one burst
/// of every room's message twice a second.
pub async fn send_loop(
    mut sink: SplitSink<Ws, Message>,
    sender: u32,
    room: String,
    body_len: usize,
    c: Arc<Counters>,
    mut rate: watch::Receiver<f64>,
) {
    let mut seq = 0u64;
    let phase = phase(sender);
    let mut credit = phase;
    let mut last = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = rate.changed() => {
                if r.is_err() { return }
                credit = phase;
                last = Instant::now();
            }
        }
        let r = *rate.borrow();
        if r < 0.0 {
            return;
        }
        let now = Instant::now();
        credit += r * now.duration_since(last).as_secs_f64();
        last = now;
        // At most one second of backlog after a stall, so a step ends near its rate.
        credit = credit.min(r.max(1.0));
        let mut wrote = false;
        while credit >= 1.0 {
            let frame = format!(
                r#"{{"type":"send","room":"{room}","body":"{}","client_id":"c{sender}-{seq}"}}"#,
                body(sender, seq, c.now_us(), body_len)
            );
            if sink.feed(Message::text(frame)).await.is_err() {
                return;
            }
            c.sent.fetch_add(1, Relaxed);
            seq += 1;
            credit -= 1.0;
            wrote = true;
        }
        if wrote && sink.flush().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_post_at_spread_phases() {
        // The fanout shape's senders: the first member of each of 10 rooms of 50.
        let mut phases: Vec<f64> = (0..10).map(|room| phase(room * 50)).collect();
        phases.sort_by(f64::total_cmp);
        assert!(phases.iter().all(|p| (0.0..1.0).contains(p)));
        let closest = phases.windows(2).map(|w| w[1] - w[0]).fold(1.0, f64::min);
        assert!(closest > 0.05, "phases bunch up: {phases:?}");
    }

    #[test]
    fn duplicates_and_foreign_bodies_are_told_apart() {
        let c = Counters::new(1);
        let mut st = SockState::new(0, "r".into(), 1);
        let b = body(3, 7, c.now_us(), 40);
        assert!(b.len() >= 40);
        st.record(&b, true, &c);
        st.record(&b, true, &c);
        st.record("hello there", true, &c);
        st.record(&body(3, 8, 0, 0), false, &c);
        assert_eq!(c.unique.load(Relaxed), 2);
        assert_eq!(c.duplicates.load(Relaxed), 1);
        assert_eq!(c.take_latency().all().len(), 1);
        assert_eq!(c.take_latency().all().len(), 0, "taken and reset");
    }

    #[test]
    fn latencies_are_split_by_the_receivers_gateway() {
        // Two gateways: socket i is on gateway i % 2; sender 3 is on gateway 1.
        let c = Counters::new(2);
        let (mut on_1, mut on_0) = (
            SockState::new(5, "r".into(), 2),
            SockState::new(4, "r".into(), 2),
        );
        on_1.record(&body(3, 0, 0, 0), true, &c);
        on_0.record(&body(3, 0, 0, 0), true, &c);
        on_0.record(&body(3, 1, 0, 0), true, &c);
        let lat = c.take_latency();
        assert_eq!((lat.same.len(), lat.other.len()), (1, 2));
        assert_eq!(lat.all().len(), 3);
    }
}
