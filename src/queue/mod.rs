//! The Redis side, and the only module that talks to Redis.
//!
//! The queue speaks BullMQ's Redis layout through `bullmq-official` (the
//! same Lua scripts and keys as Node BullMQ), so a Node BullMQ producer can
//! enqueue jobs this service runs and Bull Board can watch the queue.
//!
//! - [`JobQueue`]: enqueue, read a job's state and result, ping.
//! - [`worker`]: the BullMQ `Worker` a dispatcher owns (claims jobs only
//!   while it has a free slot, renews their locks, recovers stalled jobs).
//! - [`heartbeat`]: live worker processes, for the orphan sweep and stats.
//! - [`embedded`]: starts a private `redis-server` when none is configured.
//!
//! **Invariant:** all job state lives in Redis. A restarted process, or any
//! other API process on the same Redis, answers for every job.

pub mod embedded;
pub mod heartbeat;
pub mod worker;

use std::time::Duration;

use bullmq::{JobState, Queue, QueueOptions};
use serde::Serialize;
use uuid::Uuid;

use crate::job::{JOB_NAME, JobSpec, RunResult, RunStatus};

/// Where Redis is expected when none is configured.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Longest wait for one Redis operation made on behalf of an HTTP request;
/// past it the API answers 503 instead of hanging.
pub const REDIS_OP_TIMEOUT: Duration = Duration::from_secs(3);

/// Errors from the Redis side.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("Redis unavailable: {0}")]
    Unavailable(String),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("queue error: {0}")]
    Queue(#[from] bullmq::Error),
}

/// Where the queue lives in Redis.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    pub redis_url: String,
    /// BullMQ key prefix (a hash tag, for Redis Cluster).
    pub prefix: String,
    pub queue_name: String,
}

impl QueueSettings {
    pub fn from_config(config: &crate::config::Config) -> Self {
        QueueSettings {
            redis_url: config.redis_url_or_default(),
            prefix: config.redis_prefix.clone(),
            queue_name: config.queue_name.clone(),
        }
    }

    pub(crate) fn connection(&self) -> bullmq::options::RedisConnectionOptions {
        bullmq::options::RedisConnectionOptions::new().url(self.redis_url.clone())
    }

    /// A key of this service's own (not BullMQ's), in the queue's hash slot.
    pub(crate) fn own_key(&self, suffix: &str) -> String {
        format!("{}:{}:cr:{}", self.prefix, self.queue_name, suffix)
    }
}

/// A job's state as clients see it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PublicState {
    /// In the queue (waiting, delayed for a retry, or prioritized).
    Waiting,
    /// Claimed by a worker and running.
    Active,
    /// The code ran; the result says how it ended.
    Completed,
    /// The service could not run it.
    Failed,
}

/// A job as read back from Redis.
#[derive(Debug, Clone)]
pub struct StoredJob {
    pub id: String,
    pub state: PublicState,
    /// The run's result: present when `state` is `Completed`.
    pub result: Option<RunResult>,
    /// Why the service could not run it: present when `state` is `Failed`.
    pub failed_reason: Option<String>,
    /// Runs attempted so far (retries after infrastructure failures).
    pub attempts_made: u32,
    /// The job's data as submitted.
    pub spec: Option<JobSpec>,
}

impl StoredJob {
    /// The result a failed job presents: no output, `internal_error`.
    pub fn failure_result(&self) -> RunResult {
        RunResult {
            status: RunStatus::InternalError,
            stdout: String::new(),
            stderr: String::new(),
            exit_code: None,
            stdout_truncated: false,
            stderr_truncated: false,
            wall_time_ms: 0,
            worker_id: String::new(),
            container_id: String::new(),
        }
    }
}

/// Options every job is added with.
#[derive(Debug, Clone)]
pub struct EnqueueOptions {
    /// Attempts for infrastructure failures (user code is never retried).
    pub attempts: u32,
}

/// The queue, for producers and readers. Cheap to clone.
#[derive(Clone)]
pub struct JobQueue {
    queue: std::sync::Arc<Queue>,
    settings: QueueSettings,
}

