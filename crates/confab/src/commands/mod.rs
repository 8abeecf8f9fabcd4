//! One module per group of commands. All of them run blocking code on the main thread:
//! the CLI has no async executor to protect.

pub mod check;
pub mod db;
pub mod export;
pub mod keys;
pub mod rooms;
pub mod serve;
pub mod users;

use crate::cli::CliError;
use domain::{db::Db, settings::Settings};

/// Opens the configured database with a small pool.
pub fn open(settings: &Settings) -> Result<Db, CliError> {
    Ok(Db::connect(&settings.database_url, 2)?)
}
