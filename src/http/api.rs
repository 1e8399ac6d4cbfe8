//! The proof of concept's API, kept valid:
//!
//! - `POST /run` with `{"language": "python", "code": "...", "stdin": "..."}`
//!   (`stdin` optional) answers `{"jobId": "<uuid>"}`.
//! - `GET /status/{jobId}` answers `{"jobId", "state", "result"}`; `state` is
//!   `waiting`, `active`, `completed` or `failed`; `result` is present when
//!   the job is completed (how the code ended) or failed (why the service
//!   could not run it, with `status: "internal_error"`).

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use super::admission::{max_body_bytes, queue_jobs};
use super::auth::Caller;
use super::error::{ApiError, ErrorBody, PathText};
use crate::job::{JobResult, Phase, RunStatus};
use crate::queue::PublicState;

/// `POST /run`'s body (the proof of concept's).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct RunRequest {
    /// A language id or alias (`python`, ...).
    language: String,
    /// The program.
    code: String,
    /// Standard input.
    stdin: Option<String>,
}

/// `POST /run`'s body as read: typed (never a `serde_json::Value`), other
/// fields skipped without being stored.
#[derive(serde::Deserialize)]
struct PocRunBody {
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    stdin: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunAccepted {
    pub job_id: String,
}

/// Submit code (the proof of concept's API).
#[utoipa::path(post, path = "/run", tag = "proof of concept",
    request_body = RunRequest,
    responses(
        (status = 200, description = "Queued", body = RunAccepted),
        (status = 400, description = "A field is missing, of the wrong type, or unknown", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 413, description = "code or stdin over the size limit", body = ErrorBody),
        (status = 429, description = "Over the key's rate, or the queue is full", body = ErrorBody),
        (status = 415, description = "Not sent as application/json", body = ErrorBody),
        (status = 503, description = "Redis unavailable, or no live worker has the language's image yet (`field` names it; Retry-After)", body = ErrorBody),
        (status = 507, description = "Redis holds its memory budget: nothing was queued (Retry-After)", body = ErrorBody),
    ))]
pub async fn run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<RunAccepted>, ApiError> {
    // The proof of concept ignored fields it did not know: so does this.
    let fields: PocRunBody = state
        .intake
        .bodies
        .read_json(&headers, body, max_body_bytes(&state))
        .await?;
    let required = |name: &'static str, value: Option<String>| {
        value.ok_or_else(|| ApiError::bad_field(name, format!("{name} is required")))
    };
    let language = required("language", fields.language)?;
    let code = required("code", fields.code)?;
    // Checked as a /v1 job is: the same rules, the same field names.
    let request = super::request::JobRequest {
        language,
        code: Some(code),
        stdin: Some(fields.stdin.unwrap_or_default()),
        ..Default::default()
    };
    let versions = std::collections::HashMap::new();
    let mut spec = super::request::check(request, &state.request_rules(&versions), "")?.spec;
    spec.owner = caller.key.clone();
    spec.trace_id = crate::telemetry::current_trace_id();
    let id = Uuid::new_v4();
    queue_jobs(&state, &caller, vec![(id, spec, 0)], "").await?;
    tracing::Span::current().record("job", tracing::field::display(&id));
    Ok(Json(RunAccepted {
        job_id: id.to_string(),
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusBody {
    pub job_id: String,
    pub state: PublicState,
    /// For an active job running in this process: how far it got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// `{stdout, stderr, exitCode, status, ...}` when completed;
    /// `{status: "internal_error", error}` when failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_made: Option<u32>,
}

/// A job's state and result (the proof of concept's API).
#[utoipa::path(get, path = "/status/{jobId}", tag = "proof of concept",
    params(("jobId" = String, Path, description = "The id POST /run answered")),
    responses(
        (status = 200, description = "The job", body = StatusBody),
        (status = 400, description = "Not a job id", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 404, description = "No such job (or another key's, or removed after its retention)", body = ErrorBody),
        (status = 429, description = "Over the key's rate", body = ErrorBody),
        (status = 503, description = "Redis unavailable", body = ErrorBody),
    ))]
pub async fn status(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathText(job_id, _): PathText<ApiError>,
) -> Result<Json<StatusBody>, ApiError> {
    let id = Uuid::parse_str(&job_id)
        .map_err(|_| ApiError::bad_field("jobId", "jobId must be a job id (a UUID)"))?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no job with id {id} (it may have been removed after its retention)"),
        )
        .with_field("jobId")
    };
    let Some(loaded) = super::jobs::load(&state, Some(&caller), &id).await? else {
        return Err(not_found());
    };
    let job = loaded.job;
    if job.state == PublicState::Active {
        return Ok(Json(StatusBody {
            job_id: id.to_string(),
            state: PublicState::Active,
            phase: loaded.phase,
            result: None,
            attempts_made: Some(job.attempts_made),
        }));
    }
    let result = match job.state {
        PublicState::Completed | PublicState::Cancelled => job.result.as_ref().map(poc_result),
        PublicState::Failed => Some(json!({
            "status": RunStatus::InternalError,
            "stdout": "",
            "stderr": "",
            "exitCode": null,
            "error": job.failed_reason.clone().unwrap_or_default(),
        })),
        _ => None,
    };
    Ok(Json(StatusBody {
        job_id: job.id,
        state: job.state,
        phase: None,
        result,
        attempts_made: Some(job.attempts_made),
    }))
}

/// A result in the proof of concept's shape (camelCase, `status`), plus the
/// verdict and figures. The proof of concept answered trimmed output
/// ("Hello world", not "Hello world\n").
fn poc_result(result: &JobResult) -> Value {
    let figures = &result.figures;
    let trimmed = |text: &str| text.trim_end().to_string();
    let mut value = json!({
        "stdout": trimmed(&figures.stdout),
        "stderr": trimmed(&figures.stderr),
        "exitCode": figures.exit_code,
        "status": result.status,
        "verdict": result.verdict,
        "signal": figures.signal,
        "wallTimeMs": figures.wall_time_ms,
        "cpuTimeMs": figures.cpu_time_ms,
        "memoryPeakBytes": figures.memory_peak_bytes,
        "stdoutTruncated": figures.stdout_truncated,
        "stderrTruncated": figures.stderr_truncated,
        "workerId": result.worker_id,
    });
    if let Some(output) = &result.compile_output {
        value["compileOutput"] = Value::String(trimmed(output));
    }
    if let Some(message) = &result.message {
        value["message"] = Value::String(message.clone());
    }
    value
}
