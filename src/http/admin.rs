//! The admin listener: the dashboard at `/admin/queues` (HTML, CSS and JS
//! built into the binary), the JSON API behind every view of it
//! (`/admin/api/...`, described at `/admin/openapi.json`), live updates
//! over Server-Sent Events, and `/v1/stats`, `/v1/workers`.
//!
//! Loopback by default. Off loopback it requires the admin token, sent as
//! `Authorization: Bearer <token>` or, for the page and its event stream
//! (browsers cannot set headers there), as `?token=`; the service refuses to
//! start otherwise.
//!
//! Browsers on the operator's machine reach loopback too, so every request
//! must name this listener in `Host` (an address, `localhost`, or a name in
//! `CODE_RUNNER_ADMIN_HOSTS`): a DNS-rebinding page names its own domain.
//! A request that carries an `Origin` must come from this listener's own
//! page: a cross-site form or script (CSRF) is refused (see `origin.rs`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use utoipa::OpenApi;
use uuid::Uuid;

use super::error::{self, ApiError, ErrorBody, PathText};
use super::origin::{self, BrowserPolicy};
use super::{AppState, health, observe};
use crate::actors::registry::LiveJob;
use crate::actors::supervisor::SupervisorMsg;
use crate::job::{JobResult, JobSpec, Verdict, now_ms};
use crate::queue::admin::{JobFilter, JobPage, LIST_STATES, Overview};
use crate::queue::cancel::CancelOutcome;
use crate::queue::{JobView, PublicState};
use crate::status::{RestartRecord, WorkerInfo};

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const APP_CSS: &str = include_str!("dashboard/app.css");

/// How often the event stream pushes a fresh overview and actor tree.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(2);
/// Closest two pushes of the overview come, however many jobs move.
const SNAPSHOT_THROTTLE: Duration = Duration::from_millis(300);
const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// The admin token's SHA-256, compared instead of the token itself.
#[derive(Clone)]
struct AdminToken(Option<Arc<[u8; 32]>>);

pub fn admin_router(state: AppState, token: Option<&str>, hosts: &[String]) -> Router {
    let token = AdminToken(token.map(|t| Arc::new(Sha256::digest(t.as_bytes()).into())));
    let browser = Arc::new(BrowserPolicy::admin(hosts));
    Router::new()
        .route("/admin/queues", get(page))
        .route("/admin/assets/app.js", get(app_js))
        .route("/admin/assets/app.css", get(app_css))
        .route("/admin/openapi.json", get(openapi_json))
        .route("/admin/api/overview", get(overview))
        .route("/admin/api/jobs", get(list_jobs))
        .route("/admin/api/jobs/retry-failed", post(retry_all_failed))
        .route("/admin/api/jobs/{id}", get(job_detail).delete(remove_job))
        .route("/admin/api/jobs/{id}/retry", post(retry_job))
        .route("/admin/api/jobs/{id}/cancel", post(cancel_job))
        .route("/admin/api/clean", post(clean))
        .route("/admin/api/queue/pause", post(pause))
        .route("/admin/api/queue/resume", post(resume))
        .route("/admin/api/actors", get(actors))
        .route("/admin/api/system", get(system))
        .route("/admin/api/events", get(events))
        .route("/v1/stats", get(health::stats))
        .route("/v1/workers", get(health::workers))
        .route("/metrics", get(observe::metrics))
        .route_layer(axum::middleware::from_fn_with_state(token, require_token))
        .route("/healthz", get(health::healthz))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(browser, origin::guard))
        .layer(axum::middleware::from_fn(observe::track))
        .with_state(state)
}

async fn require_token(
    State(token): State<AdminToken>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let AdminToken(Some(expected)) = &token {
        let from_header = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string());
        // A token in the query (the dashboard's event stream cannot send
        // headers); a query that does not parse holds none.
        let from_query = Query::<HashMap<String, String>>::try_from_uri(request.uri())
            .ok()
            .and_then(|Query(mut query)| query.remove("token"));
        let presented = from_header
            .or(from_query)
            .map(|t| -> [u8; 32] { Sha256::digest(t.as_bytes()).into() });
        if presented.as_ref() != Some(&**expected) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "the admin token is needed: send Authorization: Bearer <token>",
            ));
        }
    }
    Ok(next.run(request).await)
}

