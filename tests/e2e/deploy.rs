//! The shipped deployment, run for real: a throw-away CA, nginx with `nginx/confab.conf`
//! (rendered only for ports and paths), two http-app and two ws-gateway processes, Redis
//! and PostgreSQL; driven over https:// and wss://.

use crate::support::*;
use domain::{
    crypto::MessageKeys,
    db::Backend,
    repo,
    testing::{TestDb, unique_name},
};
use std::{path::Path, process::Command, time::Duration};

pub const PASSWORD: &str = "a long test password";

struct Deployment {
    origin: String,
    http_port: u16,
    https_port: u16,
    http_ports: [u16; 2],
    ws_ports: [u16; 2],
    pki: Pki,
    nginx_conf: std::path::PathBuf,
    gateways: Vec<Option<Proc>>,
    _apps: Vec<Proc>,
    _nginx: Proc,
    _db: TestDb,
    dir: tempfile::TempDir,
}

fn require(cmd: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "{cmd} is not installed: apt-get install -y {package}"
    );
}

/// The shipped nginx configuration with this run's ports, certificate and folders.
fn render_nginx(
    d: &Path,
    pki: &Pki,
    http: u16,
    https: u16,
    apps: [u16; 2],
    gws: [u16; 2],
    media: &Path,
) -> String {
    let shipped = std::fs::read_to_string(workspace().join("nginx/confab.conf")).unwrap();
    let rendered = shipped
        .replace(
            "server 127.0.0.1:8001;",
            &format!("server 127.0.0.1:{};", apps[0]),
        )
        .replace(
            "server 127.0.0.1:8002;",
            &format!("server 127.0.0.1:{};", apps[1]),
        )
        .replace(
            "server 127.0.0.1:9001;",
            &format!("server 127.0.0.1:{};", gws[0]),
        )
        .replace(
            "server 127.0.0.1:9002;",
            &format!("server 127.0.0.1:{};", gws[1]),
        )
        .replace("listen 80;", &format!("listen 127.0.0.1:{http};"))
        .replace("listen [::]:80;\n", "")
        .replace(
            "listen 443 ssl http2;",
            &format!("listen 127.0.0.1:{https} ssl http2;"),
        )
        .replace("listen [::]:443 ssl http2;\n", "")
        .replace(
            "https://$host$request_uri",
            &format!("https://$host:{https}$request_uri"),
        )
        .replace("server_name chat.example.com;", "server_name localhost;")
        .replace(
            "/etc/letsencrypt/live/chat.example.com/fullchain.pem",
            pki.cert_path.to_str().unwrap(),
        )
        .replace(
            "/etc/letsencrypt/live/chat.example.com/privkey.pem",
            pki.key_path.to_str().unwrap(),
        )
        .replace(
            "/usr/share/confab/static/",
            &format!("{}/", workspace().join("static").display()),
        )
        .replace("/var/lib/confab/media/", &format!("{}/", media.display()))
        .replace("/var/www/letsencrypt", d.join("acme").to_str().unwrap())
        // No resolver to ask in a sandbox; stapling has no responder with a private CA.
        .replace("    resolver 127.0.0.1 valid=300s;\n", "");
    assert!(
        !rendered.contains("chat.example.com"),
        "every site-specific line was rendered"
    );
    let t = d.display();
    format!(
        "user root;\nworker_processes 1;\npid {t}/nginx.pid;\nerror_log {t}/nginx-error.log info;\n\
         events {{ worker_connections 512; }}\n\
         http {{\n  include /etc/nginx/mime.types;\n  access_log {t}/nginx-access.log;\n  \
         client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n  fastcgi_temp_path {t}/fcgi;\n  \
         uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n{rendered}\n}}\n"
    )
}

