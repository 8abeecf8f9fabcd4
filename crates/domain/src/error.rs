//! The one error type of the domain layer. It knows nothing of HTTP or WebSockets; the
//! services map each variant to a status code or an `error` frame.

use thiserror::Error;

pub type Result<T, E = DomainError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum DomainError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("forbidden")]
    Forbidden,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("message {message_id} could not be decrypted: {reason}")]
    Undecryptable { message_id: i64, reason: String },
    #[error("encryption failed: {0}")]
    Crypto(String),
    #[error("database error: {0}")]
    Db(#[source] diesel::result::Error),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl DomainError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        DomainError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

impl From<diesel::result::Error> for DomainError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => DomainError::NotFound,
            // Matched by kind: `constraint_name()` is None on SQLite.
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                DomainError::Conflict(info.message().to_owned())
            }
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                DomainError::Unavailable(info.message().to_owned())
            }
            other => DomainError::Db(other),
        }
    }
}

impl From<diesel::r2d2::PoolError> for DomainError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        DomainError::Unavailable(e.to_string())
    }
}
