//! HTTP edge: the `/ws` handshake (Origin, then the signed session cookie, then the
//! per-user and per-address socket limits, all before any upgrade), the actix-ws ⇄
//! connection-task glue (with the session-expiry watcher beside each socket), and the
//! probes.

use crate::{
    Core,
    admission::{self, Refused},
    connection::{self, Identity, Inbound},
    hub::Outbound,
};
use actix_web::{
    HttpRequest, HttpResponse,
    cookie::CookieJar,
    http::header,
    web::{self, Bytes},
};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, Message, ProtocolError};
use domain::{auth::SessionKey, repo};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;

/// A second handle on a connection's TCP socket, so a peer that stopped reading can be
/// cut off: actix keeps a stalled connection open while its write buffer is full, and a
/// close frame cannot get through. Installed by [`on_connect`].
#[derive(Clone)]
pub struct PeerSocket(Arc<std::net::TcpStream>);

/// Pass to `HttpServer::on_connect` wherever `/ws` is served, so slow readers can be
/// disconnected for real (without it they are only detached from the hub).
pub fn on_connect(conn: &dyn std::any::Any, ext: &mut actix_web::dev::Extensions) {
    use actix_web::rt::net::TcpStream;
    use std::os::fd::AsFd;
    let tcp = conn.downcast_ref::<TcpStream>().or_else(|| {
        // Served over TLS by actix itself (`confab serve` with a certificate).
        conn.downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<TcpStream>>()
            .map(|tls| tls.get_ref().0)
    });
    if let Some(tcp) = tcp
        && let Ok(fd) = tcp.as_fd().try_clone_to_owned()
    {
        ext.insert(PeerSocket(Arc::new(std::net::TcpStream::from(fd))));
    }
}

/// Why a handshake was refused (logged; the client only sees the status).
fn refuse(status: actix_web::http::StatusCode, reason: &'static str) -> HttpResponse {
    metrics::counter!("confab_ws_handshakes_refused_total", "reason" => reason).increment(1);
    tracing::info!(
        reason,
        status = status.as_u16(),
        "WebSocket handshake refused"
    );
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(reason)
}

/// The session key in a request's signed session cookie, if the signature holds.
fn session_key(core: &Core, req: &HttpRequest) -> Option<SessionKey> {
    let cookie = req.cookie(core.cookie_name)?;
    let mut jar = CookieJar::new();
    jar.add_original(cookie.into_owned());
    let verified = jar.signed(&core.cookie_key).get(core.cookie_name)?;
    SessionKey::from_cookie(verified.value())
}