async fn deploy() -> Deployment {
    let _ = rustls::crypto::ring::default_provider().install_default();
    require("nginx", "nginx");
    require("openssl", "openssl");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = make_pki(d);
    let db = TestDb::new(Backend::Postgres);
    let media = d.join("media");
    std::fs::create_dir_all(&media).unwrap();
    {
        let mut c = db.db.get().unwrap();
        repo::room::ensure_general(&mut c).unwrap();
        for name in ["ana", "ben"] {
            repo::user::create(
                &mut c,
                &repo::user::NewUser {
                    username: name.into(),
                    display_name: String::new(),
                    password: PASSWORD.into(),
                    is_staff: false,
                    is_superuser: false,
                },
                4,
            )
            .unwrap();
        }
    }
    let (http_port, https_port) = (free_port(), free_port());
    let origin = format!("https://localhost:{https_port}");
    let http_ports = [free_port(), free_port()];
    let ws_ports = [free_port(), free_port()];
    let keys = MessageKeys::generate_line("e2e");
    let secret = "e2e-secret-".repeat(6);
    let prefix = unique_name("confab_e2e");
    let env = |cmd: &mut Command, port: u16| {
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("CONFAB_ENVIRONMENT", "production")
            .env("CONFAB_DATABASE_URL", &db.url)
            .env("CONFAB_DATABASE_POOL_SIZE", "4")
            .env("CONFAB_REDIS_URL", "redis://127.0.0.1:6379")
            .env("CONFAB_REDIS_PREFIX", &prefix)
            .env("CONFAB_SECRET_KEY", &secret)
            .env("CONFAB_MESSAGE_KEYS", &keys)
            .env("CONFAB_ALLOWED_ORIGINS", &origin)
            .env("CONFAB_HTTPS", "true")
            .env("CONFAB_BCRYPT_COST", "4")
            .env("CONFAB_DATA_DIR", d)
            .env("CONFAB_MEDIA_X_ACCEL", "true")
            .env("CONFAB_BIND", format!("127.0.0.1:{port}"));
    };
    let mut apps = Vec::new();
    for (i, port) in http_ports.iter().enumerate() {
        let mut cmd = Command::new(binary("http-app"));
        env(&mut cmd, *port);
        apps.push(Proc::spawn(&format!("http-app-{i}"), cmd, d));
    }
    let mut gateways = Vec::new();
    for (i, port) in ws_ports.iter().enumerate() {
        let mut cmd = Command::new(binary("ws-gateway"));
        env(&mut cmd, *port);
        gateways.push(Some(Proc::spawn(&format!("ws-gateway-{i}"), cmd, d)));
    }
    // No redirects: nginx's http:// answer is a redirect to https://, which is the point.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for port in http_ports.iter().chain(ws_ports.iter()) {
        let url = format!("http://127.0.0.1:{port}/readyz");
        eventually(
            &format!("{url} to answer 200"),
            Duration::from_secs(60),
            || {
                let (plain, url) = (plain.clone(), url.clone());
                async move {
                    plain
                        .get(&url)
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 200)
                }
            },
        )
        .await;
    }

    let nginx_conf = d.join("nginx.conf");
    std::fs::write(
        &nginx_conf,
        render_nginx(d, &pki, http_port, https_port, http_ports, ws_ports, &media),
    )
    .unwrap();
    let t = Command::new("nginx")
        .args(["-t", "-c", nginx_conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        t.status.success(),
        "nginx -t refuses the shipped config: {}",
        String::from_utf8_lossy(&t.stderr)
    );
    let mut cmd = Command::new("nginx");
    cmd.args(["-c", nginx_conf.to_str().unwrap(), "-g", "daemon off;"]);
    let nginx = Proc::spawn("nginx", cmd, d);
    let url = format!("http://127.0.0.1:{http_port}/");
    eventually("nginx to listen", Duration::from_secs(20), || {
        let (plain, url) = (plain.clone(), url.clone());
        async move { plain.get(&url).send().await.is_ok() }
    })
    .await;
    Deployment {
        origin,
        http_port,
        https_port,
        http_ports,
        ws_ports,
        pki,
        nginx_conf,
        gateways,
        _apps: apps,
        _nginx: nginx,
        _db: db,
        dir,
    }
}

