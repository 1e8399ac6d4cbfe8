//! Judge0 CE's routes, as its documentation describes them:
//!
//! - `POST /submissions[?base64_encoded=&wait=&fields=]`, `GET` and
//!   `DELETE /submissions/{token}`, `GET` and `POST /submissions/batch`
//!   (behind the API's keys: `X-Auth-Token` is accepted as one);
//! - `GET /languages`, `/languages/all`, `/languages/{id}`, `/statuses`,
//!   `/about`, `/version`, `/config_info` (public), `/workers`,
//!   `/system_info` (behind the keys).
//!
//! Errors keep Judge0's shapes: `422 {"attribute": ["message"]}` for a bad
//! submission, `400`/`404`/`503 {"error": "..."}` otherwise.

mod catalogue;

pub use catalogue::*;

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::compat::judge0::{
    self, Errors, NOT_UTF8, NotUtf8, Scalar, SubmissionParams, Translated,
};
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::{AnyJson, ApiError, Judge0Error, Judge0Invalid, PathText};
use crate::http::request::{self, FileRequest, JobRequest, LimitsRequest, TestCaseRequest};
use crate::job::JobSpec;
use crate::queue::{PublicState, StoredJob};

/// A Judge0-shaped answer: `status` and a JSON body.
pub(super) fn answer(status: StatusCode, body: impl serde::Serialize) -> Response {
    (status, Json(body)).into_response()
}

/// `{"error": message}` with `status`, as Judge0 answers what is not a
/// validation error.
fn error(status: StatusCode, message: impl Into<String>) -> Judge0Error {
    Judge0Error::new(status, message)
}

/// Query parameters, where a body's attribute of the same name wins (Rails
/// reads both into one `params`).
fn param(query: &HashMap<String, String>, body: Option<&Scalar>, name: &str) -> Option<Scalar> {
    body.cloned()
        .or_else(|| query.get(name).map(|v| Scalar::Text(v.clone())))
}

/// Judge0 reads `base64_encoded` and `wait` as "is it `true`".
fn flag(value: Option<Scalar>) -> bool {
    value.is_some_and(|v| v.flag())
}

/// A submission's body: JSON (whatever the content type says) or a form.
fn parse_params<T: serde::de::DeserializeOwned + Default>(
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<T, Judge0Error> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return serde_urlencoded::from_bytes(bytes)
            .map_err(|e| error(StatusCode::BAD_REQUEST, format!("malformed form: {e}")));
    }
    // Rails reads attributes only from an object: anything else (an
    // array, a string) gives none.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err()
            && !bytes.iter().all(u8::is_ascii_whitespace)
        {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "malformed JSON: the body is not JSON",
            ));
        }
        return Ok(T::default());
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() && path != "." {
            let mut errors = Errors::default();
            errors.add(path.split('.').next().unwrap_or(&path), "is invalid");
            Judge0Error::from(errors)
        } else {
            error(StatusCode::BAD_REQUEST, format!("malformed JSON: {inner}"))
        }
    })?;
    deserializer
        .end()
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))?;
    Ok(parsed)
}

/// A submission checked and made into a job, or Judge0's errors.
async fn accept(
    state: &AppState,
    caller: &Caller,
    params: &SubmissionParams,
    base64_encoded: bool,
) -> Result<JobSpec, Errors> {
    let settings = state.intake.judge0_settings();
    let translated = judge0::translate(params, base64_encoded, &settings, &state.languages)?;
    let versions = HashMap::new();
    // The job API's own checks (sizes, arguments, limits, the callback's
    // form), named back in Judge0's attributes.
    let source_file = state
        .languages
        .find(&translated.language)
        .map_or(String::new(), |l| l.source_file.clone());
    let accepted = request::check(
        job_request(&translated, &source_file),
        &state.request_rules(&versions),
        "",
    )
    .map_err(|e| {
        Errors::one(
            judge0::judge0_field(e.field.as_deref().unwrap_or("")),
            e.message,
        )
    })?;
    let Translated {
        record,
        compiler_options,
        stderr_to_stdout,
        stack_kb,
        file_size_kb,
        ..
    } = translated;
    let mut spec = accepted.spec;
    if let Err(e) = super::super::v1::check_callback(state, spec.callback_url.as_deref(), "").await
    {
        return Err(Errors::one("callback_url", e.message));
    }
    spec.owner = caller.key.clone();
    spec.trace_id = crate::telemetry::current_trace_id();
    spec.compiler_options = compiler_options;
    spec.stderr_to_stdout = stderr_to_stdout;
    let limits = spec.limits.get_or_insert_with(Default::default);
    limits.stack_kb = Some(stack_kb);
    limits.file_size_kb = Some(file_size_kb);
    spec.judge0 = Some(record);
    Ok(spec)
}

