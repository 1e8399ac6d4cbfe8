//! A job's end: the one place it is decided and paid for.
//!
//! However a job ends (finished, failed after its retries, cancelled while
//! it waited, cancelled when it was claimed or while it ran, its runner or
//! its worker dead), it owes the same list, paid here in [`Ending::settle`]:
//! the metrics counted (`job_finished`, `job_duration`), the cancellation
//! recorded, the webhook owed (the job as `GET /v1/jobs/{id}` shows it, or
//! as Judge0 sends its callback), and its caller's share of the queue given
//! back. The queue stores what it is handed (the result BullMQ keeps, the
//! delivery, the share) and knows neither execution nor the foreign APIs;
//! the live stream is ended by the runner that fed it (`end` when a result
//! follows, `reset` when the job runs again), or here when that runner's
//! worker died ([`settle_swept`]).

use uuid::Uuid;

use crate::compat::judge0::{DEFAULT_FIELDS, Stage, Submission, render};
use crate::job::{JobOutcome, JobResult, JobSpec, Verdict, now_ms};
use crate::queue::cancel::CancelOutcome;
use crate::queue::deliveries::Delivery;
use crate::queue::live::LiveEvent;
use crate::queue::worker::{ClaimedJob, SweptJob};
use crate::queue::{JobQueue, JobView, PublicState, QueueError};

/// A job at its end: what its end owes is computed from this.
pub struct Ending<'a> {
    pub id: &'a str,
    pub spec: &'a JobSpec,
    /// Attempts made, the last one included (0: it never ran).
    pub attempts: u32,
    /// When its last attempt was claimed.
    pub started_at_ms: Option<u64>,
    /// When the queue took it (for a job whose data has no submission
    /// time).
    pub added_at_ms: u64,
}

impl Ending<'_> {
    fn submitted_at_ms(&self) -> u64 {
        match self.spec.submitted_at_ms {
            0 => self.added_at_ms,
            at => at,
        }
    }

    /// Pays what an end in `state` owes.
    pub async fn settle(
        &self,
        queue: &JobQueue,
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
        crate::metrics::job_duration(std::time::Duration::from_millis(
            now_ms().saturating_sub(self.submitted_at_ms()),
        ));
        if state == PublicState::Cancelled {
            let _ = queue.record_cancelled(id).await;
        }
        if let Some(delivery) = self.delivery(state, result, error)
            && let Err(e) = queue
                .owe_delivery(&delivery, queue.settings().callback_attempts)
                .await
        {
            tracing::warn!(job = %id, error = %e, "could not record the webhook owed");
        }
        if let Some(bucket) = &self.spec.caller {
            give_share_back(queue, bucket, &[id.to_string()]).await;
        }
        queue.job_ended();
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
        let shown = render(&job, &DEFAULT_FIELDS, true, None).ok()?;
        Some(Delivery {
            job_id: job.token,
            url: url.to_string(),
            body: serde_json::to_string(&shown).ok()?,
            owner: self.spec.owner.clone(),
            put: true,
        })
    }
}

/// What a claimed job comes to when a client cancelled it before it was
/// claimed: it never runs.
pub fn cancelled_before_it_ran() -> JobOutcome {
    JobOutcome::Finished(Box::new(crate::execute::cancelled(
        None,
        "",
        "cancelled before it ran",
    )))
}

/// Pays what a claimed job's `outcome` owes when it is its end: a result
/// (completed, or cancelled), or a failure with no retry left. A retry, a
/// re-queue or a delay owes nothing yet.
pub async fn settle_claimed(queue: &JobQueue, job: &ClaimedJob, outcome: &JobOutcome) {
    let (state, result, error) = match outcome {
        JobOutcome::Finished(result) if result.verdict == Verdict::Cancelled => {
            (PublicState::Cancelled, Some(&**result), None)
        }
        JobOutcome::Finished(result) => (PublicState::Completed, Some(&**result), None),
        JobOutcome::Failed { reason, retryable }
            if !retryable || job.attempts_made + 1 >= job.attempts_allowed =>
        {
            (PublicState::Failed, None, Some(reason.clone()))
        }
        _ => return,
    };
    Ending {
        id: &job.id,
        spec: &job.spec,
        attempts: job.attempts_made + 1,
        started_at_ms: job.started_at_ms,
        added_at_ms: job.added_at_ms,
    }
    .settle(queue, state, result, error)
    .await;
}

/// Pays what a job the queue failed by itself owes (its worker died holding
/// it once too often, see [`SweptJob`]): the end its own worker never
/// reached, the live stream it fed closed.
pub async fn settle_swept(queue: &JobQueue, job: &SweptJob) {
    queue.live_sender(&job.id, false).finish(LiveEvent::End);
    Ending {
        id: &job.id,
        spec: &job.spec,
        attempts: job.attempts_made,
        started_at_ms: job.started_at_ms,
        added_at_ms: job.spec.submitted_at_ms,
    }
    .settle(queue, PublicState::Failed, None, Some(job.reason.clone()))
    .await;
}

/// Cancels job `id` (see [`JobQueue::cancel`]); a waiting job removed
/// from the queue ends here, and owes what every end owes (counted, its
/// webhook of the job as it reads now: cancelled, no result; its caller's
/// share back).
pub async fn cancel(queue: &JobQueue, id: &Uuid) -> Result<CancelOutcome, QueueError> {
    let outcome = queue.cancel(id).await?;
    if let CancelOutcome::Removed(Some(spec)) = &outcome {
        Ending {
            id: &id.to_string(),
            spec,
            attempts: 0,
            started_at_ms: None,
            added_at_ms: spec.submitted_at_ms,
        }
        .settle(queue, PublicState::Cancelled, None, None)
        .await;
    }
    Ok(outcome)
}

/// Gives back the caller's share of the queue that jobs `ids` held: at
/// their end, or when they could not be queued after all.
pub async fn give_share_back(queue: &JobQueue, bucket: &str, ids: &[String]) {
    if let Err(e) = queue.release_share(bucket, ids).await {
        tracing::warn!(?ids, error = %e,
            "could not give the caller's share back (pruned later)");
    }
}
