//! The versioned API:
//!
//! - `POST /v1/jobs[?wait=true]`: submit one job (see [`super::request`]);
//! - `POST /v1/jobs/batch`: submit several at once;
//! - `GET /v1/jobs/{id}`: the whole job and its result;
//! - `DELETE /v1/jobs/{id}`: cancel it;
//! - `GET /v1/languages`: what can run, with versions.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use uuid::Uuid;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody, PathText};
use super::query::{TypedQuery, WaitQuery};
use super::request::{AcceptedJob, BatchRequest, JobRequest, check};
use crate::queue::cancel::{CancelOutcome, IdempotencyClaim};
use crate::queue::{JobView, PublicState};

/// How long `DELETE` waits for a running job's worker to stop it.
const CANCEL_WAIT: Duration = Duration::from_secs(15);

/// Submit a job.
///
/// Without `wait`: 201 with the job's id. With `?wait=true`: 200 with the
/// finished job, or 202 with its id when it is not done within the server's
/// bounded wait. A repeated `idempotency_key` (within a day) answers 200
/// with the job it named first.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs",
    request_body = JobRequest,
    params(("wait" = Option<bool>, Query, description = "Answer when the job is done (bounded)")),
    responses(
        (status = 201, description = "Queued", body = Created),
        (status = 200, description = "Finished (wait=true), or the job an idempotency key named", body = JobView),
        (status = 202, description = "Not finished within the bounded wait", body = Created),
        (status = 400, description = "A bad field; `field` names it", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 409, description = "A request with the same `idempotency_key` is still being queued (Retry-After)", body = ErrorBody),
        (status = 413, description = "Sources or inputs over the size limit", body = ErrorBody),
        (status = 422, description = "The `idempotency_key` was used for a different request", body = ErrorBody),
        (status = 429, description = "Over the key's rate, or the queue is full", body = ErrorBody),
        (status = 415, description = "Not sent as application/json", body = ErrorBody),
        (status = 503, description = "Redis unavailable, or no live worker has the language's image yet (`field` names it; Retry-After)", body = ErrorBody),
        (status = 507, description = "Redis holds its memory budget: nothing was queued (Retry-After)", body = ErrorBody),
    ))]
pub async fn create_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    TypedQuery(WaitQuery { wait }): TypedQuery<WaitQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request: JobRequest = state
        .intake
        .bodies
        .read_json(&headers, body, super::admission::max_body_bytes(&state))
        .await?;
    let (id, replayed) = submit(&state, &caller, request).await?;
    if wait && !replayed {
        let timeout = state.intake.max_wait;
        let job = state
            .queue
            .wait_finished(&state.events, &id, timeout)
            .await?;
        return Ok(match job {
            Some(job) if job.state.has_ended() => {
                (StatusCode::OK, Json(job.view())).into_response()
            }
            // Still running (or waiting) when the wait ended: as it is.
            Some(job) => accepted_response(StatusCode::ACCEPTED, &id, job.state),
            None => accepted_response(StatusCode::ACCEPTED, &id, PublicState::Waiting),
        });
    }
    if replayed {
        // The same key within a day names the same job.
        let view = view_of(&state, &caller, &id).await?;
        return Ok((StatusCode::OK, Json(view)).into_response());
    }
    Ok(accepted_response(
        StatusCode::CREATED,
        &id,
        PublicState::Waiting,
    ))
}

/// Checks and queues one job for `caller`: its id, and whether an
/// idempotency key named an existing job instead.
pub(super) async fn submit(
    state: &AppState,
    caller: &Caller,
    request: JobRequest,
) -> Result<(Uuid, bool), ApiError> {
    let versions = if request.version.is_some() {
        state.queue.language_versions().await?
    } else {
        HashMap::new()
    };
    let mut accepted = check(request, &state.request_rules(&versions), "")?;
    check_callback(state, accepted.spec.callback_url.as_deref(), "").await?;
    accepted.spec.owner = caller.key.clone();
    accepted.spec.trace_id = crate::telemetry::current_trace_id();
    let (id, replayed) = enqueue(state, caller, &accepted).await?;
    tracing::Span::current().record("job", tracing::field::display(&id));
    Ok((id, replayed))
}

