//! What the service tells about itself besides health: `GET /metrics` on
//! the admin listener (Prometheus), and [`track`], the middleware of both
//! listeners that opens each request's span and counts and times it.

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::job::now_ms;

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
    if let Some(engine) = &state.local.engine {
        match engine.job_containers().await {
            Ok(running) => crate::metrics::containers_running(running),
            Err(kind) => crate::metrics::docker_error(kind),
        }
        if let Some(stats) = engine.pool() {
            crate::metrics::pool_sizes(&stats.idle, &stats.target);
        }
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
/// the path: job ids stay out of labels) and its method. Every label has a
/// bound: a route is one of the routers' patterns or `unmatched`, a method
/// one of HTTP's nine or `other` (a client may send any token as a method,
/// and this runs before any caller is known).
pub async fn track(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = method_label(request.method()).to_string();
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

/// A request's method as a label: HTTP's own methods by name, any other
/// token `other`.
fn method_label(method: &axum::http::Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or("other")
}
