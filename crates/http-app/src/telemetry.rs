//! Logging set-up for the standalone binary (`confab serve` installs its own).

use domain::settings::{LogFormat, Settings};
use tracing_subscriber::{EnvFilter, fmt};

/// Installs a global subscriber: `RUST_LOG` or `info`, text or JSON as configured.
/// Does nothing if one is already installed.
pub fn init(settings: &Settings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter);
    let _ = match settings.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
