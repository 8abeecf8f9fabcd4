//! `confab serve`: both services in one process on one port — the embedded default, like
//! `manage.py runserver` with Channels. SQLite and the in-process bus unless configured
//! otherwise; migrations applied at start; a one-time setup link printed when there are
//! no users yet.

use crate::cli::CliError;
use actix_web::App;
use anyhow::Context as _;
use domain::{
    bus::{SharedBus, memory::MemoryBus, redis::RedisBus},
    db::Db,
    repo,
    settings::Settings,
};
use std::{net::TcpListener, sync::Arc, time::Duration};
use tracing_actix_web::TracingLogger;

pub fn run(settings: Settings) -> Result<(), CliError> {
    actix_web::rt::System::new()
        .block_on(serve(settings))
        .map_err(|e| CliError::Refused(format!("{e:#}")))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let keys = settings
        .message_keys()
        .context("loading the message keys")?;
    let db = Db::connect(&settings.database_url, settings.database_pool_size)
        .context("opening the database")?;
    let applied = db.migrate()?;
    db.run(repo::room::ensure_general).await?;
    tracing::info!(backend = ?db.backend(), applied, "database ready");

    let (bus, gateway_deps): (SharedBus, ws_gateway::Deps) = match &settings.redis_url {
        Some(url) => {
            let bus = Arc::new(
                RedisBus::connect(
                    url,
                    &settings.redis_prefix,
                    keys.clone(),
                    Duration::from_secs(10),
                )
                .await
                .context("connecting to Redis")?,
            );
            (
                bus.clone(),
                ws_gateway::Deps::redis(db.clone(), bus, keys.clone())
                    .with_config(ws_gateway::GatewayConfig::from_settings(&settings)),
            )
        }
        None => {
            let bus = Arc::new(MemoryBus::new());
            (
                bus.clone(),
                ws_gateway::Deps::in_process(db.clone(), bus, keys.clone())
                    .with_config(ws_gateway::GatewayConfig::from_settings(&settings)),
            )
        }
    };
    let state =
        http_app::AppState::new(settings.clone(), http_app::Deps::new(db.clone(), bus, keys))
            .await?;
    let gateway = ws_gateway::Gateway::start(&settings, gateway_deps).await?;

    let listener =
        TcpListener::bind(settings.bind).with_context(|| format!("binding {}", settings.bind))?;
    let address = listener.local_addr()?;
    let scheme = if settings.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let gw = gateway.clone();
    let app_state = state.clone();
    let tls = domain::service::tls_server_config(&settings)?;
    // `ws_gateway::serve` rather than `HttpServer`: WebSocket upgrades go to the gateway,
    // which takes their connections over.
    let server = ws_gateway::serve(&gateway, listener, tls, Duration::from_secs(5), move || {
        App::new()
            .wrap(TracingLogger::default())
            // `/ws` first: http-app's scope answers every other path.
            .configure(|cfg| gw.configure(cfg))
            .service(http_app::service(app_state.clone()))
    })?;

    println!("Confab is running at {scheme}://{address}/");
    if let Some(path) = state.setup_path() {
        println!("No users yet: create the administrator at {scheme}://{address}{path}");
    }
    domain::service::notify_ready();

    let handle = server.handle();
    let mut server = tokio::spawn(server);
    tokio::select! {
        r = &mut server => { r??; return Ok(()) }
        r = domain::service::shutdown_signal() => r?,
    }
    tracing::info!("shutting down");
    domain::service::notify_stopping();
    // Sockets first (see ws_gateway's `run_until_stopped`), then the server.
    gateway.shutdown().await;
    handle.stop(true).await;
    server.await??;
    Ok(())
}
