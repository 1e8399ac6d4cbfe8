//! Health and stats: `GET /healthz` (the process is up), `GET /readyz`
//! (Redis answers, and the Docker engine too in a process that runs jobs),
//! `GET /v1/stats` (queue counts, the registry's live view, live workers).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::actors::supervisor::SupervisorMsg;
use crate::job::now_ms;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "`{\"status\": \"ok\"}`")))]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready: Redis answers (and the Docker engine, in a process that runs
/// jobs); 503 names the one that does not.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "`{status, redis: {ok}, docker: {ok, version}}`"),
        (status = 503, description = "A dependency does not answer"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let redis = match state.queue.ping().await {
        Ok(()) => json!({ "ok": true }),
        Err(e) => json!({ "ok": false, "error": e.to_string() }),
    };
    let docker = match &state.local.engine {
        None => json!({ "ok": true, "note": "this process runs no jobs" }),
        Some(engine) => match tokio::time::timeout(CHECK_TIMEOUT, engine.probe()).await {
            Ok(Ok(info)) => json!({ "ok": true, "version": info.version }),
            Ok(Err(e)) => json!({ "ok": false, "error": e.to_string() }),
            Err(_) => json!({ "ok": false, "error": "the engine did not answer in time" }),
        },
    };
    let ready = redis["ok"] == true && docker["ok"] == true;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "redis": redis,
        "docker": docker,
    });
    (status, Json(body)).into_response()
}

/// Live workers, from their heartbeats (dead ones are dropped).
pub async fn workers(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let workers = state.queue.live_workers(now_ms()).await?;
    Ok(Json(json!({ "workers": workers })))
}

/// Queue counts per state, live workers, this process's jobs in flight and
/// recent results, actor restarts.
pub async fn stats(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let counts = state.queue.counts().await?;
    let workers = state.queue.live_workers(now_ms()).await?;
    let registry = state.registry.snapshot().await;
    let restarts = match &state.local.supervisor {
        Some(supervisor) => match supervisor
            .call(SupervisorMsg::Restarts, Some(CHECK_TIMEOUT))
            .await
        {
            Ok(ractor::rpc::CallResult::Success(restarts)) => Some(restarts),
            _ => None,
        },
        None => None,
    };
    Ok(Json(json!({
        "queue": counts,
        "workers": workers,
        "registry": registry,
        "restarts": restarts,
        "pool": state.local.engine.as_ref().and_then(|e| e.pool()),
    })))
}
