//! The standalone gateway: `CONFAB_*` settings, Redis bus, SIGTERM-graceful.

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = domain::settings::Settings::load()?;
    ws_gateway::init_tracing(settings.log_format);
    let deps = ws_gateway::Deps::from_settings(&settings).await?;
    let app = ws_gateway::Application::build(settings, deps).await?;
    tracing::info!(port = app.port(), "ws-gateway listening");
    domain::service::notify_ready();
    app.run_until_stopped().await
}