/// The job API's request for a translated submission: its inputs in
/// base64 (exact bytes, whatever the client sent), several runs as test
/// cases of one compilation.
fn job_request(t: &Translated, source_file: &str) -> JobRequest {
    let text = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let (stdin, expected_output, test_cases) = if t.runs > 1 {
        let case = || TestCaseRequest {
            stdin: Some(text(&t.stdin)),
            expected_output: t.expected.as_deref().map(text),
            compare: None,
            points: None,
            group: None,
        };
        (None, None, Some((0..t.runs).map(|_| case()).collect()))
    } else {
        (Some(text(&t.stdin)), t.expected.as_deref().map(text), None)
    };
    let limits = &t.limits;
    // The source alone is `code`; with additional files, the source first
    // (under the language's file name), then the others.
    let (code, files) = match (&t.source, t.files.is_empty()) {
        (Some(source), true) => (Some(text(source)), None),
        (source, _) => {
            let entry = source.as_ref().map(|s| (source_file.to_string(), s));
            let files = entry
                .iter()
                .map(|(n, b)| (n.as_str(), b.as_slice()))
                .chain(
                    t.files
                        .iter()
                        .filter(|(n, _)| source.is_none() || n != source_file)
                        .map(|(n, b)| (n.as_str(), b.as_slice())),
                )
                .map(|(name, bytes)| FileRequest {
                    name: name.to_string(),
                    content: text(bytes),
                })
                .collect();
            (None, Some(files))
        }
    };
    JobRequest {
        language: t.language.clone(),
        code,
        files,
        stdin,
        args: (!t.args.is_empty()).then(|| t.args.clone()),
        limits: Some(LimitsRequest {
            wall_time_ms: limits.wall_time_ms,
            cpu_time_ms: limits.cpu_time_ms,
            memory_mb: limits.memory_mb,
            processes: limits.processes,
            output_bytes: None,
            compile_wall_time_ms: None,
            idle_time_ms: None,
        }),
        expected_output,
        test_cases,
        base64: Some(true),
        callback_url: t.callback_url.clone(),
        ..JobRequest::default()
    }
}

