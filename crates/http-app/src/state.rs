//! What every handler shares: the database, settings, keys, the bus, templates, the
//! sign-in and upload limits and the first-run setup link.

use crate::{
    templates::Templates,
    throttle::{Throttle, ThrottleLimits},
};
use actix_web::cookie::Key;
use anyhow::Context as _;
use domain::{
    bus::{SharedBus, memory::MemoryBus, redis::RedisBus},
    crypto::MessageKeys,
    db::Db,
    repo::session::Lifetimes,
    settings::Settings,
};
use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

/// How long the standalone binary waits for Redis at start-up.
const REDIS_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Knobs that are not deployment settings: tests tighten them, production keeps defaults.
#[derive(Debug, Clone)]
pub struct Options {
    /// Served at `/static/` outside production (nginx serves it in production).
    pub static_dir: PathBuf,
    /// actix workers for [`crate::Application`]; `None` means one per core.
    pub workers: Option<usize>,
    /// How long a graceful stop waits for requests in flight.
    pub shutdown_timeout_secs: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            static_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../static")),
            workers: None,
            shutdown_timeout_secs: 30,
        }
    }
}

/// What the service needs from outside; `confab serve` builds these once for both services.
#[derive(Debug, Clone)]
pub struct Deps {
    pub db: Db,
    pub bus: SharedBus,
    pub message_keys: MessageKeys,
    pub options: Options,
}

impl Deps {
    pub fn new(db: Db, bus: SharedBus, message_keys: MessageKeys) -> Deps {
        Deps {
            db,
            bus,
            message_keys,
            options: Options::default(),
        }
    }

    /// For the standalone binary: connect the database and pick the bus.
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Deps> {
        let db = Db::connect(&settings.database_url, settings.database_pool_size)
            .context("connecting to the database")?;
        let keys = settings
            .message_keys()
            .context("loading the message keys")?;
        if let Some(url) = &settings.redis_url {
            let bus = RedisBus::connect(url, &settings.redis_prefix, keys.clone(), REDIS_WAIT)
                .await
                .context("connecting to Redis")?;
            return Ok(Deps::new(db, Arc::new(bus), keys));
        }
        if settings.is_production() {
            anyhow::bail!(
                "production needs CONFAB_REDIS_URL: the in-process bus reaches no gateway"
            );
        }
        tracing::warn!("no CONFAB_REDIS_URL: using the in-process bus; no gateway will see events");
        Ok(Deps::new(db, Arc::new(MemoryBus::new()), keys))
    }
}

/// The first-run link: valid while the database has no user, and only until it is used.
#[derive(Debug)]
pub struct Setup {
    token: String,
    open: AtomicBool,
}

impl Setup {
    pub fn path(&self) -> Option<String> {
        self.is_open().then(|| format!("/setup/{}", self.token))
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    pub fn matches(&self, token: &str) -> bool {
        self.is_open() && crate::csrf::constant_time_eq(token.as_bytes(), self.token.as_bytes())
    }

    /// Claims the link; only one caller ever gets `true`.
    pub fn claim(&self) -> bool {
        self.open
            .compare_exchange(true, false, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Gives the link back after a failed attempt (say, a password that was too short).
    pub fn reopen(&self) {
        self.open.store(true, Ordering::Release);
    }

    pub fn close(&self) {
        self.open.store(false, Ordering::Release);
    }
}

/// Shared by every handler through `web::Data<AppState>`; cloning is cheap.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub message_keys: MessageKeys,
    pub bus: SharedBus,
    pub templates: Arc<Templates>,
    /// Failed sign-ins (and current-password guesses on `/account`).
    pub throttle: Arc<Throttle>,
    /// Uploads per user and per address.
    pub upload_limit: Arc<Throttle>,
    pub setup: Arc<Setup>,
    /// Signs the session and CSRF cookies (the gateway checks the session cookie with it).
    pub cookie_key: Key,
    pub options: Arc<Options>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Loads templates and decides whether the first-run setup link is open (no users).
    pub async fn new(settings: Settings, deps: Deps) -> anyhow::Result<AppState> {
        let templates = Templates::load().context("loading templates")?;
        let users = deps
            .db
            .run(domain::repo::user::count)
            .await
            .context("counting users (has `confab migrate` run on this database?)")?;
        let setup = Setup {
            token: crate::csrf::random_token(),
            open: AtomicBool::new(users == 0),
        };
        let cookie_key = Key::from(&domain::auth::cookie_key_material(&settings.secret_key));
        let throttle = Throttle::new(ThrottleLimits::sign_in(&settings));
        let upload_limit = Throttle::new(ThrottleLimits::uploads(&settings));
        Ok(AppState {
            db: deps.db,
            settings: Arc::new(settings),
            message_keys: deps.message_keys,
            bus: deps.bus,
            templates: Arc::new(templates),
            throttle: Arc::new(throttle),
            upload_limit: Arc::new(upload_limit),
            setup: Arc::new(setup),
            cookie_key,
            options: Arc::new(deps.options),
        })
    }

    /// `/setup/<token>` while no user exists; print it with the site's address.
    pub fn setup_path(&self) -> Option<String> {
        self.setup.path()
    }

    pub fn lifetimes(&self) -> Lifetimes {
        Lifetimes {
            idle_secs: self.settings.session_idle_timeout_secs,
            absolute_secs: self.settings.session_absolute_timeout_secs,
        }
    }
}
