//! Piston's API v2 routes, as its documentation describes them (also under
//! `/api/v2/piston/`, the public instance's paths):
//!
//! - `GET /api/v2/runtimes` (public);
//! - `POST /api/v2/execute`: runs the code and answers when it is done
//!   (behind the API's keys);
//! - `GET /api/v2/packages` (public); installing or removing a package
//!   answers 400 saying so: every language is built into the runner images.
//!
//! Errors keep Piston's shape: `{"message": "..."}`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;
use uuid::Uuid;

use crate::compat::piston::{self, Constraints, ExecuteParams, Translated};
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::{AnyJson, ApiError};
use crate::http::request::{self, FileRequest, JobRequest, LimitsRequest};
use crate::queue::PublicState;

/// `{"message": message}` with `status`, as Piston answers an error.
fn message(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "message": message.into() }))).into_response()
}

/// An error of the service's own, in Piston's shape (with its headers,
/// e.g. `Retry-After`).
fn from_api_error(error: ApiError) -> Response {
    let retry_after = error.retry_after;
    let mut response = message(error.status, error.message);
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
    }
    response
}

/// `GET /api/v2/runtimes` (Piston).
#[utoipa::path(get, path = "/api/v2/runtimes", tag = "piston",
    responses(
        (status = 200, description = "`[{\"language\", \"version\", \"aliases\"}]`", body = AnyJson),
        (status = 503, description = "Redis unavailable", body = AnyJson),
    ))]
pub async fn runtimes(State(state): State<AppState>) -> Result<Response, ApiError> {
    let versions = state.queue.language_versions().await?;
    Ok(Json(piston::runtimes(&state.languages, &versions)).into_response())
}

/// `GET /api/v2/packages`: each language, `installed` once a live worker
/// has its image.
#[utoipa::path(get, path = "/api/v2/packages", tag = "piston",
    responses(
        (status = 200, description = "`[{\"language\", \"language_version\", \"installed\"}]`", body = AnyJson),
        (status = 503, description = "Redis unavailable", body = AnyJson),
    ))]
pub async fn packages(State(state): State<AppState>) -> Result<Response, ApiError> {
    let versions = state.queue.language_versions().await?;
    let workers = state.queue.live_workers(crate::job::now_ms()).await?;
    let ready = |l: &crate::language::Language| {
        workers.iter().any(|w| !w.missing_languages.contains(&l.id))
    };
    Ok(Json(piston::packages(&state.languages, &versions, ready)).into_response())
}

/// `POST` or `DELETE /api/v2/packages`: not offered here.
#[utoipa::path(post, path = "/api/v2/packages", tag = "piston",
    responses((status = 400, description = "Not offered: `{\"message\"}`", body = AnyJson)))]
pub async fn manage_packages() -> Response {
    refuse_package_change()
}

/// `DELETE /api/v2/packages`: not offered here.
#[utoipa::path(delete, path = "/api/v2/packages", tag = "piston",
    responses((status = 400, description = "Not offered: `{\"message\"}`", body = AnyJson)))]
pub async fn remove_packages() -> Response {
    refuse_package_change()
}

fn refuse_package_change() -> Response {
    message(
        StatusCode::BAD_REQUEST,
        "packages are not installed through this API: every language is built into the \
         service's runner images (docker/build-images.sh); GET /api/v2/packages lists them",
    )
}

/// The job API's request for a translated execution: files and stdin in
/// base64 (exact bytes).
fn job_request(t: &Translated) -> JobRequest {
    let text = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let limits = &t.limits;
    JobRequest {
        language: t.language.clone(),
        files: Some(
            t.files
                .iter()
                .map(|(name, bytes)| FileRequest {
                    name: name.clone(),
                    content: text(bytes),
                })
                .collect(),
        ),
        stdin: Some(text(t.stdin.as_bytes())),
        args: (!t.args.is_empty()).then(|| t.args.clone()),
        limits: Some(LimitsRequest {
            wall_time_ms: limits.wall_time_ms,
            cpu_time_ms: limits.cpu_time_ms,
            memory_mb: limits.memory_mb,
            processes: None,
            output_bytes: None,
            compile_wall_time_ms: limits.compile_wall_time_ms,
            idle_time_ms: None,
        }),
        base64: Some(true),
        ..JobRequest::default()
    }
}

