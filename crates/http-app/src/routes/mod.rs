//! Routes, one module per resource.

mod account;
mod api;
mod app;
mod auth;
mod devices;
mod direct;
mod health;
mod language;
mod media;
mod rooms;
mod setup;
mod uploads;

use crate::error::AppError;
use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    auth::configure(cfg);
    setup::configure(cfg);
    app::configure(cfg);
    rooms::configure(cfg);
    devices::configure(cfg);
    language::configure(cfg);
    account::configure(cfg);
    crate::admin::configure(cfg);
    api::configure(cfg);
    direct::configure(cfg);
    uploads::configure(cfg);
    media::configure(cfg);
}

pub async fn not_found() -> Result<actix_web::HttpResponse, AppError> {
    Err(AppError::NotFound)
}

/// A translated, user-facing message for a validation error of `field`.
pub(crate) fn invalid_field_key(e: &domain::DomainError) -> Option<&'static str> {
    match e {
        domain::DomainError::Invalid { field, .. } => Some(match *field {
            "username" => "form-invalid-username",
            "password" => "form-invalid-password",
            "display_name" => "form-invalid-display-name",
            "slug" => "form-invalid-slug",
            "name" => "form-invalid-room-name",
            "topic" => "form-invalid-topic",
            _ => "form-invalid",
        }),
        _ => None,
    }
}

/// The password policy's verdict on a new password, translated into `lang`: every rule it
/// breaks, one sentence each; `None` when it passes.
pub(crate) fn password_policy_error(
    settings: &domain::settings::Settings,
    lang: &str,
    password: &str,
    user: &domain::password_policy::UserAttributes<'_>,
) -> Option<String> {
    let policy = domain::password_policy::PasswordPolicy::from_settings(settings);
    let broken = policy.validate(password, user).err()?;
    Some(
        broken
            .iter()
            .map(|v| crate::i18n::t_args(lang, v.message_id(), &v.args()))
            .collect::<Vec<_>>()
            .join(" "),
    )
}
