use crate::helpers::*;
use domain::{model::RoomKind, repo};

#[tokio::test]
async fn refusals_happen_before_the_upgrade_and_probes_answer() {
    let _serial = REDIS_KILL.read().await;
    let w = World::new(default_backend());
    let gw = w.gateway(fast_config()).await;
    let ann = w.person("ann").await;
    let port = gw.port;
    let name = domain::auth::session_cookie_name(false);

    assert_eq!(refused(port, Some(ORIGIN), None).await, 401, "no cookie");
    assert_eq!(
        refused(port, Some(ORIGIN), Some(&format!("{name}=garbage"))).await,
        401,
        "garbage cookie"
    );
    assert_eq!(
        refused(
            port,
            Some(ORIGIN),
            Some(&format!("{name}={}", ann.key.expose()))
        )
        .await,
        401,
        "a real key without a signature"
    );
    assert_eq!(
        refused(
            port,
            Some(ORIGIN),
            Some(&signed_cookie(&w.settings, &"A".repeat(43)))
        )
        .await,
        401,
        "signed, but no such session"
    );
    assert_eq!(
        refused(port, Some("https://evil.example"), Some(&ann.cookie)).await,
        403,
        "foreign Origin"
    );
    assert_eq!(
        refused(port, None, Some(&ann.cookie)).await,
        403,
        "missing Origin"
    );
    assert_eq!(
        refused(port, Some(&format!("{ORIGIN}/")), Some(&ann.cookie)).await,
        403,
        "Origin must match exactly"
    );

    // The same cookie works, until the session is revoked.
    let ws = Ws::connect(port, &ann).await;
    drop(ws);
    let sid = ann.session_id;
    w.db()
        .run(move |c| repo::session::revoke(c, sid))
        .await
        .expect("revoke");
    assert_eq!(
        refused(port, Some(ORIGIN), Some(&ann.cookie)).await,
        401,
        "revoked session"
    );
    let bob = w.person("bob").await;
    let uid = bob.user.id;
    w.db()
        .run(move |c| repo::user::set_active(c, uid, false))
        .await
        .expect("deactivate");
    assert_eq!(
        refused(port, Some(ORIGIN), Some(&bob.cookie)).await,
        401,
        "inactive user"
    );

    assert_eq!(http_get(port, "/healthz").await.0, 200);
    assert_eq!(http_get(port, "/readyz").await.0, 200);
    let (status, body) = http_get(port, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("confab_ws_handshakes_refused_total"),
        "metrics render the gateway's counters"
    );
    // A room, so the world's helper is exercised on this backend too.
    w.room("lobby", RoomKind::Public).await;
    gw.stop().await;
}

#[tokio::test]
async fn over_https_only_the_host_prefixed_session_cookie_is_read() {
    let _serial = REDIS_KILL.read().await;
    let mut w = World::new(default_backend());
    w.settings.https = true;
    let gw = w.gateway(fast_config()).await;
    let ann = w.person("ann").await;
    assert!(
        ann.cookie.starts_with("__Host-confab_session="),
        "{}",
        ann.cookie
    );
    // The same signed value under the bare name (which a sibling subdomain or a plain
    // HTTP page could set) is not a session.
    let bare = ann.cookie.replacen("__Host-", "", 1);
    assert_eq!(refused(gw.port, Some(ORIGIN), Some(&bare)).await, 401);
    Ws::connect(gw.port, &ann).await;
    gw.stop().await;
}

/// Writes `request` on a fresh connection and reads until the response head is complete:
/// (status, head, bytes that came after the head, the connection).
async fn raw_request(port: u16, request: &[u8]) -> (u16, String, Vec<u8>, tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(request).await.expect("write");
    let mut got = Vec::new();
    let end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("an answer within 10 s")
            .expect("read");
        assert!(n > 0, "closed before a response head: {got:?}");
        got.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&got[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    (status, head, got[end..].to_vec(), s)
}

fn upgrade_request(path: &str, upgrade: &str, cookie: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: {upgrade}\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Origin: {ORIGIN}\r\nCookie: {cookie}\r\n\r\n"
    )
}

