//! The `confab` command as an operator runs it: a real process, real databases.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic: that is how they fail

mod browser;

use domain::{db::Backend, testing::TestDb};
use std::{
    io::Write,
    process::{Command, Output, Stdio},
};

fn confab(db_url: &str, dir: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CONFAB_DATABASE_URL", db_url)
        .env("CONFAB_BCRYPT_COST", "4")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("confab runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn operator_flow(backend: Backend) {
    // A fresh, empty database: migrate must create the schema itself.
    let db = TestDb::new(backend);
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("fresh.sqlite3").display()),
        Backend::Postgres => db.url.clone(),
    };
    let run = |args: &[&str], stdin: &str| confab(&url, dir.path(), args, stdin);

    let o = run(&["migrate"], "");
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("#general"), "{}", text(&o));
    let o = run(&["migrate"], "");
    assert!(
        o.status.success() && text(&o).contains("Applied 0"),
        "migrate is idempotent: {:?} {}",
        o.status,
        text(&o)
    );

    let o = run(
        &["createsuperuser", "--username", "admin", "--password-stdin"],
        "a good password\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run(
        &["createuser", "--username", "Admin", "--password-stdin"],
        "another password\n",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("taken"), "{}", text(&o));
    let o = run(
        &[
            "createuser",
            "--username",
            "bob",
            "--staff",
            "--password-stdin",
        ],
        "\n",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("password refused") && text(&o).contains("too short"),
        "{}",
        text(&o)
    );
    // The password policy, with every broken rule named.
    let o = run(
        &["createuser", "--username", "carolina", "--password-stdin"],
        "Carolina2024\n",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("too similar to the username"),
        "{}",
        text(&o)
    );
    let o = run(
        &["createsuperuser", "--username", "root", "--password-stdin"],
        "password123\n",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("too common"), "{}", text(&o));
    let o = run(
        &[
            "createuser",
            "--username",
            &"x".repeat(40),
            "--password-stdin",
        ],
        "a good password\n",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("username"), "{}", text(&o));
    let o = run(
        &[
            "createuser",
            "--username",
            "bob",
            "--staff",
            "--password-stdin",
        ],
        "bobs password\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["createuser", "--username", "carol"], "");
    assert_eq!(
        o.status.code(),
        Some(1),
        "no terminal and no --password-stdin: {}",
        text(&o)
    );

    let o = run(
        &["createroom", "team", "--private", "--name", "The Team"],
        "",
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["createroom", "team"], "");
    assert_eq!(o.status.code(), Some(1));

    let o = run(
        &["changepassword", "bob", "--password-stdin"],
        "73920518466\n",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("entirely numeric"), "{}", text(&o));
    let o = run(
        &["changepassword", "bob", "--password-stdin"],
        "a new password\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run(
        &["changepassword", "nobody", "--password-stdin"],
        "a new password\n",
    );
    assert_eq!(o.status.code(), Some(1));

    // What the commands did is in the database.
    let pool = domain::db::Db::connect(&url, 1).unwrap();
    let mut c = pool.get().unwrap();
    let admin = domain::repo::user::find_by_username(&mut c, "admin")
        .unwrap()
        .unwrap();
    assert!(admin.is_superuser && admin.is_staff);
    let bob = domain::repo::user::find_by_username(&mut c, "bob")
        .unwrap()
        .unwrap();
    assert!(bob.is_staff && !bob.is_superuser);
    let general = domain::repo::room::find_by_slug(&mut c, "general")
        .unwrap()
        .unwrap();
    assert!(
        domain::repo::room::membership(&mut c, general.id, bob.id)
            .unwrap()
            .is_some()
    );
    let team = domain::repo::room::find_by_slug(&mut c, "team")
        .unwrap()
        .unwrap();
    assert_eq!(
        (team.name.as_str(), team.kind),
        ("The Team", domain::model::RoomKind::Private)
    );
    let audit = domain::repo::audit::list(&mut c, None, 50).unwrap();
    assert!(audit.iter().any(|e| e.action == "users.password"));
}

#[test]
fn operator_flow_on_sqlite() {
    operator_flow(Backend::Sqlite);
}

#[test]
fn operator_flow_on_postgres() {
    operator_flow(Backend::Postgres);
}

