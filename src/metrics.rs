//! Prometheus metrics: the process-wide recorder (`metrics` facade +
//! `metrics-exporter-prometheus`), every metric's name and help in one
//! place, and the helpers the code records through. Rendered by
//! `GET /metrics` on the admin listener, which also sets the gauges read at
//! scrape time (jobs by state from Redis, live workers, the warm pool).
//!
//! Conventions: names start `code_runner_`, counters end `_total`, durations
//! are `_seconds` histograms, sizes `_bytes`; labels are low-cardinality
//! (language, verdict, phase, route, kind): never a job id or user text.
//! Each label takes its values from a closed set: a language is one of the
//! table's ids (else `other`: a job added to the queue by another producer
//! may name anything), a verdict one of the enum's, a route one of the
//! routers' patterns, a method one of HTTP's (see `http::observe`).

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const JOBS: &str = "code_runner_jobs";
pub const JOBS_FINISHED: &str = "code_runner_jobs_finished_total";
pub const QUEUE_WAIT: &str = "code_runner_queue_wait_seconds";
pub const JOB_DURATION: &str = "code_runner_job_duration_seconds";
pub const CONTAINER_PHASE: &str = "code_runner_container_phase_seconds";
pub const OUTPUT_BYTES: &str = "code_runner_output_bytes_total";
pub const OOM_KILLS: &str = "code_runner_oom_kills_total";
pub const TIMEOUTS: &str = "code_runner_timeouts_total";
pub const CONTAINERS_RUNNING: &str = "code_runner_containers_running";
pub const POOL_IDLE: &str = "code_runner_pool_idle_containers";
pub const POOL_TARGET: &str = "code_runner_pool_target_containers";
pub const POOL_TAKES: &str = "code_runner_pool_takes_total";
pub const RECYCLES: &str = "code_runner_containers_recycled_total";
pub const RECYCLE_DISCARDS: &str = "code_runner_recycle_discards_total";
pub const JOBS_PER_CONTAINER: &str = "code_runner_jobs_per_container";
pub const ACTOR_RESTARTS: &str = "code_runner_actor_restarts_total";
pub const RUNNER_PANICS: &str = "code_runner_runner_panics_total";
pub const REDIS_ERRORS: &str = "code_runner_redis_errors_total";
pub const DOCKER_ERRORS: &str = "code_runner_docker_errors_total";
pub const HTTP_REQUESTS: &str = "code_runner_http_requests_total";
pub const HTTP_DURATION: &str = "code_runner_http_request_duration_seconds";
pub const WORKERS_LIVE: &str = "code_runner_workers_live";

/// Bucket bounds of every `_seconds` histogram: from a fast HTTP answer
/// (1 ms) to a long compilation (2 min).
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The language ids a `language` label may take (the first table this
/// process loaded).
static LANGUAGES: OnceLock<std::collections::HashSet<String>> = OnceLock::new();

/// Sets the language ids a `language` label may take; later calls keep the
/// first set.
pub fn known_languages(ids: impl IntoIterator<Item = String>) {
    let _ = LANGUAGES.set(ids.into_iter().collect());
}

/// `language` as a label: a known id, else `other`.
fn language_label(language: &str) -> String {
    match LANGUAGES.get() {
        Some(known) if known.contains(language) => language.to_string(),
        _ => "other".to_string(),
    }
}

/// Installs the process-wide recorder (once; later calls return the same
/// handle).
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .expect("non-empty buckets")
            .install_recorder()
            .unwrap_or_else(|e| panic!("cannot install the metrics recorder: {e}"));
        describe();
        handle
    })
}

/// The text exposition of every metric recorded so far.
pub fn render() -> String {
    let handle = install();
    handle.run_upkeep();
    handle.render()
}

fn describe() {
    describe_gauge!(
        JOBS,
        "Jobs in the queue by state (read from Redis at scrape time)"
    );
    describe_counter!(
        JOBS_FINISHED,
        "Jobs this worker finished, by language and verdict (`failed`: the service could not run it)"
    );
    describe_histogram!(QUEUE_WAIT, "From submission to a worker claiming the job");
    describe_histogram!(
        JOB_DURATION,
        "From submission to the job's end (end to end)"
    );
    describe_histogram!(
        CONTAINER_PHASE,
        "Container lifecycle steps: create, start, run (task in → report), collect, remove"
    );
    describe_counter!(OUTPUT_BYTES, "Bytes of program output kept, by stream");
    describe_counter!(OOM_KILLS, "Runs ended by the kernel's OOM killer");
    describe_counter!(TIMEOUTS, "Runs stopped by a wall-clock or CPU-time limit");
    describe_gauge!(
        CONTAINERS_RUNNING,
        "Job containers of this worker on its engine (read at scrape time)"
    );
    describe_gauge!(POOL_IDLE, "Warm containers waiting, by image");
    describe_gauge!(POOL_TARGET, "Warm containers wanted, by image");
    describe_counter!(
        POOL_TAKES,
        "Runs that looked in the warm pool, by result (hit, miss)"
    );
    describe_counter!(
        RECYCLES,
        "Containers restored after a job and kept for the next (CODE_RUNNER_RECYCLE)"
    );
    describe_counter!(
        RECYCLE_DISCARDS,
        "Containers removed after a job instead of recycled, by reason"
    );
    describe_histogram!(
        JOBS_PER_CONTAINER,
        "Jobs a recyclable container served before it was removed"
    );
    describe_counter!(
        ACTOR_RESTARTS,
        "Supervised actors restarted, by actor and reason"
    );
    describe_counter!(RUNNER_PANICS, "ContainerRunner actors that panicked");
    describe_counter!(REDIS_ERRORS, "Failed Redis operations, by kind");
    describe_counter!(DOCKER_ERRORS, "Failed Docker engine operations, by kind");
    describe_counter!(HTTP_REQUESTS, "HTTP requests, by route, method and status");
    describe_histogram!(HTTP_DURATION, "HTTP request latency, by route and method");
    describe_gauge!(WORKERS_LIVE, "Worker processes with a recent heartbeat");
}

