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
//! - [`cpus`]: the CPUs each worker pins its slots to, per engine.
//! - [`cancel`]: cancellation, idempotency keys, language versions.
//! - [`events`]: waiting for jobs to finish, from the queue's event stream.
//! - [`deliveries`]: webhooks owed, in a BullMQ queue of their own.
//! - [`fairness`]: each caller's unfinished jobs, for its cap and its place.
//! - [`embedded`]: starts a private `redis-server` when none is configured.
//!
//! **Invariant:** all job state lives in Redis. A restarted process, or any
//! other API process on the same Redis, answers for every job.

pub mod admin;
pub mod cancel;
pub mod cpus;
pub mod deliveries;
pub mod embedded;
pub mod events;
pub mod fairness;
pub mod heartbeat;
pub mod live;
pub mod memory;
pub mod sentinel;
mod settings;
pub mod tls;
mod views;
pub mod worker;

pub use settings::*;
pub use views::*;

use std::time::Duration;

use bullmq::{JobState, Queue, QueueOptions};
use serde::Deserialize;
use uuid::Uuid;

use crate::job::{JOB_NAME, JobResult, JobSpec};

/// Longest wait for one Redis operation made on behalf of an HTTP request;
/// past it the API answers 503 instead of hanging.
pub const REDIS_OP_TIMEOUT: Duration = Duration::from_secs(3);

/// Longest a submission waits for replicas (`CODE_RUNNER_REDIS_WAIT_REPLICAS`).
pub const REPLICATION_WAIT: Duration = Duration::from_secs(1);
/// How long submissions skip that wait after it timed out.
pub const REPLICATION_RETRY: Duration = Duration::from_secs(5);

/// Errors from the Redis side.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("Redis unavailable: {0}")]
    Unavailable(String),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis is at its `maxmemory` and refuses writes (`noeviction`).
    #[error("Redis is full (maxmemory): {0}")]
    Full(String),
    #[error("queue error: {0}")]
    Queue(#[from] bullmq::Error),
}

/// Options every job is added with.
#[derive(Debug, Clone)]
pub struct EnqueueOptions {
    /// Attempts for infrastructure failures (user code is never retried).
    pub attempts: u32,
}

impl EnqueueOptions {
    fn job_options(&self, id: &Uuid, priority: u32) -> bullmq::JobOptions {
        let mut options = bullmq::JobOptions::new()
            .job_id(id.to_string())
            .attempts(self.attempts)
            .backoff(bullmq::types::BackoffStrategy::Exponential(1000));
        if priority > 0 {
            options = options.priority(priority);
        }
        options
    }
}

