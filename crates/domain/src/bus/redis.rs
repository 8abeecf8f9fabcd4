//! The Redis pub/sub bus, for several processes (N gateways, N http-apps).
//!
//! Guarantees:
//! - Exactly one dedicated pub/sub connection per process; PUBLISH and every other command
//!   share one multiplexed connection ([`Commands`]), taken from a pool only when none is
//!   held or the held one failed.
//! - A channel is SUBSCRIBEd only while this process has a local listener for its topic
//!   (counted), so a gateway receives only the rooms its own clients are in.
//! - When the pub/sub connection drops, it is re-established with exponential back-off
//!   and jitter, every counted topic is subscribed again, the reconnect counter goes up
//!   and [`Bus::resyncs`] fires, so listeners re-read from the database what was
//!   published while the connection was down (Redis pub/sub does not keep it).
//! - Every channel lives under the configured prefix; every payload is the JSON of an
//!   [`Envelope`] sealed with the message keys, bound to its channel name (AAD), so Redis
//!   never sees plaintext and a payload replayed onto another channel does not open.

use super::{Bus, BusError, Envelope, Event, LOCAL_CAPACITY, SubscriptionCounts, Topic};
use crate::crypto::MessageKeys;
use ::redis::{
    AsyncCommands, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value,
    aio::{ConnectionLike, MultiplexedConnection, PubSubSink},
};
use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use std::{
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// Payload format version, first byte of every payload.
const FORMAT_V1: u8 = 1;
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long `subscribe` waits for Redis to confirm before reporting the bus unavailable.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

enum Command {
    Subscribe(String, oneshot::Sender<Result<(), BusError>>),
    Unsubscribe(String),
}

struct Shared {
    prefix: String,
    keys: MessageKeys,
    tx: broadcast::Sender<Arc<Envelope>>,
    // std Mutex: the critical sections never await.
    counts: Mutex<SubscriptionCounts>,
    commands: mpsc::UnboundedSender<Command>,
    connected: AtomicBool,
    reconnects: AtomicU64,
    resync: watch::Sender<u64>,
}

impl Shared {
    fn counts(&self) -> std::sync::MutexGuard<'_, SubscriptionCounts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The bus over Redis. Dropping it stops its pub/sub task.
pub struct RedisBus {
    shared: Arc<Shared>,
    commands: Commands,
    task: tokio::task::JoinHandle<()>,
}

/// Redis commands (publishes, presence) for every task of the process, over one
/// multiplexed connection they all share. A deadpool-redis checkout vets its connection
/// with a PING round trip every time: at light load each PUBLISH waited for one first
/// (≈ 0.3 ms of the ≈ 0.8 ms a message took from one gateway to the next). The pool is
/// asked only when no connection is held or the held one failed; its PING then vets the
/// new one. `query_async(&mut commands)` like any connection.
#[derive(Clone)]
pub struct Commands(Arc<Held>);

struct Held {
    pool: deadpool_redis::Pool,
    // std Mutex: only ever held to clone or replace the handle, never across an await.
    conn: Mutex<Option<MultiplexedConnection>>,
    db: i64,
}

impl Commands {
    fn new(pool: deadpool_redis::Pool, db: i64) -> Commands {
        Commands(Arc::new(Held {
            pool,
            conn: Mutex::new(None),
            db,
        }))
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        self.0.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn connection(&self) -> RedisResult<MultiplexedConnection> {
        if let Some(conn) = self.held().clone() {
            return Ok(conn);
        }
        let pooled = self.0.pool.get().await.map_err(|e| {
            RedisError::from((ErrorKind::Io, "Redis connection pool", e.to_string()))
        })?;
        // Taken out of the pool for good: it is shared from here, not returned.
        let conn = deadpool_redis::Connection::take(pooled);
        *self.held() = Some(conn.clone());
        Ok(conn)
    }

    /// After a failed command: an error reply leaves the connection usable; anything else
    /// (I/O, a dropped connection, a timeout, a reply that did not parse) has the next
    /// command start from a fresh one.
    fn after<T>(&self, result: &RedisResult<T>) {
        if let Err(e) = result
            && !matches!(e.kind(), ErrorKind::Server(_))
        {
            *self.held() = None;
        }
    }
}

impl ConnectionLike for Commands {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let result = match self.connection().await {
                Ok(mut conn) => conn.req_packed_command(cmd).await,
                Err(e) => Err(e),
            };
            self.after(&result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let result = match self.connection().await {
                Ok(mut conn) => conn.req_packed_commands(pipeline, offset, count).await,
                Err(e) => Err(e),
            };
            self.after(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.0.db
    }
}

impl fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("RedisBus")
            .field("prefix", &self.shared.prefix)
            .field("connected", &self.shared.connected.load(Ordering::Relaxed))
            .finish()
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RedisBus {
    /// Opens the pool and starts the pub/sub task (which connects in the background and
    /// keeps reconnecting). Must be called inside a tokio runtime. Fails only on a bad URL;
    /// use [`RedisBus::connect`] to also wait for Redis to answer.
    pub fn new(url: &SecretString, prefix: &str, keys: MessageKeys) -> Result<RedisBus, BusError> {
        let url = url.expose_secret();
        if url.starts_with("rediss://") {
            // rustls needs a process-wide crypto provider; another part may have installed one.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = ::redis::Client::open(url)
            .map_err(|e| BusError::Unavailable(format!("bad Redis URL: {:?}", e.kind())))?;
        let pool = deadpool_redis::Config::from_url(url)
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .map_err(|e| BusError::Unavailable(format!("Redis pool: {e}")))?;
        let (tx, _) = broadcast::channel(LOCAL_CAPACITY);
        let (commands, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            prefix: prefix.to_owned(),
            keys,
            tx,
            counts: Mutex::new(SubscriptionCounts::default()),
            commands,
            connected: AtomicBool::new(false),
            reconnects: AtomicU64::new(0),
            resync: watch::Sender::new(0),
        });
        let commands = Commands::new(pool, client.get_connection_info().redis_settings().db());
        let task = tokio::spawn(run_pubsub(client, shared.clone(), rx));
        Ok(RedisBus {
            shared,
            commands,
            task,
        })
    }

    /// Like [`RedisBus::new`], then waits until both the command connection and the
    /// pub/sub connection answer (or `timeout` passes).
    pub async fn connect(
        url: &SecretString,
        prefix: &str,
        keys: MessageKeys,
        timeout: Duration,
    ) -> Result<RedisBus, BusError> {
        let bus = RedisBus::new(url, prefix, keys)?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match bus.ping().await {
                Ok(()) => return Ok(bus),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// How many times the pub/sub connection was re-established since start.
    pub fn reconnects(&self) -> u64 {
        self.shared.reconnects.load(Ordering::Relaxed)
    }

    /// Whether the pub/sub connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// The process's command connection, for other Redis state kept under the same
    /// prefix (presence).
    pub fn commands(&self) -> &Commands {
        &self.commands
    }

    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }
}

#[async_trait::async_trait]
impl Bus for RedisBus {
    async fn publish(&self, topic: Topic, event: &Event) -> Result<(), BusError> {
        let channel = topic.channel(&self.shared.prefix);
        let payload = seal(
            &self.shared.keys,
            &channel,
            &Envelope {
                topic,
                event: event.clone(),
            },
        )?;
        let mut conn = self.commands.clone();
        let _receivers: i64 = conn
            .publish(&channel, payload)
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        metrics::counter!("confab_bus_published_total").increment(1);
        Ok(())
    }

    async fn publish_many(&self, events: &[(Topic, Event)]) -> Result<(), BusError> {
        // One pipeline on one connection: Redis runs the PUBLISHes in this order.
        let mut pipe = ::redis::pipe();
        for (topic, event) in events {
            let channel = topic.channel(&self.shared.prefix);
            let payload = seal(
                &self.shared.keys,
                &channel,
                &Envelope {
                    topic: *topic,
                    event: event.clone(),
                },
            )?;
            pipe.publish(channel, payload).ignore();
        }
        let () = pipe
            .query_async(&mut self.commands.clone())
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        metrics::counter!("confab_bus_published_total").increment(events.len() as u64);
        Ok(())
    }

    async fn subscribe(&self, topic: Topic) -> Result<(), BusError> {
        let channel = topic.channel(&self.shared.prefix);
        let (reply, wait) = oneshot::channel();
        {
            let mut counts = self.shared.counts();
            if !counts.add(topic) {
                return Ok(());
            }
            // Sent under the lock, so commands reach the task in the order the counts
            // changed.
            self.shared
                .commands
                .send(Command::Subscribe(channel, reply))
                .map_err(|_| BusError::Unavailable("the bus task has stopped".into()))?;
        }
        match tokio::time::timeout(SUBSCRIBE_TIMEOUT, wait).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(BusError::Unavailable("the bus task has stopped".into())),
            Err(_) => Err(BusError::Unavailable(
                "Redis did not confirm the subscription".into(),
            )),
        }
    }

    async fn unsubscribe(&self, topic: Topic) -> Result<(), BusError> {
        let mut counts = self.shared.counts();
        if counts.remove(topic) {
            let _ = self
                .shared
                .commands
                .send(Command::Unsubscribe(topic.channel(&self.shared.prefix)));
        }
        Ok(())
    }

    fn events(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.shared.tx.subscribe()
    }

    async fn ping(&self) -> Result<(), BusError> {
        if !self.is_connected() {
            return Err(BusError::Unavailable(
                "the pub/sub connection is down".into(),
            ));
        }
        let _: String = ::redis::cmd("PING")
            .query_async(&mut self.commands.clone())
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        Ok(())
    }

    fn resyncs(&self) -> Option<watch::Receiver<u64>> {
        Some(self.shared.resync.subscribe())
    }
}

/// `FORMAT_V1 || len(key_id) || key_id || sealed(JSON)`, with the channel name as AAD.
fn seal(keys: &MessageKeys, channel: &str, env: &Envelope) -> Result<Vec<u8>, BusError> {
    let json = serde_json::to_vec(env).map_err(|e| BusError::BadPayload(e.to_string()))?;
    let sealed = keys
        .seal(&json, channel.as_bytes())
        .map_err(|e| BusError::BadPayload(e.to_string()))?;
    let id = sealed.key_id.as_bytes();
    let id_len = u8::try_from(id.len()).map_err(|_| BusError::BadPayload("key id".into()))?;
    let mut out = Vec::with_capacity(2 + id.len() + sealed.bytes.len());
    out.push(FORMAT_V1);
    out.push(id_len);
    out.extend_from_slice(id);
    out.extend_from_slice(&sealed.bytes);
    Ok(out)
}

fn open(keys: &MessageKeys, channel: &str, payload: &[u8]) -> Result<Envelope, BusError> {
    let bad = |why: &str| BusError::BadPayload(why.to_owned());
    let [version, id_len, rest @ ..] = payload else {
        return Err(bad("too short"));
    };
    if *version != FORMAT_V1 {
        return Err(bad("unknown format"));
    }
    let id_len = usize::from(*id_len);
    if rest.len() < id_len {
        return Err(bad("truncated key id"));
    }
    let (id, sealed) = rest.split_at(id_len);
    let id = std::str::from_utf8(id).map_err(|_| bad("key id is not UTF-8"))?;
    let json = keys
        .open(id, sealed, channel.as_bytes())
        .map_err(|e| BusError::BadPayload(e.to_string()))?;
    serde_json::from_slice(&json).map_err(|e| BusError::BadPayload(e.to_string()))
}

fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << attempt.min(16));
    let capped = exp.min(BACKOFF_MAX);
    // Full jitter: gateways that lost Redis together do not come back in lock-step.
    let millis = capped.as_millis().max(1) as u64;
    Duration::from_millis(rand::random_range(millis / 2..=millis))
}

/// The one pub/sub connection: connect, subscribe what is counted, pump messages, and on
/// any failure start over after a back-off.
async fn run_pubsub(
    client: ::redis::Client,
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut attempt: u32 = 0;
    let mut ever_connected = false;
    loop {
        match client.get_async_pubsub().await {
            Ok(pubsub) => {
                let (mut sink, mut stream) = pubsub.split();
                let channels: Vec<String> = shared
                    .counts()
                    .topics()
                    .map(|t| t.channel(&shared.prefix))
                    .collect();
                let resubscribed = channels.is_empty() || sink.subscribe(&channels).await.is_ok();
                if resubscribed {
                    shared.connected.store(true, Ordering::Relaxed);
                    attempt = 0;
                    if ever_connected {
                        let n = shared.reconnects.fetch_add(1, Ordering::Relaxed) + 1;
                        metrics::counter!("confab_bus_reconnects_total").increment(1);
                        tracing::info!(
                            reconnects = n,
                            topics = channels.len(),
                            "Redis pub/sub reconnected"
                        );
                        shared.resync.send_replace(n);
                    }
                    ever_connected = true;
                    let stop = pump(&shared, &mut sink, &mut stream, &mut commands).await;
                    shared.connected.store(false, Ordering::Relaxed);
                    if stop {
                        return;
                    }
                    tracing::warn!("Redis pub/sub connection lost; reconnecting");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, "cannot reach Redis for pub/sub");
            }
        }
        let sleep = tokio::time::sleep(backoff(attempt));
        attempt = attempt.saturating_add(1);
        tokio::pin!(sleep);
        // While down, answer subscribers at once: their topics are counted and will be
        // subscribed on reconnect, and the resync signal covers the gap.
        loop {
            tokio::select! {
                () = &mut sleep => break,
                cmd = commands.recv() => match cmd {
                    Some(Command::Subscribe(_, reply)) => { let _ = reply.send(Ok(())); }
                    Some(Command::Unsubscribe(_)) => {}
                    None => return,
                },
            }
        }
    }
}

/// Runs one connection until it fails (false) or the bus is dropped (true).
async fn pump(
    shared: &Shared,
    sink: &mut PubSubSink,
    stream: &mut ::redis::aio::PubSubStream,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> bool {
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else { return false };
                let channel = msg.get_channel_name();
                match open(&shared.keys, channel, msg.get_payload_bytes()) {
                    Ok(env) if Topic::from_channel(&shared.prefix, channel) == Some(env.topic) => {
                        // No receiver is fine: nobody local is listening right now.
                        let _ = shared.tx.send(Arc::new(env));
                    }
                    Ok(_) => tracing::warn!(channel, "bus payload names another topic; dropped"),
                    Err(e) => {
                        metrics::counter!("confab_bus_rejected_total").increment(1);
                        tracing::warn!(channel, error = %e, "bus payload rejected");
                    }
                }
            }
            cmd = commands.recv() => match cmd {
                None => return true,
                Some(Command::Subscribe(channel, reply)) => {
                    // Sockets arriving together (a reconnect storm) each subscribe their
                    // user's topic: what has queued up goes out as one SUBSCRIBE.
                    let mut batch = vec![(channel, reply)];
                    let mut next = None;
                    while batch.len() < SUBSCRIBE_BATCH {
                        match commands.try_recv() {
                            Ok(Command::Subscribe(channel, reply)) => batch.push((channel, reply)),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    if !subscribe_all(shared, sink, batch).await {
                        return false;
                    }
                    if let Some(Command::Unsubscribe(channel)) = next
                        && !unsubscribe(shared, sink, &channel).await
                    {
                        return false;
                    }
                }
                Some(Command::Unsubscribe(channel)) => {
                    if !unsubscribe(shared, sink, &channel).await {
                        return false;
                    }
                }
            },
        }
    }
}

/// Most channels in one SUBSCRIBE.
const SUBSCRIBE_BATCH: usize = 512;

/// Subscribes the channels still counted, in one command, and answers every caller;
/// false when the connection failed.
async fn subscribe_all(
    shared: &Shared,
    sink: &mut PubSubSink,
    batch: Vec<(String, oneshot::Sender<Result<(), BusError>>)>,
) -> bool {
    // Re-check the counts: the last listener may have left meanwhile.
    let wanted: Vec<&String> = {
        let counts = shared.counts();
        batch
            .iter()
            .map(|(channel, _)| channel)
            .filter(|c| Topic::from_channel(&shared.prefix, c).is_some_and(|t| counts.contains(&t)))
            .collect()
    };
    let result = if wanted.is_empty() {
        Ok(())
    } else {
        sink.subscribe(wanted)
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))
    };
    let failed = result.is_err();
    for (_, reply) in batch {
        let answer = match &result {
            Ok(()) => Ok(()),
            Err(e) => Err(BusError::Unavailable(e.to_string())),
        };
        let _ = reply.send(answer);
    }
    !failed
}