pub(crate) async fn ws(
    req: HttpRequest,
    body: web::Payload,
    core: web::Data<Core>,
) -> actix_web::Result<HttpResponse> {
    use actix_web::http::StatusCode;
    let core = core.into_inner();
    if core.hub.is_closing() {
        return Ok(refuse(StatusCode::SERVICE_UNAVAILABLE, "shutting down"));
    }
    // Cross-site WebSocket hijacking: browsers always send Origin on a WebSocket
    // handshake, so a missing one is refused too.
    let origin_ok = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| core.allowed_origins.iter().any(|a| a == o));
    if !origin_ok {
        return Ok(refuse(StatusCode::FORBIDDEN, "origin not allowed"));
    }
    let Some(key) = session_key(&core, &req) else {
        return Ok(refuse(StatusCode::UNAUTHORIZED, "no valid session cookie"));
    };
    let lookup = key.clone();
    let live = match core
        .db
        .run(move |c| repo::session::find_live(c, &lookup))
        .await
    {
        Ok(live) => live,
        Err(e) => {
            tracing::error!(error = %e, "session look-up failed");
            return Ok(refuse(StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
        }
    };
    let Some(live) = live else {
        return Ok(refuse(StatusCode::UNAUTHORIZED, "session not live"));
    };
    // Sockets per user and per address on this process; the permit lives as long as the
    // socket's task.
    let address = core.admission.client_address(&req);
    let permit = match core.admission.sockets.admit(live.user.id, address) {
        Ok(permit) => permit,
        Err(which) => {
            let reason = match which {
                Refused::User => "too many sockets for this user",
                Refused::Address => "too many sockets from this address",
            };
            let mut res = refuse(StatusCode::TOO_MANY_REQUESTS, reason);
            res.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(admission::RETRY_AFTER_SECS),
            );
            return Ok(res);
        }
    };
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let expires_at = live.session.expires_at;
    let identity = Identity {
        session_id: live.session.id,
        user: live.user,
        session_key: key,
    };
    let max = core.max_frame_bytes;
    let incoming = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max)
        .map(|item| match item {
            Ok(AggregatedMessage::Text(text)) => Inbound::Text(text.to_string()),
            Ok(AggregatedMessage::Binary(_)) => Inbound::Binary,
            Ok(AggregatedMessage::Ping(p)) => Inbound::Ping(p.to_vec()),
            Ok(AggregatedMessage::Pong(_)) => Inbound::Pong,
            Ok(AggregatedMessage::Close(_)) => Inbound::Close,
            Err(ProtocolError::Overflow) => Inbound::TooLarge,
            // actix-ws reports an oversized joined continuation as this I/O error.
            Err(ProtocolError::Io(e)) if e.to_string().contains("maximum continuation size") => {
                Inbound::TooLarge
            }
            Err(e) => Inbound::Broken(e.to_string()),
        });
    let sink =
        session.with(|out: Outbound| std::future::ready(Ok::<_, actix_ws::Closed>(to_actix(out))));
    let peer = req.conn_data::<PeerSocket>().cloned();
    if let Some(peer) = &peer {
        // Frames are small and latency matters: an ack followed by a message must not
        // wait for a delayed ACK (Nagle).
        let _ = peer.0.set_nodelay(true);
    }
    if let (Some(peer), Some(size)) = (&peer, core.config.socket_send_buffer) {
        // A fixed, small kernel send buffer bounds what a peer that stops reading can pin
        // in memory, and makes it fall behind (and get dropped) soon.
        let _ = socket2::SockRef::from(&*peer.0).set_send_buffer_size(size);
    }
    let cut: Option<connection::Cut> = peer.map(|peer| {
        Box::new(move || {
            let _ = peer.0.shutdown(std::net::Shutdown::Both);
        }) as connection::Cut
    });
    let span =
        tracing::info_span!("ws", user_id = %identity.user.id, session_id = %identity.session_id);
    let expiry = admission::close_at_expiry(
        core.clone(),
        identity.user.id,
        identity.session_id,
        identity.session_key.clone(),
        expires_at,
    );
    let task = async move {
        let socket = connection::run(core, identity, Box::pin(incoming), Box::pin(sink), cut);
        tokio::pin!(socket);
        // The watcher only asks the hub to close the socket; the socket's own task still
        // sends the close frame and ends as usual.
        tokio::select! {
            () = &mut socket => {}
            () = expiry => socket.await,
        }
        drop(permit);
    };
    actix_web::rt::spawn(tracing::Instrument::instrument(task, span));
    Ok(response)
}

fn to_actix(out: Outbound) -> Message {
    match out {
        Outbound::Text(text) => Message::Text(text),
        Outbound::Ping(p) => Message::Ping(Bytes::from(p)),
        Outbound::Pong(p) => Message::Pong(Bytes::from(p)),
        Outbound::Close(frame) => Message::Close(Some(CloseReason {
            code: CloseCode::from(frame.code),
            description: (!frame.reason.is_empty()).then_some(frame.reason),
        })),
    }
}

pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

pub(crate) async fn readyz(core: web::Data<Core>) -> HttpResponse {
    let core: Arc<Core> = core.into_inner();
    let db = core.db.ping().await;
    let bus = core.hub.bus().ping().await;
    match (db, bus) {
        (Ok(()), Ok(())) if !core.hub.is_closing() => HttpResponse::Ok().body("ready"),
        (db, bus) => {
            let why = format!(
                "database: {}, bus: {}, closing: {}",
                db.map_or_else(|e| e.to_string(), |()| "ok".into()),
                bus.map_or_else(|e| e.to_string(), |()| "ok".into()),
                core.hub.is_closing()
            );
            HttpResponse::ServiceUnavailable().body(why)
        }
    }
}

pub(crate) async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(domain::metrics::handle().render())
}
