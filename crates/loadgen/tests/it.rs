//! The loadgen against the bare bound and against a real in-process Confab gateway
//! (SQLite, in-process bus) for a few seconds with a handful of sockets. Figures are
//! reported, never asserted: only zero loss, zero duplicates and the report's shape.

use domain::{
    bus::memory::MemoryBus,
    db::Backend,
    testing::{TestDb, settings},
};
use loadgen::{
    prep::Auth,
    report::{self, Record},
    run::{self, Options},
};
use secrecy::ExposeSecret;
use std::sync::Arc;
use ws_gateway::{Application, Deps, GatewayConfig};

fn small() -> Options {
    Options {
        scenarios: ["fanout", "light", "bigroom", "ramp", "idle", "reconnect"]
            .map(String::from)
            .to_vec(),
        duration: 1.0,
        light_duration: 1.0,
        fanout_rooms: 2,
        fanout_members: 4,
        fanout_senders: 1,
        fanout_rate: 20.0,
        light_deliveries: 80.0,
        bigroom_members: 12,
        bigroom_senders: 2,
        bigroom_rate: 20.0,
        ramp_start: 10.0,
        ramp_factor: 2.0,
        ramp_step_secs: 0.7,
        ramp_max_steps: 2,
        idle_sockets: 10,
        idle_users: 5,
        idle_hold: 0.2,
        reconnect_sockets: 8,
        reconnect_missed: 5,
        ..Options::default()
    }
}

