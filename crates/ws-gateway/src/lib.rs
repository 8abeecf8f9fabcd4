//! Confab's WebSocket gateway: authenticated sockets at `GET /ws`, speaking protocol v1
//! (`docs/protocol.md`), fanned out over the bus.
//!
//! Two ways to run it:
//! - standalone (`ws-gateway` binary, tests): [`Application::build`] binds the listener,
//!   [`Application::run_until_stopped`] serves `/ws`, `/healthz`, `/readyz`, `/metrics`
//!   until SIGTERM/SIGINT, then closes every socket with 1012 and drains;
//! - mounted next to http-app in one actix `App` (`confab serve`): build a [`Gateway`]
//!   once with [`Gateway::start`], serve the app with [`serve`] (it hands WebSocket
//!   upgrades to the gateway), call [`Gateway::configure`] in the app factory, and
//!   [`Gateway::shutdown`] before stopping the server.

mod admission;
pub mod connection;
pub mod fanout;
pub mod hub;
pub mod presence;
pub mod protocol;
pub mod roster;
mod routes;
mod server;
mod socket;

pub use server::{Tls, serve};

use actix_web::{App, cookie::Key, dev::Server, web};
use anyhow::Context as _;
use domain::{
    bus::{SharedBus, Topic, memory::MemoryBus, redis::RedisBus},
    crypto::MessageKeys,
    db::Db,
    ids::RoomId,
    settings::Settings,
    writer::MessageWriter,
};
use hub::{CloseFrame, Hub, HubLimits, close};
use presence::Presence;
use std::{net::TcpListener, sync::Arc, time::Duration};

/// Limits and timings of the gateway. The defaults suit production; tests shorten them.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Frames a socket may have waiting to be written before it counts as too slow.
    pub outbound_queue: usize,
    /// Live events a socket may have buffered while a room is being caught up.
    pub pending_buffer: usize,
    pub ping_interval: Duration,
    /// How often the gateway re-checks that its sockets' sessions are still live
    /// (revocations that happened while the bus was down).
    pub revalidate_interval: Duration,
    /// Frames of any kind, per socket.
    pub frames_per_sec: f64,
    pub frames_burst: f64,
    /// `send` frames per socket.
    pub sends_per_sec: f64,
    pub sends_burst: f64,
    /// `send` frames per user, across their sockets on this gateway.
    pub user_sends_per_sec: f64,
    pub user_sends_burst: f64,
    /// How long a presence entry outlives a gateway that stopped refreshing it.
    pub presence_ttl: Duration,
    /// How long shutdown waits for sockets to close after sending 1012.
    pub shutdown_grace: Duration,
    /// Catch-up reads (`join` pages) running at once; the rest wait.
    pub catchup_concurrency: usize,
    /// The kernel send buffer of each WebSocket connection (`None`: the OS autotunes it,
    /// up to megabytes per socket).
    pub socket_send_buffer: Option<usize>,
    /// `join` frames per socket (rate, burst).
    pub joins_per_sec: f64,
    pub joins_burst: f64,
    /// Live sockets per user and per client address on this gateway process.
    pub max_sockets_per_user: usize,
    pub max_sockets_per_address: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            outbound_queue: 256,
            pending_buffer: 2048,
            ping_interval: Duration::from_secs(20),
            revalidate_interval: Duration::from_secs(60),
            frames_per_sec: 20.0,
            frames_burst: 60.0,
            sends_per_sec: 5.0,
            sends_burst: 20.0,
            user_sends_per_sec: 10.0,
            user_sends_burst: 40.0,
            presence_ttl: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            socket_send_buffer: Some(64 * 1024),
            joins_per_sec: 2.0,
            joins_burst: 60.0,
            max_sockets_per_user: 20,
            max_sockets_per_address: 50,
            catchup_concurrency: 8,
        }
    }
}

