//! Probes and metrics: `/healthz` (the process answers), `/readyz` (the database and the
//! bus answer, else 503), `/metrics` (Prometheus text).

use crate::state::AppState;
use actix_web::{HttpResponse, get, web};
use serde_json::json;
use std::time::Duration;

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz).service(metrics);
}

#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok")
}

#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db = tokio::time::timeout(PROBE_TIMEOUT, state.db.ping()).await;
    let bus = tokio::time::timeout(PROBE_TIMEOUT, state.bus.ping()).await;
    let db_ok = matches!(db, Ok(Ok(())));
    let bus_ok = matches!(bus, Ok(Ok(())));
    if !db_ok {
        tracing::warn!(?db, "readiness: the database does not answer");
    }
    if !bus_ok {
        tracing::warn!(?bus, "readiness: the bus does not answer");
    }
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let body = json!({ "database": word(db_ok), "bus": word(bus_ok) });
    if db_ok && bus_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

#[get("/metrics")]
async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(domain::metrics::handle().render())
}