/// `POST /submissions` (Judge0): a submission; its token, or with
/// `wait=true` the finished submission.
#[utoipa::path(post, path = "/submissions", tag = "judge0",
    request_body = SubmissionParams,
    params(
        ("base64_encoded" = Option<String>, Query, description = "`true`: text attributes are base64, in and out"),
        ("wait" = Option<String>, Query, description = "`true`: answer the finished submission (bounded wait)"),
        ("fields" = Option<String>, Query, description = "Attributes to answer, comma-separated, or `*`"),
    ),
    responses(
        (status = 201, description = "`{\"token\"}`, or the submission (wait=true)", body = AnyJson),
        (status = 400, description = "Malformed body, or unknown `fields`: `{\"error\"}`", body = AnyJson),
        (status = 401, description = "No valid API key (`X-Auth-Token` or bearer)", body = AnyJson),
        (status = 408, description = "The body came too slowly", body = AnyJson),
        (status = 413, description = "The body is too large", body = AnyJson),
        (status = 422, description = "Invalid attributes: `{\"attribute\": [\"message\"]}`", body = AnyJson),
        (status = 429, description = "Over the key's rate, or the queue is full", body = AnyJson),
        (status = 503, description = "Redis unavailable, or the language not ready", body = AnyJson),
        (status = 507, description = "Redis is out of memory", body = AnyJson),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Judge0Error> {
    let bytes = state
        .intake
        .bodies
        .any(
            &headers,
            body,
            super::super::admission::max_body_bytes(&state),
        )
        .await?;
    let params: SubmissionParams = parse_params(&headers, &bytes)?;
    drop(bytes);
    let fields = param(&query, params.fields.as_ref(), "fields").map(|f| match f {
        Scalar::Text(t) => t,
        other => format!("{other:?}"),
    });
    let fields = match judge0::parse_fields(fields.as_deref()) {
        Ok(fields) => fields,
        Err(message) => return Err(error(StatusCode::BAD_REQUEST, message)),
    };
    let base64_encoded = flag(param(
        &query,
        params.base64_encoded.as_ref(),
        "base64_encoded",
    ));
    let wait = flag(param(&query, params.wait.as_ref(), "wait"));
    let spec = match accept(&state, &caller, &params, base64_encoded).await {
        Ok(spec) => spec,
        Err(errors) => return Err(errors.into()),
    };
    let id = Uuid::new_v4();
    super::super::admission::queue_jobs(&state, &caller, vec![(id, spec, 0)], "").await?;
    tracing::Span::current().record("job", tracing::field::display(&id));
    if !wait {
        return Ok(answer(StatusCode::CREATED, json!({ "token": id })));
    }
    // Judge0 waits for the end; the wait here is bounded, then the
    // submission is answered as it is (In Queue or Processing): its token
    // reads it later.
    let finished = state
        .queue
        .wait_finished(&state.events, &id, state.intake.max_wait)
        .await?;
    let job = match finished {
        Some(job) => job,
        None => match state.queue.get(&id).await? {
            Some(job) => job,
            None => return Ok(answer(StatusCode::CREATED, json!({ "token": id }))),
        },
    };
    Ok(
        match judge0::render(
            &(&job).into(),
            &fields,
            base64_encoded,
            Some(&state.languages),
        ) {
            Ok(shown) => answer(StatusCode::CREATED, shown),
            Err(NotUtf8) => answer(
                StatusCode::CREATED,
                json!({ "error": NOT_UTF8, "token": id }),
            ),
        },
    )
}

/// A token as a job id: anything else names no submission.
fn token(text: &str) -> Option<Uuid> {
    Uuid::parse_str(text.trim()).ok()
}

/// A submission the caller may see.
async fn load(state: &AppState, caller: &Caller, id: &Uuid) -> Result<Option<StoredJob>, ApiError> {
    Ok(super::super::jobs::load(state, Some(caller), id)
        .await?
        .map(|loaded| loaded.job))
}

/// The submission a token names, if the caller may see it.
async fn load_token(
    state: &AppState,
    caller: &Caller,
    text: &str,
) -> Result<Option<StoredJob>, ApiError> {
    match token(text) {
        Some(id) => load(state, caller, &id).await,
        None => Ok(None),
    }
}

/// `fields` and `base64_encoded` of a read.
fn read_options(query: &HashMap<String, String>) -> Result<(Vec<&'static str>, bool), Judge0Error> {
    let fields = judge0::parse_fields(query.get("fields").map(String::as_str))
        .map_err(|message| error(StatusCode::BAD_REQUEST, message))?;
    let base64_encoded = flag(query.get("base64_encoded").map(|v| Scalar::Text(v.clone())));
    Ok((fields, base64_encoded))
}

/// `GET /submissions/{token}` (Judge0).
#[utoipa::path(get, path = "/submissions/{token}", tag = "judge0",
    params(
        ("token" = String, Path, description = "The submission's token"),
        ("base64_encoded" = Option<String>, Query, description = "`true`: text attributes in base64"),
        ("fields" = Option<String>, Query, description = "Attributes to answer, comma-separated, or `*`"),
    ),
    responses(
        (status = 200, description = "The submission", body = AnyJson),
        (status = 400, description = "Unknown `fields`, or output that is not UTF-8 without base64", body = AnyJson),
        (status = 401, description = "No valid API key", body = AnyJson),
        (status = 404, description = "No such submission", body = AnyJson),
        (status = 429, description = "Over the key's rate", body = AnyJson),
        (status = 503, description = "Redis unavailable", body = AnyJson),
    ))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathText(token_text, _): PathText<Judge0Error>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Judge0Error> {
    let (fields, base64_encoded) = read_options(&query)?;
    let Some(job) = load_token(&state, &caller, &token_text).await? else {
        return Err(Judge0Error::not_found());
    };
    Ok(
        match judge0::render(
            &(&job).into(),
            &fields,
            base64_encoded,
            Some(&state.languages),
        ) {
            Ok(shown) => answer(StatusCode::OK, shown),
            Err(NotUtf8) => return Err(error(StatusCode::BAD_REQUEST, NOT_UTF8)),
        },
    )
}

