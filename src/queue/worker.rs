//! The BullMQ worker a dispatcher owns.
//!
//! BullMQ's `Worker` claims a job only while fewer than `concurrency` are in
//! flight, renews each claimed job's lock while it runs, and moves jobs whose
//! worker died (lock expired) back to the queue. Its processor hands each
//! job to the caller's handler (the dispatcher actor) and turns the
//! [`JobOutcome`] into BullMQ's completed / failed / retried / re-queued.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bullmq::types::{KeepJobs, RemoveOnFinish};
use bullmq::{Job, Worker, WorkerOptions};
use tokio_util::sync::CancellationToken;

use super::deliveries::Delivery;
use super::{JobQueue, JobView, PublicState, QueueError};
use crate::job::{JobResult, Verdict};

/// How a claimed job ended, as the dispatcher tells the queue.
#[derive(Debug)]
pub enum JobOutcome {
    /// The code ran: the job is completed with this result.
    Finished(Box<JobResult>),
    /// Put the job back in the queue untouched (its run was stopped by a
    /// shutdown); it does not count as an attempt.
    Requeue,
    /// The service could not run it. A `retryable` failure (infrastructure)
    /// is retried with backoff while attempts remain; otherwise, or after
    /// the last attempt, the job is failed with `reason`.
    Failed { reason: String, retryable: bool },
}

/// A job claimed from the queue, handed to the dispatcher.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: String,
    /// The job's data (a [`JobSpec`](crate::job::JobSpec), unless a foreign
    /// producer wrote something else).
    pub data: serde_json::Value,
    /// Attempts made before this one.
    pub attempts_made: u32,
    /// Cancelled when the queue asks the job to stop.
    pub cancel: CancellationToken,
}

/// Settings of a worker process's BullMQ worker.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub worker_id: String,
    /// Jobs in flight at most (the concurrency cap).
    pub concurrency: u32,
    pub lock_duration: Duration,
    /// Take-overs of a job whose worker died, before it fails.
    pub max_stalls: u32,
    pub keep_completed_secs: u64,
    pub keep_completed_count: usize,
    pub keep_failed_secs: u64,
    pub keep_failed_count: usize,
    /// Attempts of a finished job's webhook delivery.
    pub callback_attempts: u32,
}

impl WorkerSettings {
    pub fn from_config(config: &crate::config::Config, worker_id: String) -> Self {
        WorkerSettings {
            worker_id,
            concurrency: config.concurrency,
            lock_duration: Duration::from_millis(config.lock_duration_ms),
            max_stalls: config.max_stalls,
            keep_completed_secs: config.keep_completed_secs,
            keep_completed_count: config.keep_completed_count,
            keep_failed_secs: config.keep_failed_secs,
            keep_failed_count: config.keep_failed_count,
            callback_attempts: config.callback_attempts,
        }
    }
}

/// A running BullMQ worker of the jobs' queue. Dropping it stops claiming
/// jobs (see [`super::ClosingWorker`]).
pub struct QueueWorker {
    worker: super::ClosingWorker,
}

