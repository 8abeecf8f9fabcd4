//! Headless Chromium (Debian's chromium + chromedriver) against the TLS deployment.

use crate::support::{Pki, free_port, workspace};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::{
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WAIT: Duration = Duration::from_secs(20);

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver and the Chromium it started share a process group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn screenshot_path(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace().join("target"), PathBuf::from);
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{name}.png"))
}

async fn eventually(c: &Client, what: &str, expr: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = c
            .execute(&format!("return ({expr});"), vec![])
            .await
            .unwrap();
        if !matches!(v, Value::Null | Value::Bool(false)) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} (last {v})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Signs in as ana in a real browser through nginx, chats over wss:// and saves a
/// screenshot. Chromium trusts only the test server's key, as a browser trusting the test
/// CA would.
pub async fn chat_over_tls(origin: &str, pki: &Pki) {
    for (bin, pkg) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: apt-get install -y {pkg}"
        );
    }
    let port = free_port();
    let mut child = Command::new(CHROMEDRIVER);
    child
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let _driver = Driver(child.spawn().expect("chromedriver starts"));
    let profile = tempfile::tempdir().unwrap();
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,800", "--lang=en-US",
                "--host-resolver-rules=MAP localhost 127.0.0.1",
                format!("--ignore-certificate-errors-spki-list={}", pki.server_spki_sha256),
                format!("--user-data-dir={}", profile.path().display()),
            ],
        },
    });
    let deadline = Instant::now() + WAIT;
    let client = loop {
        let attempt = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.as_object().unwrap().clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        match attempt {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no Chromium session: {e}"),
        }
    };
    client.goto(&format!("{origin}/login")).await.unwrap();
    client
        .find(Locator::Css("#username"))
        .await
        .unwrap()
        .send_keys("ana")
        .await
        .unwrap();
    client
        .find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys(crate::deploy::PASSWORD)
        .await
        .unwrap();
    client
        .find(Locator::Css("form[action='/login'] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually(
        &client,
        "the app shell",
        "location.pathname === '/' && document.querySelector('#room-list')",
    )
    .await;
    assert!(
        client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .starts_with("https://")
    );
    client
        .find(Locator::Css("#sidebar a[data-room='general']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually(
        &client,
        "#general open and the socket up over wss",
        "location.hash === '#general' && document.getElementById('connection').dataset.state === 'online' \
         && !document.getElementById('message-input').disabled",
    )
    .await;
    let text = "written in Chromium over wss";
    let input = client.find(Locator::Css("#message-input")).await.unwrap();
    input.send_keys(text).await.unwrap();
    input.send_keys("\u{E007}").await.unwrap(); // Enter
    eventually(
        &client,
        "the message to be acknowledged and shown",
        &format!(
            "[...document.querySelectorAll('#messages li.msg[data-id]:not(.pending) .body')].some(b => b.textContent === {})",
            json!(text)
        ),
    )
    .await;
    let png = client.screenshot().await.unwrap();
    let path = screenshot_path("deploy-tls-chat");
    std::fs::write(&path, png).unwrap();
    println!("screenshot: {}", path.display());
    client.close().await.unwrap();
}