/// The queue, for producers and readers. Cheap to clone.
#[derive(Clone)]
pub struct JobQueue {
    queue: std::sync::Arc<Queue>,
    settings: QueueSettings,
    /// The webhook deliveries' queue, opened on first use.
    deliveries: std::sync::Arc<tokio::sync::OnceCell<std::sync::Arc<Queue>>>,
    /// Until when (ms since the epoch) submissions skip `WAIT`: after one
    /// timed out, for `REPLICATION_RETRY`, so a primary left without its
    /// replicas (after a failover) slows one submission, not all of them.
    replication_degraded_until: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Rung at each job's end: retention by bytes looks at Redis then, not
    /// only on its timer, so a fast stream of large results cannot fill
    /// the budget between two looks.
    ended: std::sync::Arc<tokio::sync::Notify>,
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
            deliveries: Default::default(),
            replication_degraded_until: Default::default(),
            ended: Default::default(),
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
        self.enqueue_with_id(Uuid::new_v4(), spec, 0, options).await
    }

    /// Adds a job under a given id (`priority` 0 runs first; larger later).
    pub async fn enqueue_with_id(
        &self,
        id: Uuid,
        spec: &JobSpec,
        priority: u32,
        options: &EnqueueOptions,
    ) -> Result<Uuid, QueueError> {
        let add = self
            .queue
            .add(JOB_NAME, spec)
            .options(options.job_options(&id, priority));
        with_timeout(add.into_future()).await?;
        self.replicated().await;
        Ok(id)
    }

    /// With `wait_replicas`, waits (up to `REPLICATION_WAIT`) until that
    /// many replicas have everything this process wrote so far: a write of
    /// its own after the job's, then `WAIT` on the same connection (the
    /// replication stream is ordered, so the job is there too).
    async fn replicated(&self) {
        use std::sync::atomic::Ordering;
        let wanted = self.settings.wait_replicas;
        let now = crate::job::now_ms();
        if wanted == 0 || now < self.replication_degraded_until.load(Ordering::Relaxed) {
            return;
        }
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.settings.own_key("replicated"))
            .arg(crate::job::now_ms())
            .ignore()
            .cmd("WAIT")
            .arg(wanted)
            .arg(REPLICATION_WAIT.as_millis() as u64);
        let waited = tokio::time::timeout(
            REPLICATION_WAIT + REDIS_OP_TIMEOUT,
            self.queue.connection().pipe::<(u32,)>(&pipe),
        )
        .await;
        let degrade = || {
            self.replication_degraded_until.store(
                now + REPLICATION_RETRY.as_millis() as u64,
                Ordering::Relaxed,
            )
        };
        match waited {
            Ok(Ok((acknowledged,))) if acknowledged >= wanted => {}
            Ok(Ok((acknowledged,))) => {
                degrade();
                tracing::warn!(
                    acknowledged,
                    wanted,
                    "a submitted job reached fewer Redis replicas than \
                     CODE_RUNNER_REDIS_WAIT_REPLICAS within 1 s; acknowledged anyway, \
                     and submissions do not wait for replicas for the next 5 s"
                )
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "WAIT for Redis replicas failed"),
            Err(_) => {
                degrade();
                tracing::warn!("WAIT for Redis replicas did not answer")
            }
        }
    }

    /// Adds several jobs at once (pipelined over one connection).
    pub async fn enqueue_batch(
        &self,
        jobs: &[(Uuid, JobSpec, u32)],
        options: &EnqueueOptions,
    ) -> Result<(), QueueError> {
        let bulk = jobs
            .iter()
            .map(|(id, spec, priority)| {
                bullmq::BulkJob::with_options(JOB_NAME, spec, options.job_options(id, *priority))
            })
            .collect();
        with_timeout(self.queue.add_bulk(bulk)).await?;
        self.replicated().await;
        Ok(())
    }

    /// Reads a job's state, then its hash. A job's state only moves to
    /// `completed` in the same Lua script that writes its return value, so
    /// reading the state first means a `completed` job always has its
    /// result. `None` when the job does not exist (or retention removed it).
    pub async fn get(&self, id: &Uuid) -> Result<Option<StoredJob>, QueueError> {
        self.get_raw(&id.to_string()).await
    }

    async fn get_raw(&self, id: &str) -> Result<Option<StoredJob>, QueueError> {
        let id = id.to_string();
        let state = self.job_state(&id).await?;
        let state = match state {
            JobState::Waiting
            | JobState::Delayed
            | JobState::Prioritized
            | JobState::WaitingChildren => PublicState::Waiting,
            JobState::Active => PublicState::Active,
            JobState::Completed => PublicState::Completed,
            JobState::Failed => PublicState::Failed,
            JobState::Unknown => return self.cancelled_record(&id).await,
        };
        let Some(job) = with_timeout(self.queue.get_job(&id)).await? else {
            // Removed between the two reads (retention).
            return Ok(None);
        };
        let result: Option<JobResult> = match state {
            PublicState::Completed => {
                serde_json::from_str(job.returnvalue())
                    .ok()
                    .map(|mut result: JobResult| {
                        result.restore();
                        result
                    })
            }
            _ => None,
        };
        // A job stopped while it ran completes with the `cancelled` verdict.
        let state = match &result {
            Some(r) if r.verdict == crate::job::Verdict::Cancelled => PublicState::Cancelled,
            _ => state,
        };
        let failed_reason = match state {
            PublicState::Failed => Some(job.failed_reason().to_string()),
            _ => None,
        };
        if matches!(state, PublicState::Completed) && result.is_none() {
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
                spec: JobSpec::deserialize(job.data()).ok(),
                started_at_ms: job.processed_on(),
                finished_at_ms: job.finished_on(),
                processed_by: job.processed_by().map(str::to_string),
            }));
        }
        Ok(Some(StoredJob {
            id,
            state,
            result,
            failed_reason,
            attempts_made: job.attempts_made(),
            spec: JobSpec::deserialize(job.data()).ok(),
            started_at_ms: job.processed_on(),
            finished_at_ms: job.finished_on(),
            processed_by: job.processed_by().map(str::to_string),
        }))
    }

    /// True when the job is claimed by a worker (its lock may have expired
    /// and the stalled check not yet run).
    pub async fn is_active(&self, id: &str) -> Result<bool, QueueError> {
        Ok(self.job_state(id).await? == JobState::Active)
    }

    /// A job's state in one round trip, without scanning the waiting list:
    /// BullMQ's own `getState` reads the whole list (`LRANGE wait 0 -1`),
    /// so its cost grows with the queue. Here the sorted sets answer by
    /// score, the active list is short (one entry per running job), and a
    /// job that exists and is in none of them is waiting.
    async fn job_state(&self, id: &str) -> Result<JobState, QueueError> {
        let keys = self.queue.keys();
        let mut invocation = JOB_STATE.prepare_invoke();
        invocation
            .key(keys.completed())
            .key(keys.failed())
            .key(keys.delayed())
            .key(keys.prioritized())
            .key(keys.waiting_children())
            .key(keys.active())
            .key(keys.job_key(id))
            .arg(id);
        let state: String = self.invoke(invocation).await?;
        Ok(JobState::from_redis_str(&state))
    }

    /// Spends `jobs` of `bucket`'s submissions in this minute, shared by
    /// every API process. `Some(seconds)` to wait (nothing spent) when they
    /// would take it over `limit`.
    pub async fn take_submissions(
        &self,
        bucket: &str,
        jobs: u64,
        limit: u64,
    ) -> Result<Option<u64>, QueueError> {
        let now = crate::job::now_ms() / 1000;
        let minute = now / 60;
        let key = self.settings.own_key(&format!("rate:{bucket}:{minute}"));
        let mut invocation = TAKE_SUBMISSIONS.prepare_invoke();
        invocation.key(key).arg(jobs).arg(limit).arg(61);
        let admitted: i64 = self.invoke(invocation).await?;
        Ok((admitted == 0).then(|| 60 - now % 60))
    }

    /// Runs one of this module's own Lua scripts under [`REDIS_OP_TIMEOUT`].
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, QueueError> {
        with_timeout(async {
            let mut conn = self.connection().connection();
            invocation
                .invoke_async(&mut conn)
                .await
                .map_err(bullmq::Error::from)
        })
        .await
    }

    /// Jobs not yet claimed (waiting, prioritized, delayed).
    pub async fn waiting_count(&self) -> Result<u64, QueueError> {
        with_timeout(
            self.queue
                .get_job_count_by_types(&["waiting", "prioritized", "delayed"]),
        )
        .await
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

    fn connection(&self) -> &bullmq::redis_connection::RedisConnection {
        self.queue.connection()
    }
}