impl QueueWorker {
    /// Starts claiming jobs; each goes to `handle`, unless a client
    /// cancelled it before it was claimed. A finished job with a
    /// `callback_url` owes a webhook delivery (see [`super::deliveries`]),
    /// recorded before the job is.
    pub async fn start<F, Fut>(
        queue: &JobQueue,
        settings: &WorkerSettings,
        handle: F,
    ) -> Result<Self, QueueError>
    where
        F: Fn(ClaimedJob) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = JobOutcome> + Send + 'static,
    {
        let keep = |age: u64, count: usize| {
            RemoveOnFinish::Options(KeepJobs {
                age: Some(age),
                count: Some(count),
                limit: None,
            })
        };
        let queue_settings = queue.settings().clone();
        let options = WorkerOptions::new()
            .connection(queue_settings.connection())
            .prefix(queue_settings.prefix.clone())
            .name(settings.worker_id.clone())
            .concurrency(settings.concurrency as usize)
            .lock_duration(settings.lock_duration)
            .stalled_interval(settings.lock_duration)
            .max_stalled_count(settings.max_stalls)
            .drain_delay(Duration::from_secs(5))
            .run_retry_delay(Duration::from_secs(1))
            .remove_on_complete(keep(
                settings.keep_completed_secs,
                settings.keep_completed_count,
            ))
            .remove_on_fail(keep(settings.keep_failed_secs, settings.keep_failed_count))
            // Completed and failed jobs per minute, for the dashboard.
            .metrics(bullmq::MetricsOptions::default());
        let handle = Arc::new(handle);
        let reader = queue.clone();
        let callback_attempts = settings.callback_attempts;
        let processor = move |job: Job, token: bullmq::worker::CancellationToken| {
            let handle = handle.clone();
            let queue = reader.clone();
            async move {
                let attempts = job.opts().attempts.unwrap_or(1).max(1);
                let callback_url = job
                    .data()
                    .get("callback_url")
                    .and_then(|u| u.as_str())
                    .map(str::to_string);
                // The webhook this job owes, if it asked for one.
                let owed = |state: PublicState,
                            result: Option<&JobResult>,
                            error: Option<String>| {
                    let url = callback_url.as_ref()?;
                    let view = JobView {
                        id: job.id().to_string(),
                        state,
                        phase: None,
                        language: job
                            .data()
                            .get("language")
                            .and_then(|l| l.as_str())
                            .map(str::to_string),
                        attempts_made: job.attempts_made() + 1,
                        submitted_at_ms: job.data().get("submitted_at_ms").and_then(|t| t.as_u64()),
                        started_at_ms: job.processed_on(),
                        finished_at_ms: Some(crate::job::now_ms()),
                        result: result.cloned(),
                        error,
                    };
                    Some(Delivery {
                        job_id: job.id().to_string(),
                        url: url.clone(),
                        body: serde_json::to_string(&view).ok()?,
                        owner: job
                            .data()
                            .get("owner")
                            .and_then(|o| o.as_str())
                            .map(str::to_string),
                    })
                };
                let notify = |delivery: Option<Delivery>| {
                    let queue = queue.clone();
                    async move {
                        let Some(delivery) = delivery else { return };
                        if let Err(e) = queue.owe_delivery(&delivery, callback_attempts).await {
                            tracing::warn!(job = %delivery.job_id, error = %e,
                                "could not record the webhook owed");
                        }
                    }
                };
                // Its caller's share of the queue comes back when it ends.
                let caller = job
                    .data()
                    .get("caller")
                    .and_then(|c| c.as_str())
                    .map(str::to_string);
                let release = |queue: JobQueue, id: String| {
                    let caller = caller.clone();
                    async move {
                        if let Some(bucket) = caller
                            && let Err(e) = queue
                                .release_share(&bucket, std::slice::from_ref(&id))
                                .await
                        {
                            tracing::warn!(job = %id, error = %e,
                                "could not give the caller's share back (pruned later)");
                        }
                    }
                };
                // Cancelled before it was claimed: it never runs.
                if queue.is_cancel_requested(job.id()).await.unwrap_or(false) {
                    let result = crate::execute::cancelled(None, "", "cancelled before it ran");
                    notify(owed(PublicState::Cancelled, Some(&result), None)).await;
                    let _ = queue.record_cancelled(job.id()).await;
                    release(queue.clone(), job.id().to_string()).await;
                    return Ok(serde_json::to_value(&result)?);
                }
                let language = job
                    .data()
                    .get("language")
                    .and_then(|l| l.as_str())
                    .unwrap_or("unknown")
                    .to_string();
                let submitted_ms = job
                    .data()
                    .get("submitted_at_ms")
                    .and_then(|t| t.as_u64())
                    .unwrap_or(job.timestamp());
                let since = |from: u64, to: u64| Duration::from_millis(to.saturating_sub(from));
                crate::metrics::queue_wait(since(
                    submitted_ms,
                    job.processed_on().unwrap_or_else(crate::job::now_ms),
                ));
                let cancel = CancellationToken::new();
                // Bridge BullMQ's token to ours for as long as the job runs.
                let bridge = {
                    let cancel = cancel.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = token.cancelled() => cancel.cancel(),
                            _ = cancel.cancelled() => {}
                        }
                    })
                };
                let claimed = ClaimedJob {
                    id: job.id().to_string(),
                    data: job.data().clone(),
                    attempts_made: job.attempts_made(),
                    cancel: cancel.clone(),
                };
                let outcome = handle(claimed).await;
                bridge.abort();
                match &outcome {
                    JobOutcome::Finished(result) => {
                        crate::metrics::job_finished(&language, result.verdict.as_str());
                        crate::metrics::job_duration(since(submitted_ms, crate::job::now_ms()));
                        let state = if result.verdict == Verdict::Cancelled {
                            let _ = queue.record_cancelled(job.id()).await;
                            PublicState::Cancelled
                        } else {
                            PublicState::Completed
                        };
                        notify(owed(state, Some(result), None)).await;
                        release(queue.clone(), job.id().to_string()).await;
                    }
                    JobOutcome::Failed { reason, retryable }
                        if !retryable || job.attempts_made() + 1 >= attempts =>
                    {
                        crate::metrics::job_finished(&language, "failed");
                        crate::metrics::job_duration(since(submitted_ms, crate::job::now_ms()));
                        notify(owed(PublicState::Failed, None, Some(reason.clone()))).await;
                        release(queue.clone(), job.id().to_string()).await;
                    }
                    _ => {}
                }
                match outcome {
                    JobOutcome::Finished(result) => Ok(serde_json::to_value(&result)?),
                    JobOutcome::Requeue => match job.move_to_wait(None).await {
                        // Tells the worker the job was moved already.
                        Ok(_) => Err(bullmq::Error::Delayed),
                        Err(e) => Err(bullmq::Error::ProcessingError(format!(
                            "could not re-queue after shutdown: {e}"
                        ))),
                    },
                    JobOutcome::Failed {
                        reason,
                        retryable: true,
                    } => Err(bullmq::Error::ProcessingError(reason)),
                    JobOutcome::Failed {
                        reason,
                        retryable: false,
                    } => Err(bullmq::Error::Unrecoverable(reason)),
                }
            }
        };
        let worker = Worker::with_options(&queue_settings.queue_name, processor, options)
            .await
            .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        Ok(QueueWorker {
            worker: super::ClosingWorker(Arc::new(worker)),
        })
    }

    /// Stops claiming new jobs; jobs in flight go on.
    pub fn pause(&self) {
        self.worker.pause();
    }

    /// Claims jobs again after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.worker.resume();
    }

    /// Jobs in flight.
    pub async fn active_count(&self) -> usize {
        self.worker.active_count().await
    }

    /// Stops the worker, waiting up to `timeout` for jobs in flight to be
    /// recorded.
    pub async fn close(&self, timeout: Duration) {
        if let Err(e) = self.worker.close(timeout.as_millis() as u64).await {
            tracing::warn!(error = %e, "closing the queue worker");
        }
    }
}
