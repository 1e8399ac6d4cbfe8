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
use crate::compat::judge0::{Stage, Submission};
use crate::job::{JobResult, JobSpec, Verdict, now_ms};

/// How a claimed job ended, as the dispatcher tells the queue.
#[derive(Debug)]
pub enum JobOutcome {
    /// The code ran: the job is completed with this result.
    Finished(Box<JobResult>),
    /// Put the job back in the queue untouched (its run was stopped by a
    /// shutdown); it does not count as an attempt.
    Requeue,
    /// This worker cannot run it yet (its language's image is still being
    /// built): the job goes back to the queue, delayed by
    /// [`NOT_READY_DELAY`], without counting as an attempt.
    NotReady(String),
    /// The service could not run it. A `retryable` failure (infrastructure)
    /// is retried with backoff while attempts remain; otherwise, or after
    /// the last attempt, the job is failed with `reason`.
    Failed { reason: String, retryable: bool },
}

/// How long a job this worker cannot run yet waits before it is claimed
/// again.
pub const NOT_READY_DELAY: Duration = Duration::from_secs(3);

/// A job claimed from the queue, handed to the dispatcher.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: String,
    /// The job's data, decoded once (a job whose data is not a `JobSpec`,
    /// from a foreign producer, fails before it is handed on).
    pub spec: Arc<JobSpec>,
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
        }
    }
}

fn since(from: u64, to: u64) -> Duration {
    Duration::from_millis(to.saturating_sub(from))
}

/// What a job's end owes besides BullMQ's own state, whatever ended it
/// (finished, failed after its retries, cancelled while it waited, when it
/// was claimed or while it ran): the metrics, the cancellation record, the
/// webhook owed and the caller's share given back, paid in [`Ending::owe`].
pub(super) struct Ending<'a> {
    pub id: &'a str,
    pub spec: &'a JobSpec,
    pub queue: &'a JobQueue,
    /// Attempts made, the last one included (0: it never ran).
    pub attempts: u32,
    /// When its last attempt was claimed.
    pub started_at_ms: Option<u64>,
    /// When BullMQ added it (for a job whose data has no submission time).
    pub added_at_ms: u64,
}

impl Ending<'_> {
    fn submitted_at_ms(&self) -> u64 {
        match self.spec.submitted_at_ms {
            0 => self.added_at_ms,
            at => at,
        }
    }

    /// Records what an end in `state` owes.
    pub(super) async fn owe(
        &self,
        state: PublicState,
        result: Option<&JobResult>,
        error: Option<String>,
    ) {
        let id = self.id;
        let verdict = result.map_or(
            match state {
                PublicState::Cancelled => "cancelled",
                _ => "failed",
            },
            |r| r.verdict.as_str(),
        );
        crate::metrics::job_finished(&self.spec.language, verdict);
        crate::metrics::job_duration(since(self.submitted_at_ms(), now_ms()));
        if state == PublicState::Cancelled {
            let _ = self.queue.record_cancelled(id).await;
        }
        if let Some(delivery) = self.delivery(state, result, error)
            && let Err(e) = self
                .queue
                .owe_delivery(&delivery, self.queue.settings().callback_attempts)
                .await
        {
            tracing::warn!(job = %id, error = %e, "could not record the webhook owed");
        }
        // Its caller's share of the queue comes back.
        if let Some(bucket) = &self.spec.caller
            && let Err(e) = self.queue.release_share(bucket, &[id.to_string()]).await
        {
            tracing::warn!(job = %id, error = %e,
                "could not give the caller's share back (pruned later)");
        }
    }

    /// The webhook this job owes, if it asked for one: the job as
    /// `GET /v1/jobs/{id}` shows it.
    fn delivery(
        &self,
        state: PublicState,
        result: Option<&JobResult>,
        error: Option<String>,
    ) -> Option<Delivery> {
        let url = self.spec.callback_url.as_ref()?;
        if self.spec.judge0.is_some() {
            return self.judge0_delivery(url, state, result, error);
        }
        let view = JobView {
            id: self.id.to_string(),
            state,
            phase: None,
            language: Some(self.spec.language.clone()),
            attempts_made: self.attempts,
            submitted_at_ms: (self.spec.submitted_at_ms != 0).then_some(self.spec.submitted_at_ms),
            started_at_ms: self.started_at_ms,
            finished_at_ms: Some(now_ms()),
            result: result.cloned(),
            error,
        };
        Some(Delivery {
            job_id: self.id.to_string(),
            url: url.clone(),
            body: serde_json::to_string(&view).ok()?,
            owner: self.spec.owner.clone(),
            put: false,
        })
    }

    /// A Judge0 submission's callback: PUT, the submission's default
    /// attributes in base64, as Judge0 sends it.
    fn judge0_delivery(
        &self,
        url: &str,
        state: PublicState,
        result: Option<&JobResult>,
        error: Option<String>,
    ) -> Option<Delivery> {
        let job = Submission {
            token: self.id.to_string(),
            stage: Some(match state {
                PublicState::Cancelled => Stage::Cancelled,
                PublicState::Failed => Stage::Failed,
                _ => Stage::Completed,
            }),
            spec: Some(self.spec.clone()),
            result: result.cloned(),
            failed_reason: error,
            started_at_ms: self.started_at_ms,
            finished_at_ms: Some(now_ms()),
            execution_host: None,
        };
        let shown =
            crate::compat::judge0::render(&job, &crate::compat::judge0::DEFAULT_FIELDS, true, None)
                .ok()?;
        Some(Delivery {
            job_id: job.token,
            url: url.to_string(),
            body: serde_json::to_string(&shown).ok()?,
            owner: self.spec.owner.clone(),
            put: true,
        })
    }
}

