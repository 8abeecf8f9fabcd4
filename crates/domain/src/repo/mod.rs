//! Repository functions: plain functions over a connection, one module per aggregate.
//! Callers in async code wrap them in [`crate::db::Db::run`].

pub mod admin;
pub mod attachment;
pub mod audit;
pub mod block;
pub mod direct;
pub mod group;
pub mod mention;
pub mod message;
pub mod room;
pub mod session;
pub mod user;

/// Keyset pagination: at most `limit` rows after or before an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The newest rows.
    Latest,
    /// Rows with a smaller id, newest first in the query, returned oldest first.
    Before(i64),
    /// Rows with a larger id, oldest first.
    After(i64),
}

/// Hard upper bound on any page, whatever a caller asks for.
pub const MAX_PAGE: i64 = 500;

pub(crate) fn clamp_limit(limit: i64) -> i64 {
    limit.clamp(1, MAX_PAGE)
}
