//! Results: one [`Record`] per scenario (and per ramp step) as a JSON line, a readable
//! table, and the Markdown report with Confab / bound ratios and the issue's targets.

use crate::persist::PersistRecord;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// One measured result. Absent figures are left out of the JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Record {
    pub target: String,
    pub scenario: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    pub sockets: u64,
    pub rooms: u64,
    pub senders: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_per_sender: Option<f64>,
    pub duration_s: f64,
    pub established: u64,
    pub connect_failed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_max_ms: Option<f64>,
    pub sent: u64,
    pub acks: u64,
    pub errors: u64,
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    /// Sockets the server closed during the scenario.
    pub closed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lat_p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lat_p90_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lat_p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lat_p999_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lat_max_ms: Option<f64>,
    /// With several gateways: latency to the sockets on the sender's own gateway…
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lat_same_gw_p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lat_same_gw_p99_ms: Option<f64>,
    /// …and to those on another gateway (the message crossed the bus).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lat_other_gw_p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lat_other_gw_p99_ms: Option<f64>,
    /// Average cores the servers used (sum over the pids given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_cores: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_rss_bytes: Option<u64>,
    /// Average cores the loadgen itself used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loadgen_cpu_cores: Option<f64>,
    /// `idle`: growth of server RSS divided by the sockets opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_per_conn_bytes: Option<f64>,
    /// `idle`: growth of server RSS over the second half of the sockets, per socket: what
    /// one more idle socket costs (the first half also pays the process's first heap
    /// growth).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_marginal_per_conn_bytes: Option<f64>,
    /// `reconnect`: from dropping every socket to all back and caught up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnect_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caught_up: Option<u64>,
    /// `ramp`: the highest deliveries/s of a step with p99 ≤ 250 ms and no loss.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_deliveries_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
}

impl Record {
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.errors == 0 && self.closed == 0
    }
}

/// What the report knows besides the socket scenarios.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// The persistence benchmark of the same run.
    pub persist: Vec<PersistRecord>,
    /// The hard limit on open files per process where the run took place: one socket is
    /// one descriptor, so it caps the sockets one gateway can hold.
    pub nofile_hard: Option<u64>,
}

/// Persistence lines from `confab-loadgen persist` JSON lines (other lines are skipped).
pub fn parse_persist_lines(text: &str) -> anyhow::Result<Vec<PersistRecord>> {
    text.lines()
        .filter(|l| l.contains(r#""kind":"persist""#))
        .map(|l| serde_json::from_str(l).map_err(anyhow::Error::from))
        .collect()
}

/// The hard `Max open files` of this process, from `/proc/self/limits`.
pub fn nofile_hard_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(4)?.parse().ok()
}

fn f(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.digits$}"))
}

fn mib(v: Option<u64>) -> String {
    v.map_or_else(|| "–".into(), |b| format!("{:.1}", b as f64 / 1048576.0))
}

/// The readable table printed after a run.
pub fn table(records: &[Record]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:<10} {:>4} {:>6} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>6} {:>5} {:>6} {:>7} {:>6}  extra",
        "target",
        "scenario",
        "step",
        "socks",
        "msg/s/snd",
        "deliv/s",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "max ms",
        "lost",
        "dup",
        "srvCPU",
        "srvMiB",
        "lgCPU"
    );
    for r in records {
        let extra = match r.scenario.as_str() {
            "idle" => format!(
                "{} B/socket marginal, {} B/socket overall, connect p99 {} ms",
                f(r.rss_marginal_per_conn_bytes, 0),
                f(r.rss_per_conn_bytes, 0),
                f(r.connect_p99_ms, 1)
            ),
            "reconnect" => format!(
                "{} s, {} caught up",
                f(r.reconnect_secs, 2),
                r.caught_up.unwrap_or(0)
            ),
            "ramp" if r.step.is_none() => format!(
                "best {} deliv/s ({})",
                f(r.best_deliveries_per_sec, 0),
                r.stop_reason.clone().unwrap_or_default()
            ),
            _ if r.errors + r.closed > 0 => format!("{} errors, {} closed", r.errors, r.closed),
            _ if r.lat_other_gw_p50_ms.is_some() => gateway_split(r),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<8} {:<10} {:>4} {:>6} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>6} {:>5} {:>6} {:>7} {:>6}  {extra}",
            r.target,
            r.scenario,
            r.step.map_or_else(String::new, |s| s.to_string()),
            r.established,
            f(r.rate_per_sender, 1),
            f(r.deliveries_per_sec, 0),
            f(r.lat_p50_ms, 2),
            f(r.lat_p99_ms, 2),
            f(r.lat_p999_ms, 2),
            f(r.lat_max_ms, 1),
            r.lost,
            r.duplicated,
            f(r.server_cpu_cores, 2),
            mib(r.server_rss_bytes),
            f(r.loadgen_cpu_cores, 2),
        );
    }
    out
}

