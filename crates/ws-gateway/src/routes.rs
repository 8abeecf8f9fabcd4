//! HTTP edge: the `/ws` handshake (Origin, then the signed session cookie, then the
//! per-user and per-address socket limits, all before any upgrade), taking the upgraded
//! connection over from actix-http (framing in [`crate::socket`]) with the session-expiry
//! watcher beside each socket, and the probes.

use crate::{
    Core,
    admission::{self, Refused},
    connection::{self, Identity},
    socket,
};
use actix_http::{
    ConnectionType, Request, Response, StatusCode,
    body::BodySize,
    h1,
    header::{self, HeaderValue},
    ws,
};
use actix_web::{HttpResponse, cookie::Cookie, cookie::CookieJar, web};
use bytes::{Bytes, BytesMut};
use domain::{auth::SessionKey, repo};
use futures_util::{SinkExt, StreamExt};
use std::{io, net::SocketAddr, sync::Arc};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};

/// How long a closed socket keeps reading what its peer still sends (see `run_socket`).
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// A connection the gateway can take over after the upgrade: plain TCP, or TLS over TCP
/// (`confab serve` with a certificate).
pub trait Transport: AsyncRead + AsyncWrite + Unpin + 'static {
    fn tcp(&self) -> &TcpStream;
}

impl Transport for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Transport for actix_tls::accept::rustls_0_23::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// A refused handshake: the status and a short reason (logged and sent as the body).
struct Refusal {
    status: StatusCode,
    reason: &'static str,
    retry_after: Option<u64>,
}

impl Refusal {
    fn new(status: StatusCode, reason: &'static str) -> Refusal {
        Refusal {
            status,
            reason,
            retry_after: None,
        }
    }

    /// Answers the request and closes the connection.
    async fn send<T: Transport>(
        self,
        mut framed: actix_codec::Framed<T, h1::Codec>,
    ) -> io::Result<()> {
        metrics::counter!("confab_ws_handshakes_refused_total", "reason" => self.reason)
            .increment(1);
        tracing::info!(
            reason = self.reason,
            status = self.status.as_u16(),
            "WebSocket handshake refused"
        );
        let mut res = Response::build(self.status)
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
            .finish()
            .drop_body();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        // The request asked for an upgrade; this answer ends the connection instead.
        res.head_mut().set_connection_type(ConnectionType::Close);
        let body = Bytes::from_static(self.reason.as_bytes());
        framed
            .feed(h1::Message::Item((res, BodySize::Sized(body.len() as u64))))
            .await?;
        framed.feed(h1::Message::Chunk(Some(body))).await?;
        framed.send(h1::Message::Chunk(None)).await?;
        framed.close().await
    }
}

/// The session key in a request's signed session cookie, if the signature holds.
fn session_key(core: &Core, head: &actix_http::RequestHead) -> Option<SessionKey> {
    let cookie = head
        .headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        // Percent-decoded, as actix-web reads cookies: the session cookie's signed value
        // is set encoded, and browsers send it back as set.
        .filter_map(|c| Cookie::parse_encoded(c.trim()).ok())
        .find(|c| c.name() == core.cookie_name)?;
    let mut jar = CookieJar::new();
    jar.add_original(cookie.into_owned());
    let verified = jar.signed(&core.cookie_key).get(core.cookie_name)?;
    SessionKey::from_cookie(verified.value())
}

/// A connection lost while its handshake was answered: nothing more to tell the client
/// (actix logs it).
#[derive(Debug)]
pub(crate) struct Lost(io::Error);

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "connection lost during the WebSocket handshake: {}",
            self.0
        )
    }
}