fn check(records: &[Record], name: &str) {
    let scenarios: Vec<&str> = records
        .iter()
        .filter(|r| r.step.is_none())
        .map(|r| r.scenario.as_str())
        .collect();
    assert_eq!(
        scenarios,
        ["fanout", "light", "bigroom", "ramp", "idle", "reconnect"]
    );
    for r in records {
        assert_eq!(r.target, name);
        assert_eq!(r.connect_failed, 0, "{r:?}");
        assert_eq!((r.lost, r.duplicated, r.errors), (0, 0, 0), "{r:?}");
        // Every line is JSON that reads back (floats to within their printing).
        let line = serde_json::to_string(r).expect("json");
        let back: Record = serde_json::from_str(&line).expect("parses");
        assert_eq!(
            (&back.scenario, back.step, back.delivered, back.lost),
            (&r.scenario, r.step, r.delivered, r.lost)
        );
        assert_eq!(back.lat_p99_ms.is_some(), r.lat_p99_ms.is_some());
    }
    for r in records.iter().filter(|r| {
        matches!(r.scenario.as_str(), "fanout" | "light" | "bigroom") || r.step.is_some()
    }) {
        assert!(r.acks > 0 && r.acks == r.sent, "{r:?}");
        assert_eq!(r.delivered, r.expected, "{r:?}");
        assert!(
            r.lat_p99_ms.is_some() && r.deliveries_per_sec.is_some(),
            "{r:?}"
        );
        assert!(r.server_cpu_cores.is_some() && r.loadgen_cpu_cores.is_some());
    }
    let ramp = records
        .iter()
        .find(|r| r.scenario == "ramp" && r.step.is_none())
        .expect("ramp summary");
    assert!(ramp.best_deliveries_per_sec.is_some() && ramp.stop_reason.is_some());
    let idle = records.iter().find(|r| r.scenario == "idle").expect("idle");
    assert_eq!(idle.established, 10);
    assert!(idle.rss_per_conn_bytes.is_some());
    let rc = records
        .iter()
        .find(|r| r.scenario == "reconnect")
        .expect("reconnect");
    assert_eq!(rc.caught_up, Some(8), "{rc:?}");
    assert!(rc.reconnect_secs.is_some());
    print!("{}", report::table(records));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_and_confab_lose_nothing() {
    // The bare bound, in this process.
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let listener = sock.listen(1024).expect("listen");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(loadgen::bare::serve(listener));
    let me = std::process::id();
    let bare = run::target(
        "bare",
        &[format!("ws://127.0.0.1:{port}/ws")],
        None,
        Auth::None,
        &[me],
        2,
    )
    .await
    .expect("bare target");
    let bare_records = run::run(&bare, &small(), |_| {}).await.expect("bare run");
    check(&bare_records, "bare");

    // Confab's gateway over SQLite and the in-process bus, with the limits raised
    // through the settings as the benchmark does.
    let db = TestDb::new(Backend::Sqlite);
    let mut s = settings(&db.url);
    s.ws_frames_per_sec = 10_000.0;
    s.ws_frames_burst = 10_000.0;
    s.ws_sends_per_sec = 10_000.0;
    s.ws_sends_burst = 10_000.0;
    s.ws_user_sends_per_sec = 10_000.0;
    s.ws_user_sends_burst = 10_000.0;
    s.ws_max_sockets_per_user = 1_000_000;
    s.ws_max_sockets_per_address = 1_000_000;
    let keys = s.message_keys().expect("keys");
    let deps = Deps::in_process(db.db.clone(), Arc::new(MemoryBus::new()), keys)
        .with_config(GatewayConfig::from_settings(&s));
    let app = Application::build(s.clone(), deps).await.expect("gateway");
    let gw_port = app.port();
    let stop = app.stop_handle();
    let server = tokio::spawn(app.run_until_stopped());
    let urls: Vec<String> = (0..2)
        .map(|_| format!("ws://127.0.0.1:{gw_port}/ws"))
        .collect();
    let confab = run::target(
        "serve",
        &urls,
        Some("http://127.0.0.1:8000".into()),
        Auth::Db {
            database_url: db.url.clone(),
            secret_key: s.secret_key.expose_secret().to_owned(),
            http_login: None,
        },
        &[me],
        2,
    )
    .await
    .expect("confab target");
    let confab_records = run::run(&confab, &small(), |_| {})
        .await
        .expect("confab run");
    check(&confab_records, "serve");
    stop.stop();
    let _ = server.await;

    let all: Vec<Record> = bare_records.into_iter().chain(confab_records).collect();
    let extras = report::Extras::default();
    let md = report::markdown(&all, &extras, "bare", "serve", "prod", "CI");
    for needle in [
        "| ramp | serve |",
        "| idle | bare |",
        "## Targets (issue 8)",
        "× bound",
    ] {
        assert!(md.contains(needle), "{needle} missing from:\n{md}");
    }
}

/// `confab-loadgen persist` on both backends, every path, a few hundred messages: each
/// path stores exactly what it posted (checked inside), and the writer groups posts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persist_measures_every_path_on_both_backends() {
    let opts = loadgen::persist::PersistOptions {
        messages: 300,
        concurrency: 16,
        users: 5,
        rooms: 3,
        body_bytes: 100,
        pool_size: 4,
        paths: loadgen::persist::PATHS.map(String::from).to_vec(),
        postgres_url: Some(domain::testing::postgres_admin_url()),
        no_sqlite: false,
        sqlite_dir: None,
    };
    let mut lines = Vec::new();
    let records = loadgen::persist::run(&opts, |r| {
        lines.push(serde_json::to_string(r).expect("json"))
    })
    .await
    .expect("persist run");
    let shape: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r.backend.as_str(), r.path.as_str()))
        .collect();
    let mut expected = Vec::new();
    for backend in ["sqlite", "postgres"] {
        for path in loadgen::persist::PATHS {
            expected.push((backend, path));
        }
    }
    assert_eq!(shape, expected);
    for r in &records {
        assert_eq!(r.stored, 300, "{r:?}");
        assert!(r.messages_per_sec > 0.0, "{r:?}");
        match r.batches {
            None => assert_eq!(r.path, "direct"),
            Some(b) => assert!((1..=300).contains(&b), "{r:?}"),
        }
    }
    assert_eq!(lines.len(), records.len());
    assert!(loadgen::persist::table(&records).lines().count() == records.len() + 2);
    // The report reads these very lines back and judges both backends' targets.
    let extras = report::Extras {
        persist: report::parse_persist_lines(&lines.join("\n")).expect("persist lines"),
        nofile_hard: None,
    };
    assert_eq!(extras.persist.len(), records.len());
    let rows = report::targets_table(&[], &extras, "bare", "serve", "prod");
    for backend in ["sqlite", "postgres"] {
        let row = rows
            .iter()
            .find(|r| {
                r.0.starts_with(&format!("message persistence alone {backend}"))
            })
            .expect("a persistence row");
        assert_ne!(row.2, "not measured", "{row:?}");
    }
}