/// A client's text frame (masked, as the protocol requires).
fn masked_text(payload: &str) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let bytes = payload.as_bytes();
    assert!(bytes.len() < 126, "short frames only");
    let mut frame = vec![0x81, 0x80 | bytes.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(bytes.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[tokio::test]
async fn only_websocket_upgrades_to_ws_are_taken_and_a_frame_behind_the_handshake_counts() {
    let _serial = REDIS_KILL.read().await;
    let w = World::new(default_backend());
    let gw = w.gateway(fast_config()).await;
    let ann = w.person("ann").await;
    let port = gw.port;

    let (status, body) = http_get(port, "/ws").await;
    assert_eq!((status, body.as_str()), (400, "not a WebSocket handshake"));
    let (status, head, _, _) = raw_request(
        port,
        upgrade_request("/elsewhere", "websocket", &ann.cookie).as_bytes(),
    )
    .await;
    assert_eq!(status, 404, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let (status, _, _, _) =
        raw_request(port, upgrade_request("/ws", "h2c", &ann.cookie).as_bytes()).await;
    assert_eq!(status, 400, "an upgrade to something else than WebSocket");
    let garbage = format!("{}=garbage", domain::auth::session_cookie_name(false));
    let (status, head, mut body, mut tcp) = raw_request(
        port,
        upgrade_request("/ws", "websocket", &garbage).as_bytes(),
    )
    .await;
    assert_eq!(status, 401, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("cache-control: no-store"),
        "{head}"
    );
    // The refusal is the whole answer: its body, then the connection ends.
    tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut body)
        .await
        .expect("read");
    assert_eq!(String::from_utf8_lossy(&body), "no valid session cookie");

    // The client's first frame in the same write as its handshake is not lost with the
    // handshake's buffer.
    let mut request = upgrade_request("/ws", "websocket", &ann.cookie).into_bytes();
    request.extend(masked_text(r#"{"type":"join","room":"no-such-room"}"#));
    let (status, head, rest, tcp) = raw_request(port, &request).await;
    assert_eq!(status, 101, "{head}");
    let stream = tokio_tungstenite::WebSocketStream::from_partially_read(
        tokio_tungstenite::MaybeTlsStream::Plain(tcp),
        rest,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    let mut ws = Ws { stream };
    assert_eq!(ws.next().await["type"], "hello");
    let answer = ws.next().await;
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["code"], "not_found", "{answer}");
    gw.stop().await;
}

#[tokio::test]
async fn a_gateway_serving_tls_itself_takes_wss_sockets() {
    let _serial = REDIS_KILL.read().await;
    let dir = tempfile::tempdir().expect("temporary folder");
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("self-signed certificate");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let mut w = World::new(default_backend());
    w.settings.https = true;
    w.settings.tls_cert = Some(cert);
    w.settings.tls_key = Some(key);
    let gw = w.gateway(fast_config()).await;
    let ann = w.person("ann").await;

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(certified.cert.der().clone())
        .expect("trust the certificate");
    let client = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let client = std::sync::Arc::new(client);
    let request = |cookie: Option<&str>| {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("wss://localhost:{}/ws", gw.port)
            .into_client_request()
            .expect("request");
        req.headers_mut()
            .insert("Origin", ORIGIN.parse().expect("header"));
        if let Some(c) = cookie {
            req.headers_mut()
                .insert("Cookie", c.parse().expect("header"));
        }
        req
    };
    let connect = |cookie: Option<&str>| {
        tokio_tungstenite::connect_async_tls_with_config(
            request(cookie),
            None,
            false,
            Some(tokio_tungstenite::Connector::Rustls(client.clone())),
        )
    };

    // Refused over TLS as over plain HTTP: the status, then nothing more.
    match connect(None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status().as_u16(), 401)
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("the upgrade should have been refused"),
    }
    let (stream, _) = connect(Some(&ann.cookie)).await.expect("wss handshake");
    let mut ws = Ws { stream };
    let hello = ws.next().await;
    assert_eq!(hello["type"], "hello", "{hello}");
    assert_eq!(hello["user"]["username"], "ann");
    ws.send(serde_json::json!({"type": "join", "room": "no-such-room"}))
        .await;
    assert_eq!(ws.next().await["code"], "not_found");
    gw.stop().await;
}
