//! `confab-loadgen persist`: message persistence alone, without sockets. A fresh database
//! per measured path (a SQLite file, and a PostgreSQL database when a server URL is
//! given), `--users` users who are members of `--rooms` rooms, then `--messages` posts
//! (encrypted, indexed, `client_id` set, as the gateway stores them) from `--concurrency`
//! tasks through each path:
//!
//! - `direct`: today's path before the writer, `repo::message::post` in its own
//!   transaction, one pooled connection checked out per message (`Db::run`);
//! - `writer`: the group-commit [`MessageWriter`], no checks;
//! - `writer-guard`: the writer with the gateway's permission and block checks inside each
//!   message's savepoint (what `send` does);
//! - `read-then-writer`: the same checks as a read through `Db::run` first, then the
//!   writer (the alternative the gateway does not take).
//!
//! Each path prints one JSON line and a table row: messages/s over the whole run.

use anyhow::{Context as _, bail};
use diesel::{Connection as _, PgConnection, RunQueryDsl as _};
use domain::{
    crypto::MessageKeys,
    db::{Backend, Db},
    ids::{RoomId, UserId},
    model::{MessageKind, RoomKind, RoomRole, User},
    repo::{self, message::NewMessage, room::NewRoom, user::NewUser},
    writer::{BatchView, MessageWriter, may_post},
};
use serde::{Deserialize, Serialize};
use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

/// The paths, in the order they run.
pub const PATHS: [&str; 4] = ["direct", "writer", "writer-guard", "read-then-writer"];

#[derive(Debug, Clone, clap::Args)]
pub struct PersistOptions {
    /// Messages posted per path.
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Tasks posting at once (each waits for its post before the next, like a socket).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// Body length in bytes (before encryption).
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
    /// Connection pool size (the shipped default is 16).
    #[arg(long, default_value_t = 16)]
    pub pool_size: u32,
    /// Paths to measure, comma-separated (direct, writer, writer-guard, read-then-writer).
    #[arg(long, value_delimiter = ',', default_values_t = PATHS.map(String::from))]
    pub paths: Vec<String>,
    /// Also measure PostgreSQL: a server URL whose user may `CREATE DATABASE`
    /// (e.g. postgres://postgres@127.0.0.1:5432/postgres). A fresh database is made per
    /// path and dropped afterwards.
    #[arg(long)]
    pub postgres_url: Option<String>,
    /// Skip SQLite.
    #[arg(long)]
    pub no_sqlite: bool,
    /// Folder for the SQLite files (default: a temporary folder, removed afterwards).
    #[arg(long)]
    pub sqlite_dir: Option<std::path::PathBuf>,
}

/// One measured path: a JSON line of `persist`, read back by the report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PersistRecord {
    pub kind: String,
    pub backend: String,
    pub path: String,
    pub messages: usize,
    pub concurrency: usize,
    pub seconds: f64,
    pub messages_per_sec: f64,
    /// Transactions the writer committed (writer paths only).
    pub batches: Option<u64>,
    /// Messages found in the database afterwards (must equal `messages`).
    pub stored: i64,
}

/// Runs every asked path on every asked backend; `each` sees each record as it is made.
pub async fn run(
    opts: &PersistOptions,
    mut each: impl FnMut(&PersistRecord),
) -> anyhow::Result<Vec<PersistRecord>> {
    for p in &opts.paths {
        if !PATHS.contains(&p.as_str()) {
            bail!("unknown path {p:?} (known: {})", PATHS.join(", "));
        }
    }
    if opts.concurrency == 0 || opts.users == 0 || opts.rooms == 0 {
        bail!("--concurrency, --users and --rooms must be at least 1");
    }
    let temp = tempfile::tempdir().context("temporary folder")?;
    let dir = opts
        .sqlite_dir
        .clone()
        .unwrap_or_else(|| temp.path().into());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut records = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if backend == Backend::Sqlite && opts.no_sqlite {
            continue;
        }
        if backend == Backend::Postgres && opts.postgres_url.is_none() {
            continue;
        }
        for path in &opts.paths {
            let fresh = Fresh::new(backend, &dir, opts.postgres_url.as_deref())?;
            let outcome = measure(&fresh.url, path, opts).await;
            drop(fresh);
            let mut record = outcome?;
            record.backend = match backend {
                Backend::Sqlite => "sqlite",
                Backend::Postgres => "postgres",
            }
            .into();
            each(&record);
            records.push(record);
        }
    }
    Ok(records)
}

/// A fresh database, removed on drop.
struct Fresh {
    url: String,
    pg: Option<(String, String)>,
}

impl Fresh {
    fn new(
        backend: Backend,
        dir: &std::path::Path,
        pg_admin: Option<&str>,
    ) -> anyhow::Result<Fresh> {
        let name = format!(
            "confab_persist_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros())
                .unwrap_or(0)
        );
        match backend {
            Backend::Sqlite => Ok(Fresh {
                url: format!("sqlite://{}", dir.join(format!("{name}.sqlite3")).display()),
                pg: None,
            }),
            Backend::Postgres => {
                let admin = pg_admin.context("no PostgreSQL URL")?;
                let mut c = PgConnection::establish(admin)
                    .with_context(|| format!("connecting to {admin}"))?;
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut c)
                    .context("CREATE DATABASE")?;
                Ok(Fresh {
                    url: domain::db::with_database_name(admin, &name),
                    pg: Some((admin.to_owned(), name)),
                })
            }
        }
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        match &self.pg {
            Some((admin, name)) => {
                if let Ok(mut c) = PgConnection::establish(admin) {
                    let _ =
                        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut c);
                }
            }
            None => {
                if let Ok(u) = domain::db::DatabaseUrl::parse(&self.url) {
                    for suffix in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{}{suffix}", u.target));
                    }
                }
            }
        }
    }
}