/// `POST /api/v2/execute`: the job, run to its end, as Piston answers it.
#[utoipa::path(post, path = "/api/v2/execute", tag = "piston",
    request_body = ExecuteParams,
    responses(
        (status = 200, description = "`{\"language\", \"version\", \"run\", \"compile\"?}`", body = AnyJson),
        (status = 400, description = "A bad request: `{\"message\"}` in Piston's words", body = AnyJson),
        (status = 401, description = "No valid API key", body = AnyJson),
        (status = 408, description = "The body came too slowly", body = AnyJson),
        (status = 413, description = "The body is too large", body = AnyJson),
        (status = 415, description = "Not sent as application/json", body = AnyJson),
        (status = 429, description = "Over the key's rate, or the queue is full", body = AnyJson),
        (status = 500, description = "The service could not run it", body = AnyJson),
        (status = 503, description = "Redis unavailable, or the language not ready", body = AnyJson),
        (status = 504, description = "Not finished within the bounded wait", body = AnyJson),
        (status = 507, description = "Redis is out of memory", body = AnyJson),
    ))]
pub async fn execute(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let declared_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/json"));
    let bytes = super::super::body::any_body(
        body,
        super::super::admission::max_body_bytes(&state),
        state.intake.body_read_timeout,
    )
    .await
    .map_err(|e| ApiError::new(e.status, e.message))?;
    // A body that is JSON is read whatever its content type says (Piston's
    // npm client sends its JSON as text/plain); anything else is Piston's 415.
    if !declared_json && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err() {
        return Ok(message(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "requests must be of type application/json",
        ));
    }
    // Piston reads attributes only from an object: anything else gives none.
    let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let bytes = if object {
        bytes
    } else {
        axum::body::Bytes::from_static(b"{}")
    };
    let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
    let params: ExecuteParams = match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(params) => params,
        Err(e) => {
            let path = e.path().to_string();
            let text = if e.inner().is_data() && path != "." {
                piston::type_error(&path)
            } else {
                format!("malformed JSON: {}", e.inner())
            };
            return Ok(message(StatusCode::BAD_REQUEST, text));
        }
    };
    if let Err(e) = deserializer.end() {
        return Ok(message(
            StatusCode::BAD_REQUEST,
            format!("malformed JSON: {e}"),
        ));
    }
    let versions = state.queue.language_versions().await?;
    let constraints = Constraints::new(&state.intake.max_limits);
    let translated = match piston::translate(params, &state.languages, &versions, &constraints) {
        Ok(translated) => translated,
        Err(text) => return Ok(message(StatusCode::BAD_REQUEST, text)),
    };
    let compiled = state
        .languages
        .find(&translated.language)
        .is_some_and(|l| l.compile.is_some());
    // The job API's own checks (names, sizes, arguments, limits).
    let mut spec = match request::check(
        job_request(&translated),
        &state.request_rules(&versions),
        "",
    ) {
        Ok(accepted) => accepted.spec,
        Err(e) => return Ok(message(StatusCode::BAD_REQUEST, e.message)),
    };
    spec.owner = caller.key.clone();
    spec.trace_id = crate::telemetry::current_trace_id();
    let id = Uuid::new_v4();
    if let Err(e) =
        super::super::admission::queue_jobs(&state, &caller, vec![(id, spec, 0)], "").await
    {
        return Ok(from_api_error(e));
    }
    tracing::Span::current().record("job", tracing::field::display(&id));
    let finished = state
        .queue
        .wait_finished(&state.events, &id, state.intake.max_wait)
        .await?;
    let Some(job) = finished else {
        return Ok(message(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the job did not finish within {} s; its result will be at GET /v1/jobs/{id}",
                state.intake.max_wait.as_secs()
            ),
        ));
    };
    match (job.state, &job.result) {
        (PublicState::Completed, Some(result)) => {
            let version = Some(result.version.as_str())
                .filter(|v| !v.is_empty())
                .unwrap_or(&translated.version);
            Ok(Json(piston::response(
                result,
                &translated.piston_language,
                version,
                compiled,
            ))
            .into_response())
        }
        _ => Ok(message(
            StatusCode::INTERNAL_SERVER_ERROR,
            job.failed_reason
                .or_else(|| job.result.and_then(|r| r.message))
                .unwrap_or_else(|| "the job did not run".into()),
        )),
    }
}