/// A BullMQ worker that stops claiming and closes in the background when
/// dropped, so an owner that dies (even by panic) takes no more jobs.
struct ClosingWorker(std::sync::Arc<bullmq::Worker>);

impl ClosingWorker {
    /// Wraps `worker`, reading its events for as long as it runs: BullMQ's
    /// worker sends each one (a completed job's return value among them)
    /// into an unbounded channel that only grows while nobody reads it.
    /// `failed` hears each failure (a job's id, the reason), once per
    /// attempt that failed.
    fn following(
        worker: bullmq::Worker,
        failed: impl Fn(String, String) + Send + 'static,
    ) -> ClosingWorker {
        let worker = std::sync::Arc::new(worker);
        let events = worker.clone();
        tokio::spawn(async move {
            while let Some(event) = events.next_event().await {
                match event {
                    bullmq::worker::WorkerEvent::Failed { job_id, error } => failed(job_id, error),
                    bullmq::worker::WorkerEvent::Closed => break,
                    _ => {}
                }
            }
        });
        ClosingWorker(worker)
    }
}

impl std::ops::Deref for ClosingWorker {
    type Target = bullmq::Worker;
    fn deref(&self) -> &bullmq::Worker {
        &self.0
    }
}

impl Drop for ClosingWorker {
    fn drop(&mut self) {
        self.0.pause();
        let worker = self.0.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = worker.close(10_000).await;
            });
        }
    }
}

/// See [`JobQueue::job_state`].
static JOB_STATE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"
local id = ARGV[1]
if redis.call("ZSCORE", KEYS[1], id) then return "completed" end
if redis.call("ZSCORE", KEYS[2], id) then return "failed" end
if redis.call("ZSCORE", KEYS[3], id) then return "delayed" end
if redis.call("ZSCORE", KEYS[4], id) then return "prioritized" end
if redis.call("ZSCORE", KEYS[5], id) then return "waiting-children" end
for _, v in ipairs(redis.call("LRANGE", KEYS[6], 0, -1)) do
  if v == id then return "active" end
end
if redis.call("EXISTS", KEYS[7]) == 1 then return "waiting" end
return "unknown"
"#,
    )
});

/// See [`JobQueue::take_submissions`]: a fixed window per minute that is
/// only spent when the whole request fits, so a refused batch costs nothing
/// (an `INCRBY` first and a check after would spend it anyway).
static TAKE_SUBMISSIONS: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"
local spent = tonumber(redis.call("GET", KEYS[1]) or "0")
if spent + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return 0 end
redis.call("INCRBY", KEYS[1], ARGV[1])
redis.call("EXPIRE", KEYS[1], ARGV[3])
return 1
"#,
    )
});

/// Runs one Redis operation under [`REDIS_OP_TIMEOUT`].
async fn with_timeout<T>(
    op: impl std::future::Future<Output = Result<T, bullmq::Error>>,
) -> Result<T, QueueError> {
    let result = match tokio::time::timeout(REDIS_OP_TIMEOUT, op).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(bullmq::Error::Redis(e))) if e.code() == Some("OOM") => {
            Err(QueueError::Full(e.to_string()))
        }
        Ok(Err(bullmq::Error::Redis(e))) => Err(QueueError::Unavailable(e.to_string())),
        Ok(Err(e)) => Err(QueueError::Queue(e)),
        Err(_) => Err(QueueError::Timeout(REDIS_OP_TIMEOUT)),
    };
    match &result {
        Ok(_) => {}
        Err(QueueError::Unavailable(_)) => crate::metrics::redis_error("unavailable"),
        Err(QueueError::Timeout(_)) => crate::metrics::redis_error("timeout"),
        Err(QueueError::Full(_)) => crate::metrics::redis_error("full"),
        Err(_) => crate::metrics::redis_error("command"),
    }
    result
}