/// `DELETE /submissions/{token}`: a finished submission is removed and
/// answered (in base64, as Judge0 does); one in the queue or running cannot
/// be (`DELETE /v1/jobs/{id}` cancels it).
#[utoipa::path(delete, path = "/submissions/{token}", tag = "judge0",
    params(
        ("token" = String, Path, description = "The submission's token"),
        ("fields" = Option<String>, Query, description = "Attributes to answer, comma-separated, or `*`"),
    ),
    responses(
        (status = 200, description = "Deleted; the submission (base64)", body = AnyJson),
        (status = 400, description = "Still in the queue or running, or unknown `fields`", body = AnyJson),
        (status = 401, description = "No valid API key", body = AnyJson),
        (status = 404, description = "No such submission", body = AnyJson),
        (status = 429, description = "Over the key's rate", body = AnyJson),
        (status = 503, description = "Redis unavailable", body = AnyJson),
    ))]
pub async fn destroy(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathText(token_text, _): PathText<Judge0Error>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Judge0Error> {
    let (fields, _) = read_options(&query)?;
    let Some(job) = load_token(&state, &caller, &token_text).await? else {
        return Err(Judge0Error::not_found());
    };
    let request = job
        .spec
        .as_ref()
        .and_then(|s| s.judge0.clone())
        .unwrap_or_default();
    let status = judge0::outcome(&(&job).into(), &request).status;
    if matches!(job.state, PublicState::Waiting | PublicState::Active) {
        let description = judge0::STATUSES
            .iter()
            .find(|(i, _)| *i == status)
            .map_or("", |(_, d)| d);
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("submission cannot be deleted because its status is {status} ({description})"),
        ));
    }
    let shown =
        judge0::render(&(&job).into(), &fields, true, Some(&state.languages)).unwrap_or_default();
    if !state.queue.remove_job(&job.id).await? {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "submission cannot be deleted because it is running",
        ));
    }
    Ok(answer(StatusCode::OK, shown))
}

/// `GET /submissions/batch?tokens=a,b,c` (Judge0).
#[utoipa::path(get, path = "/submissions/batch", tag = "judge0",
    params(
        ("tokens" = Option<String>, Query, description = "Tokens, comma-separated"),
        ("base64_encoded" = Option<String>, Query, description = "`true`: text attributes in base64"),
        ("fields" = Option<String>, Query, description = "Attributes to answer, comma-separated, or `*`"),
    ),
    responses(
        (status = 200, description = "`{\"submissions\": [...]}` (null for an unknown token)", body = AnyJson),
        (status = 400, description = "No tokens, too many, unknown `fields`, or output that is not UTF-8", body = AnyJson),
        (status = 401, description = "No valid API key", body = AnyJson),
        (status = 429, description = "Over the key's rate", body = AnyJson),
        (status = 503, description = "Redis unavailable", body = AnyJson),
    ))]
pub async fn batch_show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Judge0Error> {
    let (fields, base64_encoded) = read_options(&query)?;
    let tokens = headers
        .get("tokens")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| query.get("tokens").cloned())
        .unwrap_or_default();
    let tokens: Vec<&str> = tokens
        .trim()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let most = state.intake.judge0_settings().max_submission_batch_size;
    if tokens.len() > most {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("number of submissions in a batch should be less than or equal to {most}"),
        ));
    }
    if tokens.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "there should be at least one submission in a batch",
        ));
    }
    let mut submissions = Vec::with_capacity(tokens.len());
    for text in tokens {
        let job = load_token(&state, &caller, text).await?;
        submissions.push(match job {
            None => Value::Null,
            Some(job) => match judge0::render(&(&job).into(), &fields, base64_encoded, Some(&state.languages)) {
                Ok(shown) => Value::Object(shown),
                Err(NotUtf8) => {
                    return Err(error(
                        StatusCode::BAD_REQUEST,
                        "some attributes for one or more submissions cannot be converted to UTF-8, use base64_encoded=true query parameter",
                    ));
                }
            },
        });
    }
    Ok(answer(
        StatusCode::OK,
        json!({ "submissions": submissions }),
    ))
}