/// Submit several jobs at once: all are queued, or none (400 naming the
/// first bad field, e.g. `jobs[2].language`).
#[utoipa::path(post, path = "/v1/jobs/batch", tag = "jobs",
    request_body = BatchRequest,
    responses(
        (status = 201, description = "All queued", body = BatchCreated),
        (status = 400, description = "A bad field; nothing was queued", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "Not sent as application/json", body = ErrorBody),
        (status = 429, description = "Over the key's rate, or the queue is full", body = ErrorBody),
        (status = 503, description = "Redis unavailable, or no live worker has the language's image yet (`field` names it; Retry-After)", body = ErrorBody),
        (status = 507, description = "Redis holds its memory budget: nothing was queued (Retry-After)", body = ErrorBody),
    ))]
pub async fn create_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let batch: BatchRequest = state
        .intake
        .bodies
        .read_json(&headers, body, state.intake.max_batch_bytes)
        .await?;
    if batch.jobs.is_empty() || batch.jobs.len() > state.intake.max_batch {
        return Err(ApiError::bad_field(
            "jobs",
            format!("jobs must hold 1 to {} jobs", state.intake.max_batch),
        ));
    }
    let versions = state.queue.language_versions().await?;
    let rules = state.request_rules(&versions);
    let mut jobs = Vec::with_capacity(batch.jobs.len());
    for (i, request) in batch.jobs.into_iter().enumerate() {
        let prefix = format!("jobs[{i}].");
        let mut accepted = check(request, &rules, &prefix)?;
        check_callback(&state, accepted.spec.callback_url.as_deref(), &prefix).await?;
        accepted.spec.owner = caller.key.clone();
        accepted.spec.trace_id = crate::telemetry::current_trace_id();
        if accepted.idempotency_key.is_some() {
            return Err(ApiError::bad_field(
                format!("{prefix}idempotency_key"),
                "idempotency keys are for single jobs (POST /v1/jobs)",
            ));
        }
        jobs.push((Uuid::new_v4(), accepted.spec, accepted.priority));
    }
    let ids: Vec<Uuid> = jobs.iter().map(|(id, _, _)| *id).collect();
    super::admission::queue_jobs(&state, &caller, jobs, "jobs").await?;
    let jobs = ids
        .into_iter()
        .map(|id| Created {
            id,
            state: PublicState::Waiting,
        })
        .collect();
    Ok((StatusCode::CREATED, Json(BatchCreated { jobs })).into_response())
}

/// A job, with its whole result once it has one. With `?wait=true`, a
/// long-poll: answers when the job is finished or the server's bounded wait
/// is over (then with the job as it is).
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job's id"),
        ("wait" = Option<bool>, Query, description = "Answer when the job is done (bounded)")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 400, description = "Not a job id", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 404, description = "No such job (or another key's, or removed after its retention)", body = ErrorBody),
        (status = 429, description = "Over the key's rate", body = ErrorBody),
        (status = 503, description = "Redis unavailable", body = ErrorBody),
    ))]
pub async fn get_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathText(id, _): PathText<ApiError>,
    TypedQuery(WaitQuery { wait }): TypedQuery<WaitQuery>,
) -> Result<Json<JobView>, ApiError> {
    let id = job_id(&id)?;
    let view = view_of(&state, &caller, &id).await?;
    let finished = view.state.has_ended();
    if !wait || finished {
        return Ok(Json(view));
    }
    state
        .queue
        .wait_finished(&state.events, &id, state.intake.max_wait)
        .await?;
    Ok(Json(view_of(&state, &caller, &id).await?))
}

/// Cancel a job: a waiting job never runs; a running job's container is
/// killed. The job's state becomes `cancelled`.
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "Cancelled", body = JobView),
        (status = 400, description = "Not a job id", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 404, description = "No such job (or another key's)", body = ErrorBody),
        (status = 409, description = "The job had already ended", body = ErrorBody),
        (status = 429, description = "Over the key's rate", body = ErrorBody),
        (status = 503, description = "Redis unavailable", body = ErrorBody),
    ))]
