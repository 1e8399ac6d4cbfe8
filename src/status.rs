//! What a worker process says about itself, in its heartbeat (see
//! [`crate::queue::heartbeat`]): written by the worker's dispatcher, read by
//! any API process's stats and dashboard. Like [`crate::job`], this is a
//! wire format between processes, and a model the parts share without
//! depending on each other: the registry's restart records and the warm
//! pool's figures travel in it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

/// What a worker says about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkerInfo {
    pub id: String,
    pub host: String,
    /// Jobs it runs at once.
    pub concurrency: u32,
    /// Jobs it is running now.
    pub running: usize,
    /// The CPU each of its slots' jobs is pinned to (empty: not pinned).
    #[serde(default)]
    pub cpus: Vec<u32>,
    /// Whether its Docker engine answers (it claims no jobs while not).
    #[serde(default = "yes")]
    pub engine_ok: bool,
    pub started_at_ms: u64,
    pub heartbeat_at_ms: u64,
    /// Its jobs in flight (its `ContainerRunner`s) and their phase.
    #[serde(default)]
    pub jobs: Vec<WorkerJob>,
    /// Restarts of its supervised actors: name → count, last reason.
    #[serde(default)]
    pub restarts: BTreeMap<String, RestartRecord>,
    /// Its warm container pool.
    #[serde(default)]
    pub pool: Option<PoolStats>,
    /// Languages whose image its engine lacks (still being built): it
    /// delays their jobs, and API processes refuse them while no live
    /// worker has the image.
    #[serde(default)]
    pub missing_languages: Vec<String>,
}

/// The languages no live worker can run yet: those every one of `workers`
/// lacks the image of. None when there is no live worker (jobs then wait in
/// the queue for one, whatever their language).
pub fn unready_languages(workers: &[WorkerInfo]) -> BTreeSet<String> {
    let mut workers = workers.iter();
    let Some(first) = workers.next() else {
        return BTreeSet::new();
    };
    let mut unready: BTreeSet<String> = first.missing_languages.iter().cloned().collect();
    for worker in workers {
        unready.retain(|l| worker.missing_languages.contains(l));
    }
    unready
}

/// A job in flight on a worker, as its heartbeat shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkerJob {
    pub job_id: String,
    pub language: String,
    pub phase: crate::job::Phase,
    pub claimed_at_ms: u64,
    pub phase_at_ms: u64,
    pub container_id: Option<String>,
}

fn yes() -> bool {
    true
}

/// Restarts of one supervised actor.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartRecord {
    pub count: u64,
    pub last_reason: String,
    pub last_at_ms: u64,
}

/// The pool's figures, for the dashboard and `/v1/stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolStats {
    pub enabled: bool,
    /// Idle containers per image.
    pub idle: HashMap<String, usize>,
    /// Wanted containers per image.
    pub target: HashMap<String, usize>,
    /// Runs that took a warm container.
    pub hits: u64,
    /// Runs that found none and created a fresh one.
    pub misses: u64,
    /// Containers that served a job, restored and waiting for the next,
    /// per image (`CODE_RUNNER_RECYCLE`).
    #[serde(default)]
    pub recycled: HashMap<String, usize>,
    /// Jobs those containers served so far, in all.
    #[serde(default)]
    pub recycled_jobs_served: u64,
    /// Each of those containers: its image, the jobs it served, its age.
    #[serde(default)]
    pub recycled_containers: Vec<RecycledContainer>,
}

/// A recycled container waiting for its next job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecycledContainer {
    pub image: String,
    /// Its engine id, shortened as `docker ps` shows it.
    pub container: String,
    pub jobs_served: u32,
    pub age_ms: u64,
}

/// What a worker process publishes of its engine for the API in the same
/// process (`/readyz`, the dashboard's system view, `/metrics`): the API
/// reads it and never drives the engine itself (it holds no engine client;
/// the sandbox implements this).
pub trait EngineView: Send + Sync {
    /// The engine's versions, asked now (the caller bounds the wait).
    fn probe(&self) -> BoxFuture<'_, Result<EngineSummary, String>>;
    /// Whether a language image (its folder name) is on the engine.
    fn has_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, bool>;
    /// The job containers this worker runs now (its warm pool's idle ones
    /// aside), or the kind of engine error that kept them from being
    /// counted.
    fn job_containers(&self) -> BoxFuture<'_, Result<usize, &'static str>>;
    /// The warm pool's figures, when it has one.
    fn pool(&self) -> Option<PoolStats>;
}

/// A future an [`EngineView`] answers with.
pub type BoxFuture<'a, T> = futures_util::future::BoxFuture<'a, T>;

/// The engine's versions.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSummary {
    pub version: String,
    pub api_version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(missing: &[&str]) -> WorkerInfo {
        WorkerInfo {
            id: "w".into(),
            host: "h".into(),
            concurrency: 1,
            running: 0,
            cpus: Vec::new(),
            engine_ok: true,
            started_at_ms: 0,
            heartbeat_at_ms: 0,
            jobs: Vec::new(),
            restarts: BTreeMap::new(),
            pool: None,
            missing_languages: missing.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_language_is_unready_only_when_every_live_worker_lacks_it() {
        assert!(unready_languages(&[]).is_empty(), "no worker: jobs wait");
        assert_eq!(
            unready_languages(&[worker(&["a", "b"])]),
            BTreeSet::from(["a".to_string(), "b".to_string()])
        );
        assert_eq!(
            unready_languages(&[worker(&["a", "b"]), worker(&["b", "c"])]),
            BTreeSet::from(["b".to_string()])
        );
        assert!(unready_languages(&[worker(&["a"]), worker(&[])]).is_empty());
    }
}