/// `POST /submissions/batch`'s body.
#[derive(Default, Deserialize, utoipa::ToSchema)]
pub struct BatchParams {
    submissions: Option<Vec<SubmissionParams>>,
    base64_encoded: Option<Scalar>,
}

/// `POST /submissions/batch`: each submission is checked on its own; the
/// answer lists a token or the errors of each, `201` when any was queued.
#[utoipa::path(post, path = "/submissions/batch", tag = "judge0",
    request_body = BatchParams,
    params(("base64_encoded" = Option<String>, Query, description = "`true`: text attributes are base64")),
    responses(
        (status = 201, description = "Each submission's token or errors", body = AnyJson),
        (status = 400, description = "No submissions, or too many", body = AnyJson),
        (status = 401, description = "No valid API key", body = AnyJson),
        (status = 408, description = "The body came too slowly", body = AnyJson),
        (status = 413, description = "The body is too large", body = AnyJson),
        (status = 422, description = "None was valid: each one's errors", body = AnyJson),
        (status = 429, description = "Over the key's rate, or the queue is full", body = AnyJson),
        (status = 503, description = "Redis unavailable, or a language not ready", body = AnyJson),
        (status = 507, description = "Redis is out of memory", body = AnyJson),
    ))]
pub async fn batch_create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Judge0Error> {
    let bytes = state
        .intake
        .bodies
        .any(&headers, body, state.intake.max_batch_bytes)
        .await?;
    let batch: BatchParams = parse_params(&headers, &bytes)?;
    drop(bytes);
    let base64_encoded = flag(param(
        &query,
        batch.base64_encoded.as_ref(),
        "base64_encoded",
    ));
    let submissions = batch.submissions.unwrap_or_default();
    let most = state.intake.judge0_settings().max_submission_batch_size;
    if submissions.len() > most {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("number of submissions in a batch should be less than or equal to {most}"),
        ));
    }
    if submissions.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "there should be at least one submission in a batch",
        ));
    }
    let mut answers = Vec::with_capacity(submissions.len());
    let mut jobs = Vec::new();
    for params in &submissions {
        match accept(&state, &caller, params, base64_encoded).await {
            Ok(spec) => {
                let id = Uuid::new_v4();
                answers.push(json!({ "token": id }));
                jobs.push((id, spec, 0));
            }
            Err(errors) => answers.push(serde_json::to_value(errors).unwrap_or_default()),
        }
    }
    if jobs.is_empty() {
        return Err(Judge0Error::Invalid(Judge0Invalid::Batch(answers)));
    }
    super::super::admission::queue_jobs(&state, &caller, jobs, "submissions").await?;
    Ok(answer(StatusCode::CREATED, answers))
}

/// A stored job as Judge0's rendering reads a submission.
impl From<&StoredJob> for crate::compat::judge0::Submission {
    fn from(job: &StoredJob) -> Self {
        use crate::compat::judge0::Stage;
        crate::compat::judge0::Submission {
            token: job.id.clone(),
            stage: Some(match job.state {
                PublicState::Waiting => Stage::Queued,
                PublicState::Active => Stage::Running,
                PublicState::Completed => Stage::Completed,
                PublicState::Failed => Stage::Failed,
                PublicState::Cancelled => Stage::Cancelled,
            }),
            spec: job.spec.clone(),
            result: job.result.clone(),
            failed_reason: job.failed_reason.clone(),
            started_at_ms: job.started_at_ms,
            finished_at_ms: job.finished_at_ms,
            execution_host: job.processed_by.clone(),
        }
    }
}
