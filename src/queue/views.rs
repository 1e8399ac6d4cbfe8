//! Jobs as read back from Redis, and as the v1 API and webhooks show them.

use serde::Serialize;

use crate::job::{JobResult, JobSpec};

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
