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
    let docker = match &state.local.sandbox {
        None => json!({ "ok": true, "note": "this process runs no jobs" }),
        Some(sandbox) => match tokio::time::timeout(CHECK_TIMEOUT, sandbox.engine_info()).await {
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
        "pool": state.local.pool.as_ref().map(|p| p.stats()),
    })))
}

/// Prometheus metrics (text exposition format). The gauges that describe
/// shared state are read now: jobs by state from Redis, live workers, this
/// worker's job containers on its engine and its warm pool.
pub async fn metrics(State(state): State<AppState>) -> Response {
    // Each read is best effort: a failed one leaves its gauge as it was
    // (and is counted in the error metrics), the rest still answers.
    if let Ok(counts) = state.queue.counts().await {
        for (name, count) in counts {
            crate::metrics::jobs_by_state(&name, count);
        }
    }
    if let Ok(workers) = state.queue.live_workers(now_ms()).await {
        crate::metrics::workers_live(workers.len());
    }
    if let (Some(sandbox), Some((worker, _))) = (&state.local.sandbox, &state.local.worker) {
        match sandbox.list_managed(Some(worker)).await {
            Ok(containers) => crate::metrics::containers_running(
                containers
                    .iter()
                    .filter(|c| c.job_id != crate::sandbox::pool::POOL_JOB)
                    .count(),
            ),
            Err(e) => crate::metrics::docker_error(e.kind()),
        }
    }
    if let Some(pool) = &state.local.pool {
        let stats = pool.stats();
        crate::metrics::pool_sizes(&stats.idle, &stats.target);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
        .into_response()
}

/// Counts and times every HTTP request by its route (the pattern, never
/// the path: job ids stay out of labels).
pub async fn track(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().as_str().to_string();
    let trace_id = crate::telemetry::new_trace_id();
    // `key` and `job` are recorded when known (by the auth guard, when a
    // job is accepted); the key's name only, never the key.
    let span = tracing::info_span!("request", %method, %route, %trace_id,
        key = tracing::field::Empty, job = tracing::field::Empty);
    let started = std::time::Instant::now();
    let response = tracing::Instrument::instrument(
        crate::telemetry::with_trace_id(trace_id, next.run(request)),
        span.clone(),
    )
    .await;
    let status = response.status().as_u16();
    let took = started.elapsed();
    span.in_scope(|| tracing::debug!(status, elapsed_ms = took.as_millis() as u64, "answered"));
    crate::metrics::http_request(route, method, status, took);
    response
}
