//! The chat UI in a real browser: Debian's Chromium, headless, driven over WebDriver
//! (fantoccini → chromedriver), against `confab serve` running as a real process on a
//! fresh SQLite database. Nothing is mocked; every wait is a bounded poll on a condition.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`apt-get install chromium
//! chromium-driver`; `scripts/test` installs them). Screenshots land in
//! `target/screenshots/`.

use domain::{
    crypto::MessageKeys,
    db::Db,
    model::MessageKind,
    repo::{self, message::NewMessage},
};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU16, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Longest wait for anything to appear in a page.
const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);
const ENTER: &str = "\u{E007}";
const SHIFT: &str = "\u{E008}";
/// Releases held modifier keys in a WebDriver key sequence.
const RELEASE: &str = "\u{E000}";

/// A port no other test of this run has been given. Taken from below the kernel's ephemeral
/// range (32768 and up), so an outgoing connection cannot grab it between this check and
/// the server's bind, and counted per process, so two tests never get the same one.
fn free_port() -> u16 {
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

/// A tiny blocking HTTP/1.1 request (chromedriver's status and clean-up), `None` if the
/// other end is not there. Reads by `Content-Length`: chromedriver does not close.
fn http(port: u16, method: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    String::from_utf8(body).ok()
}

/// `target/`: `CARGO_TARGET_DIR`, else three levels above this test binary
/// (`target/debug/deps/it-…`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

fn screenshot_path(name: &str) -> PathBuf {
    let dir = target_dir().join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{name}.png"))
}

fn require_browser() {
    for (path, what) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromedriver")] {
        assert!(
            Path::new(path).exists(),
            "{what} is missing ({path}): the browser tests need it. \
             Install it with: apt-get install chromium chromium-driver"
        );
    }
}

/// `confab serve` as a real process, in its own temporary directory.
struct Confab {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    db_url: String,
    keys_line: String,
}