impl From<Lost> for Response<actix_http::body::BoxBody> {
    fn from(_: Lost) -> Self {
        Response::new(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// What a handshake that passed every check hands to the socket.
struct Admitted {
    identity: Identity,
    expires_at: domain::time::Timestamp,
    permit: admission::SocketPermit,
}

async fn admit(
    core: &Arc<Core>,
    head: &actix_http::RequestHead,
    peer: Option<SocketAddr>,
) -> Result<Admitted, Refusal> {
    if head.uri.path() != "/ws" {
        return Err(Refusal::new(StatusCode::NOT_FOUND, "not found"));
    }
    if ws::verify_handshake(head).is_err() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "not a WebSocket handshake",
        ));
    }
    if core.hub.is_closing() {
        return Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down",
        ));
    }
    // Cross-site WebSocket hijacking: browsers always send Origin on a WebSocket
    // handshake, so a missing one is refused too.
    let origin_ok = head
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| core.allowed_origins.iter().any(|a| a == o));
    if !origin_ok {
        return Err(Refusal::new(StatusCode::FORBIDDEN, "origin not allowed"));
    }
    let Some(key) = session_key(core, head) else {
        return Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "no valid session cookie",
        ));
    };
    let lookup = key.clone();
    let live = match core
        .db
        .run(move |c| repo::session::find_live(c, &lookup))
        .await
    {
        Ok(Some(live)) => live,
        Ok(None) => {
            return Err(Refusal::new(StatusCode::UNAUTHORIZED, "session not live"));
        }
        Err(e) => {
            tracing::error!(error = %e, "session look-up failed");
            return Err(Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
        }
    };
    // Sockets per user and per address on this process; the permit lives as long as the
    // socket's task.
    let forwarded = head
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    let address = core
        .admission
        .client_address(peer.map(|a| a.ip()), forwarded);
    let permit = match core.admission.sockets.admit(live.user.id, address) {
        Ok(permit) => permit,
        Err(which) => {
            let reason = match which {
                Refused::User => "too many sockets for this user",
                Refused::Address => "too many sockets from this address",
            };
            return Err(Refusal {
                status: StatusCode::TOO_MANY_REQUESTS,
                reason,
                retry_after: Some(admission::RETRY_AFTER_SECS),
            });
        }
    };
    Ok(Admitted {
        expires_at: live.session.expires_at,
        identity: Identity {
            session_id: live.session.id,
            user: live.user,
            session_key: key,
        },
        permit,
    })
}

/// actix-http's upgrade hook: every request asking for an upgrade comes here with its
/// connection. A refused one is answered and closed; an admitted one is answered with
/// 101 and becomes a socket, run by its own task until it ends.
pub(crate) async fn take_over<T: Transport>(
    core: Arc<Core>,
    req: Request,
    mut framed: actix_codec::Framed<T, h1::Codec>,
) -> Result<(), Lost> {
    let admitted = match admit(&core, req.head(), req.peer_addr()).await {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal.send(framed).await.map_err(Lost),
    };
    let res = ws::handshake_response(req.head()).finish().drop_body();
    drop(req);
    framed
        .send(h1::Message::Item((res, BodySize::None)))
        .await
        .map_err(Lost)?;
    // The dispatcher's buffers go with the framing: what the client sent behind its
    // handshake (a first frame) is copied out, the 8 KiB buffers are freed.
    let actix_codec::FramedParts { io, read_buf, .. } = framed.into_parts();
    let early = BytesMut::from(&read_buf[..]);
    drop(read_buf);
    // A task of its own: the dispatcher's connection task (≈ 3 KB, mostly room for
    // request futures a socket never makes again) ends here.
    actix_web::rt::spawn(run_socket(core, admitted, io, early));
    Ok(())
}

async fn run_socket<T: Transport>(core: Arc<Core>, admitted: Admitted, io: T, early: BytesMut) {
    let Admitted {
        identity,
        expires_at,
        permit,
    } = admitted;
    // Frames are small and latency matters: an ack followed by a message must not wait
    // for a delayed ACK (Nagle).
    let _ = io.tcp().set_nodelay(true);
    if let Some(size) = core.config.socket_send_buffer {
        // A fixed, small kernel send buffer bounds what a peer that stops reading can pin
        // in memory, and makes it fall behind (and get dropped) soon.
        let _ = socket2::SockRef::from(io.tcp()).set_send_buffer_size(size);
    }
    let (read, write) = tokio::io::split(io);
    let mut incoming = socket::Reader::new(read, early, core.max_frame_bytes);
    let sink = socket::Writer::new(write);
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
        {
            let socket = connection::run(core, identity, &mut incoming, sink);
            tokio::pin!(socket);
            // The watcher only asks the hub to close the socket; the socket's own task
            // still sends the close frame and ends as usual.
            tokio::select! {
                () = &mut socket => {}
                () = expiry => socket.await,
            }
        }
        drop(permit);
        // A lingering close: the close frame is out; read (and drop) what the peer still
        // sends until it closes too, for a moment. Closing with unread bytes would make
        // the kernel answer with a reset, which can destroy the close frame in flight.
        let _ =
            tokio::time::timeout(LINGER, async { while incoming.next().await.is_some() {} }).await;
        // Then both halves are dropped: the connection is closed for real, even under a
        // peer that stopped reading.
    };
    tracing::Instrument::instrument(task, span).await;
}

/// `GET /ws` without an upgrade (an upgrade never reaches the app).
pub(crate) async fn not_upgraded() -> HttpResponse {
    HttpResponse::BadRequest()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body("not a WebSocket handshake")
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
