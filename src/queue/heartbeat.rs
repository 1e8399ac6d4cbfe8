//! Live worker processes. Each worker writes its info and an expiry time
//! every [`HEARTBEAT_INTERVAL`]; a worker whose expiry passed is dead, and
//! the containers it left on an engine may be removed by any other worker.
//!
//! Keys (in the queue's hash slot): `…:cr:workers` (hash: id → info JSON)
//! and `…:cr:workers:expiry` (sorted set: id → expiry in ms).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{JobQueue, QueueError, with_timeout};

/// How often a worker refreshes its heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// A worker silent for this long is dead.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(20);

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
    pub restarts: std::collections::BTreeMap<String, crate::actors::registry::RestartRecord>,
    /// Its warm container pool.
    #[serde(default)]
    pub pool: Option<crate::sandbox::pool::PoolStats>,
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

impl JobQueue {
    fn workers_key(&self) -> String {
        self.settings.own_key("workers")
    }

    fn expiry_key(&self) -> String {
        self.settings.own_key("workers:expiry")
    }

    /// Records that `info.id` is alive for the next [`HEARTBEAT_TTL`].
    pub async fn heartbeat(&self, info: &WorkerInfo) -> Result<(), QueueError> {
        let expires = info.heartbeat_at_ms + HEARTBEAT_TTL.as_millis() as u64;
        let json = serde_json::to_string(info).map_err(bullmq::Error::from)?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset(self.workers_key(), &info.id, json)
            .ignore()
            .zadd(self.expiry_key(), &info.id, expires)
            .ignore();
        with_timeout(self.connection().pipe::<()>(&pipe)).await
    }

    /// Removes a worker's heartbeat (it is stopping).
    pub async fn forget_worker(&self, id: &str) -> Result<(), QueueError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hdel(self.workers_key(), id)
            .ignore()
            .zrem(self.expiry_key(), id)
            .ignore();
        with_timeout(self.connection().pipe::<()>(&pipe)).await
    }

    /// True when the worker's heartbeat has not expired.
    pub async fn is_worker_alive(&self, id: &str, now_ms: u64) -> Result<bool, QueueError> {
        let expiry: Option<u64> = with_timeout(
            self.connection()
                .cmd(redis::cmd("ZSCORE").arg(self.expiry_key()).arg(id)),
        )
        .await?;
        Ok(expiry.is_some_and(|e| e > now_ms))
    }

    /// A job in flight on `worker_id` as that worker's last heartbeat shows
    /// it (its phase, for processes that do not run it).
    pub async fn published_job(
        &self,
        worker_id: &str,
        job_id: &str,
    ) -> Result<Option<WorkerJob>, QueueError> {
        let info: Option<String> = with_timeout(
            self.connection()
                .cmd(redis::cmd("HGET").arg(self.workers_key()).arg(worker_id)),
        )
        .await?;
        Ok(info
            .and_then(|json| serde_json::from_str::<WorkerInfo>(&json).ok())
            .and_then(|info| info.jobs.into_iter().find(|j| j.job_id == job_id)))
    }

    /// Workers whose heartbeat has not expired; the expired ones are pruned.
    pub async fn live_workers(&self, now_ms: u64) -> Result<Vec<WorkerInfo>, QueueError> {
        let dead: Vec<String> = with_timeout(
            self.connection().cmd(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.expiry_key())
                    .arg("-inf")
                    .arg(now_ms),
            ),
        )
        .await?;
        for id in &dead {
            self.forget_worker(id).await?;
        }
        let live: Vec<String> = with_timeout(
            self.connection().cmd(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.expiry_key())
                    .arg(format!("({now_ms}"))
                    .arg("+inf"),
            ),
        )
        .await?;
        if live.is_empty() {
            return Ok(Vec::new());
        }
        let infos: Vec<Option<String>> = with_timeout(
            self.connection()
                .cmd(redis::cmd("HMGET").arg(self.workers_key()).arg(&live)),
        )
        .await?;
        Ok(infos
            .into_iter()
            .flatten()
            .filter_map(|json| serde_json::from_str(&json).ok())
            .collect())
    }
}
