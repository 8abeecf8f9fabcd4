//! The scenarios: `fanout`, `light`, `bigroom`, `ramp`, `idle`, `reconnect`.

use crate::{
    client::{self, Counters, Endpoint, SockState},
    prep::{self, Auth, Ident},
    report::Record,
    sys::Procs,
};
use anyhow::Context as _;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use std::{
    net::{IpAddr, Ipv4Addr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};
use tokio::{
    sync::{Semaphore, watch},
    task::JoinHandle,
};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The server under test.
#[derive(Debug, Clone)]
pub struct Target {
    /// `bare`, `serve`, `prod`, …: the name in the results.
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    pub auth: Auth,
    /// The servers' processes, sampled for CPU and RSS.
    pub procs: Procs,
    /// Source addresses 127.0.0.1 ..= 127.0.0.N for the client side.
    pub sources: u8,
}

/// Sizes, rates and durations of the scenarios.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Comma-separated: idle, fanout, light, bigroom, ramp, reconnect. `idle` goes first
    /// by default: after other scenarios the server reuses memory they freed, and the
    /// growth per socket would read far too low.
    #[arg(
        long,
        default_value = "idle,fanout,light,bigroom,ramp,reconnect",
        value_delimiter = ','
    )]
    pub scenarios: Vec<String>,
    /// Seconds of sending in `fanout` and `bigroom`.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Seconds of sending in `light`. At 1,000 deliveries/s a message reaches 50 sockets,
    /// so a short run's p99 is the middle receiver of its one or two slowest messages (a
    /// single scheduling hiccup decides it); 30 s puts the p99 among the 6 slowest of
    /// 600 messages.
    #[arg(long, default_value_t = 30.0)]
    pub light_duration: f64,
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
    #[arg(long, default_value_t = 10)]
    pub fanout_rooms: usize,
    #[arg(long, default_value_t = 50)]
    pub fanout_members: usize,
    #[arg(long, default_value_t = 1)]
    pub fanout_senders: usize,
    /// Messages/s per sender in `fanout`.
    #[arg(long, default_value_t = 20.0)]
    pub fanout_rate: f64,
    /// Deliveries/s of the `light` scenario (on the fanout shape).
    #[arg(long, default_value_t = 1000.0)]
    pub light_deliveries: f64,
    #[arg(long, default_value_t = 1000)]
    pub bigroom_members: usize,
    #[arg(long, default_value_t = 4)]
    pub bigroom_senders: usize,
    /// Messages/s in the big room, all senders together.
    #[arg(long, default_value_t = 20.0)]
    pub bigroom_rate: f64,
    /// First rate of `ramp`, messages/s per sender (fanout shape).
    #[arg(long, default_value_t = 20.0)]
    pub ramp_start: f64,
    #[arg(long, default_value_t = 1.6)]
    pub ramp_factor: f64,
    #[arg(long, default_value_t = 3.0)]
    pub ramp_step_secs: f64,
    #[arg(long, default_value_t = 10)]
    pub ramp_max_steps: u32,
    /// Extra steps after the first step that fails on latency alone, each at the
    /// geometric middle of the best passing rate and the lowest failing one: the factor's
    /// coarse grid (× 1.6) then no longer decides the ratio to the bound.
    #[arg(long, default_value_t = 3)]
    pub ramp_refine: u32,
    /// The p99 above which a ramp step no longer counts as sustained.
    #[arg(long, default_value_t = 250.0)]
    pub ramp_p99_ms: f64,
    #[arg(long, default_value_t = 1000)]
    pub idle_sockets: usize,
    /// Distinct users behind the idle sockets (sockets beyond it share users).
    #[arg(long, default_value_t = 1000)]
    pub idle_users: usize,
    #[arg(long, default_value_t = 2.0)]
    pub idle_hold: f64,
    #[arg(long, default_value_t = 1000)]
    pub reconnect_sockets: usize,
    /// Messages posted to each room while the sockets are away.
    #[arg(long, default_value_t = 20)]
    pub reconnect_missed: u64,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 128)]
    pub connect_concurrency: usize,
}

