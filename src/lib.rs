//! code-runner: runs untrusted code submitted over HTTP inside throwaway,
//! hardened Docker containers.
//!
//! # Layout
//!
//! - [`callback`]: webhooks (signed POSTs of finished jobs, retried).
//! - [`compat`]: other code runners' APIs (Judge0) translated to and from
//!   jobs: pure functions the HTTP handlers and webhooks use.
//! - [`config`]: the one [`Config`](config::Config) type, read from flags and
//!   `CODE_RUNNER_*` environment variables.
//! - [`job`]: the job model shared by every part: what a client submits
//!   ([`JobSpec`](job::JobSpec)) and the [`JobResult`](job::JobResult) with
//!   its verdict.
//! - [`limits`]: every rule about a job's limits, in one place.
//! - [`backoff`]: delays between retries.
//! - [`language`]: the language table (a data file, `docker/languages.toml`).
//! - [`execute`]: one job's compile-then-run over the sandbox, and verdicts.
//! - [`queue`]: the Redis side, and the only module that talks to Redis:
//!   enqueue, job state and results, the BullMQ worker that claims jobs,
//!   worker heartbeats, and the embedded `redis-server` fallback.
//! - [`sandbox`]: the Docker side, and the only module that talks to the
//!   engine: the hardened container spec, one container's run lifecycle,
//!   the warm pool, and listing and removing labelled containers.
//! - [`actors`]: the ractor tree: `Supervisor` → `JobRegistry` and
//!   `Dispatcher` → its `Sweeper` and one `ContainerRunner` per job.
//! - [`http`]: the axum routers (the proof of concept's API, health checks,
//!   stats) and their one error type.
//! - [`status`]: what a worker says about itself in its heartbeat.
//! - [`app`]: wires the parts together for the `serve`, `api` and `worker`
//!   roles, and exposes the bound address so tests can start it on port 0.

pub mod actors;
pub mod app;
pub mod backoff;
pub mod callback;
pub mod compare;
pub mod compat;
pub mod config;
pub mod ending;
pub mod execute;
pub mod http;
pub mod job;
pub mod language;
pub mod limits;
pub mod metrics;
pub mod queue;
pub mod sandbox;
pub mod status;
pub mod telemetry;