/// The end of one claimed job: its outcome mapped onto what the end owes
/// ([`Ending`]) and onto BullMQ.
struct JobEnd<'a> {
    job: &'a Job,
    spec: &'a JobSpec,
    queue: &'a JobQueue,
}

impl JobEnd<'_> {
    fn ending(&self) -> Ending<'_> {
        Ending {
            id: self.job.id(),
            spec: self.spec,
            queue: self.queue,
            attempts: self.job.attempts_made() + 1,
            started_at_ms: self.job.processed_on(),
            added_at_ms: self.job.timestamp(),
        }
    }

    /// Records what a final `outcome` owes; a retry or a re-queue owes
    /// nothing yet.
    async fn finish(&self, outcome: &JobOutcome) {
        let attempts = self.job.opts().attempts.unwrap_or(1).max(1);
        let (state, result, error) = match outcome {
            JobOutcome::Finished(result) if result.verdict == Verdict::Cancelled => {
                (PublicState::Cancelled, Some(&**result), None)
            }
            JobOutcome::Finished(result) => (PublicState::Completed, Some(&**result), None),
            JobOutcome::Failed { reason, retryable }
                if !retryable || self.job.attempts_made() + 1 >= attempts =>
            {
                (PublicState::Failed, None, Some(reason.clone()))
            }
            _ => return,
        };
        self.ending().owe(state, result, error).await;
    }

    /// The outcome as BullMQ's processor answers it.
    async fn answer(&self, outcome: JobOutcome) -> Result<serde_json::Value, bullmq::Error> {
        match outcome {
            // Each output once (see `JobResult::into_stored`).
            JobOutcome::Finished(result) => Ok(serde_json::to_value((*result).into_stored())?),
            JobOutcome::Requeue => match self.job.move_to_wait(None).await {
                // Tells the worker the job was moved already.
                Ok(_) => Err(bullmq::Error::Delayed),
                Err(e) => Err(bullmq::Error::ProcessingError(format!(
                    "could not re-queue after shutdown: {e}"
                ))),
            },
            JobOutcome::NotReady(reason) => {
                let at = now_ms() + NOT_READY_DELAY.as_millis() as u64;
                match self.job.move_to_delayed(at).await {
                    Ok(()) => {
                        tracing::info!(job = %self.job.id(), %reason, "job delayed");
                        Err(bullmq::Error::Delayed)
                    }
                    Err(e) => Err(bullmq::Error::ProcessingError(format!(
                        "could not delay the job ({reason}): {e}"
                    ))),
                }
            }
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
        let processor = move |job: Job, token: bullmq::worker::CancellationToken| {
            let handle = handle.clone();
            let queue = reader.clone();
            async move {
                let spec: Arc<JobSpec> = match serde::Deserialize::deserialize(job.data()) {
                    Ok(spec) => Arc::new(spec),
                    Err(e) => {
                        return Err(bullmq::Error::Unrecoverable(format!(
                            "the job's data is not a valid job: {e}"
                        )));
                    }
                };
                let end = JobEnd {
                    job: &job,
                    spec: &spec,
                    queue: &queue,
                };
                // Cancelled before it was claimed: it never runs.
                if queue.is_cancel_requested(job.id()).await.unwrap_or(false) {
                    let result = crate::execute::cancelled(None, "", "cancelled before it ran");
                    let outcome = JobOutcome::Finished(Box::new(result));
                    end.finish(&outcome).await;
                    return end.answer(outcome).await;
                }
                crate::metrics::queue_wait(since(
                    end.ending().submitted_at_ms(),
                    job.processed_on().unwrap_or_else(now_ms),
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
                    spec: spec.clone(),
                    attempts_made: job.attempts_made(),
                    cancel: cancel.clone(),
                };
                let outcome = handle(claimed).await;
                bridge.abort();
                end.finish(&outcome).await;
                end.answer(outcome).await
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