impl Default for Options {
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            o: Options,
        }
        <P as clap::Parser>::parse_from(["loadgen"]).o
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn pct(h: &Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| ms(h.value_at_quantile(q)))
}

/// A run prefix, so reruns against one database never collide on names.
fn run_prefix() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("lg{}", t % 100_000_000)
}

/// Runs the chosen scenarios one after the other, each with fresh users and rooms.
pub async fn run(
    target: &Target,
    opts: &Options,
    mut emit: impl FnMut(&Record),
) -> anyhow::Result<Vec<Record>> {
    let prefix = run_prefix();
    let mut out = Vec::new();
    for (i, s) in opts.scenarios.iter().enumerate() {
        let p = format!("{prefix}{i}{}", &s[..1.min(s.len())]);
        let records = match s.as_str() {
            "fanout" => vec![
                traffic(
                    target,
                    opts,
                    &p,
                    "fanout",
                    Shape::fanout(opts),
                    &[opts.fanout_rate],
                    opts.duration,
                )
                .await?,
            ],
            "light" => {
                // Deliveries/s = messages/s × sockets per room.
                let shape = Shape::fanout(opts);
                let rate = opts.light_deliveries
                    / (shape.rooms * shape.senders * shape.members).max(1) as f64;
                vec![
                    traffic(
                        target,
                        opts,
                        &p,
                        "light",
                        shape,
                        &[rate],
                        opts.light_duration,
                    )
                    .await?,
                ]
            }
            "bigroom" => {
                let shape = Shape {
                    rooms: 1,
                    members: opts.bigroom_members,
                    senders: opts.bigroom_senders.max(1),
                };
                let rate = opts.bigroom_rate / shape.senders as f64;
                vec![traffic(target, opts, &p, "bigroom", shape, &[rate], opts.duration).await?]
            }
            "ramp" => ramp(target, opts, &p).await?,
            "idle" => vec![idle(target, opts, &p).await?],
            "reconnect" => vec![reconnect(target, opts, &p).await?],
            other => anyhow::bail!("unknown scenario {other:?}"),
        };
        for r in records {
            emit(&r);
            out.push(r);
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy)]
struct Shape {
    rooms: usize,
    members: usize,
    senders: usize,
}

impl Shape {
    fn fanout(o: &Options) -> Shape {
        Shape {
            rooms: o.fanout_rooms,
            members: o.fanout_members,
            senders: o.fanout_senders.min(o.fanout_members),
        }
    }
}

/// Connection figures of one batch of sockets.
struct Opened {
    established: u64,
    failed: u64,
    connect: Histogram<u64>,
}

impl Opened {
    fn fill(&self, r: &mut Record) {
        r.established = self.established;
        r.connect_failed = self.failed;
        r.connect_p50_ms = pct(&self.connect, 0.5);
        r.connect_p99_ms = pct(&self.connect, 0.99);
        r.connect_max_ms = (!self.connect.is_empty()).then(|| ms(self.connect.max()));
    }

    /// Adds another batch of sockets opened in the same scenario.
    fn merge(&mut self, other: Opened) {
        self.established += other.established;
        self.failed += other.failed;
        // Same histogram bounds on both sides: adding cannot fail.
        let _ = self.connect.add(&other.connect);
    }
}

/// Open sockets with their reader tasks (and writer tasks for senders).
struct Live {
    readers: Vec<JoinHandle<Option<SockState>>>,
    stop: watch::Sender<bool>,
    rate: watch::Sender<f64>,
}

impl Live {
    /// Stops every socket (dropping its connection) and returns the states.
    async fn close(self) -> Vec<SockState> {
        let _ = self.rate.send(-1.0);
        let _ = self.stop.send(true);
        let mut out = Vec::new();
        for r in self.readers {
            if let Ok(Some(st)) = r.await {
                out.push(st);
            }
        }
        out
    }
}

struct SocketPlan {
    ident: Ident,
    state: SockState,
    since: Option<i64>,
    sender: Option<u32>,
}

fn source(target: &Target, i: usize) -> Option<IpAddr> {
    (target.sources > 1).then(|| {
        let last = 1 + (i % usize::from(target.sources)) as u8;
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    })
}

/// Opens, joins and starts every planned socket; returns once each has joined or failed.
async fn open(
    target: &Target,
    opts: &Options,
    plans: Vec<SocketPlan>,
    join: bool,
    c: &Arc<Counters>,
) -> (Live, Opened) {
    let (stop, stop_rx) = watch::channel(false);
    let (rate, rate_rx) = watch::channel(0.0f64);
    let gate = Arc::new(Semaphore::new(opts.connect_concurrency.max(1)));
    let connect = Arc::new(Mutex::new(client::histogram()));
    let ready = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let n = plans.len() as u64;
    let mut readers = Vec::with_capacity(plans.len());
    for plan in plans {
        let i = plan.state.index;
        let ep = target.endpoints[i % target.endpoints.len()].clone();
        let src = source(target, i);
        let (gate, connect, ready, failed, c) = (
            gate.clone(),
            connect.clone(),
            ready.clone(),
            failed.clone(),
            c.clone(),
        );
        let (stop_rx, rate_rx) = (stop_rx.clone(), rate_rx.clone());
        let body_len = opts.body_bytes;
        readers.push(tokio::spawn(async move {
            let SocketPlan {
                ident,
                mut state,
                since,
                sender,
            } = plan;
            let opened = async {
                let _permit = gate.acquire().await?;
                let t0 = Instant::now();
                let mut ws = client::connect(&ep, &ident, src).await?;
                let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                connect
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .saturating_record(us.max(1));
                if join {
                    client::join(&mut ws, &mut state, since, &c).await?;
                }
                anyhow::Ok(ws)
            }
            .await;
            let ws = match opened {
                Ok(ws) => ws,
                Err(e) => {
                    if failed.fetch_add(1, Relaxed) < 3 {
                        eprintln!("socket {i}: {e:#}");
                    }
                    return None;
                }
            };
            ready.fetch_add(1, Relaxed);
            let (sink, stream) = ws.split();
            // The write half lives as long as the reader (or the sender's writer task):
            // the connection closes when both halves are gone.
            let _sink = match sender {
                Some(me) => {
                    tokio::spawn(client::send_loop(
                        sink,
                        me,
                        state.room.clone(),
                        body_len,
                        c.clone(),
                        rate_rx,
                    ));
                    None
                }
                None => Some(sink),
            };
            Some(client::read_loop(stream, state, c, stop_rx).await)
        }));
    }
    while ready.load(Relaxed) + failed.load(Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect = connect.lock().unwrap_or_else(|e| e.into_inner()).clone();
    (
        Live {
            readers,
            stop,
            rate,
        },
        Opened {
            established: ready.load(Relaxed),
            failed: failed.load(Relaxed),
            connect,
        },
    )
}

/// Users and rooms for a shape; socket i is user i, in room i / members; the first
/// `senders` members of each room send.
async fn plan_shape(
    target: &Target,
    prefix: &str,
    shape: Shape,
) -> anyhow::Result<Vec<SocketPlan>> {
    let slugs: Vec<String> = (0..shape.rooms).map(|r| format!("{prefix}-r{r}")).collect();
    prep::rooms(&target.auth, &slugs).await?;
    let n = shape.rooms * shape.members;
    let idents = prep::users(&target.auth, &format!("{prefix}u"), n).await?;
    Ok(idents
        .into_iter()
        .enumerate()
        .map(|(i, ident)| {
            let room = i / shape.members.max(1);
            let pos = i % shape.members.max(1);
            SocketPlan {
                ident,
                state: SockState::new(i, slugs[room].clone(), shape.members as u64),
                since: None,
                sender: (pos < shape.senders).then_some(i as u32),
            }
        })
        .collect())
}

/// Sends at each rate in turn (a step each), measuring every step.
async fn traffic(
    target: &Target,
    opts: &Options,
    prefix: &str,
    scenario: &str,
    shape: Shape,
    rates: &[f64],
    secs: f64,
) -> anyhow::Result<Record> {
    let c = Counters::new(target.endpoints.len());
    let plans = plan_shape(target, prefix, shape).await?;
    let (live, opened) = open(target, opts, plans, true, &c).await;
    let mut last = Record::default();
    for &rate in rates {
        last = step(target, &live, &c, scenario, shape, rate, secs).await;
    }
    opened.fill(&mut last);
    live.close().await;
    Ok(last)
}

/// One measured period at one rate: send for `secs`, then wait until everything acked is
/// delivered (or 10 s pass: whatever is missing then is lost).
async fn step(
    target: &Target,
    live: &Live,
    c: &Counters,
    scenario: &str,
    shape: Shape,
    rate: f64,
    secs: f64,
) -> Record {
    let snap = |c: &Counters| {
        [
            c.sent.load(Relaxed),
            c.acks.load(Relaxed),
            c.errors.load(Relaxed),
            c.expected.load(Relaxed),
            c.unique.load(Relaxed),
            c.duplicates.load(Relaxed),
            c.closed.load(Relaxed),
        ]
    };
    let before = snap(c);
    let _ = c.take_latency();
    let server = target.procs.cpu_window();
    let me = Procs::me().cpu_window();
    let t0 = Instant::now();
    let _ = live.rate.send(rate);
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let _ = live.rate.send(0.0);
    let drain_until = Instant::now() + Duration::from_secs(10);
    loop {
        let [sent, acks, errors, expected, unique, ..] = snap(c);
        if (sent <= acks + errors && unique >= expected) || Instant::now() > drain_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let after = snap(c);
    let d: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    let split = c.take_latency();
    let lat = split.all();
    // Only where some receivers were on another gateway than the sender.
    let (same, other) = if split.other.is_empty() {
        (None, None)
    } else {
        (Some(&split.same), Some(&split.other))
    };
    Record {
        target: target.name.clone(),
        scenario: scenario.into(),
        sockets: (shape.rooms * shape.members) as u64,
        rooms: shape.rooms as u64,
        senders: (shape.rooms * shape.senders) as u64,
        rate_per_sender: Some(rate),
        duration_s: elapsed,
        sent: d[0],
        acks: d[1],
        errors: d[2],
        expected: d[3],
        delivered: d[4],
        lost: d[3].saturating_sub(d[4]),
        duplicated: d[5],
        closed: d[6],
        deliveries_per_sec: Some(d[4] as f64 / elapsed),
        lat_p50_ms: pct(&lat, 0.5),
        lat_p90_ms: pct(&lat, 0.9),
        lat_p99_ms: pct(&lat, 0.99),
        lat_p999_ms: pct(&lat, 0.999),
        lat_max_ms: (!lat.is_empty()).then(|| ms(lat.max())),
        lat_same_gw_p50_ms: same.and_then(|h| pct(h, 0.5)),
        lat_same_gw_p99_ms: same.and_then(|h| pct(h, 0.99)),
        lat_other_gw_p50_ms: other.and_then(|h| pct(h, 0.5)),
        lat_other_gw_p99_ms: other.and_then(|h| pct(h, 0.99)),
        server_cpu_cores: server.cores(),
        server_rss_bytes: target.procs.rss_bytes(),
        loadgen_cpu_cores: me.cores(),
        ..Record::default()
    }
}

/// Raises the rate step by step until p99 passes the limit or anything is lost; the
/// result is the best step that passed.
async fn ramp(target: &Target, opts: &Options, prefix: &str) -> anyhow::Result<Vec<Record>> {
    let shape = Shape::fanout(opts);
    let c = Counters::new(target.endpoints.len());
    let plans = plan_shape(target, prefix, shape).await?;
    let (live, opened) = open(target, opts, plans, true, &c).await;
    let mut out = Vec::new();
    let mut best: Option<Record> = None;
    let mut reason = format!("reached {} steps", opts.ramp_max_steps);
    let mut rate = opts.ramp_start;
    // The best passing rate and the lowest failing one, once a step failed on latency.
    let mut passed: Option<f64> = None;
    let mut failed_at: Option<f64> = None;
    let mut refined = 0;
    let mut i = 0;
    while i < opts.ramp_max_steps + refined {
        let mut r = step(target, &live, &c, "ramp", shape, rate, opts.ramp_step_secs).await;
        r.step = Some(i);
        i += 1;
        let p99 = r.lat_p99_ms.unwrap_or(f64::INFINITY);
        out.push(r.clone());
        if !r.clean() {
            // Sockets closed or messages lost: the sockets are no longer comparable.
            reason = format!(
                "step {}: lost {}, dup {}, errors {}, closed {}",
                i - 1,
                r.lost,
                r.duplicated,
                r.errors,
                r.closed
            );
            break;
        }
        if p99 > opts.ramp_p99_ms {
            if failed_at.is_none() {
                reason = format!("step {}: p99 {p99:.0} ms", i - 1);
            }
            failed_at = Some(rate);
        } else {
            passed = Some(rate);
            if best
                .as_ref()
                .is_none_or(|b| b.deliveries_per_sec < r.deliveries_per_sec)
            {
                best = Some(r);
            }
        }
        match (passed, failed_at) {
            (_, None) => rate *= opts.ramp_factor,
            (Some(lo), Some(hi)) if refined < opts.ramp_refine => {
                refined += 1;
                rate = (lo * hi).sqrt();
            }
            _ => break,
        }
    }
    if let Some(hi) = failed_at {
        reason = format!("{reason}; refined: lowest failing rate {hi:.0} msg/s per sender");
    }
    live.close().await;
    let mut summary = best.unwrap_or_else(|| Record {
        target: target.name.clone(),
        scenario: "ramp".into(),
        ..Record::default()
    });
    summary.step = None;
    summary.best_deliveries_per_sec = Some(summary.deliveries_per_sec.unwrap_or(0.0));
    summary.stop_reason = Some(reason);
    opened.fill(&mut summary);
    out.push(summary);
    Ok(out)
}

/// Opens and holds sockets; the server's RSS growth per socket is the figure.
async fn idle(target: &Target, opts: &Options, prefix: &str) -> anyhow::Result<Record> {
    let n = opts.idle_sockets;
    let users = prep::users(
        &target.auth,
        &format!("{prefix}u"),
        opts.idle_users.clamp(1, n.max(1)),
    )
    .await?;
    let plan = |i: usize| SocketPlan {
        ident: users[i % users.len()].clone(),
        state: SockState::new(i, String::new(), 0),
        since: None,
        sender: None,
    };
    // Two halves, RSS read after each: the growth over the second half is what one more
    // idle socket costs, without the process's first heap growth and fixed start-up
    // costs that the first half also pays for.
    let half = n / 2;
    // Let the previous scenario's memory settle before the baseline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = target.procs.rss_bytes();
    let c = Counters::new(target.endpoints.len());
    let server = target.procs.cpu_window();
    let me = Procs::me().cpu_window();
    let t0 = Instant::now();
    let (live_a, opened_a) = open(target, opts, (0..half).map(plan).collect(), false, &c).await;
    tokio::time::sleep(Duration::from_secs_f64(opts.idle_hold)).await;
    let rss_half = target.procs.rss_bytes();
    let (live, mut opened) = open(target, opts, (half..n).map(plan).collect(), false, &c).await;
    tokio::time::sleep(Duration::from_secs_f64(opts.idle_hold)).await;
    let rss1 = target.procs.rss_bytes();
    let second = opened.established;
    opened.merge(opened_a);
    let mut r = Record {
        target: target.name.clone(),
        scenario: "idle".into(),
        sockets: n as u64,
        duration_s: t0.elapsed().as_secs_f64(),
        closed: c.closed.load(Relaxed),
        server_cpu_cores: server.cores(),
        server_rss_bytes: rss1,
        loadgen_cpu_cores: me.cores(),
        rss_per_conn_bytes: rss0
            .zip(rss1)
            .filter(|_| opened.established > 0)
            .map(|(a, b)| (b as f64 - a as f64) / opened.established as f64),
        rss_marginal_per_conn_bytes: rss_half
            .zip(rss1)
            .filter(|_| second > 0)
            .map(|(a, b)| (b as f64 - a as f64) / second as f64),
        ..Record::default()
    };
    opened.fill(&mut r);
    live.close().await;
    live_a.close().await;
    Ok(r)
}

/// Posters: one socket per room that stays connected while the others are away.
struct Posters {
    sinks:
        Vec<futures_util::stream::SplitSink<client::Ws, tokio_tungstenite::tungstenite::Message>>,
    acks: Arc<AtomicU64>,
    seq: u64,
}

impl Posters {
    async fn open(
        target: &Target,
        idents: &[Ident],
        slugs: &[String],
        seq: u64,
    ) -> anyhow::Result<Posters> {
        let acks = Arc::new(AtomicU64::new(0));
        let mut sinks = Vec::new();
        let c = Counters::new(target.endpoints.len());
        for (i, (ident, slug)) in idents.iter().zip(slugs).enumerate() {
            let ep = &target.endpoints[i % target.endpoints.len()];
            let mut ws = client::connect(ep, ident, None).await?;
            let mut st = SockState::new(i, slug.clone(), 0);
            client::join(&mut ws, &mut st, None, &c).await?;
            let (sink, mut stream) = ws.split();
            let acks = acks.clone();
            // Drains everything (presence storms included) so the poster is never
            // closed as too slow; counts its acks.
            tokio::spawn(async move {
                while let Some(m) = stream.next().await {
                    match m {
                        Ok(tokio_tungstenite::tungstenite::Message::Text(t)) => {
                            if t.as_str().starts_with("{\"type\":\"ack\"") {
                                acks.fetch_add(1, Relaxed);
                            } else if t.as_str().starts_with("{\"type\":\"error\"") {
                                eprintln!("poster {i}: {t}");
                            }
                        }
                        Ok(tokio_tungstenite::tungstenite::Message::Close(Some(f)))
                            if f.code != CloseCode::Normal =>
                        {
                            eprintln!("poster {i} closed: {} {}", f.code, f.reason);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            eprintln!("poster {i}: {e}");
                            break;
                        }
                    }
                }
            });
            sinks.push(sink);
        }
        Ok(Posters { sinks, acks, seq })
    }

    /// Closes the posters' sockets.
    async fn close(self) {
        use futures_util::SinkExt;
        for mut sink in self.sinks {
            let _ = sink.close().await;
        }
    }

    /// Posts `k` messages to every room and waits for their acks.
    async fn post(&mut self, slugs: &[String], k: u64, c: &Counters) -> anyhow::Result<()> {
        use futures_util::SinkExt;
        let want = self.acks.load(Relaxed) + k * slugs.len() as u64;
        for _ in 0..k {
            for (r, (sink, slug)) in self.sinks.iter_mut().zip(slugs).enumerate() {
                let sender = 1_000_000 + r as u32;
                let frame = serde_json::json!({
                    "type": "send", "room": slug,
                    "body": client::body(sender, self.seq, c.now_us(), 40),
                    "client_id": format!("p{r}-{}", self.seq),
                });
                sink.send(frame.to_string().into()).await?;
            }
            self.seq += 1;
        }
        let until = Instant::now() + Duration::from_secs(30);
        while self.acks.load(Relaxed) < want {
            anyhow::ensure!(
                Instant::now() < until,
                "posters' acks did not come within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}

/// Sockets in rooms of 50; drop them all at once, post while they are away, then time
/// until every socket is back, has joined with `since` and holds every message.
async fn reconnect(target: &Target, opts: &Options, prefix: &str) -> anyhow::Result<Record> {
    let members = 50.min(opts.reconnect_sockets.max(1));
    let shape = Shape {
        rooms: opts.reconnect_sockets.div_ceil(members),
        members,
        senders: 0,
    };
    let c = Counters::new(target.endpoints.len());
    let plans = plan_shape(target, prefix, shape).await?;
    let idents: Vec<Ident> = plans.iter().map(|p| p.ident.clone()).collect();
    let slugs: Vec<String> = (0..shape.rooms).map(|r| format!("{prefix}-r{r}")).collect();
    let (live, first) = open(target, opts, plans, true, &c).await;
    let poster_ids = prep::users(&target.auth, &format!("{prefix}p"), slugs.len()).await?;
    let mut posters = Posters::open(target, &poster_ids, &slugs, 0).await?;
    // A few messages first, so every socket has a `since` to come back with.
    let before = 3;
    posters.post(&slugs, before, &c).await?;
    // The posters go too, so every socket of the room is away while it is posted to (and
    // so no poster sits through the offline storm: before presence was coalesced, a
    // burst of one frame per departed user could close it as "too slow").
    let seq = posters.seq;
    posters.close().await;
    let want_before = first.established * before;
    let until = Instant::now() + Duration::from_secs(30);
    while c.unique.load(Relaxed) < want_before && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let states = live.close().await;
    let dropped_at = Instant::now();
    // Let the offline storm pass before the posters come back.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut posters = Posters::open(target, &poster_ids, &slugs, seq).await?;
    posters.post(&slugs, opts.reconnect_missed, &c).await?;
    let server = target.procs.cpu_window();
    let me = Procs::me().cpu_window();
    let t0 = Instant::now();
    let unique: Vec<Arc<AtomicU64>> = states.iter().map(|s| s.unique.clone()).collect();
    let plans: Vec<SocketPlan> = states
        .into_iter()
        .map(|st| SocketPlan {
            ident: idents[st.index].clone(),
            since: Some(st.last_id),
            sender: None,
            state: st,
        })
        .collect();
    let c2 = Counters::new(target.endpoints.len());
    let (live, again) = open(target, opts, plans, true, &c2).await;
    let want = before + opts.reconnect_missed;
    let until = Instant::now() + Duration::from_secs(60);
    let caught_up = loop {
        let done = unique.iter().filter(|u| u.load(Relaxed) >= want).count() as u64;
        if done == unique.len() as u64 || Instant::now() > until {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let secs = t0.elapsed().as_secs_f64();
    let away = t0.duration_since(dropped_at).as_secs_f64();
    let expected = unique.len() as u64 * want;
    let got: u64 = unique.iter().map(|u| u.load(Relaxed).min(want)).sum();
    let mut r = Record {
        target: target.name.clone(),
        scenario: "reconnect".into(),
        sockets: opts.reconnect_sockets as u64,
        rooms: shape.rooms as u64,
        duration_s: secs + away,
        expected,
        delivered: got,
        lost: expected - got,
        duplicated: c.duplicates.load(Relaxed) + c2.duplicates.load(Relaxed),
        errors: c2.errors.load(Relaxed),
        server_cpu_cores: server.cores(),
        server_rss_bytes: target.procs.rss_bytes(),
        loadgen_cpu_cores: me.cores(),
        reconnect_secs: Some(secs),
        caught_up: Some(caught_up),
        ..Record::default()
    };
    again.fill(&mut r);
    r.connect_failed += first.failed;
    live.close().await;
    posters.close().await;
    Ok(r)
}

/// Builds a target from URLs; fails early when the first one does not answer.
pub async fn target(
    name: &str,
    urls: &[String],
    origin: Option<String>,
    auth: Auth,
    pids: &[u32],
    sources: u8,
) -> anyhow::Result<Target> {
    let mut endpoints = Vec::new();
    for u in urls {
        endpoints.push(Endpoint::parse(u, origin.clone()).await?);
    }
    anyhow::ensure!(!endpoints.is_empty(), "no gateway URL given");
    tokio::net::TcpStream::connect(endpoints[0].addr)
        .await
        .with_context(|| format!("{} does not answer", endpoints[0].url))?;
    Ok(Target {
        name: name.into(),
        endpoints,
        auth,
        procs: Procs::new(pids),
        sources: sources.max(1),
    })
}
