//! The HTTP side (axum). [`router`] builds the whole application from an
//! [`AppState`], separate from any socket, so tests can drive it directly.
//!
//! - [`api`]: the proof of concept's API, `POST /run` and `GET /status/{jobId}`.
//! - [`v1`]: the versioned API (`/v1/jobs`, `/v1/languages`), its requests
//!   checked in [`request`].
//! - [`health`]: `GET /healthz`, `GET /readyz`, `GET /v1/stats`.
//! - [`auth`]: API keys, job ownership, per-key rate limits.
//! - [`compat`]: Judge0 CE's API (`/submissions`, `/languages`, ...) and
//!   Piston's (`/api/v2/...`), translated by [`crate::compat`] into jobs.
//! - [`admin`]: the admin listener (stats, the dashboard), loopback by default.
//! - [`origin`]: what a web browser may do with either listener (`Host` and
//!   `Origin` checked before anything else, CORS for listed origins).
//! - [`error`]: the one error type, JSON bodies for every 4xx/5xx.
//! - [`openapi`]: the OpenAPI document, generated from these types.
//! - [`serve`]: the listeners: header, body and idle timeouts, connection caps.
//!
//! **Invariant:** handlers never talk to Docker for a job and never hold job
//! state: they enqueue into Redis and read back from Redis (or from the
//! `JobRegistry` for a job in flight in this process).

pub mod admin;
pub mod admission;
pub mod api;
pub mod auth;
pub mod body;
pub mod compat;
pub mod error;
pub mod health;
pub mod jobs;
pub mod live;
pub mod observe;
pub mod openapi;
pub mod origin;
pub mod playground;
pub mod query;
pub mod request;
pub mod serve;
pub mod v1;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use ractor::ActorRef;

use self::compat::{judge0, piston};
use crate::actors::RegistryHandle;
use crate::actors::supervisor::SupervisorMsg;
use crate::language::LanguageTable;
use crate::limits::Limits;
use crate::queue::events::JobEvents;
use crate::queue::{EnqueueOptions, JobQueue};
use crate::status::EngineView;

/// What every handler may use. Cheap to clone (all shared handles).
#[derive(Clone)]
pub struct AppState {
    pub queue: JobQueue,
    pub registry: RegistryHandle,
    pub languages: Arc<LanguageTable>,
    /// Wakes requests waiting for jobs to finish.
    pub events: Arc<JobEvents>,
    /// What a submission may be and who may make it.
    pub intake: Arc<Intake>,
    /// This process's own worker side, for health and the dashboard.
    pub local: LocalView,
}

impl AppState {
    /// What `request::check` checks a job request against; `versions`:
    /// the versions workers reported, by language.
    pub fn request_rules<'a>(
        &'a self,
        versions: &'a std::collections::HashMap<String, Vec<String>>,
    ) -> request::RequestRules<'a> {
        request::RequestRules {
            languages: &self.languages,
            versions,
            max_limits: &self.intake.max_limits,
            max_code_bytes: self.intake.max_code_bytes,
            max_test_cases: self.intake.max_test_cases,
        }
    }
}

/// The rules a submission meets before it is queued.
pub struct Intake {
    /// Limits of a job that asks for none (before its language's overrides).
    pub default_limits: Limits,
    /// The most a job may ask for.
    pub max_limits: Limits,
    /// Largest accepted `code`, in bytes.
    pub max_code_bytes: usize,
    pub max_test_cases: usize,
    pub max_batch: usize,
    /// Largest `POST /v1/jobs/batch` body, in bytes.
    pub max_batch_bytes: usize,
    /// Longest `?wait=true` holds a request.
    pub max_wait: std::time::Duration,
    /// Who may use the job API, and how much.
    pub access: auth::AccessPolicy,
    /// Most jobs waiting before submissions get 429.
    pub max_queue_depth: u64,
    /// The waiting count as last read, shared by this process's requests.
    pub depth: admission::QueueDepth,
    /// The languages no live worker has the image of, as last read.
    pub unready: admission::UnreadyLanguages,
    /// Whether Redis holds its memory budget, as last read.
    pub redis_room: admission::RedisRoom,
    pub enqueue: EnqueueOptions,
    /// Where a job's `callback_url` may point.
    pub callback_policy: Arc<crate::callback::policy::DestinationPolicy>,
    /// Reads request bodies: their timeout, and the process's budget of
    /// bytes being read at once.
    pub bodies: body::BodyReader,
    /// Attempts at each webhook (Judge0's `callbacks_max_tries`).
    pub callback_attempts: u32,
    /// What a web browser may do with the job API.
    pub browser: Arc<origin::BrowserPolicy>,
}

