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
pub mod deliveries;
pub mod embedded;
pub mod events;
pub mod fairness;
pub mod heartbeat;
pub mod live;
pub mod memory;
pub mod sentinel;
pub mod tls;
pub mod worker;

use std::time::Duration;

use bullmq::{JobState, Queue, QueueOptions};
use serde::{Deserialize, Serialize};
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

/// Where the queue lives in Redis.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    pub redis_url: String,
    /// For a `rediss://` URL: the roots trusted and the client certificate.
    pub tls: Option<bullmq::options::TlsCerts>,
    /// Replicas a submission waits for (`WAIT`) before it is acknowledged.
    pub wait_replicas: u32,
    /// Redis Cluster: the seed nodes' URLs (`redis+cluster://` URL), else
    /// empty.
    pub cluster_nodes: Vec<String>,
    /// BullMQ key prefix (a hash tag, for Redis Cluster).
    pub prefix: String,
    pub queue_name: String,
    /// How long a cancelled job that never ran stays readable, in seconds.
    pub cancelled_retention_secs: u64,
    /// Attempts at each webhook a finished job owes.
    pub callback_attempts: u32,
}

impl QueueSettings {
    /// Which deployment these settings make: the Redis (its URL without
    /// credentials: scheme, addresses, database) and the queue
    /// (`<prefix>:<name>`). Workers of one deployment share one queue in
    /// one Redis; two services on one engine with the same queue name on
    /// different Redis servers are two deployments.
    pub fn deployment(&self) -> String {
        let url = self.redis_url.as_str();
        let location = match url.split_once("://") {
            Some((kind, rest)) => {
                // Credentials sit before the last `@` of the authority.
                let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                let host = authority
                    .rsplit_once('@')
                    .map_or(authority, |(_, host)| host);
                format!("{kind}://{host}{path}")
            }
            None => url.to_string(),
        };
        // A query (unix sockets' `?db=`, passwords) is not part of it.
        let location = location.split('?').next().unwrap_or("");
        format!("{location} {}:{}", self.prefix, self.queue_name)
    }

    /// The settings, with the TLS files read (an error names a bad one).
    pub fn from_config(config: &crate::config::Config) -> Result<Self, String> {
        let redis_url = config.redis_url_or_default();
        let tls = tls::load(
            &redis_url,
            tls::TlsFiles {
                ca_file: config.redis_ca_file.as_deref(),
                client_cert: config.redis_client_cert.as_deref(),
                client_key: config.redis_client_key.as_deref(),
            },
        )?;
        let kind = redis_url.split_once("://").map_or("", |(kind, _)| kind);
        if !matches!(
            kind,
            "redis" | "rediss" | "unix" | "redis+unix" | "redis+sentinel" | "redis+cluster"
        ) {
            return Err(format!(
                "CODE_RUNNER_REDIS_URL: \"{kind}://\" is not supported (redis://, \
                 rediss://, redis+sentinel://, redis+cluster:// or unix://; TLS with \
                 Sentinel or Cluster is not supported yet)"
            ));
        }
        let cluster_nodes = cluster_nodes(&redis_url)?;
        if !cluster_nodes.is_empty() && config.redis_wait_replicas > 0 {
            return Err("CODE_RUNNER_REDIS_WAIT_REPLICAS is not supported with a \
                        redis+cluster:// URL yet"
                .to_string());
        }
        Ok(QueueSettings {
            redis_url,
            tls,
            wait_replicas: config.redis_wait_replicas,
            cluster_nodes,
            prefix: config.redis_prefix.clone(),
            queue_name: config.queue_name.clone(),
            cancelled_retention_secs: config.keep_failed_secs,
            callback_attempts: config.callback_attempts,
        })
    }

    fn connection(&self) -> bullmq::options::RedisConnectionOptions {
        let options = bullmq::options::RedisConnectionOptions::new().url(self.redis_url.clone());
        let options = if self.cluster_nodes.is_empty() {
            options
        } else {
            options.cluster_nodes(self.cluster_nodes.clone())
        };
        match &self.tls {
            Some(certs) => options.tls_certs(certs.clone()),
            None => options,
        }
    }

    /// A client for a connection of the service's own (not BullMQ's), with
    /// the same TLS settings.
    fn client(&self) -> redis::RedisResult<redis::Client> {
        if !self.cluster_nodes.is_empty() {
            // Pub/sub reaches every node of a cluster: any one will do,
            // the next one on each reconnection.
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return redis::Client::open(self.cluster_nodes[n % self.cluster_nodes.len()].as_str());
        }
        match &self.tls {
            Some(certs) => redis::Client::build_with_tls(
                self.redis_url.as_str(),
                tls::redis_certificates(certs),
            ),
            None => redis::Client::open(self.redis_url.as_str()),
        }
    }

    /// A key of this service's own (not BullMQ's), in the queue's hash slot.
    fn own_key(&self, suffix: &str) -> String {
        format!("{}:{}:cr:{}", self.prefix, self.queue_name, suffix)
    }
}

