//! Argument parsing, logging set-up and exit codes.

use crate::commands;
use clap::{Parser, Subcommand};
use domain::{
    DomainError,
    settings::{LogFormat, Settings},
};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "confab", version, about = "Confab: self-hosted team chat", long_about = None)]
pub struct Cli {
    /// What to do; without one, `serve`.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run Confab: pages and WebSockets in one process (the embedded default).
    Serve,
    /// Apply database migrations and create the public room `general`.
    Migrate,
    /// Create an administrator (superuser) account.
    Createsuperuser(commands::users::CreateArgs),
    /// Create an account (`--staff` for a staff member without permissions yet).
    Createuser {
        #[command(flatten)]
        args: commands::users::CreateArgs,
        /// Make the account staff (powers come from permissions granted in the admin).
        #[arg(long)]
        staff: bool,
    },
    /// Change a user's password; signs them out everywhere.
    Changepassword(commands::users::PasswordArgs),
    /// Create a room.
    Createroom(commands::rooms::CreateRoomArgs),
    /// Look for configuration problems (`--deploy`: also those that matter in production).
    Check {
        #[arg(long)]
        deploy: bool,
    },
    /// Write a room, its members and messages as JSON (docs/export-format.md).
    ExportRoom(commands::export::ExportArgs),
    /// Read a room export into this database; running it twice changes nothing.
    ImportRoom(commands::export::ImportArgs),
    /// Re-encrypt messages sealed with older keys, in batches, while Confab runs.
    RotateKeys {
        /// Rows per batch (one short transaction each).
        #[arg(long, default_value_t = 500)]
        batch: i64,
    },
}

/// What went wrong, and the exit code a script can act on.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Exit 3: the configuration is invalid.
    #[error("configuration error: {0}")]
    Config(String),
    /// Exit 4: the database cannot be reached or migrated.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Exit 1: the request itself was refused (bad input, taken name, …).
    #[error("{0}")]
    Refused(String),
    /// Exit 5: `check` found problems.
    #[error("{0} issue(s) found")]
    CheckFailed(usize),
}

impl CliError {
    fn code(&self) -> u8 {
        match self {
            CliError::Refused(_) => 1,
            CliError::Config(_) => 3,
            CliError::Unavailable(_) => 4,
            CliError::CheckFailed(_) => 5,
        }
    }
}

impl From<DomainError> for CliError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Unavailable(m) | DomainError::Migration(m) => CliError::Unavailable(m),
            DomainError::Db(e) => CliError::Unavailable(e.to_string()),
            other => CliError::Refused(other.to_string()),
        }
    }
}

impl From<domain::settings::ConfigError> for CliError {
    fn from(e: domain::settings::ConfigError) -> Self {
        CliError::Config(e.to_string())
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("confab: {e}");
            ExitCode::from(e.code())
        }
    }
}

/// Logs go to stderr; `RUST_LOG` filters. A server logs its requests, a one-off command
/// only its warnings.
fn init_logging(default_level: &str, format: LogFormat) {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn run(cli: Cli) -> Result<(), CliError> {
    let settings = Settings::load()?;
    let command = cli.command.unwrap_or(Command::Serve);
    let level = if matches!(command, Command::Serve) {
        "info"
    } else {
        "warn"
    };
    init_logging(level, settings.log_format);
    match command {
        Command::Serve => commands::serve::run(settings),
        Command::Migrate => commands::db::migrate(&settings),
        Command::Createsuperuser(args) => commands::users::create(&settings, args, true, true),
        Command::Createuser { args, staff } => {
            commands::users::create(&settings, args, staff, false)
        }
        Command::Changepassword(args) => commands::users::change_password(&settings, args),
        Command::Createroom(args) => commands::rooms::create(&settings, args),
        Command::Check { deploy } => commands::check::run(&settings, deploy),
        Command::RotateKeys { batch } => commands::keys::rotate(&settings, batch),
        Command::ExportRoom(args) => commands::export::export_room(&settings, args),
        Command::ImportRoom(args) => commands::export::import_room(&settings, args),
    }
}
