//! The HTTP server a gateway runs in: actix-web's `App` for every ordinary request, and
//! actix-http's upgrade hook for the WebSocket handshake, so the gateway owns each socket's
//! connection outright (see [`crate::socket`] for why).

use crate::{Gateway, routes};
use actix_codec::Framed;
use actix_http::{HttpService, Request, Response, body::MessageBody, h1};
use actix_service::{IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt as _};
use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::{AppConfig, Server};
use actix_web::rt::net::TcpStream;
use std::{fmt, net::TcpListener, time::Duration};

/// How the listener speaks: plain HTTP, or HTTPS with this configuration.
pub type Tls = Option<rustls::ServerConfig>;

/// Serves `app` (an actix-web app factory, as for `HttpServer::new`) on `listener`, with
/// WebSocket upgrades taken by `gateway`. Signals are left to the caller; on stop,
/// connections get `shutdown_timeout` to finish.
pub fn serve<F, I, S, B>(
    gateway: &Gateway,
    listener: TcpListener,
    tls: Tls,
    shutdown_timeout: Duration,
    app: F,
) -> std::io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let addr = listener.local_addr()?;
    let secure = tls.is_some();
    let core = gateway.core.clone();
    let builder = actix_server::Server::build()
        .disable_signals()
        .shutdown_timeout(shutdown_timeout.as_secs().max(1));
    // One HTTP service per worker; `$io` is the connection type the upgrade hook gets.
    macro_rules! http_service {
        ($io:ty) => {{
            let up = core.clone();
            let app = app()
                .into_factory()
                .map_err(|err| err.into().error_response());
            // What `HttpServer` gives the app: the scheme and the listener's address (the
            // Host header takes precedence wherever the app reads the host).
            let config = move |()| AppConfig::__priv_test_new(secure, addr.to_string(), addr);
            HttpService::build()
                // As `HttpServer`: a client that vanished mid-response is let go after 1 s.
                .client_disconnect_timeout(Duration::from_secs(1))
                .upgrade(actix_service::fn_service(
                    move |(req, framed): (Request, Framed<$io, h1::Codec>)| {
                        routes::take_over::<$io>(up.clone(), req, framed)
                    },
                ))
                .finish(actix_service::map_config(app, config))
        }};
    }
    let builder = match tls {
        None => builder.listen("confab", listener, move || http_service!(TcpStream).tcp())?,
        Some(tls) => builder.listen("confab", listener, move || {
            http_service!(TlsStream<TcpStream>).rustls_0_23(tls.clone())
        })?,
    };
    Ok(builder.run())
}
