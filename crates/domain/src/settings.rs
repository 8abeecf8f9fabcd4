//! Configuration: defaults in code → optional TOML file (`CONFAB_CONFIG`) → `CONFAB_*`
//! environment variables. Loaded and validated once at start-up and passed by value, so a
//! test can build its own without touching the process environment.

use crate::{
    crypto::MessageKeys,
    model::{PASSWORD_MAX_BYTES, PASSWORD_MIN_CHARS},
};
use figment::{
    Figment, Metadata, Profile, Provider,
    providers::{Format, Toml},
    value::{Dict, Map, Value},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use std::{
    ffi::OsString,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
};

/// Used when nothing is configured; `check --deploy` warns and production refuses it.
pub const DEV_SECRET_KEY: &str = "confab-development-secret-key-do-not-use-in-production";
const ENV_PREFIX: &str = "CONFAB_";
const MIN_SECRET_KEY_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub environment: Environment,
    /// `sqlite://PATH`, a bare file path, or `postgres://…`.
    pub database_url: String,
    pub database_pool_size: u32,
    /// Absent: in-process bus (only valid for `confab serve`).
    pub redis_url: Option<SecretString>,
    pub redis_prefix: String,
    pub secret_key: SecretString,
    /// `ID:BASE64KEY,…`; the first encrypts, all decrypt.
    pub message_keys: Option<SecretString>,
    /// A file holding the same format, used when `message_keys` is not set. In
    /// development it is created with a fresh key on first start.
    pub message_key_file: PathBuf,
    #[serde(deserialize_with = "string_or_list")]
    pub allowed_origins: Vec<String>,
    pub bind: SocketAddr,
    /// Where uploads and other state live.
    pub data_dir: PathBuf,
    pub bcrypt_cost: u32,
    pub session_idle_timeout_secs: u64,
    pub session_absolute_timeout_secs: u64,
    /// A new sign-in ends the user's other sessions.
    pub single_session: bool,
    /// The site is served over HTTPS (by nginx or the services): Secure cookies, HSTS.
    pub https: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Peers whose `X-Forwarded-For` is believed (nginx on this host); anyone else's
    /// address is taken from the connection itself.
    #[serde(deserialize_with = "string_or_list_parsed")]
    pub trusted_proxies: Vec<IpAddr>,
    pub log_format: LogFormat,
    pub max_frame_bytes: usize,
    pub max_message_chars: usize,
    /// Largest picture upload accepted, in bytes.
    pub max_image_bytes: u64,
    /// Largest video upload accepted, in bytes.
    pub max_video_bytes: u64,
    /// Media is answered with `X-Accel-Redirect: /_protected/<key>` for nginx to send,
    /// instead of the service streaming the file itself.
    pub media_x_accel: bool,
    /// WebSocket rate limits (per socket: any frame, `send` frames; per user on one
    /// gateway: `send` frames) and the outbound queue per socket. The defaults suit
    /// production; benchmarks raise them.
    pub ws_frames_per_sec: f64,
    pub ws_frames_burst: f64,
    pub ws_sends_per_sec: f64,
    pub ws_sends_burst: f64,
    pub ws_user_sends_per_sec: f64,
    pub ws_user_sends_burst: f64,
    pub ws_outbound_queue: usize,
    /// Catch-up reads (`join` with `since`) a gateway runs at once; the rest wait, so a
    /// mass reconnect after a restart cannot swamp the database.
    pub ws_catchup_concurrency: usize,
    /// `join` frames per socket (rate, burst): each one can read up to a page of history.
    pub ws_joins_per_sec: f64,
    pub ws_joins_burst: f64,
    /// Open sockets per user and per client address, counted per gateway process; the
    /// handshake beyond either is refused with 429.
    pub ws_max_sockets_per_user: usize,
    pub ws_max_sockets_per_address: usize,
    /// Shortest password accepted, in characters (see `domain::password_policy`).
    pub password_min_length: usize,
    /// Failed sign-ins per account name and per client address inside the window, before
    /// sign-in is refused with 429 until the window ends (per http-app process).
    pub login_account_failures: u32,
    pub login_address_failures: u32,
    pub login_window_secs: u64,
    /// Uploads per user and per client address inside the window (per http-app process).
    pub uploads_per_user: u32,
    pub uploads_per_address: u32,
    pub uploads_window_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            environment: Environment::Development,
            database_url: "sqlite://data/confab.sqlite3".into(),
            database_pool_size: 16,
            redis_url: None,
            redis_prefix: "confab".into(),
            secret_key: SecretString::from(DEV_SECRET_KEY),
            message_keys: None,
            message_key_file: PathBuf::from("data/message-keys"),
            allowed_origins: vec![
                "http://127.0.0.1:8000".into(),
                "http://localhost:8000".into(),
            ],
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            data_dir: PathBuf::from("data"),
            bcrypt_cost: 12,
            session_idle_timeout_secs: 14 * 24 * 3600,
            session_absolute_timeout_secs: 30 * 24 * 3600,
            single_session: false,
            https: false,
            tls_cert: None,
            tls_key: None,
            trusted_proxies: vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ],
            log_format: LogFormat::Text,
            max_frame_bytes: 64 * 1024,
            max_message_chars: 4000,
            max_image_bytes: 20 * 1024 * 1024,
            max_video_bytes: 200 * 1024 * 1024,
            media_x_accel: false,
            ws_frames_per_sec: 20.0,
            ws_frames_burst: 60.0,
            ws_sends_per_sec: 5.0,
            ws_sends_burst: 20.0,
            ws_user_sends_per_sec: 10.0,
            ws_user_sends_burst: 40.0,
            ws_outbound_queue: 256,
            ws_catchup_concurrency: 8,
            ws_joins_per_sec: 2.0,
            ws_joins_burst: 60.0,
            ws_max_sockets_per_user: 20,
            ws_max_sockets_per_address: 50,
            password_min_length: 10,
            login_account_failures: 5,
            login_address_failures: 30,
            login_window_secs: 15 * 60,
            uploads_per_user: 30,
            uploads_per_address: 60,
            uploads_window_secs: 10 * 60,
        }
    }
}

