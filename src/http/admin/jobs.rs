//! The dashboard's job views and actions: the overview, a state's page of
//! jobs, one job's detail, and retry, cancel, remove, clean, pause, resume.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::actors::registry::LiveJob;
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody, PathText};
use crate::job::{JobResult, JobSpec, Verdict};
use crate::queue::JobView;
use crate::queue::admin::{JobFilter, JobPage, LIST_STATES, Overview};
use crate::queue::cancel::CancelOutcome;

/// Counts per state, queue paused or not, jobs per minute, latency
/// percentiles.
#[utoipa::path(get, path = "/admin/api/overview", tag = "dashboard",
    responses((status = 200, body = Overview), (status = 503, body = ErrorBody)))]
pub(super) async fn overview(State(state): State<AppState>) -> Result<Json<Overview>, ApiError> {
    Ok(Json(state.queue.overview().await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// waiting, active, completed, failed, delayed or cancelled.
    state: Option<String>,
    /// From 1.
    page: Option<usize>,
    /// 1 to 200 (default 20).
    page_size: Option<usize>,
    /// A language id.
    language: Option<String>,
    /// A verdict (completed jobs).
    verdict: Option<String>,
    /// Submitted at or after (ms since the Unix epoch).
    since_ms: Option<u64>,
    /// Submitted at or before.
    until_ms: Option<u64>,
    /// The admin token, for browsers (read by the token check).
    #[allow(dead_code)]
    token: Option<String>,
}

/// A page of the jobs in one state, newest first, with filters.
#[utoipa::path(get, path = "/admin/api/jobs", tag = "dashboard", params(ListQuery),
    responses((status = 200, body = JobPage), (status = 400, body = ErrorBody)))]
pub(super) async fn list_jobs(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobPage>, ApiError> {
    let Query(query) = query.map_err(|e| {
        let text = e.body_text();
        // "unknown field `x`, ..." or "<field>: invalid digit ...".
        let detail = text.split("query string: ").nth(1).unwrap_or(&text);
        let field = detail
            .split('`')
            .nth(1)
            .or_else(|| detail.split(':').next().filter(|f| !f.contains(' ')))
            .unwrap_or("query")
            .to_string();
        ApiError::bad_field(field, text)
    })?;
    let list_state = query.state.unwrap_or_else(|| "waiting".into());
    if !LIST_STATES.contains(&list_state.as_str()) {
        return Err(ApiError::bad_field(
            "state",
            format!("state must be one of {}", LIST_STATES.join(", ")),
        ));
    }
    let page = query.page.unwrap_or(1);
    if page == 0 {
        return Err(ApiError::bad_field("page", "page starts at 1"));
    }
    let page_size = query.page_size.unwrap_or(20);
    if !(1..=200).contains(&page_size) {
        return Err(ApiError::bad_field(
            "page_size",
            "page_size must be 1 to 200",
        ));
    }
    if let Some(language) = &query.language
        && state.languages.find(language).is_none()
    {
        return Err(ApiError::bad_field(
            "language",
            format!("unknown language {language:?}"),
        ));
    }
    let language = query
        .language
        .as_deref()
        .and_then(|l| state.languages.find(l))
        .map(|l| l.id.clone());
    if let Some(verdict) = &query.verdict
        && serde_json::from_value::<Verdict>(json!(verdict)).is_err()
    {
        return Err(ApiError::bad_field(
            "verdict",
            format!("unknown verdict {verdict:?}"),
        ));
    }
    let filter = JobFilter {
        language,
        verdict: query.verdict,
        since_ms: query.since_ms,
        until_ms: query.until_ms,
    };
    Ok(Json(
        state
            .queue
            .list_jobs(&list_state, page, page_size, &filter)
            .await?,
    ))
}

/// A job with everything about it.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct JobDetail {
    #[serde(flatten)]
    view: JobView,
    /// The job as submitted: code, files, stdin, arguments, limits.
    spec: Option<JobSpec>,
    /// The worker that ran it (last).
    worker_id: Option<String>,
    /// Its phase now, when a runner of this process runs it.
    live: Option<LiveJob>,
}