impl GatewayConfig {
    /// The defaults, with the rate limits and outbound queue from the settings
    /// (`CONFAB_WS_*`: production keeps the defaults, benchmarks raise them).
    pub fn from_settings(settings: &Settings) -> GatewayConfig {
        GatewayConfig {
            outbound_queue: settings.ws_outbound_queue,
            frames_per_sec: settings.ws_frames_per_sec,
            frames_burst: settings.ws_frames_burst,
            sends_per_sec: settings.ws_sends_per_sec,
            sends_burst: settings.ws_sends_burst,
            user_sends_per_sec: settings.ws_user_sends_per_sec,
            user_sends_burst: settings.ws_user_sends_burst,
            catchup_concurrency: settings.ws_catchup_concurrency,
            joins_per_sec: settings.ws_joins_per_sec,
            joins_burst: settings.ws_joins_burst,
            max_sockets_per_user: settings.ws_max_sockets_per_user,
            max_sockets_per_address: settings.ws_max_sockets_per_address,
            ..GatewayConfig::default()
        }
    }
}

/// What the gateway needs from outside.
#[derive(Debug, Clone)]
pub struct Deps {
    pub db: Db,
    pub bus: SharedBus,
    pub keys: MessageKeys,
    pub presence: Arc<Presence>,
    pub config: GatewayConfig,
}

impl Deps {
    /// One process (`confab serve`): the in-process bus, presence from local sockets.
    pub fn in_process(db: Db, bus: Arc<MemoryBus>, keys: MessageKeys) -> Deps {
        Deps {
            db,
            bus,
            keys,
            presence: Arc::new(Presence::local()),
            config: GatewayConfig::default(),
        }
    }

    /// Several processes: the Redis bus, presence kept in the same Redis.
    pub fn redis(db: Db, bus: Arc<RedisBus>, keys: MessageKeys) -> Deps {
        let config = GatewayConfig::default();
        Deps {
            presence: Arc::new(Presence::redis(&bus, config.presence_ttl)),
            db,
            bus,
            keys,
            config,
        }
    }

    /// For the standalone binary: opens the database and connects to Redis, which a
    /// standalone gateway requires (the in-process bus would reach no http-app).
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Deps> {
        let keys = settings.message_keys()?;
        let db = Db::connect(&settings.database_url, settings.database_pool_size)
            .context("opening the database")?;
        let url = settings.redis_url.as_ref().context(
            "CONFAB_REDIS_URL is required for a standalone ws-gateway (the in-process bus is only for `confab serve`)",
        )?;
        let bus = RedisBus::connect(
            url,
            &settings.redis_prefix,
            keys.clone(),
            Duration::from_secs(10),
        )
        .await
        .context("connecting to Redis")?;
        Ok(
            Deps::redis(db, Arc::new(bus), keys)
                .with_config(GatewayConfig::from_settings(settings)),
        )
    }

    /// Replaces the limits and timings (the presence TTL is fixed when the presence
    /// store is made: use [`Presence::redis`] directly to change it).
    pub fn with_config(mut self, config: GatewayConfig) -> Deps {
        self.config = config;
        self
    }
}

/// What every socket task shares.
pub struct Core {
    pub(crate) hub: Arc<Hub>,
    pub(crate) db: Db,
    pub(crate) keys: MessageKeys,
    pub(crate) presence: Arc<Presence>,
    pub(crate) config: GatewayConfig,
    pub(crate) allowed_origins: Vec<String>,
    pub(crate) cookie_name: &'static str,
    pub(crate) cookie_key: Key,
    pub(crate) max_frame_bytes: usize,
    pub(crate) max_message_chars: usize,
    pub(crate) admission: admission::Admission,
    /// Every `send` of this process goes through one group-commit writer.
    pub(crate) writer: MessageWriter,
    /// The writer's hooks queue committed messages here; `fanout::announce` publishes them.
    pub(crate) announce: tokio::sync::mpsc::UnboundedSender<(Topic, domain::bus::Event)>,
    /// Room slug → id, for `send`: slugs never change, and the id is needed before the
    /// post reaches the writer (the body is sealed for its room on the caller's side).
    /// std Mutex: the critical section never awaits.
    pub(crate) room_ids: std::sync::Mutex<std::collections::HashMap<String, RoomId>>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").field("hub", &self.hub).finish()
    }
}

/// The gateway's shared state and background tasks. Cheap to clone; every clone is the
/// same gateway (one hub per process).
#[derive(Debug, Clone)]
pub struct Gateway {
    core: Arc<Core>,
}