/// A configuration problem, naming where the bad value came from.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{source_name}: {problem}")]
pub struct ConfigError {
    /// `CONFAB_BIND`, `bind in /etc/confab.toml`, …
    pub source_name: String,
    pub problem: String,
}

impl ConfigError {
    fn var(name: &str, problem: impl Into<String>) -> Self {
        ConfigError {
            source_name: format!("{ENV_PREFIX}{}", name.to_uppercase()),
            problem: problem.into(),
        }
    }
}

impl Settings {
    /// Reads `CONFAB_CONFIG` and the `CONFAB_*` variables of this process.
    pub fn load() -> Result<Settings, ConfigError> {
        Self::from_env(std::env::vars_os())
    }

    /// Same as [`Settings::load`] over the given variables (tests pass their own).
    pub fn from_env(
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<Settings, ConfigError> {
        let mut env = Dict::new();
        let mut config_file = None;
        for (key, value) in vars {
            let Some(key) = key
                .to_str()
                .and_then(|k| k.strip_prefix(ENV_PREFIX))
                .map(str::to_owned)
            else {
                continue;
            };
            let value = value
                .into_string()
                .map_err(|_| ConfigError::var(&key, "the value is not valid UTF-8"))?;
            if key == "CONFIG" {
                config_file = Some(PathBuf::from(value));
            } else if !key.is_empty() {
                env.insert(
                    key.to_lowercase(),
                    value.parse::<Value>().unwrap_or_else(|e| match e {}),
                );
            }
        }
        let mut figment = Figment::new();
        if let Some(path) = &config_file {
            figment = figment.merge(Toml::string(&read_config_file(path)?));
        }
        let figment = figment.merge(EnvVars(env));
        let settings: Settings = figment
            .extract()
            .map_err(|e| describe(e, config_file.as_deref()))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let key = self.secret_key.expose_secret();
        if key.len() < MIN_SECRET_KEY_LEN && self.environment == Environment::Development {
            return Err(ConfigError::var(
                "secret_key",
                format!(
                    "too short ({} characters); it needs at least {MIN_SECRET_KEY_LEN}",
                    key.len()
                ),
            ));
        }
        if self.environment == Environment::Production {
            if key == DEV_SECRET_KEY {
                return Err(ConfigError::var(
                    "secret_key",
                    "production needs its own secret key, not the development default",
                ));
            }
            if key.len() < MIN_SECRET_KEY_LEN {
                return Err(ConfigError::var(
                    "secret_key",
                    format!(
                        "too short ({} characters); production needs at least {MIN_SECRET_KEY_LEN}",
                        key.len()
                    ),
                ));
            }
        }
        if self.database_url.trim().is_empty() {
            return Err(ConfigError::var("database_url", "must not be empty"));
        }
        if !(4..=31).contains(&self.bcrypt_cost) {
            return Err(ConfigError::var(
                "bcrypt_cost",
                format!("{} is outside 4..=31", self.bcrypt_cost),
            ));
        }
        if self.database_pool_size == 0 {
            return Err(ConfigError::var("database_pool_size", "must be at least 1"));
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.contains(char::is_whitespace) {
            return Err(ConfigError::var(
                "redis_prefix",
                "must be non-empty and without spaces",
            ));
        }
        if let Some(url) = &self.redis_url {
            let url = url.expose_secret();
            if !(url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("unix://"))
            {
                return Err(ConfigError::var(
                    "redis_url",
                    "must start with redis://, rediss:// or unix://",
                ));
            }
        }
        for origin in &self.allowed_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://"))
                || origin.ends_with('/')
            {
                return Err(ConfigError::var(
                    "allowed_origins",
                    format!("{origin:?} is not an origin like https://chat.example.com"),
                ));
            }
        }
        if self.session_idle_timeout_secs == 0
            || self.session_absolute_timeout_secs < self.session_idle_timeout_secs
        {
            return Err(ConfigError::var(
                "session_absolute_timeout_secs",
                "must be at least the idle timeout, and both above zero",
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::var(
                "tls_cert",
                "CONFAB_TLS_CERT and CONFAB_TLS_KEY go together",
            ));
        }
        if self.max_frame_bytes < 1024 {
            return Err(ConfigError::var("max_frame_bytes", "must be at least 1024"));
        }
        for (name, value) in [
            ("max_image_bytes", self.max_image_bytes),
            ("max_video_bytes", self.max_video_bytes),
        ] {
            // Below 1 KiB nothing useful fits; above 64 GiB is surely a typo.
            if !(1024..=64 << 30).contains(&value) {
                return Err(ConfigError::var(
                    name,
                    format!("{value} is outside 1024..=68719476736 bytes"),
                ));
            }
        }
        for (name, value) in [
            ("ws_frames_per_sec", self.ws_frames_per_sec),
            ("ws_frames_burst", self.ws_frames_burst),
            ("ws_sends_per_sec", self.ws_sends_per_sec),
            ("ws_sends_burst", self.ws_sends_burst),
            ("ws_user_sends_per_sec", self.ws_user_sends_per_sec),
            ("ws_user_sends_burst", self.ws_user_sends_burst),
            ("ws_joins_per_sec", self.ws_joins_per_sec),
            ("ws_joins_burst", self.ws_joins_burst),
        ] {
            // A limit of zero (or NaN) would refuse every frame; a burst below one too.
            if !(value.is_finite() && value >= 1.0) {
                return Err(ConfigError::var(
                    name,
                    format!("{value} must be at least 1"),
                ));
            }
        }
        if !(4..=1 << 20).contains(&self.ws_outbound_queue) {
            return Err(ConfigError::var(
                "ws_outbound_queue",
                format!("{} is outside 4..=1048576", self.ws_outbound_queue),
            ));
        }
        if !(1..=4096).contains(&self.ws_catchup_concurrency) {
            return Err(ConfigError::var(
                "ws_catchup_concurrency",
                format!("{} is outside 1..=4096", self.ws_catchup_concurrency),
            ));
        }
        for (name, value) in [
            (
                "ws_max_sockets_per_user",
                self.ws_max_sockets_per_user as u64,
            ),
            (
                "ws_max_sockets_per_address",
                self.ws_max_sockets_per_address as u64,
            ),
            (
                "login_account_failures",
                u64::from(self.login_account_failures),
            ),
            (
                "login_address_failures",
                u64::from(self.login_address_failures),
            ),
            ("login_window_secs", self.login_window_secs),
            ("uploads_per_user", u64::from(self.uploads_per_user)),
            ("uploads_per_address", u64::from(self.uploads_per_address)),
            ("uploads_window_secs", self.uploads_window_secs),
        ] {
            // Zero would refuse everyone; limits are turned up, not off.
            if value == 0 {
                return Err(ConfigError::var(name, "must be at least 1"));
            }
        }
        if !(PASSWORD_MIN_CHARS..=PASSWORD_MAX_BYTES).contains(&self.password_min_length) {
            return Err(ConfigError::var(
                "password_min_length",
                format!(
                    "{} is outside {PASSWORD_MIN_CHARS}..={PASSWORD_MAX_BYTES}",
                    self.password_min_length
                ),
            ));
        }
        if let Some(keys) = &self.message_keys {
            MessageKeys::parse(keys.expose_secret())
                .map_err(|e| ConfigError::var("message_keys", e))?;
        }
        Ok(())
    }

    /// The message keys: from `message_keys`, else the key file. In development a missing
    /// key file is created with a fresh random key; production never invents a key.
    pub fn message_keys(&self) -> Result<MessageKeys, ConfigError> {
        if let Some(keys) = &self.message_keys {
            return MessageKeys::parse(keys.expose_secret())
                .map_err(|e| ConfigError::var("message_keys", e));
        }
        let path = &self.message_key_file;
        let file_err = |problem: String| ConfigError {
            source_name: format!("message key file {}", path.display()),
            problem,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => MessageKeys::parse(text.trim()).map_err(file_err),
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && self.environment == Environment::Development =>
            {
                let line = MessageKeys::generate_line("k1");
                write_private_file(path, &line)
                    .map_err(|e| file_err(format!("could not create it: {e}")))?;
                tracing::info!(path = %path.display(), "created a new message key file");
                MessageKeys::parse(&line).map_err(file_err)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ConfigError::var(
                "message_keys",
                format!(
                    "not set, and the key file {} does not exist",
                    path.display()
                ),
            )),
            Err(e) => Err(file_err(e.to_string())),
        }
    }

    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }

    pub fn uses_default_secret_key(&self) -> bool {
        self.secret_key.expose_secret() == DEV_SECRET_KEY
    }
}

fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    let source_name = format!("CONFAB_CONFIG={}", path.display());
    let bytes = std::fs::read(path).map_err(|e| ConfigError {
        source_name: source_name.clone(),
        problem: e.to_string(),
    })?;
    String::from_utf8(bytes).map_err(|e| ConfigError {
        source_name,
        problem: format!("not valid UTF-8 (byte {})", e.utf8_error().valid_up_to()),
    })
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")
}