impl Intake {
    /// Judge0's configuration variables, from these rules.
    pub fn judge0_settings(&self) -> crate::compat::judge0::Settings {
        crate::compat::judge0::Settings::new(
            &self.default_limits,
            &self.max_limits,
            self.max_test_cases,
            self.max_queue_depth,
            self.max_batch,
            self.callback_attempts,
            self.max_code_bytes,
        )
    }
}

/// What this process runs besides its listeners.
#[derive(Clone)]
pub struct LocalView {
    /// The engine as this process's worker publishes it, in processes that
    /// run jobs (`/readyz`, the system view, `/metrics`).
    pub engine: Option<Arc<dyn EngineView>>,
    /// The actor tree's root, for restart counts in `/v1/stats`.
    pub supervisor: Option<ActorRef<SupervisorMsg>>,
    /// This process's worker (id, concurrency cap), when it runs jobs.
    pub worker: Option<(String, u32)>,
    /// The configured OCI runtime, for the dashboard.
    pub runtime: Option<String>,
    /// Images are `<image_prefix>/<language image>:latest`.
    pub image_prefix: String,
}

/// The public listener: the job API (behind keys and rate limits when
/// configured), languages, health, the OpenAPI document and the playground.
pub fn router(state: AppState) -> Router {
    let jobs = Router::new()
        .route("/run", post(api::run))
        .route("/status/{job_id}", get(api::status))
        .route("/v1/jobs", post(v1::create_job))
        .route("/v1/jobs/batch", post(v1::create_batch))
        .route("/v1/jobs/{id}", get(v1::get_job).delete(v1::cancel_job))
        .route("/v1/jobs/{id}/events", get(live::events))
        .route("/v1/jobs/{id}/stream", get(live::stream))
        .route("/v1/jobs/{id}/input", post(live::input))
        .route("/v1/stream", get(live::stream_new))
        .route("/submissions", post(judge0::create))
        .route(
            "/submissions/batch",
            get(judge0::batch_show).post(judge0::batch_create),
        )
        .route(
            "/submissions/{token}",
            get(judge0::show).delete(judge0::destroy),
        )
        .route("/api/v2/execute", post(piston::execute))
        .route("/api/v2/connect", get(piston::connect))
        .route("/api/v2/piston/connect", get(piston::connect))
        .route("/api/v2/piston/execute", post(piston::execute))
        .route("/workers", get(judge0::workers))
        .route("/system_info", get(judge0::system_info))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ));
    Router::new()
        .merge(jobs)
        .route("/", get(playground::page))
        .route("/playground", get(playground::page))
        .route("/playground/app.js", get(playground::app_js))
        .route("/playground/app.css", get(playground::app_css))
        .route("/playground/vendor/codejar.js", get(playground::codejar_js))
        .route(
            "/playground/vendor/codejar-linenumbers.js",
            get(playground::line_numbers_js),
        )
        .route(
            "/playground/vendor/codejar-linenumbers.css",
            get(playground::line_numbers_css),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/v1/languages", get(v1::languages))
        .route("/languages", get(judge0::languages))
        .route("/languages/all", get(judge0::all_languages))
        .route("/languages/{id}", get(judge0::language))
        .route("/statuses", get(judge0::statuses))
        .route("/about", get(judge0::about))
        .route("/version", get(judge0::version))
        .route("/config_info", get(judge0::config_info))
        .route("/api/v2/runtimes", get(piston::runtimes))
        .route("/api/v2/piston/runtimes", get(piston::runtimes))
        .route(
            "/api/v2/packages",
            get(piston::packages)
                .post(piston::manage_packages)
                .delete(piston::remove_packages),
        )
        .route(
            "/api/v2/packages/{language}/{version}",
            post(piston::manage_packages).delete(piston::remove_packages),
        )
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(origin::cors_layer(state.intake.browser.cors_origins()))
        .layer(axum::middleware::from_fn_with_state(
            state.intake.browser.clone(),
            origin::guard,
        ))
        .layer(axum::middleware::from_fn(observe::track))
        .with_state(state)
}