pub async fn cancel_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathText(id, _): PathText<ApiError>,
) -> Result<Json<JobView>, ApiError> {
    let id = job_id(&id)?;
    // Another key's job does not exist for this caller.
    view_of(&state, &caller, &id).await?;
    match crate::ending::cancel(&state.queue, &id).await? {
        CancelOutcome::NotFound => Err(not_found(&id)),
        CancelOutcome::Finished(finished) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("job {id} already ended ({})", state_name(finished)),
        )
        .with_field("id")),
        CancelOutcome::Removed(_) => Ok(Json(view_of(&state, &caller, &id).await?)),
        CancelOutcome::Signalled => {
            let job = state
                .queue
                .wait_finished(&state.events, &id, CANCEL_WAIT)
                .await?;
            match job {
                Some(job) => Ok(Json(job.view())),
                None => Err(not_found(&id)),
            }
        }
    }
}

/// A job just queued.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Created {
    pub id: Uuid,
    pub state: PublicState,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchCreated {
    pub jobs: Vec<Created>,
}

/// One runnable language.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LanguageView {
    pub id: String,
    pub name: String,
    /// The version the language table declares.
    pub version: String,
    /// Versions the workers' images report.
    pub versions: Vec<String>,
    /// A live worker has its image and runs its jobs now. On a fresh
    /// machine the images build one after another; until a language's is
    /// built, jobs for it get 503 (while workers are up).
    pub ready: bool,
    pub aliases: Vec<String>,
    /// Compiled once per job before its runs.
    pub compiled: bool,
    /// The file a job's `code` is written to.
    pub source_file: String,
    /// Extensions of the files compiled together.
    pub extensions: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Languages {
    pub languages: Vec<LanguageView>,
}

/// The languages that can run, with their versions.
#[utoipa::path(get, path = "/v1/languages", tag = "languages",
    responses(
        (status = 200, description = "Every language", body = Languages),
        (status = 503, description = "Redis unavailable", body = ErrorBody),
    ))]
pub async fn languages(State(state): State<AppState>) -> Result<Json<Languages>, ApiError> {
    let mut reported = state.queue.language_versions().await?;
    let workers = state.queue.live_workers(crate::job::now_ms()).await?;
    let languages = state
        .languages
        .all()
        .iter()
        .map(|l| LanguageView {
            id: l.id.clone(),
            name: l.name.clone(),
            version: l.version.clone(),
            versions: reported.remove(&l.id).unwrap_or_default(),
            ready: workers.iter().any(|w| !w.missing_languages.contains(&l.id)),
            aliases: l.aliases.clone(),
            compiled: l.compile.is_some(),
            source_file: l.source_file.clone(),
            extensions: l.extensions.clone(),
        })
        .collect();
    Ok(Json(Languages { languages }))
}

/// 400 naming `callback_url` when a webhook could never be sent there: a
/// literal address, or a name resolving only to addresses, that webhooks
/// may not reach (the rule is applied again when it is sent).
pub(crate) async fn check_callback(
    state: &AppState,
    url: Option<&str>,
    prefix: &str,
) -> Result<(), ApiError> {
    let Some(url) = url else { return Ok(()) };
    match state.intake.callback_policy.resolve(url).await {
        Ok(_) => Ok(()),
        Err(why) => Err(ApiError::bad_field(
            format!("{prefix}callback_url"),
            format!("{prefix}callback_url cannot be used: {why}"),
        )),
    }
}

