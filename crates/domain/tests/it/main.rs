//! Domain tests against real databases. Every test in `both!` runs twice: on a fresh
//! SQLite file and on a fresh PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic: that is how they fail

mod concurrency;
mod export;
mod messages;
mod props;
mod rooms;
mod sessions;
mod users;
mod writer;

use domain::{crypto::MessageKeys, testing::TestDb};

/// Declares each test once and runs it on both backends.
#[macro_export]
macro_rules! both {
    ($($(#[$attr:meta])* fn $name:ident($db:ident: &TestDb) $body:block)+) => {
        $(
            $(#[$attr])*
            fn $name($db: &TestDb) $body
        )+
        mod sqlite {
            $(#[test] fn $name() { super::$name(&domain::testing::TestDb::new(domain::db::Backend::Sqlite)) })+
        }
        mod postgres {
            $(#[test] fn $name() { super::$name(&domain::testing::TestDb::new(domain::db::Backend::Postgres)) })+
        }
    };
}

pub fn keys() -> MessageKeys {
    MessageKeys::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").expect("test key")
}

pub fn user(db: &TestDb, name: &str) -> domain::model::User {
    let mut c = db.db.get().expect("connection");
    domain::repo::user::create(
        &mut c,
        &domain::repo::user::NewUser {
            username: name.into(),
            display_name: String::new(),
            password: "correct horse battery".into(),
            is_staff: false,
            is_superuser: false,
        },
        4,
    )
    .expect("create user")
}

pub fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}