/// Everything about one job: code, inputs, limits, outputs, verdict,
/// figures, attempts, the worker and containers, its phase timeline.
#[utoipa::path(get, path = "/admin/api/jobs/{id}", tag = "dashboard",
    params(("id" = String, Path)),
    responses((status = 200, body = JobDetail), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn job_detail(
    State(state): State<AppState>,
    PathText(id, _): PathText<ApiError>,
) -> Result<Json<JobDetail>, ApiError> {
    let id = job_id(&id)?;
    let Some(crate::http::jobs::LoadedJob { job, phase, live }) =
        crate::http::jobs::load(&state, None, &id).await?
    else {
        return Err(not_found(&id));
    };
    let mut view = job.view();
    view.phase = phase;
    Ok(Json(JobDetail {
        worker_id: job
            .result
            .as_ref()
            .map(|r: &JobResult| r.worker_id.clone())
            .filter(|w| !w.is_empty())
            .or(job.processed_by.clone()),
        spec: job.spec,
        view,
        live,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Done {
    /// What was done.
    done: String,
    /// How many jobs it concerned.
    count: u64,
}

/// Moves a failed job back to the queue.
#[utoipa::path(post, path = "/admin/api/jobs/{id}/retry", tag = "dashboard",
    params(("id" = String, Path)),
    responses((status = 200, body = Done), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn retry_job(
    State(state): State<AppState>,
    PathText(id, _): PathText<ApiError>,
) -> Result<Json<Done>, ApiError> {
    let id = job_id(&id)?;
    act_on_stored(&state, &id, async |id| {
        state.queue.retry_failed_job(id).await
    })
    .await?
    .answer(&id, "retried", "only a failed job can be retried")
}

/// Moves every failed job back to the queue.
#[utoipa::path(post, path = "/admin/api/jobs/retry-failed", tag = "dashboard",
    responses((status = 200, body = Done)))]
pub(super) async fn retry_all_failed(
    State(state): State<AppState>,
) -> Result<Json<Done>, ApiError> {
    let count = state.queue.retry_all_failed().await?;
    Ok(Json(Done {
        done: "retried".into(),
        count,
    }))
}

/// Cancels a job: a waiting one never runs, a running one is killed.
#[utoipa::path(post, path = "/admin/api/jobs/{id}/cancel", tag = "dashboard",
    params(("id" = String, Path)),
    responses((status = 200, body = Done), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn cancel_job(
    State(state): State<AppState>,
    PathText(id, _): PathText<ApiError>,
) -> Result<Json<Done>, ApiError> {
    let id = job_id(&id)?;
    let acted = match crate::ending::cancel(&state.queue, &id).await? {
        CancelOutcome::NotFound => Acted::NotFound,
        CancelOutcome::Finished(_) => Acted::Conflict,
        CancelOutcome::Removed(_) | CancelOutcome::Signalled => Acted::Done,
    };
    acted.answer(&id, "cancelled", "the job had already ended")
}

/// Removes a job that is not running.
#[utoipa::path(delete, path = "/admin/api/jobs/{id}", tag = "dashboard",
    params(("id" = String, Path)),
    responses((status = 200, body = Done), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn remove_job(
    State(state): State<AppState>,
    PathText(id, _): PathText<ApiError>,
) -> Result<Json<Done>, ApiError> {
    let id = job_id(&id)?;
    act_on_stored(&state, &id, async |id| state.queue.remove_job(id).await)
        .await?
        .answer(&id, "removed", "the job is running: cancel it first")
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CleanRequest {
    /// `completed` or `failed`.
    state: String,
    /// Only jobs finished longer ago than this, in seconds.
    older_than_secs: u64,
}

/// Removes completed or failed jobs older than an age.
#[utoipa::path(post, path = "/admin/api/clean", tag = "dashboard", request_body = CleanRequest,
    responses((status = 200, body = Done), (status = 400, body = ErrorBody)))]
pub(super) async fn clean(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Done>, ApiError> {
    let request: CleanRequest = state.intake.bodies.read_json(&headers, body, 4096).await?;
    if !matches!(request.state.as_str(), "completed" | "failed") {
        return Err(ApiError::bad_field(
            "state",
            "state must be completed or failed",
        ));
    }
    let count = state
        .queue
        .clean(&request.state, request.older_than_secs)
        .await? as u64;
    Ok(Json(Done {
        done: format!("cleaned {}", request.state),
        count,
    }))
}

/// Stops every worker from taking jobs (running ones finish).
#[utoipa::path(post, path = "/admin/api/queue/pause", tag = "dashboard",
    responses((status = 200, body = Done)))]
pub(super) async fn pause(State(state): State<AppState>) -> Result<Json<Done>, ApiError> {
    state.queue.pause().await?;
    Ok(Json(Done {
        done: "paused".into(),
        count: 0,
    }))
}

/// Lets workers take jobs again.
#[utoipa::path(post, path = "/admin/api/queue/resume", tag = "dashboard",
    responses((status = 200, body = Done)))]
pub(super) async fn resume(State(state): State<AppState>) -> Result<Json<Done>, ApiError> {
    state.queue.resume().await?;
    Ok(Json(Done {
        done: "resumed".into(),
        count: 0,
    }))
}

pub(super) fn job_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| ApiError::bad_field("id", "id must be a job id (a UUID)"))
}

/// What an action on one job did.
pub(super) enum Acted {
    Done,
    NotFound,
    /// The job's state does not allow it.
    Conflict,
}

/// `act` on job `id` when it is stored: `Done` when it did, `Conflict`
/// when the job's state does not allow it (`act` answered false).
pub(super) async fn act_on_stored(
    state: &AppState,
    id: &Uuid,
    act: impl AsyncFnOnce(&str) -> Result<bool, crate::queue::QueueError>,
) -> Result<Acted, ApiError> {
    if state.queue.get(id).await?.is_none() {
        return Ok(Acted::NotFound);
    }
    Ok(if act(&id.to_string()).await? {
        Acted::Done
    } else {
        Acted::Conflict
    })
}

impl Acted {
    /// 200 `{done, count: 1}`, 404, or 409 with `conflict`.
    fn answer(self, id: &Uuid, done: &str, conflict: &str) -> Result<Json<Done>, ApiError> {
        match self {
            Acted::Done => Ok(Json(Done {
                done: done.into(),
                count: 1,
            })),
            Acted::NotFound => Err(not_found(id)),
            Acted::Conflict => Err(ApiError::new(StatusCode::CONFLICT, conflict).with_field("id")),
        }
    }
}

pub(super) fn not_found(id: &Uuid) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no job with id {id}")).with_field("id")
}