impl Confab {
    fn start() -> Confab {
        let dir = tempfile::tempdir().unwrap();
        let db_url = format!(
            "sqlite://{}",
            dir.path().join("confab.sqlite3").to_string_lossy()
        );
        let mut confab = Confab {
            child: None,
            port: free_port(),
            db_url,
            keys_line: MessageKeys::generate_line("k1"),
            dir,
        };
        confab.spawn();
        confab
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_confab"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CONFAB_DATABASE_URL", &self.db_url)
            .env("CONFAB_BIND", format!("127.0.0.1:{}", self.port))
            .env(
                "CONFAB_ALLOWED_ORIGINS",
                format!("http://127.0.0.1:{}", self.port),
            )
            .env("CONFAB_BCRYPT_COST", "4")
            .env("CONFAB_MESSAGE_KEYS", &self.keys_line)
            .env("CONFAB_DATA_DIR", self.dir.path().join("data"));
        cmd
    }

    /// Starts the server and waits for the line saying it listens.
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("serve.log"))
            .unwrap();
        let mut child = self
            .command(&["serve"])
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("confab serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Keeps draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("Confab is running at http://") => break,
                Ok(_) => {}
                Err(e) => panic!(
                    "confab serve did not report it was running ({e}); log:\n{}",
                    self.log()
                ),
            }
        }
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): sockets stay open but nothing answers.
    fn freeze(&self) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let ok = Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -STOP {pid}");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    fn create_user(&self, name: &str, password: &str) {
        self.create_user_named(name, "", password);
    }

    /// A user with a display name (`""`: the username).
    fn create_user_named(&self, name: &str, display_name: &str, password: &str) {
        let mut child = self
            .command(&[
                "createuser",
                "--username",
                name,
                "--display-name",
                display_name,
                "--password-stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "createuser {name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A superuser, through `confab createsuperuser --password-stdin`.
    fn create_superuser(&self, name: &str, password: &str) {
        let mut child = self
            .command(&["createsuperuser", "--username", name, "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "createsuperuser {name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn create_room(&self, slug: &str, name: &str) {
        let out = self
            .command(&["createroom", slug, "--name", name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "createroom: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stores messages straight into the database (as the server would), to have a long
    /// history or something to catch up on. No doorbell rings: only a `join … since`
    /// or `history` finds them.
    fn post_directly(&self, room: &str, author: &str, bodies: &[String]) {
        let db = Db::connect(&self.db_url, 1).unwrap();
        let keys = MessageKeys::parse(&self.keys_line).unwrap();
        let mut c = db.get().unwrap();
        let room = repo::room::find_by_slug(&mut c, room).unwrap().unwrap();
        let user = repo::user::find_by_username(&mut c, author)
            .unwrap()
            .unwrap();
        for body in bodies {
            repo::message::post(
                &mut c,
                &keys,
                &NewMessage {
                    room_id: room.id,
                    author_id: Some(user.id),
                    kind: MessageKind::Text,
                    body: body.clone(),
                    client_id: None,
                },
                4000,
            )
            .unwrap();
        }
    }
}

impl Drop for Confab {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- confab serve log ---\n{}", self.log());
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Scheme {
    Light,
    Dark,
}

/// A chromedriver process, ended (with its process group, so Chromium too) on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = http(self.port, "GET", "/shutdown");
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
    }
}

/// One headless Chromium with its own chromedriver and a fresh profile.
struct Browser {
    client: Client,
    session: Option<String>,
    base: String,
    // Dropped after `Drop::drop` below has ended the session.
    driver: Driver,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn launch(confab: &Confab, scheme: Scheme) -> Browser {
        require_browser();
        let driver_port = free_port();
        let mut driver = Driver {
            child: Command::new(CHROMEDRIVER)
                .arg(format!("--port={driver_port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Its own process group, so that Drop can end Chromium with it.
                .process_group(0)
                .spawn()
                .expect("chromedriver starts"),
            port: driver_port,
        };
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = http(driver_port, "GET", "/status")
                && status.replace(' ', "").contains("\"ready\":true")
            {
                break;
            }
            if let Ok(Some(code)) = driver.child.try_wait() {
                panic!("chromedriver exited ({code}) before it was ready");
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver was not ready within {WAIT:?}"
            );
            tokio::time::sleep(POLL).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1280,800".to_owned(),
            "--lang=en-US".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        // prefers-color-scheme as the operating system would set it (0 = dark, 1 = light).
        match scheme {
            Scheme::Dark => {
                args.push("--force-dark-mode".to_owned());
                args.push("--blink-settings=preferredColorScheme=0".to_owned());
            }
            Scheme::Light => args.push("--blink-settings=preferredColorScheme=1".to_owned()),
        }
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": args,
                "prefs": { "intl": { "accept_languages": "en-US,en" } },
            },
        });
        let caps = caps.as_object().unwrap().clone();
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{driver_port}"))
            .await
            .expect("a Chromium session");
        let session = client.session_id().await.ok().flatten();
        Browser {
            client,
            driver,
            session,
            base: confab.url(""),
            _profile: profile,
        }
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` (an expression) until it is truthy; panics with `what` and a view
    /// of the page after [`WAIT`].
    async fn eventually(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        let wrapped = format!("return ({script});");
        loop {
            let v = self.js(&wrapped).await;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            if Instant::now() > deadline {
                let state = self
                    .js("return [document.location.href, document.getElementById('connection')?.dataset.state, \
                         [...document.querySelectorAll('#messages li.msg')].map(li => li.className + ': ' + li.querySelector('.body')?.textContent)];")
                    .await;
                panic!("timed out waiting for {what}; last value {v}; page: {state}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn sign_in(&self, username: &str, password: &str) {
        self.goto("/login").await;
        let c = &self.client;
        c.find(Locator::Css("#username"))
            .await
            .unwrap()
            .send_keys(username)
            .await
            .unwrap();
        c.find(Locator::Css("#password"))
            .await
            .unwrap()
            .send_keys(password)
            .await
            .unwrap();
        c.find(Locator::Css("form[action='/login'] button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        self.eventually(
            "the app shell after signing in",
            "location.pathname === '/' && document.querySelector('#room-list')",
        )
        .await;
    }

    async fn wait_online(&self) {
        self.eventually(
            "the connection to be up",
            "document.getElementById('connection').dataset.state === 'online' \
             && !document.getElementById('message-input').disabled",
        )
        .await;
    }

    /// Joins a room from the room directory and waits for the redirect into it, so the
    /// next navigation cannot race the form's.
    async fn join_room(&self, slug: &str) {
        self.goto("/rooms").await;
        self.client
            .find(Locator::Css(&format!(
                "form[action='/rooms/{slug}/join'] button"
            )))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        self.eventually(
            "the join to land in the room",
            &format!("location.pathname === '/' && location.hash === '#{slug}'"),
        )
        .await;
    }

    async fn open_room(&self, slug: &str) {
        self.client
            .find(Locator::Css(&format!("#sidebar a[data-room='{slug}']")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        self.eventually(
            "the room to open",
            &format!(
                "location.hash === '#{slug}' && document.querySelector(\"a[data-room='{slug}']\").getAttribute('aria-current') === 'page' \
                 && document.getElementById('history-loading').hidden"
            ),
        )
        .await;
    }

    /// Types into the composer and presses Enter, as a person would.
    async fn say(&self, text: &str) {
        self.wait_online().await;
        let input = self
            .client
            .find(Locator::Css("#message-input"))
            .await
            .unwrap();
        input.send_keys(text).await.unwrap();
        input.send_keys(ENTER).await.unwrap();
    }

    /// The bodies of acknowledged messages, in page order.
    async fn bodies(&self) -> Vec<String> {
        let v = self
            .js("return [...document.querySelectorAll('#messages li.msg[data-id]:not(.pending) .body')].map(b => b.textContent);")
            .await;
        serde_json::from_value(v).unwrap()
    }

    async fn wait_for_body(&self, text: &str) {
        let needle = serde_json::to_string(text).unwrap();
        self.eventually(
            &format!("a message {needle}"),
            &format!(
                "[...document.querySelectorAll('#messages li.msg[data-id]:not(.pending) .body')].some(b => b.textContent === {needle})"
            ),
        )
        .await;
    }

    /// Points at the message with this body (as a mouse would, so its actions show) and
    /// clicks one of its buttons.
    async fn message_action(&self, body: &str, action: &str) {
        let needle = serde_json::to_string(body).unwrap();
        let index = self
            .js(&format!(
                "return [...document.querySelectorAll('#messages li.msg')].findIndex(li => li.querySelector('.body').textContent === {needle});"
            ))
            .await;
        let index = index.as_i64().unwrap();
        assert!(index >= 0, "no message {needle}");
        let items = self
            .client
            .find_all(Locator::Css("#messages li.msg"))
            .await
            .unwrap();
        let li = &items[usize::try_from(index).unwrap()];
        li.find(Locator::Css(".body"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        li.find(Locator::Css(&format!("button[data-action='{action}']")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Picks files through the composer's file input (as the file chooser would).
    async fn attach(&self, path: &Path) {
        self.client
            .find(Locator::Css("#file-input"))
            .await
            .unwrap()
            .send_keys(path.to_str().unwrap())
            .await
            .unwrap();
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = screenshot_path(name);
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session, which quits Chromium; then `driver` drops.
        if let Some(id) = &self.session {
            let _ = http(self.driver.port, "DELETE", &format!("/session/{id}"));
        }
    }
}

/// Issue 3: sign in through the real form, open a room, and see it in the light and dark
/// themes (following the system), in Spanish, and on a phone-sized screen.
#[tokio::test]
async fn the_room_page_in_light_dark_spanish_and_on_a_phone() {
    let confab = Confab::start();
    confab.create_user("ana", "ana's password");

    let light = Browser::launch(&confab, Scheme::Light).await;
    light.sign_in("ana", "ana's password").await;
    light.open_room("general").await;
    light.wait_online().await;
    assert_eq!(
        light
            .js("return matchMedia('(prefers-color-scheme: dark)').matches;")
            .await,
        json!(false)
    );
    assert_eq!(
        light
            .js("return document.getElementById('room-title').textContent;")
            .await,
        json!("General")
    );
    light
        .say("Good morning! The agenda is at https://example.com/agenda.")
        .await;
    light
        .wait_for_body("Good morning! The agenda is at https://example.com/agenda.")
        .await;
    // Shift+Enter is a new line; Enter sends.
    let input = light
        .client
        .find(Locator::Css("#message-input"))
        .await
        .unwrap();
    input
        .send_keys(&format!("First line{SHIFT}{ENTER}{RELEASE}second line"))
        .await
        .unwrap();
    assert_eq!(
        light
            .js("return document.getElementById('message-input').value;")
            .await,
        json!("First line\nsecond line"),
        "Shift+Enter did not send"
    );
    input.send_keys(ENTER).await.unwrap();
    light.wait_for_body("First line\nsecond line").await;
    assert_eq!(
        light
            .js("return document.getElementById('message-input').value;")
            .await,
        json!(""),
        "sending empties the composer"
    );
    // Grouped under one header, after a "Today" separator, with a relative time.
    light
        .eventually(
            "the second message grouped with the first",
            "document.querySelectorAll('#messages li.msg.continued').length === 1",
        )
        .await;
    assert_eq!(
        light
            .js("return [...document.querySelectorAll('#messages .day-sep')].map(s => s.textContent);")
            .await,
        json!(["Today"])
    );
    assert_eq!(
        light
            .js("return document.querySelector('#messages li.msg .time').textContent;")
            .await,
        json!("now")
    );
    let light_bg = light
        .js("return getComputedStyle(document.getElementById('chat')).backgroundColor;")
        .await;
    assert_eq!(light_bg, json!("rgb(255, 255, 255)"));
    let shot = light.screenshot("room-light").await;
    assert!(shot.exists());

    // The same room in a browser whose system setting is dark.
    let dark = Browser::launch(&confab, Scheme::Dark).await;
    dark.sign_in("ana", "ana's password").await;
    dark.open_room("general").await;
    assert_eq!(
        dark.js("return matchMedia('(prefers-color-scheme: dark)').matches;")
            .await,
        json!(true)
    );
    dark.wait_for_body("First line\nsecond line").await;
    let dark_bg = dark
        .js("return getComputedStyle(document.getElementById('chat')).backgroundColor;")
        .await;
    assert_ne!(dark_bg, light_bg, "the dark theme follows the system");
    assert_eq!(dark_bg, json!("rgb(29, 32, 38)"));
    dark.screenshot("room-dark").await;

    // Spanish, through the language switcher.
    light
        .client
        .find(Locator::Css("#lang-select option[value='es']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    light
        .client
        .find(Locator::Css(".lang-switcher button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    light
        .eventually(
            "the page in Spanish",
            "document.documentElement.lang === 'es' && document.getElementById('rooms-heading')",
        )
        .await;
    light.wait_online().await;
    light
        .wait_for_body("Good morning! The agenda is at https://example.com/agenda.")
        .await;
    assert_eq!(
        light
            .js(
                "return [document.getElementById('rooms-heading').textContent, \
                 document.getElementById('dm-heading').textContent, \
                 document.getElementById('send-button').textContent, \
                 document.getElementById('message-input').placeholder, \
                 document.getElementById('connection-text').textContent, \
                 [...document.querySelectorAll('#messages .day-sep')].map(s => s.textContent)];"
            )
            .await,
        json!([
            "Salas",
            "Chats privados",
            "Enviar",
            "Escribe un mensaje…",
            "Conectado",
            ["Hoy"]
        ])
    );
    light.say("¡Hola a todos!").await;
    light.wait_for_body("¡Hola a todos!").await;
    light.screenshot("room-es").await;

    // Keyboard and screen readers: a skip link to the chat, every control labelled.
    assert_eq!(
        light
            .js("return [document.querySelector('.skip-link').getAttribute('href'), !!document.getElementById('chat')];")
            .await,
        json!(["#chat", true])
    );
    let unlabelled = light
        .js("return [...document.querySelectorAll('button, textarea, select, input:not([type=hidden]), a[href]')]
               .filter(e => e.getClientRects().length > 0)
               .filter(e => !((e.getAttribute('aria-label') || '').trim()
                   || [...(e.labels || [])].some(l => l.textContent.trim())
                   || e.textContent.trim() || (e.title || '').trim()))
               .map(e => e.outerHTML);")
        .await;
    assert_eq!(unlabelled, json!([]), "controls without a name");

    // A phone: the sidebar is a drawer behind a button, and nothing overflows sideways.
    light.client.set_window_size(375, 812).await.unwrap();
    light
        .eventually(
            "a 375 px wide viewport",
            "window.innerWidth <= 400 && getComputedStyle(document.getElementById('sidebar-toggle')).display !== 'none'",
        )
        .await;
    // (The drawer slides away: visibility flips when its transition ends.)
    light
        .eventually(
            "the sidebar to be hidden",
            "getComputedStyle(document.getElementById('sidebar')).visibility === 'hidden'",
        )
        .await;
    assert_eq!(
        light
            .js("return [document.documentElement.scrollWidth <= window.innerWidth, \
                 document.getElementById('chat').getBoundingClientRect().width <= window.innerWidth];")
            .await,
        json!([true, true])
    );
    light.screenshot("room-phone").await;
    light
        .client
        .find(Locator::Css("#sidebar-toggle"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    light
        .eventually(
            "the drawer to open",
            "getComputedStyle(document.getElementById('sidebar')).visibility === 'visible' \
             && document.getElementById('sidebar').getBoundingClientRect().left >= 0 \
             && document.getElementById('sidebar-toggle').getAttribute('aria-expanded') === 'true'",
        )
        .await;
    light.screenshot("room-phone-drawer").await;
    light
        .client
        .find(Locator::Css("#sidebar a[data-room='general']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    light
        .eventually(
            "the drawer to close after picking a room",
            "getComputedStyle(document.getElementById('sidebar')).visibility === 'hidden'",
        )
        .await;

    // Signing out everywhere else from the dark browser ends the light one's session:
    // its socket closes with 4001 and the page goes to the sign-in form.
    dark.goto("/devices").await;
    dark.client
        .find(Locator::Css("form[action='/devices/others/revoke'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    light
        .eventually(
            "the sign-in page after the session ended",
            "location.pathname === '/login'",
        )
        .await;
}

/// Issue 4: two people in two browsers chat in one room and each sees the other's
/// messages arrive live; a message in another room shows as unread.
#[tokio::test]
async fn two_people_chat_live_in_one_room() {
    let confab = Confab::start();
    confab.create_user("ana", "ana's password");
    confab.create_user("ben", "ben's password");
    confab.create_room("team", "The Team");

    let ana = Browser::launch(&confab, Scheme::Light).await;
    let ben = Browser::launch(&confab, Scheme::Dark).await;
    for (browser, name) in [(&ana, "ana"), (&ben, "ben")] {
        browser.sign_in(name, &format!("{name}'s password")).await;
        // Join #team from the room directory, then back to the chat.
        browser.join_room("team").await;
        browser.goto("/#general").await;
        browser
            .eventually(
                "#team in the sidebar",
                "document.querySelector(\"#room-list a[data-room='team']\")",
            )
            .await;
        browser.open_room("general").await;
        browser.wait_online().await;
    }

    ana.say("Hi Ben, are you there?").await;
    ben.wait_for_body("Hi Ben, are you there?").await;
    assert_eq!(
        ben.js("return document.querySelector('#messages li.msg[data-id] .author').textContent;")
            .await,
        json!("ana")
    );
    ben.say("Yes! Hi Ana.").await;
    ana.wait_for_body("Yes! Hi Ana.").await;
    ana.say("Great.").await;
    ben.wait_for_body("Great.").await;
    assert_eq!(
        ana.bodies().await,
        ["Hi Ben, are you there?", "Yes! Hi Ana.", "Great."],
        "both see the same order"
    );
    assert_eq!(ben.bodies().await, ana.bodies().await);
    // Ana's own messages were acknowledged: nothing is left pending.
    assert_eq!(
        ana.js("return document.querySelectorAll('#messages li.msg.pending, #messages li.msg.failed').length;")
            .await,
        json!(0)
    );
    // Ben hears about new messages for screen readers too.
    assert_eq!(
        ben.js("return document.getElementById('announcer').textContent;")
            .await,
        json!("ana: Great.")
    );

    // Ana corrects a message and deletes another: Ben sees "edited" and "deleted".
    ana.message_action("Great.", "edit").await;
    let edit_box = ana
        .client
        .find(Locator::Css("#messages .edit-form textarea"))
        .await
        .unwrap();
    edit_box.clear().await.unwrap();
    edit_box.send_keys(&format!("Great!{ENTER}")).await.unwrap();
    ben.eventually(
        "the edited message, marked as edited",
        "[...document.querySelectorAll('#messages li.msg')].some(li => li.querySelector('.body').textContent === 'Great!' \
           && li.querySelector('.mark.edited')?.textContent === '(edited)')",
    )
    .await;
    ana.message_action("Hi Ben, are you there?", "delete").await;
    ana.client
        .find(Locator::Css(
            "#messages button[data-action='confirm-delete']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    ben.eventually(
        "the deleted message, marked as deleted",
        "document.querySelector('#messages li.msg.deleted .body')?.textContent === '(message deleted)'",
    )
    .await;
    assert_eq!(
        ben.bodies().await,
        ["(message deleted)", "Yes! Hi Ana.", "Great!"]
    );
    ben.message_action("Yes! Hi Ana.", "edit").await;
    ben.screenshot("chat-ben-editing").await;
    ben.client
        .find(Locator::Css("#messages .edit-form button.secondary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    ana.screenshot("chat-ana").await;
    // Ben may change only his own message.
    assert_eq!(
        ben.js("return [...document.querySelectorAll('#messages li.msg')].map(li => li.querySelectorAll('.actions button').length);")
            .await,
        json!([0, 2, 0])
    );

    // Elsewhere: a message in #team is an unread count for Ben, who stays in #general.
    ana.open_room("team").await;
    ana.say("Over here for the team stuff").await;
    ana.wait_for_body("Over here for the team stuff").await;
    ben.eventually(
        "an unread count on #team",
        "document.querySelector(\"a[data-room='team'] .unread-count:not([hidden]) .count\")?.textContent === '1'",
    )
    .await;
    ben.open_room("team").await;
    ben.wait_for_body("Over here for the team stuff").await;
    ben.eventually(
        "the unread count to go once read",
        "document.querySelector(\"a[data-room='team'] .unread-count\").hidden",
    )
    .await;
}

/// Whatever people type is shown as text: no element is ever made from it, and only
/// http(s) URLs become links (opening in a new tab, without referrer or opener).
#[tokio::test]
async fn user_text_is_only_ever_text_and_only_web_links_are_links() {
    let confab = Confab::start();
    confab.create_user("eve", "eve's password");
    let eve = Browser::launch(&confab, Scheme::Light).await;
    eve.sign_in("eve", "eve's password").await;
    eve.open_room("general").await;

    let nasty = [
        "<img src=x onerror=alert(1)>",
        "<script>alert(2)</script>",
        "<a href=\"javascript:alert(3)\">click</a> javascript:alert(4) and https://example.com",
        "javascript://example.com/%0Aalert(5) data:text/html,<b>x</b> JaVaScRiPt://x.org/%0Aalert(6)",
    ];
    for text in nasty {
        eve.say(text).await;
        eve.wait_for_body(text).await;
    }
    for round in ["live", "after a reload (from history)"] {
        assert_eq!(eve.bodies().await, nasty, "{round}");
        assert_eq!(
            eve.js("return document.querySelectorAll('#messages img, #messages script, #messages iframe, #messages [onerror]').length;")
                .await,
            json!(0),
            "{round}: no element from user text"
        );
        let links = eve
            .js("return [...document.querySelectorAll('#messages a')].map(a => [a.getAttribute('href'), a.rel, a.target, a.textContent]);")
            .await;
        assert_eq!(
            links,
            json!([[
                "https://example.com",
                "noopener noreferrer",
                "_blank",
                "https://example.com"
            ]]),
            "{round}"
        );
        assert!(
            eve.client.get_alert_text().await.is_err(),
            "{round}: no alert ran"
        );
        eve.client.refresh().await.unwrap();
        eve.eventually(
            "the history after the reload",
            "document.querySelectorAll('#messages li.msg[data-id]').length === 4",
        )
        .await;
    }
}

/// Scrolling up fetches older history page by page; when the server goes away the
/// composer is disabled, and once it is back the client reconnects on its own and
/// catches up with what it missed.
#[tokio::test]
async fn history_scrolls_back_and_a_reconnect_catches_up() {
    let mut confab = Confab::start();
    confab.create_user("ana", "ana's password");
    confab.create_user("ben", "ben's password");
    let old: Vec<String> = (0..120).map(|i| format!("old message {i}")).collect();
    confab.post_directly("general", "ben", &old);

    let ana = Browser::launch(&confab, Scheme::Light).await;
    ana.sign_in("ana", "ana's password").await;
    ana.open_room("general").await;
    ana.wait_for_body("old message 119").await;
    let shown = ana.bodies().await.len();
    assert!(shown < 120, "the first page is not everything ({shown})");
    // Scroll to the top until the beginning of the room shows.
    let deadline = Instant::now() + WAIT;
    while ana
        .js("return document.getElementById('history-start').hidden;")
        .await
        == json!(true)
    {
        assert!(
            Instant::now() < deadline,
            "history did not reach the beginning"
        );
        ana.js("document.getElementById('scroller').scrollTop = 0;")
            .await;
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(ana.bodies().await, old, "every message once, in order");

    // The server hangs: the socket looks open, so a message can be typed and sent, and
    // it stays pending without an ack.
    confab.freeze();
    ana.say("typed during the outage").await;
    ana.eventually(
        "the message shown as pending",
        "[...document.querySelectorAll('#messages li.msg.pending')].some(li => li.querySelector('.body').textContent === 'typed during the outage')",
    )
    .await;
    // Then the server dies: offline, composer disabled, the message still pending.
    confab.stop();
    ana.eventually(
        "the offline state",
        "document.getElementById('connection').dataset.state === 'offline' \
         && document.getElementById('message-input').disabled \
         && document.getElementById('reconnect-now').hidden === false",
    )
    .await;
    assert_eq!(
        ana.js("return document.querySelectorAll('#messages li.msg.pending').length;")
            .await,
        json!(1)
    );
    confab.post_directly("general", "ben", &["sent while ana was away".to_owned()]);
    confab.spawn();
    // Reconnects by itself (back-off), `join … since` brings the missed message, and the
    // pending one is sent again and acknowledged.
    ana.wait_for_body("sent while ana was away").await;
    ana.wait_for_body("typed during the outage").await;
    ana.wait_online().await;
    ana.say("back again").await;
    ana.wait_for_body("back again").await;
    let bodies = ana.bodies().await;
    assert_eq!(
        &bodies[118..],
        [
            "old message 118",
            "old message 119",
            "sent while ana was away",
            "typed during the outage",
            "back again"
        ],
        "each message once, in id order"
    );
    assert_eq!(
        ana.js("return document.querySelectorAll('#messages li.msg.pending').length;")
            .await,
        json!(0)
    );
}

/// A PNG made by hand (stored, uncompressed deflate): `width`×`height` RGB pixels from
/// `pixel(x, y)`. Enough for the server's decoder, which re-encodes and thumbnails it.
fn png(width: u32, height: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFF_u32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut raw = Vec::new();
    for y in 0..height {
        raw.push(0); // filter: none
        for x in 0..width {
            raw.extend_from_slice(&pixel(x, y));
        }
    }
    // zlib: header, stored blocks of at most 65535 bytes, Adler-32.
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = u16::try_from(block.len()).unwrap();
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    let (mut a, mut b) = (1_u32, 0_u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());

    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, no interlace
    chunk(&mut out, b"IHDR", &header);
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A short real WebM clip, recorded by the browser itself (a canvas animation through
/// MediaRecorder, VP8): there is no video encoder in the test's toolbox otherwise.
/// `None` if this Chromium cannot record.
async fn record_webm(browser: &Browser) -> Option<Vec<u8>> {
    let script = r#"
        const done = arguments[arguments.length - 1];
        try {
          const type = ['video/webm;codecs=vp8', 'video/webm'].find(t => MediaRecorder.isTypeSupported(t));
          if (!type) return done(null);
          const canvas = document.createElement('canvas');
          canvas.width = 320; canvas.height = 180;
          const ctx = canvas.getContext('2d');
          const recorder = new MediaRecorder(canvas.captureStream(25), { mimeType: type });
          const chunks = [];
          recorder.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
          recorder.onstop = async () => {
            const bytes = new Uint8Array(await new Blob(chunks).arrayBuffer());
            done(Array.from(bytes));
          };
          let frame = 0;
          const started = performance.now();
          const draw = () => {
            ctx.fillStyle = `hsl(${(frame * 9) % 360} 65% 45%)`;
            ctx.fillRect(0, 0, 320, 180);
            ctx.fillStyle = '#fff';
            ctx.font = 'bold 64px sans-serif';
            ctx.fillText(String(frame), 120, 115);
            frame += 1;
            if (performance.now() - started < 1500) setTimeout(draw, 40);
            else recorder.stop();
          };
          recorder.start(100);
          draw();
        } catch (e) {
          done(null);
        }
    "#;
    let value = browser
        .client
        .execute_async(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("recording a clip failed: {e}"));
    let bytes: Option<Vec<u8>> = serde_json::from_value(value).ok().flatten();
    bytes.filter(|b| b.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]))
}

/// Issue 6: Ana starts a private chat with Ben through the picker (keyboard only); it
/// appears live in Ben's sidebar with Ana's presence; Ana's mention and her picture and
/// video (picked through the file input) reach Ben as a mention badge, a picture preview
/// and a video player under a "new messages" line; Ben's typing shows for Ana; a file
/// that is no picture is refused with a translated reason.
#[tokio::test]
async fn a_private_chat_with_a_picture_and_a_video() {
    let confab = Confab::start();
    confab.create_user_named("ana", "Ana Lima", "ana's password");
    confab.create_user_named("ben", "Ben Okafor", "ben's password");
    confab.create_user_named("bea", "Bea Costa", "bea's password");

    let ana = Browser::launch(&confab, Scheme::Light).await;
    let ben = Browser::launch(&confab, Scheme::Light).await;
    for (browser, name) in [(&ana, "ana"), (&ben, "ben")] {
        // Tall enough for the whole conversation in the screenshots.
        browser.client.set_window_size(1280, 1000).await.unwrap();
        browser.sign_in(name, &format!("{name}'s password")).await;
        browser.open_room("general").await;
        browser.wait_online().await;
    }
    assert_eq!(
        ben.js("return document.querySelectorAll('#dm-list a').length;")
            .await,
        json!(0)
    );

    // The picker: search as you type, arrows and Enter, then Enter again to start.
    ana.client
        .find(Locator::Css("#new-dm"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    ana.eventually(
        "the picker to open with the search box focused",
        "document.getElementById('dm-dialog').open && document.activeElement === document.getElementById('dm-search')",
    )
    .await;
    ana.eventually(
        "everyone but ana listed",
        "JSON.stringify([...document.querySelectorAll('#dm-results [role=option]')].map(o => o.dataset.username)) === '[\"bea\",\"ben\"]'",
    )
    .await;
    let search = ana.client.find(Locator::Css("#dm-search")).await.unwrap();
    search.send_keys("be").await.unwrap();
    ana.eventually(
        "bea and ben found, the first highlighted",
        "document.querySelectorAll('#dm-results [role=option]').length === 2 \
         && document.getElementById('dm-search').getAttribute('aria-activedescendant') === 'dm-option-0'",
    )
    .await;
    search.send_keys("n").await.unwrap();
    ana.eventually(
        "only ben, highlighted",
        "document.querySelectorAll('#dm-results [role=option]').length === 1 \
         && document.querySelector('#dm-results [role=option].active')?.dataset.username === 'ben'",
    )
    .await;
    search.send_keys(ENTER).await.unwrap();
    ana.eventually(
        "ben picked",
        "[...document.querySelectorAll('#dm-chosen .chip')].map(c => c.firstChild.textContent).join() === 'Ben Okafor' \
         && !document.getElementById('dm-start').disabled && document.getElementById('dm-search').value === ''",
    )
    .await;
    ana.screenshot("private-chat-picker").await;
    search.send_keys(ENTER).await.unwrap();
    let slug = ana
        .eventually(
            "the new private chat open",
            "!document.getElementById('dm-dialog').open && location.hash.startsWith('#dm-') \
             && document.querySelector('#dm-list a[aria-current=page]') \
             && document.getElementById('room-title').textContent === 'Ben Okafor' \
             && location.hash.slice(1)",
        )
        .await;
    let slug = slug.as_str().unwrap().to_owned();
    ana.wait_online().await;

    // Ben's sidebar learns of it live, named after Ana, with her presence.
    let link = format!("#dm-list a[data-room='{slug}']");
    ben.eventually(
        "the private chat in ben's sidebar",
        &format!(
            "document.querySelector(\"{link} .room-name\")?.textContent === 'Ana Lima' \
             && document.querySelector(\"{link} .presence\").dataset.status === 'online'"
        ),
    )
    .await;
    ana.eventually(
        "ben shown online in the chat's header",
        "[...document.querySelectorAll('#room-members .member')].map(m => m.dataset.username + ': ' + m.textContent).join() === 'ben: online' \
         && document.querySelector('#room-members .presence').dataset.status === 'online'",
    )
    .await;

    // A mention, a picture and a video; Ben is still in #general.
    ana.say("Hi @ben, the photos from Friday:").await;
    ana.wait_for_body("Hi @ben, the photos from Friday:").await;
    let dir = tempfile::tempdir().unwrap();
    let picture = dir.path().join("sunset.png");
    std::fs::write(
        &picture,
        png(240, 160, |x, y| {
            let (dx, dy) = (f64::from(x) - 170.0, f64::from(y) - 60.0);
            if dx * dx + dy * dy < 900.0 {
                [255, 214, 92]
            } else if y > 110 {
                [32, 64, 120 + u8::try_from(x / 4).unwrap()]
            } else {
                [240, 120 + u8::try_from(y / 2).unwrap(), 80]
            }
        }),
    )
    .unwrap();
    ana.attach(&picture).await;
    ana.eventually(
        "the picture in ana's own view",
        "document.querySelector('#messages li.kind-attachment img.attachment')?.complete \
         && document.querySelector('#messages li.kind-attachment img.attachment').naturalWidth > 0",
    )
    .await;
    let recorded = record_webm(&ana).await;
    let clip = dir.path().join("clip.webm");
    // Without a recorder: the smallest file the server's sniffer takes for a WebM.
    let real_video = recorded.is_some();
    std::fs::write(
        &clip,
        recorded.unwrap_or_else(|| {
            b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm\x42\x87\x81\x02\x42\x85\x81\x02".to_vec()
        }),
    )
    .unwrap();
    ana.attach(&clip).await;
    ana.eventually(
        "the video in ana's own view",
        "document.querySelector('#messages li.kind-attachment video.attachment')",
    )
    .await;
    assert_eq!(
        ana.js("return document.querySelectorAll('#uploads li').length;")
            .await,
        json!(0),
        "finished uploads leave the tray"
    );

    // A text file named like a picture: refused, with the reason in words.
    let fake = dir.path().join("notes.png");
    std::fs::write(&fake, "<html>not a picture</html>").unwrap();
    ana.attach(&fake).await;
    ana.eventually(
        "the refusal shown",
        "document.querySelector('#uploads li.failed .upload-error')?.textContent.startsWith('notes.png cannot be sent')",
    )
    .await;

    // Ben: one unread mention in a chat with three new messages.
    ben.eventually(
        "unread and mention badges on the private chat",
        &format!(
            "document.querySelector(\"{link} .unread-count:not([hidden]) .count\")?.textContent === '3' \
             && document.querySelector(\"{link} .mention-count:not([hidden]) .count\")?.textContent === '1'"
        ),
    )
    .await;
    ben.open_room(&slug).await;
    ben.eventually(
        "the picture preview (the thumbnail, linking to the full picture)",
        "(() => { const img = document.querySelector('#messages li.kind-attachment img.attachment'); \
           return img && img.complete && img.naturalWidth > 0 \
             && /^\\/media\\/\\d+\\/thumb$/.test(img.getAttribute('src')) \
             && img.closest('a').getAttribute('href') === img.getAttribute('src').replace('/thumb', '') \
             && img.alt === 'Picture'; })()",
    )
    .await;
    ben.eventually(
        "the video player",
        "(() => { const v = document.querySelector('#messages li.kind-attachment video.attachment'); \
           return v && v.controls && v.getAttribute('preload') === 'metadata' \
             && /^\\/media\\/\\d+$/.test(v.getAttribute('src')); })()",
    )
    .await;
    if real_video {
        ben.eventually(
            "the video's metadata loaded (a real, playable clip)",
            "(() => { const v = document.querySelector('#messages li.kind-attachment video.attachment'); \
               return v.readyState >= 1 && v.videoWidth === 320; })()",
        )
        .await;
    }
    assert_eq!(
        ben.js("return [document.querySelector('#messages li.new-divider')?.textContent, \
                 document.querySelector('#messages li.new-divider + li.msg, #messages li.new-divider + li.day-sep + li.msg')?.querySelector('.body').textContent, \
                 [...document.querySelectorAll('#messages .mention')].map(m => [m.textContent, m.classList.contains('me')]), \
                 document.querySelector('#messages li.msg.mentions-me') !== null];")
            .await,
        json!([
            "New messages",
            "Hi @ben, the photos from Friday:",
            [["@ben", true]],
            true
        ])
    );
    // Read to the end (the view may have opened at the divider).
    ben.js("const s = document.getElementById('scroller'); s.scrollTop = s.scrollHeight;")
        .await;
    ben.eventually(
        "the badges gone once read",
        &format!(
            "document.querySelector(\"{link} .unread-count\").hidden && document.querySelector(\"{link} .mention-count\").hidden"
        ),
    )
    .await;

    // Ben types: Ana sees it, then it goes away by itself.
    ben.wait_online().await;
    ben.client
        .find(Locator::Css("#message-input"))
        .await
        .unwrap()
        .send_keys("Gorgeous")
        .await
        .unwrap();
    ana.eventually(
        "ben typing",
        "document.getElementById('typing').textContent === 'Ben Okafor is typing…'",
    )
    .await;
    // (Ana dismisses the refusal first.)
    ana.client
        .find(Locator::Css("#uploads li.failed button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(
        ana.js("return document.querySelectorAll('#uploads li').length;")
            .await,
        json!(0)
    );
    let shot = ana.screenshot("private-chat-media").await;
    assert!(shot.exists());
    ben.screenshot("private-chat-media-ben").await;
    ana.eventually(
        "the typing line to expire",
        "document.getElementById('typing').textContent === ''",
    )
    .await;

    // A picture dropped onto the pane, and one pasted into the composer, are sent too
    // (the same bytes, fetched back from the server).
    let shown = ana
        .js("return fetch(document.querySelector('#messages li.kind-attachment a.attachment-link').href)                .then(r => r.blob()).then(blob => {                  const files = (name) => { const dt = new DataTransfer();                    dt.items.add(new File([blob], name, {type: blob.type})); return dt; };                  const chat = document.getElementById('chat');                  const drop = files('dropped.png');                  chat.dispatchEvent(new DragEvent('dragenter', {dataTransfer: drop, bubbles: true, cancelable: true}));                  const shown = !document.getElementById('drop-zone').hidden;                  chat.dispatchEvent(new DragEvent('drop', {dataTransfer: drop, bubbles: true, cancelable: true}));                  document.getElementById('message-input').dispatchEvent(                    new ClipboardEvent('paste', {clipboardData: files('pasted.png'), bubbles: true, cancelable: true}));                  return [shown, document.getElementById('drop-zone').hidden]; });")
        .await;
    assert_eq!(
        shown,
        json!([true, true]),
        "the drop zone shows while dragging"
    );
    ben.eventually(
        "three pictures for ben",
        "[...document.querySelectorAll('#messages li.kind-attachment img.attachment')].filter(i => i.complete && i.naturalWidth > 0).length === 3",
    )
    .await;
}

/// Issue 6: unread and mention badges in the sidebar, live and after a reload, and a
/// `read` from another tab (here: another browser of the same person) clears them.
#[tokio::test]
async fn the_sidebar_shows_unread_and_mention_badges() {
    let confab = Confab::start();
    confab.create_user_named("ana", "Ana Lima", "ana's password");
    confab.create_user_named("ben", "Ben Okafor", "ben's password");
    confab.create_room("team", "The Team");
    confab.create_room("random", "Random");

    let ana = Browser::launch(&confab, Scheme::Light).await;
    let ben = Browser::launch(&confab, Scheme::Light).await;
    for (browser, name) in [(&ana, "ana"), (&ben, "ben")] {
        browser.sign_in(name, &format!("{name}'s password")).await;
        for room in ["team", "random"] {
            browser.join_room(room).await;
        }
        browser.goto("/#general").await;
        browser.open_room("general").await;
        browser.wait_online().await;
    }

    ana.say("Hello everyone, the release is out").await;
    ben.wait_for_body("Hello everyone, the release is out")
        .await;
    // A private chat, opened through the API as the picker does.
    let slug = ana
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/api/direct', {method: 'POST', headers: {'Content-Type': 'application/json',
               'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content},
               body: JSON.stringify({usernames: ['ben']})})
               .then(r => r.json()).then(d => done(d.room.slug), () => done(null));",
            vec![],
        )
        .await
        .unwrap();
    let slug = slug.as_str().expect("a private chat").to_owned();
    ana.eventually(
        "the private chat in ana's sidebar",
        &format!("document.querySelector(\"#dm-list a[data-room='{slug}']\")"),
    )
    .await;
    ana.open_room(&slug).await;
    ana.say("Are you coming to the offsite?").await;
    ana.wait_for_body("Are you coming to the offsite?").await;

    ana.open_room("team").await;
    ana.say("Morning all").await;
    ana.say("@ben could you look at the draft?").await;
    ana.say("Thanks!").await;
    ana.wait_for_body("Thanks!").await;
    ana.open_room("random").await;
    ana.say("Lunch at noon?").await;
    ana.wait_for_body("Lunch at noon?").await;

    // [room, unread badge, mention badge], by slug ("" for a hidden badge).
    let badges = "[...document.querySelectorAll('#room-list a[data-room]')].map(a => [a.dataset.room, \
                  a.querySelector('.unread-count').hidden ? '' : a.querySelector('.unread-count .count').textContent, \
                  a.querySelector('.mention-count').hidden ? '' : a.querySelector('.mention-count .count').textContent]) \
                  .sort((x, y) => x[0].localeCompare(y[0]))";
    let expected = json!([["general", "", ""], ["random", "1", ""], ["team", "3", "1"]]);
    ben.eventually(
        "live unread and mention badges",
        &format!(
            "JSON.stringify({badges}) === {}",
            serde_json::to_string(&expected.to_string()).unwrap()
        ),
    )
    .await;
    // [name, unread badge, mention badge hidden, presence] of the private chat.
    let dm = format!("#dm-list a[data-room='{slug}']");
    let dm_state = format!(
        "JSON.stringify([document.querySelector(\"{dm} .room-name\").textContent, \
          document.querySelector(\"{dm} .unread-count .count\").textContent, \
          document.querySelector(\"{dm} .mention-count\").hidden, \
          document.querySelector(\"{dm} .presence\").dataset.status]) === '[\"Ana Lima\",\"1\",true,\"online\"]'"
    );
    ben.eventually(
        "the private chat with one unread message, ana online",
        &dm_state,
    )
    .await;
    // The same counts come from the server after a reload.
    ben.client.refresh().await.unwrap();
    ben.wait_online().await;
    assert_eq!(ben.js(&format!("return {badges};")).await, expected);
    ben.eventually(
        "the private chat's badge and presence after the reload",
        &dm_state,
    )
    .await;
    // Mentions look different from plain unread counts.
    let colours = ben
        .js("return ['.unread-count', '.mention-count'].map(c => getComputedStyle(document.querySelector(`a[data-room='team'] ${c}`)).backgroundColor);")
        .await;
    assert_ne!(colours[0], colours[1], "mention badges stand out");
    assert_eq!(
        ben.js("return document.title;").await,
        json!("(5) General · Confab")
    );
    ben.screenshot("sidebar-unread").await;

    // Ben reads #team in another browser: this one's badge goes too.
    let other = Browser::launch(&confab, Scheme::Dark).await;
    other.sign_in("ben", "ben's password").await;
    other.open_room("team").await;
    other.wait_for_body("Thanks!").await;
    ben.eventually(
        "the #team badges cleared by the other tab's read",
        "document.querySelector(\"a[data-room='team'] .unread-count\").hidden \
         && document.querySelector(\"a[data-room='team'] .mention-count\").hidden \
         && !document.querySelector(\"a[data-room='random'] .unread-count\").hidden",
    )
    .await;
}

/// The admin's user list and a room's messages, as a superuser created on the command
/// line who signs in through the real login form.
#[tokio::test]
async fn the_admin_lists_users_and_messages() {
    let confab = Confab::start();
    confab.create_superuser("root", "root's password");
    confab.create_user_named("ana", "Ana Lima", "ana's password");
    confab.create_user_named("ben", "Ben Okafor", "ben's password");
    confab.post_directly(
        "general",
        "ana",
        &[
            "Morning all, the build is green".to_owned(),
            "Standup moves to 10:30 today".to_owned(),
        ],
    );
    confab.post_directly("general", "ben", &["Thanks Ana, see you there".to_owned()]);

    let browser = Browser::launch(&confab, Scheme::Light).await;
    browser.sign_in("root", "root's password").await;

    browser.goto("/admin/users").await;
    browser
        .eventually(
            "ana and ben in the user list",
            "document.querySelector('.admin-table') && \
             ['ana', 'ben', 'root'].every(n => [...document.querySelectorAll('.admin-table tbody td a')].some(a => a.textContent === n))",
        )
        .await;
    assert_eq!(
        browser
            .js("return document.querySelector('.admin-nav a[aria-current=page]').getAttribute('href');")
            .await,
        json!("/admin/users")
    );
    browser.screenshot("admin-users").await;

    browser.goto("/admin/messages?room=general").await;
    browser
        .eventually(
            "the messages of #general with their bodies",
            "[...document.querySelectorAll('.admin-table td.body')].some(td => td.textContent === 'Standup moves to 10:30 today') \
             && [...document.querySelectorAll('.admin-table td.body')].some(td => td.textContent === 'Thanks Ana, see you there')",
        )
        .await;
    // Nothing overflows the page sideways.
    assert_eq!(
        browser
            .js("return document.documentElement.scrollWidth <= window.innerWidth;")
            .await,
        json!(true)
    );
    browser.screenshot("admin-messages").await;
}
