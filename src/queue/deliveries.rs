//! Webhook deliveries, owed durably: each is a job of its own BullMQ queue
//! (`<queue>-callbacks`, in the same Redis and hash slot), with attempts and
//! exponential backoff, taken by any worker process. A worker killed in the
//! middle of a delivery, or between two attempts, loses nothing: its lock
//! expires and another worker takes the delivery over (or, between
//! attempts, simply takes it when it is due).
//!
//! A delivery's id is its job's id, so a job that finishes twice (its
//! worker died after owing the webhook and before recording the job) still
//! owes one delivery: BullMQ ignores an `add` of an id that exists.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bullmq::types::{BackoffStrategy, KeepJobs, RemoveOnFinish};
use bullmq::{Job, JobState, Queue, QueueOptions, Worker, WorkerOptions};
use serde::{Deserialize, Serialize};

use super::ClosingWorker;
use super::{JobQueue, QueueError, QueueSettings, with_timeout};

/// The BullMQ job name of a delivery.
const DELIVERY_NAME: &str = "webhook";
/// Longest a delivery waits for its job to be recorded as finished before
/// posting (the job's worker owes the webhook just before it records the
/// job; a receiver that reads the job back must find it finished).
const JOB_RECORDED_WAIT: Duration = Duration::from_secs(10);
/// How long delivered (and given-up) deliveries are kept: their ids stop a
/// job that finishes twice from owing a second delivery for this long.
const KEEP_SECS: u64 = 86_400;

/// A webhook owed: the finished job's view, to be POSTed to `url`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Delivery {
    pub job_id: String,
    pub url: String,
    /// The exact body (JSON of the job's view), signed as it is.
    pub body: String,
    /// The API key the job belongs to: its webhooks are signed with that
    /// key's secret.
    #[serde(default)]
    pub owner: Option<String>,
    /// Sent with PUT (a Judge0 submission's callback), not POST.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub put: bool,
}

/// How one attempt of a delivery went.
#[derive(Debug)]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// Try again after the backoff, while attempts remain.
    Retry(String),
    /// Never try again (the destination is refused).
    GiveUp(String),
}

/// The deliveries' queue name beside the jobs' queue.
fn queue_name(settings: &QueueSettings) -> String {
    format!("{}-callbacks", settings.queue_name)
}

/// Settings of a worker process's delivery worker.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub worker_id: String,
    /// Deliveries in flight at once in this process.
    pub concurrency: usize,
    /// A dead worker's delivery is taken over after this.
    pub lock_duration: Duration,
}

impl JobQueue {
    /// The deliveries' queue (opened on first use).
    async fn deliveries(&self) -> Result<Arc<Queue>, QueueError> {
        let settings = &self.settings;
        let queue = self
            .deliveries
            .get_or_try_init(|| async {
                let options = QueueOptions::new()
                    .connection(settings.connection())
                    .prefix(settings.prefix.clone());
                with_timeout(Queue::with_options(&queue_name(settings), options))
                    .await
                    .map(Arc::new)
            })
            .await?;
        Ok(queue.clone())
    }

    /// Records that `delivery` is owed, with `attempts` attempts. Owing the
    /// same job's webhook again is a no-op.
    pub async fn owe_delivery(&self, delivery: &Delivery, attempts: u32) -> Result<(), QueueError> {
        let queue = self.deliveries().await?;
        let options = bullmq::JobOptions::new()
            .job_id(delivery.job_id.clone())
            .attempts(attempts.max(1))
            .backoff(BackoffStrategy::Exponential(1000));
        let add = queue.add(DELIVERY_NAME, delivery).options(options);
        with_timeout(add.into_future()).await?;
        Ok(())
    }

    /// A delivery's state (`None`: not owed, or trimmed after its retention),
    /// with its attempts made so far.
    pub async fn delivery_state(&self, job_id: &str) -> Result<Option<(String, u32)>, QueueError> {
        let queue = self.deliveries().await?;
        let state = with_timeout(queue.get_job_state(job_id)).await?;
        if state == JobState::Unknown {
            return Ok(None);
        }
        let attempts = with_timeout(queue.get_job(job_id))
            .await?
            .map(|job| job.attempts_made())
            .unwrap_or(0);
        Ok(Some((state.as_str().to_string(), attempts)))
    }
}

/// A running delivery worker. Dropping it stops taking deliveries.
pub struct DeliveryWorker {
    worker: ClosingWorker,
}

impl DeliveryWorker {
    /// Takes owed deliveries; each attempt goes to `attempt`.
    pub async fn start<F, Fut>(
        queue: &JobQueue,
        settings: &DeliverySettings,
        attempt: F,
    ) -> Result<Self, QueueError>
    where
        F: Fn(Delivery, u32) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = DeliveryOutcome> + Send + 'static,
    {
        let queue_settings = queue.settings().clone();
        let keep = RemoveOnFinish::Options(KeepJobs {
            age: Some(KEEP_SECS),
            count: Some(10_000),
            limit: None,
        });
        let options = WorkerOptions::new()
            .connection(queue_settings.connection())
            .prefix(queue_settings.prefix.clone())
            .name(settings.worker_id.clone())
            .concurrency(settings.concurrency)
            .lock_duration(settings.lock_duration)
            .stalled_interval(settings.lock_duration)
            .max_stalled_count(3)
            .drain_delay(Duration::from_secs(5))
            .run_retry_delay(Duration::from_secs(1))
            .remove_on_complete(keep.clone())
            .remove_on_fail(keep);
        let attempt = Arc::new(attempt);
        let reader = queue.clone();
        let processor = move |job: Job, _token: bullmq::worker::CancellationToken| {
            let attempt = attempt.clone();
            let queue = reader.clone();
            async move {
                let delivery: Delivery = serde_json::from_value(job.data().clone())?;
                let number = job.attempts_made() + 1;
                let deadline = tokio::time::Instant::now() + JOB_RECORDED_WAIT;
                while matches!(
                    queue.job_state(&delivery.job_id).await,
                    Ok(JobState::Active)
                ) && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let of = job.opts().attempts.unwrap_or(1).max(1);
                match attempt(delivery.clone(), number).await {
                    DeliveryOutcome::Delivered => {
                        tracing::info!(job = %delivery.job_id, attempt = number, "webhook delivered");
                        Ok(serde_json::json!({ "delivered_at_ms": crate::job::now_ms() }))
                    }
                    DeliveryOutcome::Retry(why) => {
                        tracing::warn!(job = %delivery.job_id, attempt = number, of, error = %why,
                            "webhook not delivered");
                        Err(bullmq::Error::ProcessingError(why))
                    }
                    DeliveryOutcome::GiveUp(why) => {
                        tracing::warn!(job = %delivery.job_id, error = %why, "webhook refused");
                        Err(bullmq::Error::Unrecoverable(why))
                    }
                }
            }
        };
        let worker = Worker::with_options(&queue_name(&queue_settings), processor, options)
            .await
            .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        // A delivery's failures are logged by its processor already.
        Ok(DeliveryWorker {
            worker: ClosingWorker::following(worker, |_, _| {}),
        })
    }

    /// Stops taking deliveries, waiting up to `timeout` for those in flight.
    pub async fn close(&self, timeout: Duration) {
        if let Err(e) = self.worker.close(timeout.as_millis() as u64).await {
            tracing::warn!(error = %e, "closing the delivery worker");
        }
    }
}