/// The seed nodes of a `redis+cluster://[user:password@]host:port,host:port…`
/// URL as `redis://` URLs (each with the credentials); empty for any other.
fn cluster_nodes(url: &str) -> Result<Vec<String>, String> {
    let Some(rest) = url.strip_prefix("redis+cluster://") else {
        return Ok(Vec::new());
    };
    let authority = rest.trim_end_matches('/');
    if authority.contains('/') {
        return Err("CODE_RUNNER_REDIS_URL: a Redis Cluster has one database; \
                    redis+cluster://[user:password@]host:port,host:port… takes no path"
            .to_string());
    }
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
        None => (String::new(), authority),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| format!("redis://{userinfo}{h}"))
        .collect();
    if nodes.is_empty() {
        return Err("CODE_RUNNER_REDIS_URL: redis+cluster:// names no server".to_string());
    }
    Ok(nodes)
}

/// A job's state as clients see it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, utoipa::ToSchema)]
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
    /// Cancelled by a client: it never ran, or was stopped while it ran.
    Cancelled,
}

impl PublicState {
    /// Completed, failed or cancelled: it will not change again.
    pub fn has_ended(self) -> bool {
        matches!(
            self,
            PublicState::Completed | PublicState::Failed | PublicState::Cancelled
        )
    }
}

/// A job as read back from Redis.
#[derive(Debug, Clone)]
pub struct StoredJob {
    pub id: String,
    pub state: PublicState,
    /// The run's result: present when `state` is `Completed`.
    pub result: Option<JobResult>,
    /// Why the service could not run it: present when `state` is `Failed`.
    pub failed_reason: Option<String>,
    /// Runs attempted so far (retries after infrastructure failures).
    pub attempts_made: u32,
    /// The job's data as submitted.
    pub spec: Option<JobSpec>,
    /// When a worker last started it (ms since the Unix epoch).
    pub started_at_ms: Option<u64>,
    /// When it ended.
    pub finished_at_ms: Option<u64>,
    /// The worker that claimed it last.
    pub processed_by: Option<String>,
}

/// A job as the v1 API (and webhooks) present it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: String,
    pub state: PublicState,
    /// For an active job running in the answering process: how far it got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<crate::job::Phase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Runs attempted (retries after infrastructure failures).
    pub attempts_made: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submitted_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    /// What the job produced (completed, or cancelled while it ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResult>,
    /// Why the service could not run it (failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<&StoredJob> for crate::compat::judge0::Submission {
    fn from(job: &StoredJob) -> Self {
        use crate::compat::judge0::Stage;
        crate::compat::judge0::Submission {
            token: job.id.clone(),
            stage: Some(match job.state {
                PublicState::Waiting => Stage::Queued,
                PublicState::Active => Stage::Running,
                PublicState::Completed => Stage::Completed,
                PublicState::Failed => Stage::Failed,
                PublicState::Cancelled => Stage::Cancelled,
            }),
            spec: job.spec.clone(),
            result: job.result.clone(),
            failed_reason: job.failed_reason.clone(),
            started_at_ms: job.started_at_ms,
            finished_at_ms: job.finished_at_ms,
            execution_host: job.processed_by.clone(),
        }
    }
}

impl StoredJob {
    pub fn view(&self) -> JobView {
        JobView {
            id: self.id.clone(),
            state: self.state,
            phase: None,
            language: self.spec.as_ref().map(|s| s.language.clone()),
            attempts_made: self.attempts_made,
            submitted_at_ms: self.spec.as_ref().map(|s| s.submitted_at_ms),
            started_at_ms: self.started_at_ms,
            finished_at_ms: self.finished_at_ms,
            result: self.result.clone(),
            error: self.failed_reason.clone(),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(redis_url: &str) -> QueueSettings {
        QueueSettings {
            redis_url: redis_url.into(),
            tls: None,
            wait_replicas: 0,
            cluster_nodes: Vec::new(),
            prefix: "{code-runner}".into(),
            queue_name: "code-runner".into(),
            cancelled_retention_secs: 1,
            callback_attempts: 1,
        }
    }

    #[test]
    fn a_deployment_is_its_redis_and_queue_without_credentials() {
        let with_password = settings("redis://user:s3cret@10.0.0.5:6380/2").deployment();
        assert_eq!(
            with_password,
            "redis://10.0.0.5:6380/2 {code-runner}:code-runner"
        );
        assert!(!with_password.contains("s3cret"));
        assert_ne!(
            settings("redis://127.0.0.1:6379").deployment(),
            settings("redis://127.0.0.1:6380").deployment()
        );
        assert_eq!(
            settings("redis+sentinel://:pw@h1:26379,h2:26379/primary").deployment(),
            "redis+sentinel://h1:26379,h2:26379/primary {code-runner}:code-runner"
        );
        assert_eq!(
            settings("unix:///run/redis.sock?db=1&pass=pw").deployment(),
            "unix:///run/redis.sock {code-runner}:code-runner"
        );
    }
}