/// Turns figment's error into one that names the variable or file key.
fn describe(e: figment::Error, file: Option<&Path>) -> ConfigError {
    use figment::error::Kind;
    let from_env = e.metadata.as_ref().is_some_and(|m| m.name == ENV_METADATA);
    let key = match &e.kind {
        Kind::UnknownField(field, _) => field.clone(),
        _ => e.path.join("."),
    };
    let source_name = match (from_env, file) {
        (true, _) => format!("{ENV_PREFIX}{}", key.to_uppercase()),
        (false, Some(file)) => format!("`{key}` in {}", file.display()),
        (false, None) => key.clone(),
    };
    let problem = match &e.kind {
        Kind::UnknownField(..) => "is not a Confab setting".to_owned(),
        Kind::Message(msg) => msg.clone(),
        kind => kind.to_string(),
    };
    ConfigError {
        source_name,
        problem,
    }
}

const ENV_METADATA: &str = "CONFAB_* environment variables";

/// The environment as a figment provider, built from pairs we already checked for UTF-8.
struct EnvVars(Dict);

impl Provider for EnvVars {
    fn metadata(&self) -> Metadata {
        Metadata::named(ENV_METADATA)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.0.clone()))
    }
}

/// Lists come as TOML arrays or as comma-separated environment values.
fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