async fn page() -> Html<&'static str> {
    Html(INDEX_HTML)
}

async fn app_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
}

async fn app_css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS)
}

/// Counts per state, queue paused or not, jobs per minute, latency
/// percentiles.
#[utoipa::path(get, path = "/admin/api/overview", tag = "dashboard",
    responses((status = 200, body = Overview), (status = 503, body = ErrorBody)))]
async fn overview(State(state): State<AppState>) -> Result<Json<Overview>, ApiError> {
    Ok(Json(state.queue.overview().await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct ListQuery {
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
async fn list_jobs(
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
struct JobDetail {
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
async fn job_detail(
    State(state): State<AppState>,
    PathText(id, _): PathText<ApiError>,
) -> Result<Json<JobDetail>, ApiError> {
    let id = job_id(&id)?;
    let Some(super::jobs::LoadedJob { job, phase, live }) =
        super::jobs::load(&state, None, &id).await?
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
struct Done {
    /// What was done.
    done: String,
    /// How many jobs it concerned.
    count: u64,
}

/// Moves a failed job back to the queue.
#[utoipa::path(post, path = "/admin/api/jobs/{id}/retry", tag = "dashboard",
    params(("id" = String, Path)),
    responses((status = 200, body = Done), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn retry_job(
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
async fn retry_all_failed(State(state): State<AppState>) -> Result<Json<Done>, ApiError> {
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
async fn cancel_job(
    State(state): State<AppState>,
    PathText(id, _): PathText<ApiError>,
) -> Result<Json<Done>, ApiError> {
    let id = job_id(&id)?;
    let acted = match state.queue.cancel(&id).await? {
        CancelOutcome::NotFound => Acted::NotFound,
        CancelOutcome::Finished(_) => Acted::Conflict,
        CancelOutcome::Removed | CancelOutcome::Signalled => Acted::Done,
    };
    acted.answer(&id, "cancelled", "the job had already ended")
}

/// Removes a job that is not running.
#[utoipa::path(delete, path = "/admin/api/jobs/{id}", tag = "dashboard",
    params(("id" = String, Path)),
    responses((status = 200, body = Done), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn remove_job(
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
struct CleanRequest {
    /// `completed` or `failed`.
    state: String,
    /// Only jobs finished longer ago than this, in seconds.
    older_than_secs: u64,
}

/// Removes completed or failed jobs older than an age.
#[utoipa::path(post, path = "/admin/api/clean", tag = "dashboard", request_body = CleanRequest,
    responses((status = 200, body = Done), (status = 400, body = ErrorBody)))]
async fn clean(
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
async fn pause(State(state): State<AppState>) -> Result<Json<Done>, ApiError> {
    state.queue.pause().await?;
    Ok(Json(Done {
        done: "paused".into(),
        count: 0,
    }))
}

/// Lets workers take jobs again.
#[utoipa::path(post, path = "/admin/api/queue/resume", tag = "dashboard",
    responses((status = 200, body = Done)))]
async fn resume(State(state): State<AppState>) -> Result<Json<Done>, ApiError> {
    state.queue.resume().await?;
    Ok(Json(Done {
        done: "resumed".into(),
        count: 0,
    }))
}

/// An actor of the tree.
#[derive(Serialize, utoipa::ToSchema)]
struct ActorNode {
    /// Supervisor, JobRegistry, Dispatcher, ContainerRunner.
    kind: String,
    alive: bool,
    /// What it is about: the worker of a dispatcher, the job of a runner.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(no_recursion)]
    children: Vec<ActorNode>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Actors {
    /// This process's tree.
    tree: ActorNode,
    /// Restarts per supervised actor of this process.
    restarts: std::collections::BTreeMap<String, RestartRecord>,
    /// Every live worker (any process), from its heartbeat: its cap, its
    /// runners and their phase, its restarts.
    #[schema(value_type = Vec<Object>)]
    workers: Vec<WorkerInfo>,
}

/// The supervisor tree as it is now, and every live worker.
#[utoipa::path(get, path = "/admin/api/actors", tag = "dashboard",
    responses((status = 200, body = Actors)))]
async fn actors(State(state): State<AppState>) -> Result<Json<Actors>, ApiError> {
    Ok(Json(actor_tree(&state).await?))
}

async fn actor_tree(state: &AppState) -> Result<Actors, ApiError> {
    let now = now_ms();
    let snapshot = state.registry.snapshot().await;
    let dispatcher = match &state.local.supervisor {
        Some(supervisor) => matches!(
            supervisor
                .call(SupervisorMsg::Dispatcher, Some(CALL_TIMEOUT))
                .await,
            Ok(ractor::rpc::CallResult::Success(Some(_)))
        ),
        None => false,
    };
    let restarts = match &state.local.supervisor {
        Some(supervisor) => match supervisor
            .call(SupervisorMsg::Restarts, Some(CALL_TIMEOUT))
            .await
        {
            Ok(ractor::rpc::CallResult::Success(r)) => r,
            _ => Default::default(),
        },
        None => Default::default(),
    };
    let mut children = vec![ActorNode {
        kind: "JobRegistry".into(),
        alive: snapshot.is_some(),
        detail: None,
        children: Vec::new(),
    }];
    if let Some((worker_id, cap)) = &state.local.worker {
        let runners = snapshot
            .as_ref()
            .map(|s| {
                s.in_flight
                    .iter()
                    .filter(|j| &j.worker_id == worker_id)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            .map(|job| ActorNode {
                kind: "ContainerRunner".into(),
                alive: true,
                detail: Some(json!({
                    "job_id": job.job_id,
                    "language": job.language,
                    "phase": job.phase,
                    "container_id": job.container_id,
                    "running_ms": now.saturating_sub(job.claimed_at_ms),
                })),
                children: Vec::new(),
            })
            .collect::<Vec<_>>();
        children.push(ActorNode {
            kind: "Dispatcher".into(),
            alive: dispatcher,
            detail: Some(
                json!({ "worker_id": worker_id, "cap": cap, "slots_in_use": runners.len() }),
            ),
            children: runners,
        });
    }
    Ok(Actors {
        tree: ActorNode {
            kind: "Supervisor".into(),
            alive: state.local.supervisor.is_some(),
            detail: None,
            children,
        },
        restarts,
        workers: state.queue.live_workers(now).await?,
    })
}

/// Redis and Docker health and versions, images per language, runtimes.
#[utoipa::path(get, path = "/admin/api/system", tag = "dashboard",
    responses((status = 200, description = "`{redis, docker, runtime, languages}`")))]
async fn system(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let redis = match state.queue.redis_version().await {
        Ok(version) => json!({ "ok": true, "version": version }),
        Err(e) => json!({ "ok": false, "error": e.to_string() }),
    };
    let mut images = HashMap::new();
    let docker = match &state.local.sandbox {
        None => json!({ "ok": null, "note": "this process runs no jobs; see the workers" }),
        Some(sandbox) => {
            match tokio::time::timeout(Duration::from_secs(2), sandbox.engine_info()).await {
                Ok(Ok(info)) => {
                    // One look per image (several languages share one).
                    for language in state.languages.all() {
                        if !images.contains_key(&language.image) {
                            let present = sandbox.image_versions(&language.image).await;
                            images.insert(language.image.clone(), present.ok().flatten().is_some());
                        }
                    }
                    json!({ "ok": true, "version": info.version, "api_version": info.api_version })
                }
                Ok(Err(e)) => json!({ "ok": false, "error": e.to_string() }),
                Err(_) => json!({ "ok": false, "error": "no answer in time" }),
            }
        }
    };
    let reported = state.queue.language_versions().await.unwrap_or_default();
    let languages: Vec<Value> = state
        .languages
        .all()
        .iter()
        .map(|l| {
            json!({
                "id": l.id,
                "image": crate::sandbox::image_name(&state.local.image_prefix, &l.image),
                "declared_version": l.version,
                // Present on this process's engine (when it runs jobs).
                "image_here": images.get(&l.image).copied(),
                "versions_reported": reported.get(&l.id).cloned().unwrap_or_default(),
                "runtime": l.runtime.clone().or(state.local.runtime.clone()).unwrap_or_else(|| "runc".into()),
            })
        })
        .collect();
    let workers = state.queue.live_workers(now_ms()).await.unwrap_or_default();
    Ok(Json(json!({
        "redis": redis,
        "docker": docker,
        "runtime": state.local.runtime.clone().unwrap_or_else(|| "runc (the engine's default)".into()),
        "languages": languages,
        "workers_engines": workers.iter().map(|w| json!({ "id": w.id, "host": w.host, "engine_ok": w.engine_ok })).collect::<Vec<_>>(),
    })))
}

/// Live updates: `job` events as the queue's event stream has them (from
/// any worker), and `overview` and `actors` snapshots after activity and
/// every two seconds.
#[utoipa::path(get, path = "/admin/api/events", tag = "dashboard",
    responses((status = 200, description = "text/event-stream")))]
async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    struct Feed {
        state: AppState,
        activity: tokio::sync::broadcast::Receiver<crate::queue::events::QueueActivity>,
        ticker: tokio::time::Interval,
        last_snapshot: Option<tokio::time::Instant>,
        pending: std::collections::VecDeque<Event>,
    }
    let feed = Feed {
        activity: state.events.activity(),
        state,
        ticker: tokio::time::interval(SNAPSHOT_EVERY),
        last_snapshot: None,
        pending: std::collections::VecDeque::new(),
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        loop {
            if let Some(event) = feed.pending.pop_front() {
                return Some((Ok(event), feed));
            }
            let snapshot_due = tokio::select! {
                received = feed.activity.recv() => match received {
                    Ok(activity) => {
                        let event = Event::default().event("job").json_data(&activity).unwrap_or_default();
                        feed.pending.push_back(event);
                        feed.last_snapshot.is_none_or(|t| t.elapsed() >= SNAPSHOT_THROTTLE)
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        tokio::time::sleep(SNAPSHOT_EVERY).await;
                        true
                    }
                },
                _ = feed.ticker.tick() => true,
            };
            if snapshot_due {
                feed.last_snapshot = Some(tokio::time::Instant::now());
                if let Ok(actors) = actor_tree(&feed.state).await {
                    feed.pending.push_back(
                        Event::default()
                            .event("actors")
                            .json_data(&actors)
                            .unwrap_or_default(),
                    );
                }
                if let Ok(overview) = feed.state.queue.overview().await {
                    feed.pending.push_back(
                        Event::default()
                            .event("overview")
                            .json_data(&overview)
                            .unwrap_or_default(),
                    );
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "code-runner admin",
        description = "The dashboard's JSON API, on the admin listener."
    ),
    paths(
        overview,
        list_jobs,
        job_detail,
        retry_job,
        retry_all_failed,
        cancel_job,
        remove_job,
        clean,
        pause,
        resume,
        actors,
        system,
        events
    ),
    components(schemas(JobView, JobResult, PublicState))
)]
struct AdminDoc;

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(AdminDoc::openapi())
}

fn job_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| ApiError::bad_field("id", "id must be a job id (a UUID)"))
}

/// What an action on one job did.
enum Acted {
    Done,
    NotFound,
    /// The job's state does not allow it.
    Conflict,
}

/// `act` on job `id` when it is stored: `Done` when it did, `Conflict`
/// when the job's state does not allow it (`act` answered false).
async fn act_on_stored(
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

fn not_found(id: &Uuid) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no job with id {id}")).with_field("id")
}
