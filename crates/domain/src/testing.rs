//! Test support shared by every crate's tests (feature `testing`): a fresh database per
//! test on either backend, and settings to match. Never mocks; always the real server.

use crate::{
    crypto::MessageKeys,
    db::{Backend, Db},
    settings::Settings,
};
use diesel::{Connection, PgConnection, RunQueryDsl};
use std::sync::atomic::{AtomicU64, Ordering};

/// The PostgreSQL server tests use: `TEST_POSTGRES_URL`, else the local one with trust
/// auth. It must allow `CREATE DATABASE`.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A unique name for this test run: process id, time and a counter.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A migrated, empty database that disappears with the value.
pub struct TestDb {
    pub db: Db,
    pub url: String,
    pub backend: Backend,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// # Panics
    /// When the backend cannot be reached, with a message saying how to start it: a test
    /// must never pass by skipping.
    pub fn new(backend: Backend) -> TestDb {
        let (url, pg_name, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary folder");
                let url = format!("sqlite://{}", dir.path().join("confab.sqlite3").display());
                (url, None, Some(dir))
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let mut conn = PgConnection::establish(&admin).unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is not reachable at {admin} ({e}). Start it with \
                         `pg_ctlcluster $(ls /etc/postgresql) main start`, or set TEST_POSTGRES_URL."
                    )
                });
                let name = unique_name("confab_test");
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .expect("CREATE DATABASE");
                let url = crate::db::with_database_name(&admin, &name);
                (url, Some(name), None)
            }
        };
        let db = Db::connect(&url, 8).expect("connect to the test database");
        db.migrate().expect("migrations apply");
        TestDb {
            db,
            url,
            backend,
            pg_name,
            _dir: dir,
        }
    }

    /// The SQLite file, for tests that look at raw bytes.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        self._dir.as_ref().map(|d| d.path().join("confab.sqlite3"))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name
            && let Ok(mut conn) = PgConnection::establish(&postgres_admin_url())
        {
            // WITH (FORCE) ends the pool's connections still open (PostgreSQL 13+).
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn);
        }
    }
}

/// Settings for a test: the given database, a fresh message key, cheap bcrypt, port 0.
pub fn settings(database_url: &str) -> Settings {
    Settings {
        database_url: database_url.to_owned(),
        message_keys: Some(MessageKeys::generate_line("t1").into()),
        bcrypt_cost: 4,
        bind: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        redis_prefix: unique_name("confab_test"),
        ..Settings::default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            crate::db::with_database_name("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            crate::db::with_database_name("postgres://u@h/postgres?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(
            crate::db::with_database_name("postgres://u@h", "x"),
            "postgres://u@h/x"
        );
    }
}
