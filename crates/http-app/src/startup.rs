//! Wiring: [`service`] (every http-app route and middleware as one actix service) and
//! [`Application`] (that service on its own listener).

use crate::{
    csrf,
    error::{PageInfo, error_page, needs_error_page, render_error_page},
    routes, security,
    session_store::DbSessionStore,
    state::{AppState, Deps},
};
use actix_session::{
    SessionMiddleware,
    config::{BrowserSession, CookieContentSecurity},
};
use actix_web::{
    App, Error, HttpServer, Scope,
    body::{BoxBody, MessageBody},
    cookie::{SameSite, time::Duration},
    dev::{Server, ServerHandle, ServiceFactory, ServiceRequest, ServiceResponse},
    error::InternalError,
    middleware::{Next, from_fn},
    web,
};
use anyhow::Context as _;
use domain::settings::Settings;
use std::{net::TcpListener, time::Instant};
use tracing_actix_web::TracingLogger;

/// Everything http-app serves, as one service to mount on an `App`:
///
/// ```ignore
/// App::new()
///     .wrap(TracingLogger::default())
///     .configure(|cfg| gateway_routes(cfg))   // `/ws` first: this scope matches every path
///     .service(http_app::service(state.clone()))
/// ```
///
/// It brings its own `AppState`, sessions, CSRF checks, security headers, error pages and
/// 404s; only the request-id span (`TracingLogger`) is left to the `App`, so one process
/// hosting two services logs one span per request.
pub fn service(
    state: AppState,
) -> Scope<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >,
> {
    // Install the process's recorder before any counter is touched.
    let _ = domain::metrics::handle();
    let https = state.settings.https;
    let store = DbSessionStore::new(
        state.db.clone(),
        state.bus.clone(),
        state.lifetimes(),
        state.settings.single_session,
    );
    let idle = i64::try_from(state.settings.session_idle_timeout_secs).unwrap_or(i64::MAX);
    let sessions = SessionMiddleware::builder(store, state.cookie_key.clone())
        .cookie_name(domain::auth::session_cookie_name(https).to_owned())
        .cookie_secure(https)
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .cookie_path("/".to_owned())
        .cookie_content_security(CookieContentSecurity::Signed)
        // A browser-session cookie; the database enforces idle and absolute expiry.
        .session_lifecycle(BrowserSession::default().state_ttl(Duration::seconds(idle)))
        .build();
    let static_dir = (!state.settings.is_production()).then(|| state.options.static_dir.clone());
    let mut scope = web::scope("")
        .app_data(web::Data::new(state))
        .app_data(web::FormConfig::default().limit(64 * 1024))
        .configure(routes::configure);
    if let Some(dir) = static_dir {
        scope = scope.service(actix_files::Files::new("/static", dir).prefer_utf8(true));
    }
    scope
        .default_service(web::to(routes::not_found))
        // Outermost last: finish → sessions → CSRF → handler.
        .wrap(from_fn(csrf::middleware))
        .wrap(sessions)
        .wrap(from_fn(finish))
}

/// The outermost layer: replaces bare error bodies with the friendly page, sets the
/// security headers and counts the request. Errors that escape the inner layers (a
/// session store failure) get the same page and headers.
async fn finish(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let info = PageInfo::of(req.request());
    let https = info.state.as_ref().is_some_and(|s| s.settings.https);
    let host = req.connection_info().host().to_owned();
    let method = req.method().to_string();
    let mut res = match next.call(req).await {
        Ok(res) => res.map_into_boxed_body(),
        Err(e) => {
            let status = e.as_response_error().status_code();
            let mut page = error_page(&info, status, Some(&e), Vec::new());
            security::apply(page.headers_mut(), Some(&host), https);
            count(&method, "unmatched", status.as_u16(), started);
            // actix turns this error into exactly the response given here.
            return Err(InternalError::from_response(e, page).into());
        }
    };
    if needs_error_page(&res) {
        res = render_error_page(res, &info);
    }
    security::apply(res.headers_mut(), Some(&host), https);
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    count(&method, &route, res.status().as_u16(), started);
    Ok(res)
}

fn count(method: &str, route: &str, status: u16, started: Instant) {
    metrics::counter!(
        "http_requests_total",
        "method" => method.to_owned(),
        "route" => route.to_owned(),
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route.to_owned())
        .record(started.elapsed().as_secs_f64());
}

/// http-app on its own listener.
pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
}

impl Application {
    /// Binds `settings.bind` (port 0 picks a free port) and prepares the server; it
    /// starts serving when [`Application::run_until_stopped`] is polled.
    pub async fn build(settings: Settings, deps: Deps) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(settings.bind)
            .with_context(|| format!("binding {}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let workers = deps.options.workers;
        let shutdown = deps.options.shutdown_timeout_secs;
        // Read before the server starts, so a bad certificate stops start-up with its name.
        let tls = domain::service::tls_server_config(&settings)?;
        let state = AppState::new(settings, deps).await?;
        let for_workers = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(TracingLogger::default())
                .service(service(for_workers.clone()))
        })
        .shutdown_timeout(shutdown);
        if let Some(n) = workers {
            server = server.workers(n);
        }
        let server = match tls {
            Some(tls) => server.listen_rustls_0_23(listener, tls)?,
            None => server.listen(listener)?,
        }
        .run();
        Ok(Application {
            port,
            server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The full first-run link while no user exists, to print at start-up.
    pub fn setup_url(&self) -> Option<String> {
        let path = self.state.setup_path()?;
        let settings = &self.state.settings;
        if settings.https
            && let Some(origin) = settings.allowed_origins.first()
        {
            return Some(format!("{origin}{path}"));
        }
        let ip = settings.bind.ip();
        let host = if ip.is_unspecified() {
            "127.0.0.1".to_owned()
        } else if ip.is_ipv6() {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        let scheme = if settings.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        Some(format!("{scheme}://{host}:{}{path}", self.port))
    }

    /// Stops the server gracefully (for tests and signal handlers).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
