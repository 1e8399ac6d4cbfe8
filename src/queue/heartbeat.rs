//! Live worker processes. Each worker writes its info and an expiry time
//! every [`HEARTBEAT_INTERVAL`]; a worker whose expiry passed is dead, and
//! the containers it left on an engine may be removed by any other worker.
//!
//! Keys (in the queue's hash slot): `…:cr:workers` (hash: id → info JSON)
//! and `…:cr:workers:expiry` (sorted set: id → expiry in ms).

use std::time::Duration;

use super::{JobQueue, QueueError, with_timeout};
use crate::status::{WorkerInfo, WorkerJob};

/// How often a worker refreshes its heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// A worker silent for this long is dead.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(20);

impl JobQueue {
    fn workers_key(&self) -> String {
        self.settings.own_key("workers")
    }

    pub(super) fn expiry_key(&self) -> String {
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

    /// Removes a worker's heartbeat and gives back the CPUs it held (it is
    /// stopping, or found dead).
    pub async fn forget_worker(&self, id: &str) -> Result<(), QueueError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hdel(self.workers_key(), id)
            .ignore()
            .zrem(self.expiry_key(), id)
            .ignore();
        with_timeout(self.connection().pipe::<()>(&pipe)).await?;
        self.release_cpus(id).await
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