pub fn job_finished(language: &str, verdict: &'static str) {
    counter!(JOBS_FINISHED, "language" => language_label(language), "verdict" => verdict)
        .increment(1);
}

pub fn queue_wait(wait: Duration) {
    histogram!(QUEUE_WAIT).record(wait.as_secs_f64());
}

pub fn job_duration(duration: Duration) {
    histogram!(JOB_DURATION).record(duration.as_secs_f64());
}

/// One container lifecycle step: `create`, `start`, `run`, `collect`,
/// `remove`.
pub fn container_phase(phase: &'static str, took: Duration) {
    histogram!(CONTAINER_PHASE, "phase" => phase).record(took.as_secs_f64());
}

pub fn output_bytes(stream: &'static str, bytes: usize) {
    counter!(OUTPUT_BYTES, "stream" => stream).increment(bytes as u64);
}

pub fn oom_kill() {
    counter!(OOM_KILLS).increment(1);
}

pub fn timeout() {
    counter!(TIMEOUTS).increment(1);
}

pub fn containers_running(count: usize) {
    gauge!(CONTAINERS_RUNNING).set(count as f64);
}

pub fn pool_take(hit: bool) {
    counter!(POOL_TAKES, "result" => if hit { "hit" } else { "miss" }).increment(1);
}

/// A container was restored and kept for another job.
pub fn recycled() {
    counter!(RECYCLES).increment(1);
}

/// A recyclable container was removed: `reason` is a kind (`unfit`,
/// `timeout`, `jobs`, `aged`, `full`, `stopped`, `engine`).
pub fn recycle_discard(reason: &'static str) {
    counter!(RECYCLE_DISCARDS, "reason" => reason).increment(1);
}

/// A recyclable container served `jobs` jobs in all.
pub fn jobs_per_container(jobs: u32) {
    histogram!(JOBS_PER_CONTAINER).record(f64::from(jobs));
}

pub fn pool_sizes(
    idle: &std::collections::HashMap<String, usize>,
    target: &std::collections::HashMap<String, usize>,
) {
    for (image, n) in target {
        gauge!(POOL_TARGET, "image" => image.clone()).set(*n as f64);
        gauge!(POOL_IDLE, "image" => image.clone())
            .set(idle.get(image).copied().unwrap_or(0) as f64);
    }
}

/// `reason` is a kind (`panic`, `stopped`), never the error's text.
pub fn actor_restart(actor: &'static str, reason: &'static str) {
    counter!(ACTOR_RESTARTS, "actor" => actor, "reason" => reason).increment(1);
}

pub fn runner_panic() {
    counter!(RUNNER_PANICS).increment(1);
}

pub fn redis_error(kind: &'static str) {
    counter!(REDIS_ERRORS, "kind" => kind).increment(1);
}

pub fn docker_error(kind: &'static str) {
    counter!(DOCKER_ERRORS, "kind" => kind).increment(1);
}

pub fn http_request(route: String, method: String, status: u16, took: Duration) {
    histogram!(HTTP_DURATION, "route" => route.clone(), "method" => method.clone())
        .record(took.as_secs_f64());
    counter!(HTTP_REQUESTS, "route" => route, "method" => method, "status" => status.to_string())
        .increment(1);
}

/// `state` is one of the states `JobQueue::counts` asks for.
pub fn jobs_by_state(state: &str, count: u64) {
    gauge!(JOBS, "state" => state.to_string()).set(count as f64);
}

pub fn workers_live(count: usize) {
    gauge!(WORKERS_LIVE).set(count as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[&str] = &[
        JOBS,
        JOBS_FINISHED,
        QUEUE_WAIT,
        JOB_DURATION,
        CONTAINER_PHASE,
        OUTPUT_BYTES,
        OOM_KILLS,
        TIMEOUTS,
        CONTAINERS_RUNNING,
        POOL_IDLE,
        POOL_TARGET,
        POOL_TAKES,
        ACTOR_RESTARTS,
        RUNNER_PANICS,
        REDIS_ERRORS,
        DOCKER_ERRORS,
        HTTP_REQUESTS,
        HTTP_DURATION,
        WORKERS_LIVE,
    ];

    /// Metric names a text mentions (`code_runner_…`, histogram suffixes off).
    fn mentioned(text: &str) -> std::collections::BTreeSet<String> {
        let mut names = std::collections::BTreeSet::new();
        let mut rest = text;
        while let Some(at) = rest.find("code_runner_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(tail.len());
            let name = tail[..end].trim_end_matches("_bucket").to_string();
            names.insert(name);
            rest = &tail[end..];
        }
        names
    }

    #[test]
    fn the_grafana_dashboard_uses_only_metrics_that_exist() {
        let dashboard = include_str!("../deploy/grafana/code-runner.json");
        let used = mentioned(dashboard);
        assert!(used.len() >= 15, "{used:?}");
        for name in used {
            assert!(
                ALL.contains(&name.as_str()),
                "the dashboard uses {name}, which does not exist"
            );
        }
    }

    #[test]
    fn the_readme_lists_every_metric() {
        let readme = include_str!("../README.md");
        for name in ALL {
            assert!(
                readme.contains(&format!("`{name}`")),
                "README does not list {name}"
            );
        }
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        for name in ALL {
            assert!(name.starts_with("code_runner_"), "{name}");
            let counter = name.ends_with("_total");
            let seconds = name.ends_with("_seconds");
            assert!(!(counter && seconds), "{name}");
        }
    }
}