/// p50 / p99 on the sender's gateway and on the other one.
fn gateway_split(r: &Record) -> String {
    format!(
        "sender's gateway p50/p99 {}/{} ms, other gateway {}/{} ms",
        f(r.lat_same_gw_p50_ms, 2),
        f(r.lat_same_gw_p99_ms, 2),
        f(r.lat_other_gw_p50_ms, 2),
        f(r.lat_other_gw_p99_ms, 2)
    )
}

pub fn parse_lines(text: &str) -> anyhow::Result<Vec<Record>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

fn find<'a>(records: &'a [Record], target: &str, scenario: &str) -> Option<&'a Record> {
    records
        .iter()
        .rev()
        .find(|r| r.target == target && r.scenario == scenario && r.step.is_none())
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// The Markdown report: every result, ratios to `bound`, and the issue's targets.
/// `serve` and `prod` name the two Confab topologies.
pub fn markdown(
    records: &[Record],
    extras: &Extras,
    bound: &str,
    serve: &str,
    prod: &str,
    machine: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Confab benchmark\n\n{machine}\n");
    let _ = writeln!(
        out,
        "Bound = `{bound}` (bare tokio-tungstenite broadcast server, no auth, no persistence). \
         Ratios are Confab / bound from the same run.\n"
    );
    let mut targets: Vec<&str> = Vec::new();
    for r in records {
        if !targets.contains(&r.target.as_str()) {
            targets.push(&r.target);
        }
    }
    let mut scenarios: Vec<&str> = Vec::new();
    for r in records {
        if r.step.is_none() && !scenarios.contains(&r.scenario.as_str()) {
            scenarios.push(&r.scenario);
        }
    }
    let _ = writeln!(out, "## Results\n");
    let _ = writeln!(
        out,
        "| scenario | target | sockets | deliveries/s | × bound | p50 ms | p99 ms | p99 × bound | p99.9 ms | max ms | lost | dup | server CPU | CPU × bound | server RSS MiB | loadgen CPU | other |"
    );
    let _ = writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for s in &scenarios {
        let b = find(records, bound, s);
        for t in &targets {
            let Some(r) = find(records, t, s) else {
                continue;
            };
            let rate = if *s == "ramp" {
                r.best_deliveries_per_sec
            } else {
                r.deliveries_per_sec
            };
            let brate = b.and_then(|b| {
                if *s == "ramp" {
                    b.best_deliveries_per_sec
                } else {
                    b.deliveries_per_sec
                }
            });
            let other = match *s {
                "idle" => format!(
                    "{} B/socket marginal ({} × bound), {} B/socket overall; connect p99 {} ms",
                    f(r.rss_marginal_per_conn_bytes, 0),
                    f(
                        ratio(
                            r.rss_marginal_per_conn_bytes,
                            b.and_then(|b| b.rss_marginal_per_conn_bytes)
                        ),
                        2
                    ),
                    f(r.rss_per_conn_bytes, 0),
                    f(r.connect_p99_ms, 1)
                ),
                "reconnect" => format!(
                    "{} s ({} × bound), {}/{} caught up",
                    f(r.reconnect_secs, 2),
                    f(ratio(r.reconnect_secs, b.and_then(|b| b.reconnect_secs)), 2),
                    r.caught_up.unwrap_or(0),
                    r.sockets
                ),
                "ramp" => r.stop_reason.clone().unwrap_or_default(),
                _ if r.lat_other_gw_p50_ms.is_some() => gateway_split(r),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "| {s} | {t} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {other} |",
                r.established,
                f(rate, 0),
                f(ratio(rate, brate), 3),
                f(r.lat_p50_ms, 2),
                f(r.lat_p99_ms, 2),
                f(ratio(r.lat_p99_ms, b.and_then(|b| b.lat_p99_ms)), 2),
                f(r.lat_p999_ms, 2),
                f(r.lat_max_ms, 1),
                r.lost,
                r.duplicated,
                f(r.server_cpu_cores, 2),
                f(
                    ratio(r.server_cpu_cores, b.and_then(|b| b.server_cpu_cores)),
                    2
                ),
                mib(r.server_rss_bytes),
                f(r.loadgen_cpu_cores, 2),
            );
        }
    }
    let steps: Vec<&Record> = records
        .iter()
        .filter(|r| r.scenario == "ramp" && r.step.is_some())
        .collect();
    if !steps.is_empty() {
        let _ = writeln!(out, "\n## Ramp steps\n");
        let _ = writeln!(
            out,
            "| target | step | msg/s per sender | deliveries/s | p50 ms | p99 ms | max ms | lost | dup | errors | closed | server CPU | loadgen CPU |"
        );
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in steps {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.target,
                r.step.unwrap_or(0),
                f(r.rate_per_sender, 1),
                f(r.deliveries_per_sec, 0),
                f(r.lat_p50_ms, 2),
                f(r.lat_p99_ms, 2),
                f(r.lat_max_ms, 1),
                r.lost,
                r.duplicated,
                r.errors,
                r.closed,
                f(r.server_cpu_cores, 2),
                f(r.loadgen_cpu_cores, 2),
            );
        }
    }
    let _ = writeln!(out, "\n## Targets (issue 8)\n");
    let _ = writeln!(out, "| target | measured | verdict |");
    let _ = writeln!(out, "|---|---|---|");
    for (name, measured, verdict) in targets_table(records, extras, bound, serve, prod) {
        let _ = writeln!(out, "| {name} | {measured} | {verdict} |");
    }
    out
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

