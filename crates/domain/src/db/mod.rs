//! The database: one connection type over SQLite and PostgreSQL, a pool, migrations, and
//! the rule that blocking diesel calls never run on async executor threads.

pub mod schema;

use crate::error::{DomainError, Result};
use diesel::{
    connection::{AnsiTransactionManager, SimpleConnection, TransactionManager},
    prelude::*,
    r2d2::{self, ManageConnection},
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use std::time::Duration;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// How long a SQLite writer waits for the lock before giving up. Writers hold it for
/// milliseconds, so this only runs out when something is badly wrong.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 30_000;

/// WAL pages after which a connection's own commit checkpoints. A process with a message
/// writer checkpoints in the background well before (`writer::CHECKPOINTS`), so this is
/// the backstop for processes without one; SQLite's 1,000 would have ordinary commits
/// checkpoint on a request's path between two background checkpoints.
pub(crate) const SQLITE_AUTOCHECKPOINT: u32 = 4_000;

#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database URL with its backend decided by scheme, not by trying each backend in turn
/// (SQLite would accept any string as a file name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    pub backend: Backend,
    /// What the driver gets: a file path for SQLite, the URL for PostgreSQL.
    pub target: String,
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<DatabaseUrl> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl {
                backend: Backend::Postgres,
                target: url.to_owned(),
            });
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() {
            return Err(DomainError::invalid(
                "database_url",
                "no SQLite file path given",
            ));
        }
        if path.contains("://") {
            return Err(DomainError::invalid(
                "database_url",
                "use sqlite://PATH, a file path, or postgres://…",
            ));
        }
        Ok(DatabaseUrl {
            backend: Backend::Sqlite,
            target: path.to_owned(),
        })
    }
}

/// r2d2 manager that opens the right backend and applies per-connection settings.
#[derive(Debug)]
pub struct Manager {
    url: DatabaseUrl,
}

impl ManageConnection for Manager {
    type Connection = DbConn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConn, r2d2::Error> {
        match self.url.backend {
            Backend::Sqlite => {
                let mut c = SqliteConnection::establish(&self.url.target)
                    .map_err(r2d2::Error::ConnectionError)?;
                // WAL lets readers and one writer work at once; NORMAL is durable in WAL
                // mode except for the last transactions on power loss.
                c.batch_execute(&format!(
                    "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = NORMAL;
                     PRAGMA wal_autocheckpoint = {SQLITE_AUTOCHECKPOINT};
                     PRAGMA foreign_keys = ON;"
                ))
                .map_err(r2d2::Error::QueryError)?;
                Ok(DbConn::Sqlite(c))
            }
            Backend::Postgres => PgConnection::establish(&self.url.target)
                .map(DbConn::Postgres)
                .map_err(r2d2::Error::ConnectionError),
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        match conn {
            DbConn::Sqlite(_) => false,
            DbConn::Postgres(c) => AnsiTransactionManager::is_broken_transaction_manager(c),
        }
    }
}

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConn = r2d2::PooledConnection<Manager>;

/// The pool, and the one way to use it from async code.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    backend: Backend,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .field("state", &self.pool.state())
            .finish()
    }
}

impl Db {
    /// Opens a pool. For SQLite, the file's folder is created if missing.
    pub fn connect(url: &str, pool_size: u32) -> Result<Db> {
        let url = DatabaseUrl::parse(url)?;
        if url.backend == Backend::Sqlite
            && let Some(dir) = std::path::Path::new(&url.target)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                DomainError::Unavailable(format!("cannot create the folder {}: {e}", dir.display()))
            })?;
        }
        let backend = url.backend;
        let manager = Manager { url };
        // One direct connection first: a wrong URL or a stopped server fails at once
        // with the driver's own message, instead of after the pool's retries.
        drop(
            manager
                .connect()
                .map_err(|e| DomainError::Unavailable(e.to_string()))?,
        );
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            // No idle minimum: r2d2 would refill it from a background thread, which can still
            // be inside libpq when a short-lived process (the CLI) exits, and crash it.
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(|e| DomainError::Unavailable(e.to_string()))?;
        Ok(Db { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A connection for blocking code (the CLI, and inside [`Db::run`]).
    pub fn get(&self) -> Result<PooledConn> {
        Ok(self.pool.get()?)
    }

    /// Runs blocking database work on tokio's blocking pool, never on an executor thread.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut DbConn) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| DomainError::Internal(format!("database task failed: {e}")))?
    }

    /// Applies pending migrations; returns how many ran.
    pub fn migrate(&self) -> Result<usize> {
        let mut conn = self.get()?;
        migrate(&mut conn)
    }

    /// Is the database answering? For `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        self.run(|c| c.batch_execute("SELECT 1").map_err(DomainError::from))
            .await
    }
}

