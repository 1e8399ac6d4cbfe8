//! Logging: `tracing` with levels from `RUST_LOG` (default `info`), human
//! readable by default, JSON lines with `CODE_RUNNER_LOG_FORMAT=json` (each
//! line carries its spans' fields: `request` spans with the route, trace id,
//! API key name and job id; `job` spans with the job id and the trace id of
//! the request that submitted it).
//!
//! Trace ids: each HTTP request gets one (32 hex digits); a job submitted by
//! it keeps it in its spec, and the worker's spans for the job continue it.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call does nothing.
pub fn init(format: &str) {
    let filter = crate::config::log_filter()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info,bollard=warn,hyper=warn,bullmq=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

tokio::task_local! {
    /// The trace id of the HTTP request being handled.
    static TRACE_ID: String;
}

/// A new trace id (128 random bits, hex, as W3C trace context has it).
pub fn new_trace_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Runs `f` with `trace_id` as the current request's trace id.
pub async fn with_trace_id<F: std::future::Future>(trace_id: String, f: F) -> F::Output {
    TRACE_ID.scope(trace_id, f).await
}

/// The current request's trace id, if any.
pub fn current_trace_id() -> Option<String> {
    TRACE_ID.try_with(Clone::clone).ok()
}
