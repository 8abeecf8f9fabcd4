//! The `http-app` binary: pages, sign-in and the app shell, configured by `CONFAB_*`.

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = domain::settings::Settings::load()?;
    http_app::telemetry::init(&settings);
    let deps = http_app::Deps::from_settings(&settings).await?;
    let app = http_app::Application::build(settings, deps).await?;
    if let Some(link) = app.setup_url() {
        tracing::warn!(%link, "no users yet: open this one-time link to create the administrator");
    }
    domain::service::notify_ready();
    app.run_until_stopped().await?;
    Ok(())
}