fn string_or_list_parsed<'de, D: Deserializer<'de>, T: std::str::FromStr>(
    d: D,
) -> Result<Vec<T>, D::Error>
where
    T::Err: std::fmt::Display,
{
    string_or_list(d)?
        .iter()
        .map(|s| {
            s.parse::<T>()
                .map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}")))
        })
        .collect()
}

impl Settings {
    /// The client's address: the connection's peer, or the last `X-Forwarded-For` hop
    /// when the peer is a trusted proxy (nginx sets the header to `$remote_addr`).
    pub fn client_address(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: Option<&str>,
    ) -> Option<IpAddr> {
        client_address(&self.trusted_proxies, peer, forwarded_for)
    }
}

/// [`Settings::client_address`] for a service that keeps only the trusted proxies.
pub fn client_address(
    trusted_proxies: &[IpAddr],
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted_proxies.contains(&peer) {
        return Some(peer);
    }
    forwarded_for
        .and_then(|h| h.rsplit(',').next())
        .and_then(|ip| ip.trim().parse().ok())
        .or(Some(peer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let s = Settings::default();
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            s.client_address(Some(proxy), Some("198.51.100.7")),
            Some("198.51.100.7".parse().unwrap())
        );
        assert_eq!(
            s.client_address(Some(proxy), Some("1.1.1.1, 198.51.100.7")),
            Some("198.51.100.7".parse().unwrap())
        );
        assert_eq!(
            s.client_address(Some(stranger), Some("198.51.100.7")),
            Some(stranger),
            "spoofed header ignored"
        );
        assert_eq!(s.client_address(Some(proxy), Some("garbage")), Some(proxy));
        assert_eq!(s.client_address(None, Some("198.51.100.7")), None);
        let e = Settings::from_env(env(&[("CONFAB_TRUSTED_PROXIES", "10.0.0.1, nonsense")]))
            .expect_err("bad address");
        assert_eq!(e.source_name, "CONFAB_TRUSTED_PROXIES");
        let s = Settings::from_env(env(&[("CONFAB_TRUSTED_PROXIES", "10.0.0.1,10.0.0.2")]))
            .expect("valid");
        assert_eq!(s.trusted_proxies.len(), 2);
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn zero_configuration_gives_development_defaults() {
        let s = Settings::from_env(env(&[("PATH", "/usr/bin")])).expect("defaults are valid");
        assert_eq!(s.environment, Environment::Development);
        assert_eq!(s.bind.to_string(), "127.0.0.1:8000");
        assert!(s.uses_default_secret_key());
    }

    #[test]
    fn environment_overrides_file_overrides_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("confab.toml");
        std::fs::write(&file, "bind = \"0.0.0.0:9000\"\nredis_prefix = \"fromfile\"\nallowed_origins = [\"https://a.example\"]\n")
            .expect("write");
        let s = Settings::from_env(env(&[
            ("CONFAB_CONFIG", file.to_str().expect("utf8")),
            ("CONFAB_REDIS_PREFIX", "fromenv"),
            ("CONFAB_BCRYPT_COST", "5"),
            (
                "CONFAB_ALLOWED_ORIGINS",
                "https://b.example, https://c.example",
            ),
        ]))
        .expect("valid");
        assert_eq!(s.bind.to_string(), "0.0.0.0:9000");
        assert_eq!(s.redis_prefix, "fromenv");
        assert_eq!(s.bcrypt_cost, 5);
        assert_eq!(
            s.allowed_origins,
            vec!["https://b.example", "https://c.example"]
        );
    }

    #[test]
    fn unknown_variable_is_named() {
        let e =
            Settings::from_env(env(&[("CONFAB_DATABSE_URL", "x")])).expect_err("typo must fail");
        assert_eq!(e.source_name, "CONFAB_DATABSE_URL");
        assert!(e.problem.contains("not a Confab setting"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_variable() {
        let e =
            Settings::from_env(env(&[("CONFAB_BIND", "not-an-address")])).expect_err("must fail");
        assert_eq!(e.source_name, "CONFAB_BIND");
        let e = Settings::from_env(env(&[("CONFAB_BCRYPT_COST", "lots")])).expect_err("must fail");
        assert_eq!(e.source_name, "CONFAB_BCRYPT_COST");
        let e =
            Settings::from_env(env(&[("CONFAB_ENVIRONMENT", "staging")])).expect_err("must fail");
        assert_eq!(e.source_name, "CONFAB_ENVIRONMENT");
        let e = Settings::from_env(env(&[("CONFAB_BCRYPT_COST", "2")])).expect_err("must fail");
        assert_eq!(e.source_name, "CONFAB_BCRYPT_COST");
    }

    #[test]
    fn invalid_utf8_is_reported_not_replaced() {
        let vars = vec![(
            OsString::from("CONFAB_REDIS_PREFIX"),
            OsString::from_vec(vec![b'a', 0xff, b'b']),
        )];
        let e = Settings::from_env(vars).expect_err("must fail");
        assert_eq!(e.source_name, "CONFAB_REDIS_PREFIX");
        assert!(e.problem.contains("UTF-8"));

        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, b"redis_prefix = \"a\xffb\"\n").expect("write");
        let e = Settings::from_env(env(&[("CONFAB_CONFIG", file.to_str().expect("utf8"))]))
            .expect_err("must fail");
        assert!(e.problem.contains("UTF-8"), "{e}");
    }

    #[test]
    fn file_errors_name_the_key_and_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "bcrypt_cost = \"high\"\n").expect("write");
        let e = Settings::from_env(env(&[("CONFAB_CONFIG", file.to_str().expect("utf8"))]))
            .expect_err("must fail");
        assert!(
            e.source_name.contains("bcrypt_cost") && e.source_name.contains("c.toml"),
            "{e}"
        );
        let e = Settings::from_env(env(&[("CONFAB_CONFIG", "/nonexistent/confab.toml")]))
            .expect_err("must fail");
        assert!(e.source_name.contains("CONFAB_CONFIG"), "{e}");
    }

    #[test]
    fn production_refuses_default_or_short_secret() {
        let e = Settings::from_env(env(&[("CONFAB_ENVIRONMENT", "production")]))
            .expect_err("default key");
        assert_eq!(e.source_name, "CONFAB_SECRET_KEY");
        let e = Settings::from_env(env(&[
            ("CONFAB_ENVIRONMENT", "production"),
            ("CONFAB_SECRET_KEY", "short"),
        ]))
        .expect_err("short key");
        assert!(e.problem.contains("too short"));
        let long = "x".repeat(48);
        Settings::from_env(env(&[
            ("CONFAB_ENVIRONMENT", "production"),
            ("CONFAB_SECRET_KEY", &long),
        ]))
        .expect("a long key is accepted");
    }

    #[test]
    fn upload_limits_are_validated() {
        let s = Settings::from_env(env(&[("CONFAB_MAX_IMAGE_BYTES", "4096")])).expect("valid");
        assert_eq!(s.max_image_bytes, 4096);
        assert_eq!(s.max_video_bytes, 200 * 1024 * 1024);
        assert!(!s.media_x_accel);
        let e = Settings::from_env(env(&[("CONFAB_MAX_VIDEO_BYTES", "10")])).expect_err("tiny");
        assert_eq!(e.source_name, "CONFAB_MAX_VIDEO_BYTES");
    }

    #[test]
    fn websocket_limits_are_configurable_and_validated() {
        let s = Settings::from_env(env(&[
            ("CONFAB_WS_SENDS_PER_SEC", "1000"),
            ("CONFAB_WS_OUTBOUND_QUEUE", "4096"),
        ]))
        .expect("valid");
        assert_eq!(s.ws_sends_per_sec, 1000.0);
        assert_eq!(s.ws_user_sends_per_sec, 10.0);
        assert_eq!(s.ws_outbound_queue, 4096);
        let e = Settings::from_env(env(&[("CONFAB_WS_SENDS_PER_SEC", "0")])).expect_err("zero");
        assert_eq!(e.source_name, "CONFAB_WS_SENDS_PER_SEC");
        let e = Settings::from_env(env(&[("CONFAB_WS_OUTBOUND_QUEUE", "1")])).expect_err("tiny");
        assert_eq!(e.source_name, "CONFAB_WS_OUTBOUND_QUEUE");
    }

    #[test]
    fn abuse_limits_and_password_length_are_configurable_and_validated() {
        let s = Settings::from_env(env(&[("PATH", "/usr/bin")])).expect("defaults");
        assert_eq!(s.password_min_length, 10);
        assert_eq!((s.uploads_per_user, s.uploads_window_secs), (30, 600));
        assert_eq!(s.ws_max_sockets_per_user, 20);
        let s = Settings::from_env(env(&[
            ("CONFAB_PASSWORD_MIN_LENGTH", "14"),
            ("CONFAB_LOGIN_ACCOUNT_FAILURES", "3"),
            ("CONFAB_UPLOADS_PER_ADDRESS", "7"),
            ("CONFAB_WS_MAX_SOCKETS_PER_ADDRESS", "9"),
            ("CONFAB_WS_JOINS_BURST", "5"),
        ]))
        .expect("valid");
        assert_eq!(s.password_min_length, 14);
        assert_eq!(s.login_account_failures, 3);
        assert_eq!(s.uploads_per_address, 7);
        assert_eq!(s.ws_max_sockets_per_address, 9);
        assert_eq!(s.ws_joins_burst, 5.0);
        for (var, value) in [
            ("CONFAB_PASSWORD_MIN_LENGTH", "4"),
            ("CONFAB_PASSWORD_MIN_LENGTH", "100"),
            ("CONFAB_PASSWORD_MIN_LENGTH", "ten"),
            ("CONFAB_UPLOADS_PER_USER", "0"),
            ("CONFAB_LOGIN_WINDOW_SECS", "0"),
            ("CONFAB_WS_MAX_SOCKETS_PER_USER", "0"),
            ("CONFAB_WS_JOINS_PER_SEC", "0"),
        ] {
            let e = Settings::from_env(env(&[(var, value)])).expect_err(value);
            assert_eq!(e.source_name, var, "{e}");
        }
    }

    #[test]
    fn bad_message_keys_are_refused() {
        let e = Settings::from_env(env(&[("CONFAB_MESSAGE_KEYS", "k1:not-base64!")]))
            .expect_err("must fail");
        assert_eq!(e.source_name, "CONFAB_MESSAGE_KEYS");
    }

    #[test]
    fn development_creates_a_key_file_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys/message-keys");
        let s = Settings {
            message_key_file: path.clone(),
            ..Settings::default()
        };
        let first = s.message_keys().expect("created");
        let second = s.message_keys().expect("read back");
        assert_eq!(first.current_id(), second.current_id());
        let sealed = first.seal(b"hello", b"aad").expect("seal");
        assert_eq!(
            second
                .open(&sealed.key_id, &sealed.bytes, b"aad")
                .expect("open"),
            b"hello"
        );
        let prod = Settings {
            environment: Environment::Production,
            message_key_file: dir.path().join("none"),
            ..s
        };
        assert!(
            prod.message_keys().is_err(),
            "production must not invent a key"
        );
    }
}