/// Unsubscribes a channel no longer counted; false when the connection failed.
async fn unsubscribe(shared: &Shared, sink: &mut PubSubSink, channel: &str) -> bool {
    let unwanted =
        Topic::from_channel(&shared.prefix, channel).is_some_and(|t| !shared.counts().contains(&t));
    !(unwanted && sink.unsubscribe(channel).await.is_err())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;

    fn keys() -> MessageKeys {
        MessageKeys::parse(&MessageKeys::generate_line("k1")).expect("keys")
    }

    #[test]
    fn payloads_round_trip_and_are_bound_to_their_channel() {
        let k = keys();
        let env = Envelope {
            topic: Topic::User(UserId(4)),
            event: Event::UserDeactivated { user_id: UserId(4) },
        };
        let payload = seal(&k, "p:user:4", &env).expect("seal");
        assert!(
            !payload.windows(17).any(|w| w == b"user_deactivated"),
            "no plaintext on the wire"
        );
        assert_eq!(open(&k, "p:user:4", &payload).expect("open"), env);
        assert!(open(&k, "p:user:5", &payload).is_err());
        assert!(open(&keys(), "p:user:4", &payload).is_err());
        assert!(open(&k, "p:user:4", &payload[..3]).is_err());
        assert!(open(&k, "p:user:4", b"").is_err());
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        for attempt in 0..40 {
            let d = backoff(attempt);
            assert!(d <= BACKOFF_MAX, "{d:?}");
            assert!(d >= BACKOFF_BASE / 2, "{d:?}");
        }
        assert!(backoff(6) > BACKOFF_BASE * 2);
    }
}