impl Gateway {
    /// Starts the fan-out (and, with Redis, the presence heartbeat). Call once per process,
    /// inside the runtime that will serve it.
    pub async fn start(settings: &Settings, deps: Deps) -> anyhow::Result<Gateway> {
        // Install the process's recorder now, so counts from before the first scrape exist.
        let _ = domain::metrics::handle();
        let hub = Arc::new(Hub::new(
            deps.bus.clone(),
            deps.presence.clone(),
            HubLimits {
                outbound_queue: deps.config.outbound_queue,
                pending_buffer: deps.config.pending_buffer,
                user_sends_per_sec: deps.config.user_sends_per_sec,
                user_sends_burst: deps.config.user_sends_burst,
                catchup_concurrency: deps.config.catchup_concurrency,
            },
        ));
        // Presence goes to every socket; one subscription for the whole process.
        deps.bus
            .subscribe(Topic::Presence)
            .await
            .context("subscribing to presence")?;
        let admission = admission::Admission::new(&deps.config, settings);
        let writer = MessageWriter::start(&deps.db, deps.keys.clone(), settings.max_message_chars)
            .context("starting the message writer")?;
        let (announce, announced) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(fanout::announce(hub.clone(), announced));
        let core = Arc::new(Core {
            hub: hub.clone(),
            db: deps.db,
            keys: deps.keys,
            presence: deps.presence,
            config: deps.config,
            allowed_origins: settings.allowed_origins.clone(),
            cookie_name: domain::auth::session_cookie_name(settings.https),
            cookie_key: Key::from(&domain::auth::cookie_key_material(&settings.secret_key)),
            max_frame_bytes: settings.max_frame_bytes,
            max_message_chars: settings.max_message_chars,
            admission,
            writer,
            announce,
            room_ids: std::sync::Mutex::default(),
        });
        // Who is present already (other gateways' users), before events start to count.
        roster::resync(&hub, &core.db).await;
        tokio::spawn(roster::run(hub.roster().clone(), Arc::downgrade(&hub)));
        tokio::spawn(fanout::run(hub, core.db.clone(), core.keys.clone()));
        if let Some(every) = core.presence.heartbeat_interval() {
            tokio::spawn(heartbeat(Arc::downgrade(&core), every));
        }
        tokio::spawn(revalidate(
            Arc::downgrade(&core),
            core.config.revalidate_interval,
        ));
        Ok(Gateway { core })
    }

    /// Registers `GET /ws` on an app or scope, for requests that are not an upgrade (400).
    /// The upgrades themselves reach the gateway through [`serve`], which every app that
    /// mounts `/ws` must be served by.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.service(
            web::resource("/ws")
                .app_data(web::Data::from(self.core.clone()))
                .route(web::get().to(routes::not_upgraded)),
        );
    }

    /// Registers `/healthz`, `/readyz` (database and bus) and `/metrics`, for a gateway
    /// that runs alone.
    pub fn configure_probes(&self, cfg: &mut web::ServiceConfig) {
        let data = web::Data::from(self.core.clone());
        cfg.service(
            web::resource("/healthz")
                .app_data(data.clone())
                .route(web::get().to(routes::healthz)),
        )
        .service(
            web::resource("/readyz")
                .app_data(data)
                .route(web::get().to(routes::readyz)),
        )
        .service(web::resource("/metrics").route(web::get().to(routes::metrics)));
    }

    /// Refuses new sockets, closes every open one with 1012 and waits (up to the grace
    /// period) until they are gone.
    pub async fn shutdown(&self) {
        let open = self.core.hub.connections();
        tracing::info!(sockets = open, "closing sockets for shutdown");
        self.core
            .hub
            .close_all(CloseFrame::new(close::RESTART, "server restarting"));
        if tokio::time::timeout(self.core.config.shutdown_grace, self.core.hub.drained())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.core.hub.connections(),
                "sockets still open after the grace period"
            );
        }
    }

    /// Open sockets on this gateway.
    pub fn connections(&self) -> usize {
        self.core.hub.connections()
    }
}

/// Sessions looked up in one query by [`revalidate`].
const REVALIDATE_CHUNK: usize = 500;