pub fn migrate(conn: &mut DbConn) -> Result<usize> {
    let done = match conn {
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
        DbConn::Postgres(c) => c
            .run_pending_migrations(POSTGRES_MIGRATIONS)
            .map(|v| v.len()),
    };
    done.map_err(|e| DomainError::Migration(e.to_string()))
}

/// Runs `f` in a write transaction. On SQLite it starts with `BEGIN IMMEDIATE`, taking
/// the write lock up front: a deferred transaction that reads and then writes can fail
/// with "database is locked" without waiting, while an immediate one waits its turn
/// (`busy_timeout`). On PostgreSQL it is an ordinary transaction.
pub fn write_tx<T>(conn: &mut DbConn, f: impl FnOnce(&mut DbConn) -> Result<T>) -> Result<T> {
    match conn {
        DbConn::Postgres(_) => conn.transaction(f),
        DbConn::Sqlite(c) => {
            let nested = AnsiTransactionManager::transaction_manager_status_mut(c)
                .transaction_depth()?
                .is_some();
            if nested {
                // Already inside a write transaction: a savepoint is enough.
                return conn.transaction(f);
            }
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?;
            let result = f(conn);
            let DbConn::Sqlite(c) = conn else {
                return Err(DomainError::Internal("connection changed backend".into()));
            };
            match result {
                Ok(v) => {
                    AnsiTransactionManager::commit_transaction(c)?;
                    Ok(v)
                }
                Err(e) => {
                    // The original error matters more than a failed rollback.
                    let _ = AnsiTransactionManager::rollback_transaction(c);
                    Err(e)
                }
            }
        }
    }
}

/// Runs the same diesel expression on whichever backend `conn` is, for the statements the
/// multi-backend connection does not cover (`RETURNING`, locking clauses).
#[macro_export]
macro_rules! per_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::db::DbConn::Sqlite($c) => $body,
            $crate::db::DbConn::Postgres($c) => $body,
        }
    };
}

/// The URL of database `name` on the PostgreSQL server of `url` (path replaced, query
/// kept): for tools that create a fresh database beside the one they were given.
pub fn with_database_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_backend_by_scheme() {
        let u = DatabaseUrl::parse("postgres://localhost/confab").expect("pg");
        assert_eq!(u.backend, Backend::Postgres);
        let u = DatabaseUrl::parse("sqlite://data/confab.sqlite3").expect("sqlite");
        assert_eq!(
            (u.backend, u.target.as_str()),
            (Backend::Sqlite, "data/confab.sqlite3")
        );
        let u = DatabaseUrl::parse("/var/lib/confab/db.sqlite3").expect("path");
        assert_eq!(u.target, "/var/lib/confab/db.sqlite3");
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }

    /// `.cargo/config.toml` builds the bundled SQLite with the planner stability
    /// guarantee: without it every cached `.first()` statement is planned anew per run.
    #[test]
    fn sqlite_is_built_with_the_query_planner_stability_guarantee() {
        #[derive(diesel::QueryableByName)]
        struct Opt {
            #[diesel(sql_type = diesel::sql_types::Text)]
            compile_options: String,
        }
        let mut c = SqliteConnection::establish(":memory:").expect("in-memory SQLite");
        let options: Vec<String> = diesel::sql_query("PRAGMA compile_options")
            .load::<Opt>(&mut c)
            .expect("compile options")
            .into_iter()
            .map(|o| o.compile_options)
            .collect();
        assert!(
            options.iter().any(|o| o == "ENABLE_QPSG"),
            "SQLite built without SQLITE_ENABLE_QPSG (build from the workspace root so \
             .cargo/config.toml applies): {options:?}"
        );
    }
}
