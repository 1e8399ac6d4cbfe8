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

use super::{JobQueue, QueueError};
use crate::job::{JobOutcome, JobSpec, now_ms};

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
    /// Attempts it may have in all (infrastructure failures are retried).
    pub attempts_allowed: u32,
    /// When this attempt was claimed, and when the queue took the job.
    pub started_at_ms: Option<u64>,
    pub added_at_ms: u64,
    /// A client asked to cancel it before it was claimed: it must not run.
    pub cancel_requested: bool,
    /// Cancelled when the queue asks the job to stop.
    pub cancel: CancellationToken,
}

/// A job BullMQ failed with no handler seeing the attempt: its worker died
/// holding it more often than `max_stalls` allows, and the worker that
/// claimed it next failed it at once ("job stalled more than allowable
/// limit"). Its end is still owed (see `crate::ending`).
#[derive(Debug, Clone)]
pub struct SweptJob {
    pub id: String,
    pub spec: JobSpec,
    /// Attempts made, the failed one included.
    pub attempts_made: u32,
    /// When its last attempt was claimed.
    pub started_at_ms: Option<u64>,
    pub reason: String,
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

/// The end of one claimed job's attempt: its outcome mapped onto BullMQ
/// (what the job's end owes is paid by the handler, see `crate::ending`).
struct JobEnd<'a> {
    job: &'a Job,
}

impl JobEnd<'_> {
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

/// Job ids whose attempt the processor failed, each once per attempt.
#[derive(Default, Clone)]
struct Answered(Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>>);

impl Answered {
    fn add(&self, id: String) {
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id)
            .or_default() += 1;
    }

    /// True (and forgotten) when the processor failed an attempt of `id`.
    fn take(&self, id: &str) -> bool {
        let mut ids = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match ids.get_mut(id) {
            Some(1) => ids.remove(id).is_some(),
            Some(n) => {
                *n -= 1;
                true
            }
            None => false,
        }
    }
}

/// A running BullMQ worker of the jobs' queue. Dropping it stops claiming
/// jobs (see [`super::ClosingWorker`]).
pub struct QueueWorker {
    worker: super::ClosingWorker,
}

impl QueueWorker {
    /// Starts claiming jobs; each goes to `handle` (a job a client
    /// cancelled before it was claimed says so). A job BullMQ fails without
    /// asking the processor goes to `swept` once it is recorded failed.
    pub async fn start<F, Fut, S, SFut>(
        queue: &JobQueue,
        settings: &WorkerSettings,
        handle: F,
        swept: S,
    ) -> Result<Self, QueueError>
    where
        F: Fn(ClaimedJob) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = JobOutcome> + Send + 'static,
        S: Fn(SweptJob) -> SFut + Send + Sync + 'static,
        SFut: Future<Output = ()> + Send + 'static,
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
        // Attempts the processor failed, until BullMQ's event for each is
        // read: a failure not among them was BullMQ's own.
        let answered = Answered::default();
        let reader = queue.clone();
        let failures = answered.clone();
        let processor = move |job: Job, token: bullmq::worker::CancellationToken| {
            let handle = handle.clone();
            let queue = reader.clone();
            let failures = failures.clone();
            async move {
                let id = job.id().to_string();
                let answer = Self::process(queue, job, token, handle).await;
                // Every error but those that moved the job already is a
                // failure BullMQ records (and tells of).
                if let Err(e) = &answer
                    && !matches!(
                        e,
                        bullmq::Error::Delayed
                            | bullmq::Error::WaitingChildren
                            | bullmq::Error::RateLimited { .. }
                    )
                {
                    failures.add(id);
                }
                answer
            }
        };
        let worker = Worker::with_options(&queue_settings.queue_name, processor, options)
            .await
            .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        let swept = Arc::new(swept);
        let reader = queue.clone();
        let worker = super::ClosingWorker::following(worker, move |id, reason| {
            if answered.take(&id) {
                return;
            }
            let (queue, swept) = (reader.clone(), swept.clone());
            tokio::spawn(async move {
                match queue.get_raw(&id).await {
                    Ok(Some(super::StoredJob {
                        state: super::PublicState::Failed,
                        spec: Some(spec),
                        attempts_made,
                        started_at_ms,
                        ..
                    })) => {
                        tracing::warn!(job = %id, %reason, "job failed by the queue");
                        swept(SweptJob {
                            id,
                            spec,
                            attempts_made,
                            started_at_ms,
                            reason,
                        })
                        .await
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(job = %id, error = %e, "could not read a job the queue failed")
                    }
                }
            });
        });
        Ok(QueueWorker { worker })
    }

    /// One claimed job, from BullMQ's processor to `handle` and back.
    async fn process<F, Fut>(
        queue: JobQueue,
        job: Job,
        token: bullmq::worker::CancellationToken,
        handle: Arc<F>,
    ) -> Result<serde_json::Value, bullmq::Error>
    where
        F: Fn(ClaimedJob) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = JobOutcome> + Send + 'static,
    {
        let spec: Arc<JobSpec> = match serde::Deserialize::deserialize(job.data()) {
            Ok(spec) => Arc::new(spec),
            Err(e) => {
                return Err(bullmq::Error::Unrecoverable(format!(
                    "the job's data is not a valid job: {e}"
                )));
            }
        };
        let end = JobEnd { job: &job };
        let submitted_at_ms = match spec.submitted_at_ms {
            0 => job.timestamp(),
            at => at,
        };
        let cancel_requested = queue.is_cancel_requested(job.id()).await.unwrap_or(false);
        if !cancel_requested {
            crate::metrics::queue_wait(since(
                submitted_at_ms,
                job.processed_on().unwrap_or_else(now_ms),
            ));
        }
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
            attempts_allowed: job.opts().attempts.unwrap_or(1).max(1),
            started_at_ms: job.processed_on(),
            added_at_ms: job.timestamp(),
            cancel_requested,
            cancel: cancel.clone(),
        };
        let outcome = handle(claimed).await;
        bridge.abort();
        end.answer(outcome).await
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

#[cfg(test)]
mod tests {
    use super::Answered;

    /// Each failed attempt the processor answered is matched by one of
    /// BullMQ's failure events; a failure beyond them is BullMQ's own.
    #[test]
    fn each_answered_failure_is_taken_once() {
        let answered = Answered::default();
        answered.add("a".into());
        answered.add("a".into());
        answered.add("b".into());
        assert!(answered.take("a"));
        assert!(answered.take("b"));
        assert!(answered.take("a"));
        assert!(!answered.take("a"), "a third failure of a was BullMQ's own");
        assert!(!answered.take("c"));
        assert!(answered.0.lock().unwrap().is_empty(), "nothing kept");
    }
}
