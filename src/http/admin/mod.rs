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

mod actors;
mod jobs;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use sha2::{Digest, Sha256};
use utoipa::OpenApi;

use super::error::{self, ApiError};
use super::origin::{self, BrowserPolicy};
use super::{AppState, health, observe};
use crate::job::JobResult;
use crate::queue::{JobView, PublicState};

use actors::*;
use jobs::*;

const INDEX_HTML: &str = include_str!("../dashboard/index.html");

const APP_JS: &str = include_str!("../dashboard/app.js");

const APP_CSS: &str = include_str!("../dashboard/app.css");

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
