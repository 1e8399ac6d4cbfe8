//! One way to load a job for a handler: the stored job, visible only to the
//! caller that may see it, with its live phase while it runs. `GET /status`,
//! `GET`/`DELETE /v1/jobs/{id}` and the dashboard's job view all go through
//! [`load`]; each answers a job it cannot see in its own words.

use uuid::Uuid;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use crate::actors::registry::LiveJob;
use crate::job::Phase;
use crate::queue::{PublicState, StoredJob};

/// A job as a handler answers it.
pub struct LoadedJob {
    pub job: StoredJob,
    /// How far it got, while it is active.
    pub phase: Option<Phase>,
    /// This process's live view of it, when it runs here.
    pub live: Option<LiveJob>,
}

/// Loads job `id` as `caller` may see it (`None`: the dashboard, which sees
/// every job). Another key's job, like a missing one, is `None`.
pub async fn load(
    state: &AppState,
    caller: Option<&Caller>,
    id: &Uuid,
) -> Result<Option<LoadedJob>, ApiError> {
    // Before the stored job: a job that ends meanwhile is answered as
    // ended, never as active without a phase.
    let live = state.registry.job(&id.to_string()).await;
    let Some(job) = state.queue.get(id).await? else {
        return Ok(None);
    };
    if let Some(caller) = caller
        && !caller.may_see(job.spec.as_ref().and_then(|s| s.owner.as_deref()))
    {
        return Ok(None);
    }
    let phase = if job.state == PublicState::Active {
        active_phase(state, &job, live.as_ref()).await
    } else {
        None
    };
    Ok(Some(LoadedJob { job, phase, live }))
}

/// How far an active job got: from this process's `JobRegistry` when it
/// runs here, else from the heartbeat of the worker that claimed it (every
/// worker publishes its jobs' phases in Redis within a moment of a change).
async fn active_phase(state: &AppState, job: &StoredJob, live: Option<&LiveJob>) -> Option<Phase> {
    if let Some(live) = live {
        return Some(live.phase);
    }
    let worker = job.processed_by.as_deref()?;
    match state.queue.published_job(worker, &job.id).await {
        Ok(published) => published.map(|j| j.phase),
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the worker's heartbeat");
            None
        }
    }
}