/// Enqueues a checked job; `true` when its idempotency key named an
/// existing job instead (which costs no submission).
///
/// An idempotency key is claimed before the job is queued and confirmed
/// after ([`crate::queue::cancel::IdempotencyClaim`]): a request racing the
/// first waits until the job exists (or the first failed, and the key is
/// free again), so no client is ever handed an id whose job is not there.
/// A key reused for a different request (its content hashed and kept with
/// the key) is refused with 422, as payment APIs refuse it.
async fn enqueue(
    state: &AppState,
    caller: &Caller,
    accepted: &AcceptedJob,
) -> Result<(Uuid, bool), ApiError> {
    let id = Uuid::new_v4();
    let job = (id, accepted.spec.clone(), accepted.priority);
    let Some(key) = &accepted.idempotency_key else {
        super::admission::queue_jobs(state, caller, vec![job], "").await?;
        return Ok((id, false));
    };
    // Keys are per caller: one key's idempotency key never names another's job.
    let key = format!("{}\u{0}{key}", accepted.spec.owner.as_deref().unwrap_or(""));
    let fingerprint = request_fingerprint(accepted);
    let deadline = tokio::time::Instant::now() + IDEMPOTENCY_WAIT;
    loop {
        match state
            .queue
            .claim_idempotency_key(&key, &id, &fingerprint)
            .await?
        {
            IdempotencyClaim::Claimed => break,
            IdempotencyClaim::Existing(existing) => return Ok((existing, true)),
            IdempotencyClaim::Conflict => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "this idempotency_key was used for a different request: a key names \
                     one request (send the same request again, or use a new key)",
                )
                .with_field("idempotency_key"));
            }
            IdempotencyClaim::Pending(pending) => {
                // Queued already, only not confirmed yet.
                if state.queue.get(&pending).await?.is_some() {
                    return Ok((pending, true));
                }
                if tokio::time::Instant::now() >= deadline {
                    let mut busy = ApiError::new(
                        StatusCode::CONFLICT,
                        "a request with this idempotency_key is still being queued; retry",
                    )
                    .with_field("idempotency_key");
                    busy.retry_after = Some(1);
                    return Err(busy);
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
    if let Err(e) = super::admission::queue_jobs(state, caller, vec![job], "").await {
        let _ = state
            .queue
            .release_idempotency_key(&key, &id, &fingerprint)
            .await;
        return Err(e);
    }
    // The job is queued whatever this answers: a racing request that finds
    // the claim still pending finds the job.
    let _ = state
        .queue
        .confirm_idempotency_key(&key, &id, &fingerprint)
        .await;
    Ok((id, false))
}

/// Longest a request waits for a racing request with its idempotency key
/// to queue the job.
const IDEMPOTENCY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What an idempotency key promises to repeat: the job as checked (its
/// priority too), without what differs between two sendings of one
/// request (when it came, its trace).
fn request_fingerprint(accepted: &AcceptedJob) -> String {
    use sha2::Digest;
    let mut spec = accepted.spec.clone();
    spec.submitted_at_ms = 0;
    spec.trace_id = None;
    let content = serde_json::to_vec(&(&spec, accepted.priority)).unwrap_or_default();
    hex::encode(sha2::Sha256::digest(&content))
}

pub(super) async fn view_of(
    state: &AppState,
    caller: &Caller,
    id: &Uuid,
) -> Result<JobView, ApiError> {
    let Some(loaded) = super::jobs::load(state, Some(caller), id).await? else {
        return Err(not_found(id));
    };
    let mut view = loaded.job.view();
    view.phase = loaded.phase;
    Ok(view)
}

fn accepted_response(status: StatusCode, id: &Uuid, state: PublicState) -> Response {
    (
        status,
        [(header::LOCATION, format!("/v1/jobs/{id}"))],
        Json(Created { id: *id, state }),
    )
        .into_response()
}

pub(super) fn job_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| ApiError::bad_field("id", "id must be a job id (a UUID)"))
}

pub(super) fn not_found(id: &Uuid) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no job with id {id} (it may have been removed after its retention)"),
    )
    .with_field("id")
}

fn state_name(state: PublicState) -> &'static str {
    match state {
        PublicState::Waiting => "waiting",
        PublicState::Active => "active",
        PublicState::Completed => "completed",
        PublicState::Failed => "failed",
        PublicState::Cancelled => "cancelled",
    }
}
