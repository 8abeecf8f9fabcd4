//! Confab's http-app: everything a browser sees except the live WebSocket — sign-in and
//! first-run setup, the app shell, rooms, devices, languages, health and metrics.
//!
//! Two ways to run it: [`Application::build`] binds its own listener (the `http-app`
//! binary, tests), and [`service`] returns the same routes and middleware as one actix
//! service, so `confab serve` can mount it beside the gateway's `/ws` in a single `App`.
//! Either way the guarantees are the same: CSRF on every state-changing request, security
//! headers on every response, friendly error pages that never show internals.

pub mod admin;
pub mod csrf;
pub mod device;
pub mod error;
pub mod extract;
pub mod i18n;
pub mod media;
pub mod security;
pub mod session_store;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod templates;
pub mod throttle;

mod routes;

pub use error::AppError;
pub use startup::{Application, service};
pub use state::{AppState, Deps, Options};
