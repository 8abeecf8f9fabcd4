//! Starting the real thing: binaries, nginx, certificates; and clients that speak to it
//! over TLS.

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU16, Ordering},
    },
    time::{Duration, Instant},
};
use tokio_tungstenite::{
    Connector, MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The folder cargo puts binaries in (`target/debug`), next to this test's own binary.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// A built service binary. Builds them once per run (a no-op when `cargo test --workspace`
/// already did), so `cargo test -p confab-e2e` alone also tests current code.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace())
            .args([
                "build",
                "--quiet",
                "-p",
                "confab-http-app",
                "-p",
                "confab-ws-gateway",
                "--bins",
            ])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building http-app and ws-gateway failed");
    });
    let path = bin_dir().join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A port no other test of this run has been given. Taken from below the kernel's ephemeral
/// range (32768 and up), so an outgoing connection cannot grab it between this check and
/// the server's bind, and counted per process, so two tests never get the same one.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 400) as u16 * 25;
    let _ = NEXT.compare_exchange(0, base, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = 20_000 + (port - 20_000) % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A child process killed when dropped, with its output kept in a log file.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.into(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of {} ---", self.name);
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `check` is true, or fails after `limit` naming what was awaited.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A throw-away certificate authority and a server certificate it signed.
pub struct Pki {
    pub ca_pem: String,
    /// base64 SHA-256 of the server key's SubjectPublicKeyInfo, for Chromium's
    /// `--ignore-certificate-errors-spki-list` (trust exactly this key, nothing else).
    pub server_spki_sha256: String,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

pub fn make_pki(dir: &Path) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Confab test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &issuer).unwrap();
    let cert_path = dir.join("server.pem");
    let key_path = dir.join("server.key");
    // The chain: server certificate, then the CA (as certbot's fullchain.pem does).
    std::fs::write(&cert_path, format!("{}{}", cert.pem(), ca_cert.pem())).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    use base64::Engine as _;
    use rcgen::PublicKeyData as _;
    use sha2::Digest as _;
    let spki = sha2::Sha256::digest(key.subject_public_key_info());
    Pki {
        ca_pem: ca_cert.pem(),
        server_spki_sha256: base64::engine::general_purpose::STANDARD.encode(spki),
        cert_path,
        key_path,
    }
}

pub fn tls_client_config(ca_pem: &str) -> rustls::ClientConfig {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A browser-like HTTPS client: the test CA, a cookie jar, no automatic redirects.
pub struct Browser {
    pub http: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
    pub origin: String,
    pub tls: Arc<rustls::ClientConfig>,
}

impl Browser {
    pub fn new(origin: &str, ca_pem: &str) -> Browser {
        let tls = tls_client_config(ca_pem);
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls.clone())
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser {
            http,
            jar,
            origin: origin.into(),
            tls: Arc::new(tls),
        }
    }

    /// The body of a page, fetched with this browser's cookies.
    pub async fn page(&self, path: &str) -> String {
        let r = self
            .http
            .get(format!("{}{path}", self.origin))
            .send()
            .await
            .unwrap();
        r.text().await.unwrap()
    }

    /// Signs in through the real form: fetch it for the CSRF token, post it back.
    pub async fn sign_in(&self, username: &str, password: &str) {
        let page = self
            .http
            .get(format!("{}/login", self.origin))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        let token = csrf_token(&html);
        let r = self
            .http
            .post(format!("{}/login", self.origin))
            .header("Origin", &self.origin)
            .form(&[
                ("username", username),
                ("password", password),
                ("csrf_token", &token),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            303,
            "sign-in of {username}: {:?}",
            r.text().await
        );
    }

    pub fn cookie_header(&self) -> String {
        use reqwest::cookie::CookieStore;
        let url: reqwest::Url = self.origin.parse().unwrap();
        self.jar
            .cookies(&url)
            .map(|h| h.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    /// A client for a plain-HTTP service (no nginx, no TLS).
    pub fn plain(origin: &str) -> Browser {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let tls = Arc::new(tls_client_config(""));
        Browser {
            http,
            jar,
            origin: origin.into(),
            tls,
        }
    }

    /// Opens `wss://…/ws` with this browser's cookies and Origin.
    pub async fn socket(&self) -> Socket {
        let url = self.origin.replacen("https://", "wss://", 1) + "/ws";
        self.socket_at(&url).await
    }

    /// Opens a socket at `url` (a gateway of its own) with this browser's cookies and
    /// the page's Origin.
    pub async fn socket_at(&self, url: &str) -> Socket {
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("Origin", HeaderValue::from_str(&self.origin).unwrap());
        req.headers_mut().insert(
            "Cookie",
            HeaderValue::from_str(&self.cookie_header()).unwrap(),
        );
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(
            req,
            None,
            true,
            Some(Connector::Rustls(self.tls.clone())),
        )
        .await
        .expect("wss connection through nginx");
        let mut s = Socket { ws };
        let hello = s.next_of("hello").await;
        assert_eq!(hello["protocol"], 1);
        s
    }
}

pub fn csrf_token(html: &str) -> String {
    let at = html
        .find("name=\"csrf_token\" value=\"")
        .expect("a CSRF field in the form");
    let rest = &html[at + "name=\"csrf_token\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

pub struct Socket {
    pub ws: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Socket {
    pub async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    /// The next JSON frame, or `None` when the socket closed.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("a frame within 10 s")
            {
                Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Skips frames until one of type `kind` (presence and typing come and go).
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let f = self
                .next()
                .await
                .unwrap_or_else(|| panic!("socket closed while waiting for {kind}"));
            if f["type"] == kind {
                return f;
            }
            assert_ne!(
                f["type"], "error",
                "error frame while waiting for {kind}: {f}"
            );
        }
    }

    /// The next `message` frame not written by `me` (a sender's own sockets get its
    /// messages too).
    pub async fn next_from_other(&mut self, me: &str) -> Value {
        loop {
            let m = self.next_of("message").await;
            if m["author"]["username"] != me {
                return m;
            }
        }
    }

    pub async fn join(&mut self, room: &str, since: Option<i64>) -> Value {
        let mut frame = serde_json::json!({"type": "join", "room": room});
        if let Some(s) = since {
            frame["since"] = s.into();
        }
        self.send(frame).await;
        self.next_of("joined").await
    }

    /// Sends and waits for the ack; returns the message id.
    pub async fn say(&mut self, room: &str, body: &str, client_id: &str) -> i64 {
        self.send(
            serde_json::json!({"type": "send", "room": room, "body": body, "client_id": client_id}),
        )
        .await;
        let ack = self.next_of("ack").await;
        assert_eq!(ack["client_id"], client_id);
        ack["id"].as_i64().unwrap()
    }
}

/// A Redis server of a test's own (`--save "" --appendonly no`), on a port of its own, so
/// a test may stop and restart it without touching the shared Redis on 6379.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    proc: Option<Proc>,
    starts: u32,
}

impl RedisServer {
    /// Starts it and waits until it answers `PING`.
    pub async fn start(dir: &Path) -> RedisServer {
        let found = Command::new("sh")
            .args(["-c", "command -v redis-server"])
            .output()
            .unwrap();
        assert!(
            found.status.success(),
            "redis-server is not installed: apt-get install -y redis-server"
        );
        let mut r = RedisServer {
            port: free_port(),
            dir: dir.to_path_buf(),
            proc: None,
            starts: 0,
        };
        r.resume().await;
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port (after [`RedisServer::stop`]).
    pub async fn resume(&mut self) {
        assert!(self.proc.is_none(), "redis-server is already running");
        self.starts += 1;
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.dir.to_str().unwrap(),
        ]);
        let name = format!("redis-{}-{}", self.port, self.starts);
        self.proc = Some(Proc::spawn(&name, cmd, &self.dir));
        let port = self.port;
        eventually(
            &format!("redis-server on port {port} to answer PING"),
            Duration::from_secs(20),
            || async move { redis_ping(port).await },
        )
        .await;
    }

    /// Stops it (SIGTERM: clients see their connections close) and waits until it is gone.
    pub fn stop(&mut self) {
        let mut proc = self.proc.take().expect("redis-server is running");
        proc.signal("TERM");
        let _ = proc.child.wait();
    }
}

/// Whether a Redis server answers `PING` on this port within a second.
pub async fn redis_ping(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let talk = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(b"PING\r\n").await?;
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).await?;
        Ok::<bool, std::io::Error>(buf[..n].starts_with(b"+PONG"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), talk).await,
        Ok(Ok(true))
    )
}

/// A PostgreSQL cluster of a test's own (`initdb` in a temporary folder, `pg_ctl` on a
/// port of its own), so a test may stop and start it without touching anyone else's.
/// `initdb` and `pg_ctl` refuse to run as root: as root they run as the `postgres` user
/// (`runuser`), in a folder that user owns. Stopped (immediately) when dropped.
pub struct PgCluster {
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
    as_postgres: bool,
}

impl PgCluster {
    /// # Panics
    /// With a message saying what is missing when no cluster can be made: a test must
    /// never pass by skipping.
    pub fn start() -> PgCluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
            .max_by_key(|b| {
                b.parent()
                    .and_then(|v| v.file_name())
                    .and_then(|v| v.to_str())
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(0)
            })
            .unwrap_or_else(|| {
                panic!(
                    "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin \
                     (apt-get install -y postgresql)"
                )
            });
        // The effective user, from `id -u` (no libc dependency for one number).
        let uid = Command::new("id").arg("-u").output().unwrap();
        let as_postgres = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        let dir = tempfile::tempdir().unwrap();
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres", dir.path().to_str().unwrap()])
                .status()
                .unwrap();
            assert!(
                ok.success(),
                "running as root, and cannot hand {} to the `postgres` user (is there one? \
                 apt-get install -y postgresql creates it); initdb refuses to run as root",
                dir.path().display()
            );
        }
        let pg = PgCluster {
            port: free_port(),
            bin,
            dir,
            as_postgres,
        };
        let out = pg
            .tool("initdb")
            .args(["-D", pg.data().to_str().unwrap()])
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed{}: {}{}",
            if pg.as_postgres {
                " (run as the postgres user with runuser)"
            } else {
                " (not root: run as this user)"
            },
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        pg.resume();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn tool(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// The superuser's URL for the cluster's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .tool("pg_ctl")
            .args(["-D", self.data().to_str().unwrap(), "-w", "-t", "60"])
            .args(["-l", self.dir.path().join("postgres.log").to_str().unwrap()])
            .args(["-o", &options, "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
        );
    }

    /// Stops the server (`fast`: open connections are cut, as in a crash of the link).
    pub fn stop(&self) {
        let out = self
            .tool("pg_ctl")
            .args([
                "-D",
                self.data().to_str().unwrap(),
                "-w",
                "-m",
                "fast",
                "stop",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .args([
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "stop",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A small tmpfs mounted on a folder for the life of the value (unmounted when dropped,
/// also when the test fails). Needs root.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    /// # Panics
    /// When not root, saying so: the disk-full scenario needs `mount` (scripts/test runs
    /// as root in CI).
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        let uid = Command::new("id").arg("-u").output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "this test needs root to mount a small tmpfs (scripts/test runs as root in CI)"
        );
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount -t tmpfs on {} failed (a container without CAP_SYS_ADMIN?): {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Busy (a process still has a file open there): detach it now, free it later.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}
