//! Like Django's `check --deploy`: configuration that works but is unsafe or unwise.

use crate::cli::CliError;
use domain::settings::Settings;
use secrecy::ExposeSecret;

#[derive(Debug, PartialEq, Eq)]
pub struct Finding {
    pub id: &'static str,
    pub message: String,
}

pub fn findings(s: &Settings, deploy: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut warn = |id, message: String| out.push(Finding { id, message });
    if let Err(e) = s.message_keys() {
        warn("keys.missing", format!("message keys are not usable: {e}"));
    }
    if !deploy {
        return out;
    }
    if s.uses_default_secret_key() {
        warn(
            "security.secret_key",
            "CONFAB_SECRET_KEY is the development default; set a long random value".into(),
        );
    } else if s.secret_key.expose_secret().len() < 50 {
        warn(
            "security.secret_key",
            "CONFAB_SECRET_KEY is shorter than 50 characters".into(),
        );
    }
    if !s.is_production() {
        warn(
            "deploy.environment",
            "CONFAB_ENVIRONMENT is not 'production'".into(),
        );
    }
    if s.message_keys.is_none() {
        warn(
            "keys.file",
            format!(
                "message keys come from {}; back that file up, or set CONFAB_MESSAGE_KEYS from a secret store",
                s.message_key_file.display()
            ),
        );
    }
    if !s.https {
        warn(
            "security.https",
            "CONFAB_HTTPS is off: cookies are not Secure and HSTS is not sent".into(),
        );
    }
    if s.tls_cert.is_none() && !s.https {
        warn("security.tls", "no TLS: set CONFAB_TLS_CERT/CONFAB_TLS_KEY or serve behind nginx with CONFAB_HTTPS=true".into());
    }
    for origin in &s.allowed_origins {
        if origin.starts_with("http://") {
            warn(
                "security.origins",
                format!("allowed origin {origin} is not HTTPS"),
            );
        }
        if origin.contains("localhost") || origin.contains("127.0.0.1") {
            warn(
                "security.origins",
                format!("allowed origin {origin} is a local address"),
            );
        }
    }
    if s.redis_url.is_none() {
        warn(
            "deploy.redis",
            "CONFAB_REDIS_URL is not set: only `confab serve` (one process) can run".into(),
        );
    } else if s.redis_url.as_ref().is_some_and(|u| {
        let u = u.expose_secret();
        u.starts_with("redis://")
            && !u.contains('@')
            && !u.contains("127.0.0.1")
            && !u.contains("localhost")
    }) {
        warn(
            "security.redis",
            "Redis on another host without a password or TLS (use rediss:// and AUTH)".into(),
        );
    }
    if s.bcrypt_cost < 10 {
        warn(
            "security.bcrypt",
            format!("CONFAB_BCRYPT_COST is {}; use 10 or more", s.bcrypt_cost),
        );
    }
    if s.session_absolute_timeout_secs > 90 * 24 * 3600 {
        warn(
            "security.sessions",
            "sessions may live longer than 90 days".into(),
        );
    }
    out
}

pub fn run(settings: &Settings, deploy: bool) -> Result<(), CliError> {
    let found = findings(settings, deploy);
    for f in &found {
        println!("WARNING {}: {}", f.id, f.message);
    }
    if found.is_empty() {
        println!("System check identified no issues.");
        Ok(())
    } else {
        println!("System check identified {} issue(s).", found.len());
        Err(CliError::CheckFailed(found.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_defaults_fail_the_deploy_check() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings {
            message_key_file: dir.path().join("k"),
            ..Settings::default()
        };
        let ids: Vec<_> = findings(&s, true).into_iter().map(|f| f.id).collect();
        for expected in [
            "security.secret_key",
            "deploy.environment",
            "security.https",
            "security.origins",
            "deploy.redis",
        ] {
            assert!(ids.contains(&expected), "{expected} missing from {ids:?}");
        }
        assert!(
            findings(&s, false).is_empty(),
            "development defaults are fine for development"
        );
    }

    #[test]
    fn a_production_setup_passes() {
        let s = Settings::from_env(
            [
                ("CONFAB_ENVIRONMENT", "production"),
                ("CONFAB_SECRET_KEY", &"s".repeat(64)),
                (
                    "CONFAB_MESSAGE_KEYS",
                    &domain::crypto::MessageKeys::generate_line("k1"),
                ),
                ("CONFAB_HTTPS", "true"),
                ("CONFAB_ALLOWED_ORIGINS", "https://chat.example.com"),
                ("CONFAB_REDIS_URL", "redis://127.0.0.1:6379"),
                ("CONFAB_DATABASE_URL", "postgres://confab@db/confab"),
            ]
            .map(|(k, v)| (k.into(), v.into())),
        )
        .unwrap();
        assert_eq!(findings(&s, true), vec![]);
    }
}