#[test]
fn configuration_errors_exit_3_and_name_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("x.sqlite3").display());
    let o = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(["migrate"])
        .current_dir(dir.path())
        .env_clear()
        .env("CONFAB_DATABASE_URL", &url)
        .env("CONFAB_BCRYPT_COST", "many")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o).contains("CONFAB_BCRYPT_COST"), "{}", text(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(["migrate"])
        .current_dir(dir.path())
        .env_clear()
        .env("CONFAB_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("database unavailable"), "{}", text(&o));
}

#[test]
fn rotate_keys_moves_every_message_to_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.sqlite3").display());
    let old = domain::crypto::MessageKeys::generate_line("old");
    let new = domain::crypto::MessageKeys::generate_line("new");
    let db = domain::db::Db::connect(&url, 1).unwrap();
    db.migrate().unwrap();
    let mut c = db.get().unwrap();
    let general = domain::repo::room::ensure_general(&mut c).unwrap();
    let old_keys = domain::crypto::MessageKeys::parse(&old).unwrap();
    for i in 0..1200 {
        domain::repo::message::post(
            &mut c,
            &old_keys,
            &domain::repo::message::NewMessage {
                room_id: general.id,
                author_id: None,
                kind: domain::model::MessageKind::System,
                body: format!("m{i}"),
                client_id: None,
            },
            100,
        )
        .unwrap();
    }
    let o = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(["rotate-keys", "--batch", "500"])
        .current_dir(dir.path())
        .env_clear()
        .env("CONFAB_DATABASE_URL", &url)
        .env("CONFAB_MESSAGE_KEYS", format!("{new},{old}"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("key new: 1200"), "{}", text(&o));
    let new_only = domain::crypto::MessageKeys::parse(&new).unwrap();
    let page = domain::repo::message::history(
        &mut c,
        &new_only,
        general.id,
        domain::repo::Page::Latest,
        500,
    )
    .unwrap();
    assert!(page.messages.iter().all(|m| m.body.text().is_some()));
}

fn with_keys(url: &str, dir: &std::path::Path, keys: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("CONFAB_DATABASE_URL", url)
        .env("CONFAB_MESSAGE_KEYS", keys)
        .output()
        .unwrap()
}

fn export_import(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let src_db = TestDb::new(backend);
    let dst_db = TestDb::new(backend);
    let src_keys = domain::crypto::MessageKeys::generate_line("src");
    let dst_keys = domain::crypto::MessageKeys::generate_line("dst");
    let keys = domain::crypto::MessageKeys::parse(&src_keys).unwrap();
    let mut c = src_db.db.get().unwrap();
    let ana = domain::repo::user::create(
        &mut c,
        &domain::repo::user::NewUser {
            username: "ana".into(),
            display_name: "Ana Lima".into(),
            password: "a good password".into(),
            is_staff: false,
            is_superuser: false,
        },
        4,
    )
    .unwrap();
    let room = domain::repo::room::create(
        &mut c,
        &domain::repo::room::NewRoom {
            slug: "team".into(),
            name: "The Team".into(),
            topic: String::new(),
            kind: domain::model::RoomKind::Private,
            created_by: Some(ana.id),
        },
    )
    .unwrap();
    for i in 0..250 {
        domain::repo::message::post(
            &mut c,
            &keys,
            &domain::repo::message::NewMessage {
                room_id: room.id,
                author_id: Some(ana.id),
                kind: domain::model::MessageKind::Text,
                body: format!("message {i} ✓"),
                client_id: None,
            },
            4000,
        )
        .unwrap();
    }
    drop(c);
    let file = dir.path().join("team.json");
    let file_arg = file.to_str().unwrap();

    let o = with_keys(
        &src_db.url,
        dir.path(),
        &src_keys,
        &["export-room", "team", "--output", file_arg],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = with_keys(&src_db.url, dir.path(), &src_keys, &["export-room", "team"]);
    assert!(o.status.success(), "{}", text(&o));
    let from_stdout = domain::export::read_json(&o.stdout[..]).unwrap();
    let from_file = domain::export::read_json(std::fs::File::open(&file).unwrap()).unwrap();
    assert_eq!(from_stdout.messages, from_file.messages);
    let o = with_keys(
        &src_db.url,
        dir.path(),
        &src_keys,
        &["export-room", "nowhere"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    let o = with_keys(
        &dst_db.url,
        dir.path(),
        &dst_keys,
        &["import-room", file_arg],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("250 message(s) added"), "{}", text(&o));
    let o = with_keys(
        &dst_db.url,
        dir.path(),
        &dst_keys,
        &["import-room", file_arg],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("0 message(s) added, 250 already present"),
        "{}",
        text(&o)
    );
    std::fs::write(dir.path().join("bad.json"), "{\"format\": \"nope\"}").unwrap();
    let o = with_keys(
        &dst_db.url,
        dir.path(),
        &dst_keys,
        &["import-room", dir.path().join("bad.json").to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    let dk = domain::crypto::MessageKeys::parse(&dst_keys).unwrap();
    let mut c = dst_db.db.get().unwrap();
    let back = domain::export::export_room(&mut c, &dk, "team").unwrap();
    assert_eq!(
        back.messages, from_file.messages,
        "bodies, ids, order and times survive"
    );
    let ana = domain::repo::user::find_by_username(&mut c, "ana")
        .unwrap()
        .unwrap();
    assert!(!ana.is_active && ana.display_name == "Ana Lima");
}

#[test]
fn export_and_import_room_on_sqlite() {
    export_import(Backend::Sqlite);
}

#[test]
fn export_and_import_room_on_postgres() {
    export_import(Backend::Postgres);
}