/// Every `every`, closes the sockets whose session is no longer live (revoked while the
/// bus was down, or its user deactivated): one query per [`REVALIDATE_CHUNK`] sessions,
/// run one after another, instead of one per socket. An unreachable database is not a
/// revocation: the round ends there (each further query would wait out the pool's
/// timeout too), and the next one starts over.
async fn revalidate(core: std::sync::Weak<Core>, every: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(core) = core.upgrade() else { return };
        for chunk in core.hub.session_ids().chunks(REVALIDATE_CHUNK) {
            let ids = chunk.to_vec();
            let live = match core
                .db
                .run(move |c| domain::repo::session::live_among(c, &ids))
                .await
            {
                Ok(live) => live,
                Err(e) => {
                    tracing::warn!(error = %e, "session check failed");
                    break;
                }
            };
            let ended: std::collections::HashSet<_> = chunk
                .iter()
                .filter(|id| !live.contains(id))
                .copied()
                .collect();
            if !ended.is_empty() {
                let closed = core.hub.kick_any_session(
                    &ended,
                    hub::CloseFrame::new(hub::close::SESSION_ENDED, "session ended"),
                );
                tracing::info!(
                    sessions = ended.len(),
                    sockets = closed,
                    "ended sessions' sockets closed"
                );
            }
        }
    }
}

async fn heartbeat(core: std::sync::Weak<Core>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let Some(core) = core.upgrade() else { return };
        match core.presence.heartbeat().await {
            Ok(changes) => {
                for (user, status) in changes {
                    let username = match core.hub.roster().username(user) {
                        Some(name) => Ok(name),
                        None => core
                            .db
                            .run(move |c| domain::repo::user::find(c, user))
                            .await
                            .map(|u| u.username),
                    };
                    if let Ok(username) = username {
                        let info = hub::ConnInfo {
                            user_id: user,
                            username,
                            session_id: domain::ids::SessionId(0),
                        };
                        core.hub.publish_presence(&info, status).await;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "presence heartbeat failed"),
        }
    }
}

/// A standalone gateway: its own HTTP server on its own port.
pub struct Application {
    port: u16,
    server: Server,
    gateway: Gateway,
    stop: Arc<tokio::sync::Notify>,
}

/// Triggers the same graceful shutdown as SIGTERM.
#[derive(Debug, Clone)]
pub struct StopHandle(Arc<tokio::sync::Notify>);

impl StopHandle {
    pub fn stop(&self) {
        self.0.notify_one();
    }
}

impl Application {
    /// Binds `settings.bind` (port 0 picks a free port) and prepares the server.
    pub async fn build(settings: Settings, deps: Deps) -> anyhow::Result<Application> {
        let gateway = Gateway::start(&settings, deps).await?;
        let listener = TcpListener::bind(settings.bind)
            .with_context(|| format!("binding {}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let gw = gateway.clone();
        let grace = gateway.core.config.shutdown_grace;
        let tls = domain::service::tls_server_config(&settings)?;
        let server = serve(&gateway, listener, tls, grace, move || {
            App::new()
                .configure(|cfg| gw.configure(cfg))
                .configure(|cfg| gw.configure_probes(cfg))
        })?;
        Ok(Application {
            port,
            server,
            gateway,
            stop: Arc::new(tokio::sync::Notify::new()),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Serves until SIGTERM, SIGINT or [`StopHandle::stop`]; then stops accepting,
    /// closes every socket with 1012, drains and returns.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        let stopped = async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                let mut term = signal(SignalKind::terminate())?;
                tokio::select! {
                    _ = term.recv() => {}
                    r = tokio::signal::ctrl_c() => r?,
                    () = self.stop.notified() => {}
                }
            }
            #[cfg(not(unix))]
            tokio::select! {
                r = tokio::signal::ctrl_c() => r?,
                () = self.stop.notified() => {}
            }
            Ok::<(), std::io::Error>(())
        };
        tokio::select! {
            r = &mut server => return Ok(r??),
            r = stopped => r.context("listening for signals")?,
        }
        tracing::info!("shutting down");
        domain::service::notify_stopping();
        // Sockets first: each runs as a task on an actix worker, and a worker with no HTTP
        // connection left stops at once, dropping them before their 1012. New handshakes
        // meanwhile get 503 (the hub is closing).
        self.gateway.shutdown().await;
        handle.stop(true).await;
        server.await??;
        Ok(())
    }
}

/// Structured logs for the standalone binary (`RUST_LOG` filters; JSON behind a setting).
pub fn init_tracing(format: domain::settings::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        domain::settings::LogFormat::Json => builder.json().try_init(),
        domain::settings::LogFormat::Text => builder.try_init(),
    };
}
