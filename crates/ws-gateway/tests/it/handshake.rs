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