/// The issue's targets, checked against this run.
pub fn targets_table(
    records: &[Record],
    extras: &Extras,
    bound: &str,
    serve: &str,
    prod: &str,
) -> Vec<(String, String, &'static str)> {
    let mut rows = Vec::new();
    let bramp = find(records, bound, "ramp").and_then(|r| r.best_deliveries_per_sec);
    for (t, need) in [(serve, 0.7), (prod, 0.5)] {
        let r = find(records, t, "ramp");
        let x = ratio(r.and_then(|r| r.best_deliveries_per_sec), bramp);
        rows.push((
            format!("`ramp` {t}: ≥ {need} × bound, zero loss"),
            format!(
                "{} × ({} vs {} deliveries/s)",
                f(x, 3),
                f(r.and_then(|r| r.best_deliveries_per_sec), 0),
                f(bramp, 0)
            ),
            verdict(x.map(|x| x >= need)),
        ));
    }
    for t in [serve, prod] {
        let b = find(records, bound, "light");
        let r = find(records, t, "light");
        let p = ratio(r.and_then(|r| r.lat_p99_ms), b.and_then(|b| b.lat_p99_ms));
        let c = ratio(
            r.and_then(|r| r.server_cpu_cores),
            b.and_then(|b| b.server_cpu_cores),
        );
        rows.push((
            format!("light load (1,000 deliveries/s) {t}: p99 ≤ 2 × bound, CPU ≤ 3 × bound"),
            format!("p99 {} ×, CPU {} ×", f(p, 2), f(c, 2)),
            verdict(
                p.zip(c)
                    .map(|(p, c)| p <= 2.0 && c <= 3.0 && r.is_some_and(Record::clean)),
            ),
        ));
        let b = find(records, bound, "bigroom");
        let r = find(records, t, "bigroom");
        let p = ratio(r.and_then(|r| r.lat_p99_ms), b.and_then(|b| b.lat_p99_ms));
        rows.push((
            format!("`bigroom` {t}: p99 ≤ 2 × bound, zero loss"),
            format!(
                "p99 {} × ({} vs {} ms), {} sockets, lost {}",
                f(p, 2),
                f(r.and_then(|r| r.lat_p99_ms), 2),
                f(b.and_then(|b| b.lat_p99_ms), 2),
                r.map_or(0, |r| r.established),
                r.map_or(0, |r| r.lost)
            ),
            verdict(p.map(|p| p <= 2.0 && r.is_some_and(Record::clean))),
        ));
        let r = find(records, t, "idle");
        let per = r.and_then(|r| r.rss_marginal_per_conn_bytes);
        rows.push((
            format!("`idle` {t}: ≤ 12 KiB per idle authenticated socket"),
            format!(
                "{} B/socket marginal ({} B overall) over {} sockets",
                f(per, 0),
                f(r.and_then(|r| r.rss_per_conn_bytes), 0),
                r.map_or(0, |r| r.established)
            ),
            verdict(per.map(|p| p <= 12.0 * 1024.0)),
        ));
        let r = find(records, t, "reconnect");
        let secs = r.and_then(|r| r.reconnect_secs);
        let n = r.map_or(0, |r| r.sockets);
        rows.push((
            format!("`reconnect` {t}: 5,000 sockets back and caught up in ≤ 10 s, zero loss"),
            format!(
                "{} s for {n} sockets, lost {}",
                f(secs, 2),
                r.map_or(0, |r| r.lost)
            ),
            if n < 5000 && secs.is_some_and(|s| s > 10.0) {
                "**missed** (already over 10 s below 5,000 sockets)"
            } else if n < 5000 {
                "not measured at 5,000 (run with --long)"
            } else {
                verdict(
                    secs.map(|s| s <= 10.0 && r.is_some_and(|r| r.lost == 0 && r.duplicated == 0)),
                )
            },
        ));
    }
    rows.push(fifty_thousand(records, extras, serve));
    for (backend, need) in [("sqlite", 20_000.0), ("postgres", 10_000.0)] {
        rows.push(persistence(extras, backend, need));
    }
    rows
}

