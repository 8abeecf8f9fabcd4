//! Confab's domain: models, storage, auth, permissions, encryption and configuration.
//! It knows nothing of HTTP or WebSockets; both services meet here.

pub mod auth;
pub mod bus;
pub mod crypto;
pub mod db;
pub mod error;
pub mod export;
pub mod ids;
pub mod metrics;
pub mod model;
pub mod password_policy;
pub mod permissions;
pub mod repo;
pub mod service;
pub mod settings;
pub mod time;
pub mod writer;

pub use error::{DomainError, Result};

#[cfg(any(test, feature = "testing"))]
pub mod testing;