async fn gateway_connections(port: u16) -> f64 {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with("confab_ws_connections "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_deployment_works_over_tls_end_to_end() {
    let dep = deploy().await;
    let ana = Browser::new(&dep.origin, &dep.pki.ca_pem);
    let ben = Browser::new(&dep.origin, &dep.pki.ca_pem);

    // http:// redirects to https://, keeping the path.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{}/rooms?x=1", dep.http_port))
        .header("Host", "localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(
        r.headers()["location"],
        format!("https://localhost:{}/rooms?x=1", dep.https_port)
    );

    // Pages carry HSTS and the services' security headers through nginx.
    let r = ana
        .http
        .get(format!("{}/login", dep.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert!(
        h["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    assert!(
        !h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("unsafe-inline")
    );

    // /static/ comes from disk, served by nginx (the services serve no static files in
    // production): nginx's caching headers, and the bytes of the file in the repository.
    let r = ana
        .http
        .get(format!("{}/static/css/app.css", dep.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().contains_key("expires"),
        "nginx's `expires` header"
    );
    assert!(
        r.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    let served = r.bytes().await.unwrap();
    assert_eq!(
        &served[..],
        &std::fs::read(workspace().join("static/css/app.css")).unwrap()[..]
    );
    for port in dep.http_ports {
        let r = reqwest::get(format!("http://127.0.0.1:{port}/static/css/app.css"))
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            404,
            "http-app itself does not serve /static/ in production"
        );
    }

    // Sign in through nginx with the real form and CSRF token; a forged Origin is refused.
    let page = ben.page("/login").await;
    let token = csrf_token(&page);
    let r = ben
        .http
        .post(format!("{}/login", dep.origin))
        .header("Origin", "https://evil.example")
        .form(&[
            ("username", "ben"),
            ("password", PASSWORD),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a cross-site sign-in post");
    ana.sign_in("ana", PASSWORD).await;
    // A client cannot choose the address the services record: nginx replaces
    // X-Forwarded-For with the connection's own address.
    let r = ben
        .http
        .post(format!("{}/login", dep.origin))
        .header("Origin", &dep.origin)
        .header("X-Forwarded-For", "203.0.113.7")
        .form(&[
            ("username", "ben"),
            ("password", PASSWORD),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let devices = ben.page("/devices").await;
    assert!(
        devices.contains("127.0.0.1") && !devices.contains("203.0.113.7"),
        "{devices}"
    );
    assert!(
        ana.cookie_header().contains("__Host-confab_session="),
        "{}",
        ana.cookie_header()
    );

    // Two sockets through nginx land on the two gateways (least_conn).
    let mut a = ana.socket().await;
    let mut b = ben.socket().await;
    let (g0, g1) = (
        gateway_connections(dep.ws_ports[0]).await,
        gateway_connections(dep.ws_ports[1]).await,
    );
    assert_eq!((g0, g1), (1.0, 1.0), "one socket on each gateway");
    a.join("general", None).await;
    b.join("general", None).await;

    // Both ways, across gateways, through Redis.
    let id1 = a.say("general", "hello from ana", "a-1").await;
    let m = b.next_from_other("ben").await;
    assert_eq!(
        (m["id"].as_i64(), m["body"].as_str()),
        (Some(id1), Some("hello from ana"))
    );
    let id2 = b.say("general", "hi ana, ben here", "b-1").await;
    let m = a.next_from_other("ana").await;
    assert_eq!(
        (m["id"].as_i64(), m["body"].as_str()),
        (Some(id2), Some("hi ana, ben here"))
    );
    assert!(id2 > id1);

    // Kill one gateway outright. Its client reconnects through nginx, lands on the other,
    // and catches up on what was said meanwhile: nothing lost, nothing twice.
    let mut dep = dep;
    let victim = dep.gateways[0].take().unwrap();
    victim.signal("KILL");
    drop(victim);
    // Both clients may have been on the killed gateway's side; whoever was cut off
    // notices the socket closing.
    let mut survivors = Vec::new();
    for (who, mut s) in [("ana", a), ("ben", b)] {
        s.send(serde_json::json!({"type": "typing", "room": "general"}))
            .await;
        let alive = tokio::time::timeout(Duration::from_millis(500), s.next()).await;
        survivors.push((who, s, !matches!(alive, Ok(None))));
    }
    let cut_off: Vec<&str> = survivors
        .iter()
        .filter(|(_, _, alive)| !alive)
        .map(|(w, _, _)| *w)
        .collect();
    assert_eq!(
        cut_off.len(),
        1,
        "exactly the killed gateway's client lost its socket: {cut_off:?}"
    );
    let (writer_name, mut writer) = survivors
        .into_iter()
        .find(|(_, _, alive)| *alive)
        .map(|(w, s, _)| (w, s))
        .unwrap();
    let mut missed = Vec::new();
    for i in 0..5 {
        missed.push(
            writer
                .say(
                    "general",
                    &format!("while you were away {i}"),
                    &format!("w-{i}"),
                )
                .await,
        );
    }
    let reader = if writer_name == "ana" { &ben } else { &ana };
    let mut back = reader.socket().await;
    assert_eq!(
        gateway_connections(dep.ws_ports[1]).await,
        2.0,
        "both sockets on the surviving gateway"
    );
    let joined = back.join("general", Some(id2)).await;
    let got: Vec<i64> = joined["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        got, missed,
        "catch-up brings exactly what was missed, in order"
    );
    // And live delivery continues on the surviving gateway.
    let id = writer.say("general", "still here", "w-live").await;
    assert_eq!(
        back.next_from_other(if writer_name == "ana" { "ben" } else { "ana" })
            .await["id"]
            .as_i64(),
        Some(id)
    );

    // A picture uploaded through nginx, then downloaded: http-app checks access and hands
    // the bytes off to nginx's internal location (X-Accel-Redirect), ranges included.
    let page = ana.page("/").await;
    let token = meta_csrf(&page);
    let part = reqwest::multipart::Part::bytes(png(64, 48))
        .file_name("photo.png")
        .mime_str("image/png")
        .unwrap();
    let r = ana
        .http
        .post(format!("{}/uploads?room=general", dep.origin))
        .header("Origin", &dep.origin)
        .header("X-CSRF-Token", &token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "upload through nginx");
    let up: serde_json::Value = r.json().await.unwrap();
    assert_eq!(up["content_type"], "image/png");
    let url = format!("{}{}", dep.origin, up["url"].as_str().unwrap());
    let r = ben.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("sandbox"),
        "served from nginx's protected location: {csp}"
    );
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    let full = r.bytes().await.unwrap();
    assert_eq!(full.len() as u64, up["size"].as_u64().unwrap());
    assert_eq!(&full[1..4], b"PNG");
    let r = ben
        .http
        .get(&url)
        .header("Range", "bytes=8-23")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().await.unwrap()[..], &full[8..24]);
    let stranger = Browser::new(&dep.origin, &dep.pki.ca_pem);
    let r = stranger.http.get(&url).send().await.unwrap();
    assert!(
        r.status() == 401 || r.status() == 404 || r.status().is_redirection(),
        "signed out: {}",
        r.status()
    );
    let stored = std::fs::read_dir(dep.dir.path().join("media"))
        .unwrap()
        .count();
    assert!(stored > 0, "the picture is on disk under the media folder");
    let r = ben
        .http
        .get(format!("{}/_protected/", dep.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the protected location is internal only");

    // A real browser over https:// and wss://, trusting the test CA's key.
    crate::browser::chat_over_tls(&dep.origin, &dep.pki).await;

    // TLS: only 1.2 and 1.3; no weak cipher.
    let tls = tls_probe(dep.https_port);
    println!("TLS probe: {tls:?}");
    assert!(tls.tls12 && tls.tls13, "TLS 1.2 and 1.3 are offered");
    assert!(!tls.tls10 && !tls.tls11, "TLS 1.0 and 1.1 are refused");
    assert!(!tls.weak_cipher, "no weak cipher is accepted");
    let _ = (&dep.nginx_conf, &dep.dir);
}

fn meta_csrf(html: &str) -> String {
    let at = html
        .find("name=\"csrf-token\" content=\"")
        .expect("the CSRF meta tag");
    let rest = &html[at + "name=\"csrf-token\" content=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// A small real PNG.
fn png(w: u32, h: u32) -> Vec<u8> {
    let img =
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 120]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[derive(Debug)]
struct TlsProbe {
    tls10: bool,
    tls11: bool,
    tls12: bool,
    tls13: bool,
    weak_cipher: bool,
}

/// Asks openssl to connect with one protocol or cipher at a time. `@SECLEVEL=0` lets the
/// client offer old protocols, so a refusal is the server's, not the client's.
fn tls_probe(port: u16) -> TlsProbe {
    let connects = |args: &[&str]| {
        let mut cmd = Command::new("openssl");
        cmd.args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .args(args);
        let out = cmd.stdin(std::process::Stdio::null()).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        text.contains("Cipher is ") && !text.contains("Cipher is (NONE)")
    };
    TlsProbe {
        tls10: connects(&["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"]),
        tls11: connects(&["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]),
        tls12: connects(&["-tls1_2"]),
        tls13: connects(&["-tls1_3"]),
        weak_cipher: [
            "DES-CBC3-SHA",
            "AES128-SHA",
            "AES256-SHA256",
            "ECDHE-RSA-AES128-SHA",
            "RC4-SHA",
            "NULL-SHA",
        ]
        .iter()
        .any(|c| connects(&["-tls1_2", "-cipher", &format!("{c}:@SECLEVEL=0")])),
    }
}

#[test]
fn nginx_accepts_the_shipped_config_and_units_are_sandboxed() {
    require("nginx", "nginx");
    require("systemd-analyze", "systemd");
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        render_nginx(
            dir.path(),
            &pki,
            8080,
            8443,
            [8001, 8002],
            [9001, 9002],
            dir.path(),
        ),
    )
    .unwrap();
    let t = Command::new("nginx")
        .args(["-t", "-c", conf.to_str().unwrap()])
        .output()
        .unwrap();
    println!("{}", String::from_utf8_lossy(&t.stderr));
    assert!(t.status.success());
    for unit in ["confab-http@.service", "confab-ws@.service"] {
        let path = workspace().join("systemd").join(unit);
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", path.to_str().unwrap()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        let line = text
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| panic!("{text}"));
        println!("{unit}: {line}");
        let score: f64 = line
            .split(':')
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no score in {line:?}"));
        assert!(score <= 2.5, "{unit} exposure {score} > 2.5");
    }
}