impl JobQueue {
    /// Connects to Redis and opens the queue.
    pub async fn connect(settings: QueueSettings) -> Result<Self, QueueError> {
        let options = QueueOptions::new()
            .connection(settings.connection())
            .prefix(settings.prefix.clone());
        let queue = with_timeout(Queue::with_options(&settings.queue_name, options))
            .await
            .map_err(|e| {
                QueueError::Unavailable(format!(
                    "cannot reach Redis at {} ({e}); is it running? \
                     (CODE_RUNNER_REDIS_URL names it)",
                    settings.redis_url
                ))
            })?;
        Ok(JobQueue {
            queue: std::sync::Arc::new(queue),
            settings,
        })
    }

    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    /// Adds a job under a fresh UUID, in one round trip to Redis.
    pub async fn enqueue(
        &self,
        spec: &JobSpec,
        options: &EnqueueOptions,
    ) -> Result<Uuid, QueueError> {
        let id = Uuid::new_v4();
        let add = self
            .queue
            .add(JOB_NAME, spec)
            .job_id(id.to_string())
            .attempts(options.attempts)
            .backoff(bullmq::types::BackoffStrategy::Exponential(1000));
        with_timeout(add.into_future()).await?;
        Ok(id)
    }

    /// Reads a job's state, then its hash. A job's state only moves to
    /// `completed` in the same Lua script that writes its return value, so
    /// reading the state first means a `completed` job always has its
    /// result. `None` when the job does not exist (or retention removed it).
    pub async fn get(&self, id: &Uuid) -> Result<Option<StoredJob>, QueueError> {
        let id = id.to_string();
        let state = with_timeout(self.queue.get_job_state(&id)).await?;
        let state = match state {
            JobState::Waiting
            | JobState::Delayed
            | JobState::Prioritized
            | JobState::WaitingChildren => PublicState::Waiting,
            JobState::Active => PublicState::Active,
            JobState::Completed => PublicState::Completed,
            JobState::Failed => PublicState::Failed,
            JobState::Unknown => return Ok(None),
        };
        let Some(job) = with_timeout(self.queue.get_job(&id)).await? else {
            // Removed between the two reads (retention).
            return Ok(None);
        };
        let result = match state {
            PublicState::Completed => serde_json::from_str(job.returnvalue()).ok(),
            _ => None,
        };
        let failed_reason = match state {
            PublicState::Failed => Some(job.failed_reason().to_string()),
            _ => None,
        };
        if state == PublicState::Completed && result.is_none() {
            // Completed by something that is not this service: report the
            // job as failed rather than completed without a result.
            return Ok(Some(StoredJob {
                id,
                state: PublicState::Failed,
                result: None,
                failed_reason: Some(format!(
                    "completed with a return value that is not a run result: {}",
                    job.returnvalue()
                )),
                attempts_made: job.attempts_made(),
                spec: serde_json::from_value(job.data().clone()).ok(),
            }));
        }
        Ok(Some(StoredJob {
            id,
            state,
            result,
            failed_reason,
            attempts_made: job.attempts_made(),
            spec: serde_json::from_value(job.data().clone()).ok(),
        }))
    }

    /// True when the job is claimed by a worker (its lock may have expired
    /// and the stalled check not yet run).
    pub async fn is_active(&self, id: &str) -> Result<bool, QueueError> {
        let state = with_timeout(self.queue.get_job_state(id)).await?;
        Ok(state == JobState::Active)
    }

    /// Jobs per state (BullMQ's names), for stats.
    pub async fn counts(&self) -> Result<std::collections::BTreeMap<String, u64>, QueueError> {
        let types = [
            "waiting",
            "active",
            "completed",
            "failed",
            "delayed",
            "prioritized",
        ];
        let counts = with_timeout(self.queue.get_job_counts_by_types(&types)).await?;
        Ok(counts.into_iter().collect())
    }

    /// Succeeds when Redis answers.
    pub async fn ping(&self) -> Result<(), QueueError> {
        with_timeout(self.queue.connection().ping()).await
    }

    pub(crate) fn connection(&self) -> &bullmq::redis_connection::RedisConnection {
        self.queue.connection()
    }
}

/// Runs one Redis operation under [`REDIS_OP_TIMEOUT`].
pub(crate) async fn with_timeout<T>(
    op: impl std::future::Future<Output = Result<T, bullmq::Error>>,
) -> Result<T, QueueError> {
    match tokio::time::timeout(REDIS_OP_TIMEOUT, op).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(bullmq::Error::Redis(e))) => Err(QueueError::Unavailable(e.to_string())),
        Ok(Err(e)) => Err(QueueError::Queue(e)),
        Err(_) => Err(QueueError::Timeout(REDIS_OP_TIMEOUT)),
    }
}
