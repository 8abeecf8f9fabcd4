//! What every long-running Confab process does the same way, whatever it serves: TLS
//! from `CONFAB_TLS_CERT`/`CONFAB_TLS_KEY`, readiness for systemd, shutdown on SIGTERM.

use crate::settings::Settings;
use anyhow::Context as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use std::sync::Arc;

/// The rustls configuration for a service terminating TLS itself, or `None` without
/// certificate settings. TLS 1.2 and 1.3 only (rustls offers nothing older), ring's
/// cipher suites, HTTP/1.1 (nginx speaks HTTP/2 to browsers).
pub fn tls_server_config(settings: &Settings) -> anyhow::Result<Option<rustls::ServerConfig>> {
    let (Some(cert), Some(key)) = (&settings.tls_cert, &settings.tls_key) else {
        return Ok(None);
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("CONFAB_TLS_CERT: cannot read {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| {
            format!(
                "CONFAB_TLS_CERT: {} is not a PEM certificate chain",
                cert.display()
            )
        })?;
    anyhow::ensure!(
        !certs.is_empty(),
        "CONFAB_TLS_CERT: no certificate in {}",
        cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("CONFAB_TLS_KEY: {} is not a PEM private key", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("CONFAB_TLS_CERT/CONFAB_TLS_KEY: the key does not match the certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(config))
}

/// Tells systemd (`Type=notify`) that the service is listening. Without systemd
/// (`NOTIFY_SOCKET` unset) it does nothing.
pub fn notify_ready() {
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "could not notify systemd of readiness");
    }
}

/// Tells systemd the service is stopping, so `systemctl status` says so while it drains.
pub fn notify_stopping() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => Ok(()),
            r = tokio::signal::ctrl_c() => r,
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_tls_without_settings_and_clear_errors_with_bad_files() {
        let s = Settings::default();
        assert!(tls_server_config(&s).unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let s = Settings {
            tls_cert: Some(cert),
            tls_key: Some(key),
            ..Settings::default()
        };
        let e = tls_server_config(&s).unwrap_err();
        assert!(format!("{e:#}").contains("CONFAB_TLS_"), "{e:#}");
    }
}