/// Users and rooms: user i is a member of every room.
fn seed(db: &Db, opts: &PersistOptions) -> anyhow::Result<(Vec<User>, Vec<RoomId>)> {
    let mut c = db.get()?;
    let users = (0..opts.users)
        .map(|i| {
            repo::user::create(
                &mut c,
                &NewUser {
                    username: format!("p{i}"),
                    display_name: String::new(),
                    password: "persist benchmark password".into(),
                    is_staff: false,
                    is_superuser: false,
                },
                4,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut rooms = Vec::with_capacity(opts.rooms);
    for r in 0..opts.rooms {
        let room = repo::room::create(
            &mut c,
            &NewRoom {
                slug: format!("persist-{r}"),
                name: String::new(),
                topic: String::new(),
                kind: RoomKind::Public,
                created_by: None,
            },
        )?;
        for u in &users {
            repo::room::add_member(&mut c, room.id, u.id, RoomRole::Member)?;
        }
        rooms.push(room.id);
    }
    Ok((users, rooms))
}

async fn measure(url: &str, path: &str, opts: &PersistOptions) -> anyhow::Result<PersistRecord> {
    let db = Db::connect(url, opts.pool_size).context("opening the database")?;
    db.migrate().context("migrations")?;
    let (users, rooms) = seed(&db, opts)?;
    let keys =
        MessageKeys::parse(&MessageKeys::generate_line("bench")).map_err(anyhow::Error::msg)?;
    let max_chars = domain::settings::Settings::default().max_message_chars;
    let writer = match path {
        "direct" => None,
        _ => Some(MessageWriter::start(&db, keys.clone(), max_chars)?),
    };
    let users = Arc::new(users);
    let rooms = Arc::new(rooms);
    let next = Arc::new(AtomicUsize::new(0));
    let filler = "x".repeat(opts.body_bytes);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(opts.concurrency);
    for _ in 0..opts.concurrency {
        let (db, keys, writer) = (db.clone(), keys.clone(), writer.clone());
        let (users, rooms, next) = (users.clone(), rooms.clone(), next.clone());
        let (path, filler, total) = (path.to_owned(), filler.clone(), opts.messages);
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(());
                }
                let user = users[i % users.len()].clone();
                let room = rooms[i % rooms.len()];
                let mut body = format!("{i} ");
                body.push_str(&filler);
                body.truncate(filler.len().max(8));
                let new = NewMessage {
                    room_id: room,
                    author_id: Some(UserId(user.id.0)),
                    kind: MessageKind::Text,
                    body,
                    client_id: Some(format!("m{i}")),
                };
                let posted = match (path.as_str(), &writer) {
                    ("direct", _) => {
                        let keys = keys.clone();
                        db.run(move |c| repo::message::post(c, &keys, &new, max_chars))
                            .await?
                    }
                    ("writer", Some(w)) => w.post(new).await?,
                    ("writer-guard", Some(w)) => w.post_guarded(new, may_post(user, room)).await?,
                    ("read-then-writer", Some(w)) => {
                        // The same checks, each read by the guard itself.
                        db.run(move |c| may_post(user, room)(c, &BatchView::default()))
                            .await?;
                        w.post(new).await?
                    }
                    _ => bail!("unknown path {path}"),
                };
                if !posted.created {
                    bail!("message {i} was not created");
                }
            }
        }));
    }
    for t in tasks {
        t.await.context("poster task")??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let batches = writer.as_ref().map(MessageWriter::batches);
    drop(writer);
    let stored: i64 = db
        .run(|c| {
            use diesel::dsl::count_star;
            use diesel::prelude::*;
            use domain::db::schema::messages;
            Ok(messages::table.select(count_star()).first(c)?)
        })
        .await?;
    if stored != opts.messages as i64 {
        bail!("{stored} messages stored, {} posted", opts.messages);
    }
    Ok(PersistRecord {
        kind: "persist".into(),
        backend: String::new(),
        path: path.to_owned(),
        messages: opts.messages,
        concurrency: opts.concurrency,
        seconds,
        messages_per_sec: opts.messages as f64 / seconds,
        batches,
        stored,
    })
}

/// The records as a Markdown table.
pub fn table(records: &[PersistRecord]) -> String {
    let mut out = String::from(
        "| backend | path | messages | concurrency | seconds | messages/s | transactions |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    for r in records {
        out.push_str(&table_row(r));
        out.push('\n');
    }
    out
}

pub fn table_row(r: &PersistRecord) -> String {
    format!(
        "| {} | {} | {} | {} | {:.2} | {:.0} | {} |",
        r.backend,
        r.path,
        r.messages,
        r.concurrency,
        r.seconds,
        r.messages_per_sec,
        r.batches
            .map_or_else(|| r.messages.to_string(), |b| b.to_string())
    )
}