/// 50,000 sockets held by one process: `serve`'s idle run (one process; `prod` spreads
/// its sockets over two gateways).
fn fifty_thousand(
    records: &[Record],
    extras: &Extras,
    serve: &str,
) -> (String, String, &'static str) {
    const NEED: u64 = 50_000;
    let name = "50,000 concurrent sockets on one gateway".to_owned();
    let idle = find(records, serve, "idle");
    let held = idle.map_or(0, |r| r.established);
    let limit = extras.nofile_hard.map_or_else(String::new, |n| {
        format!("; open-file limit here {n} per process")
    });
    let measured = format!(
        "{held} idle sockets held by `{serve}` (one process), {} B/socket marginal{limit}",
        f(idle.and_then(|r| r.rss_marginal_per_conn_bytes), 0)
    );
    let verdict = match idle {
        Some(r) if held >= NEED => verdict(Some(
            r.clean()
                && r.rss_marginal_per_conn_bytes
                    .is_some_and(|b| b <= 12.0 * 1024.0),
        )),
        // Each socket is a descriptor in the gateway and another in the loadgen.
        _ if extras.nofile_hard.is_some_and(|n| n < NEED) => "not measurable here",
        _ => "not measured (run with --long)",
    };
    (name, measured, verdict)
}

/// The persistence benchmark's verdict for one backend: the `writer-guard` path (the
/// group-commit writer with `send`'s checks, what a `send` costs), `writer` beside it.
fn persistence(extras: &Extras, backend: &str, need: f64) -> (String, String, &'static str) {
    let rate = |path: &str| {
        extras
            .persist
            .iter()
            .find(|l| l.backend == backend && l.path == path)
    };
    let name = format!("message persistence alone {backend}: ≥ {need:.0} messages/s");
    let (guard, writer) = (rate("writer-guard"), rate("writer"));
    let measured = format!(
        "{} /s with `send`'s checks (`writer-guard`), {} /s `writer`",
        f(guard.map(|l| l.messages_per_sec), 0),
        f(writer.map(|l| l.messages_per_sec), 0)
    );
    let ok = guard.map(|l| l.messages_per_sec >= need && l.stored == l.messages as i64);
    (name, measured, verdict(ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_round_trip_and_ratios_are_computed() {
        let bare = Record {
            target: "bare".into(),
            scenario: "ramp".into(),
            best_deliveries_per_sec: Some(1000.0),
            ..Record::default()
        };
        let serve = Record {
            target: "serve".into(),
            best_deliveries_per_sec: Some(800.0),
            ..bare.clone()
        };
        let text = format!(
            "{}\n{}\n",
            serde_json::to_string(&bare).expect("json"),
            serde_json::to_string(&serve).expect("json")
        );
        let back = parse_lines(&text).expect("parses");
        assert_eq!(back, vec![bare, serve], "exact: these floats print exactly");
        let md = markdown(
            &back,
            &Extras::default(),
            "bare",
            "serve",
            "prod",
            "test machine",
        );
        assert!(md.contains("| 0.800 |"), "{md}");
        assert!(
            md.contains("`ramp` serve: ≥ 0.7 × bound, zero loss | 0.800 ×"),
            "{md}"
        );
    }

    #[test]
    fn the_gateway_split_is_shown_only_where_it_was_measured() {
        let serve = Record {
            target: "serve".into(),
            scenario: "light".into(),
            lat_p99_ms: Some(2.0),
            ..Record::default()
        };
        let prod = Record {
            target: "prod".into(),
            lat_same_gw_p50_ms: Some(0.8),
            lat_same_gw_p99_ms: Some(1.5),
            lat_other_gw_p50_ms: Some(1.25),
            lat_other_gw_p99_ms: Some(2.5),
            ..serve.clone()
        };
        let split = "sender's gateway p50/p99 0.80/1.50 ms, other gateway 1.25/2.50 ms";
        let md = markdown(
            &[serve.clone(), prod.clone()],
            &Extras::default(),
            "bare",
            "serve",
            "prod",
            "m",
        );
        assert_eq!(md.matches(split).count(), 1, "{md}");
        assert!(
            md.lines()
                .any(|l| l.starts_with("| light | prod |") && l.contains(split))
        );
        let text = table(&[serve, prod]);
        let line = |t: &str| text.lines().find(|l| l.starts_with(t)).unwrap_or_default();
        assert!(line("prod").ends_with(split), "{text}");
        assert!(!line("serve").contains("gateway"), "{text}");
    }

    #[test]
    fn persistence_and_socket_count_targets_are_judged_from_the_run() {
        let persist = parse_persist_lines(concat!(
            r#"{"kind":"persist","backend":"sqlite","path":"writer","messages":1000,"concurrency":64,"seconds":0.03,"messages_per_sec":33000.0,"batches":4,"stored":1000}"#,
            "\n| sqlite | writer | … |\n",
            r#"{"kind":"persist","backend":"sqlite","path":"writer-guard","messages":1000,"concurrency":64,"seconds":0.04,"messages_per_sec":25000.0,"batches":4,"stored":1000}"#,
            "\n",
            r#"{"kind":"persist","backend":"postgres","path":"writer-guard","messages":1000,"concurrency":64,"seconds":0.1,"messages_per_sec":9000.0,"batches":4,"stored":1000}"#,
        ))
        .expect("parses");
        assert_eq!(persist.len(), 3);
        let idle = |established| Record {
            target: "serve".into(),
            scenario: "idle".into(),
            sockets: established,
            established,
            rss_marginal_per_conn_bytes: Some(9500.0),
            ..Record::default()
        };
        let extras = Extras {
            persist,
            nofile_hard: Some(20_000),
        };
        let rows = targets_table(&[idle(18_000)], &extras, "bare", "serve", "prod");
        let row = |name: &str| {
            rows.iter()
                .find(|r| r.0.starts_with(name))
                .unwrap_or_else(|| panic!("no row {name}: {rows:?}"))
                .clone()
        };
        let sqlite = row("message persistence alone sqlite");
        assert_eq!(sqlite.2, "met", "{sqlite:?}");
        assert!(sqlite.1.contains("25000 /s with"), "{sqlite:?}");
        assert_eq!(row("message persistence alone postgres").2, "**missed**");
        let fifty = row("50,000");
        assert_eq!(fifty.2, "not measurable here", "{fifty:?}");
        assert!(fifty.1.contains("18000 idle sockets"), "{fifty:?}");
        assert!(fifty.1.contains("open-file limit here 20000"), "{fifty:?}");

        let roomy = Extras {
            nofile_hard: Some(1_048_576),
            ..Extras::default()
        };
        let rows = targets_table(&[idle(50_000)], &roomy, "bare", "serve", "prod");
        let fifty = rows
            .iter()
            .find(|r| r.0.starts_with("50,000"))
            .expect("row");
        assert_eq!(fifty.2, "met", "{fifty:?}");
        let rows = targets_table(&[idle(18_000)], &roomy, "bare", "serve", "prod");
        let fifty = rows
            .iter()
            .find(|r| r.0.starts_with("50,000"))
            .expect("row");
        assert_eq!(fifty.2, "not measured (run with --long)");
        let none = rows.iter().find(|r| r.0.contains("postgres")).expect("row");
        assert_eq!(none.2, "not measured", "no persistence lines: {none:?}");
    }
}
