//! `JobRegistry`: the live, in-memory view of this process's work: jobs in
//! flight and their phase, recent results, counters per verdict, and actor
//! restarts. HTTP handlers ask it (always with a timeout); for a job it does
//! not hold, the answer comes from Redis.
//!
//! **Invariant:** nothing here is the source of truth for a job; losing this
//! actor (it is restarted empty) loses no job, only the live view.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;

use crate::job::{Phase, Verdict, now_ms};
use crate::status::RestartRecord;

/// Finished jobs kept for the live view.
const RECENT_CAPACITY: usize = 200;

/// A job in flight in this process.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveJob {
    pub job_id: String,
    pub language: String,
    pub worker_id: String,
    pub phase: Phase,
    pub container_id: Option<String>,
    pub claimed_at_ms: u64,
    pub phase_at_ms: u64,
}

/// A job this process finished recently.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FinishedJob {
    pub job_id: String,
    /// The verdict, or `None` when the job failed or went back to the queue.
    pub verdict: Option<Verdict>,
    /// What became of the job (`completed`, `failed: …`, `requeued`).
    pub outcome: String,
    pub finished_at_ms: u64,
    pub run_ms: u64,
}

/// The longest anyone waits for the registry: it is a cache of the live
/// view, so a caller that does not hear from it in time answers from Redis
/// (or without the live part) instead of waiting.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(250);

/// Everything the registry knows, for stats and the dashboard.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrySnapshot {
    pub in_flight: Vec<LiveJob>,
    pub recent: Vec<FinishedJob>,
    /// Jobs finished by this process, per verdict (`failed` and `requeued`
    /// for jobs that did not complete).
    pub finished: BTreeMap<String, u64>,
    /// Most jobs in flight at once since this registry started.
    pub peak_in_flight: usize,
    pub restarts: BTreeMap<String, RestartRecord>,
}

pub enum RegistryMsg {
    JobClaimed {
        job_id: String,
        language: String,
        worker_id: String,
    },
    JobPhase {
        job_id: String,
        phase: Phase,
        container_id: String,
    },
    JobFinished {
        job_id: String,
        verdict: Option<Verdict>,
        outcome: String,
    },
    /// A dispatcher (re)started: jobs it had in flight are no longer
    /// running here.
    ForgetWorker {
        worker_id: String,
    },
    /// The supervisor's full restart record, sent after every restart.
    RestartsChanged(BTreeMap<String, RestartRecord>),
    GetJob(String, RpcReplyPort<Option<LiveJob>>),
    Snapshot(RpcReplyPort<RegistrySnapshot>),
    /// Test-only fault hook: fail the registry.
    InjectFault,
}

pub struct JobRegistry;

#[derive(Default)]
pub struct RegistryState {
    in_flight: HashMap<String, LiveJob>,
    recent: VecDeque<FinishedJob>,
    finished: BTreeMap<String, u64>,
    peak_in_flight: usize,
    restarts: BTreeMap<String, RestartRecord>,
}

impl Actor for JobRegistry {
    type Msg = RegistryMsg;
    type State = RegistryState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _args: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(RegistryState::default())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RegistryMsg::JobClaimed {
                job_id,
                language,
                worker_id,
            } => {
                let now = now_ms();
                state.in_flight.insert(
                    job_id.clone(),
                    LiveJob {
                        job_id,
                        language,
                        worker_id,
                        phase: Phase::Claimed,
                        container_id: None,
                        claimed_at_ms: now,
                        phase_at_ms: now,
                    },
                );
                state.peak_in_flight = state.peak_in_flight.max(state.in_flight.len());
            }
            RegistryMsg::JobPhase {
                job_id,
                phase,
                container_id,
            } => {
                if let Some(job) = state.in_flight.get_mut(&job_id) {
                    job.phase = phase;
                    job.phase_at_ms = now_ms();
                    job.container_id = Some(container_id);
                }
            }
            RegistryMsg::JobFinished {
                job_id,
                verdict,
                outcome,
            } => {
                let claimed = state.in_flight.remove(&job_id);
                let now = now_ms();
                let key = verdict.map_or_else(
                    || outcome.split(':').next().unwrap_or("failed").to_string(),
                    |s| s.as_str().to_string(),
                );
                *state.finished.entry(key).or_default() += 1;
                if state.recent.len() == RECENT_CAPACITY {
                    state.recent.pop_front();
                }
                state.recent.push_back(FinishedJob {
                    job_id,
                    verdict,
                    outcome,
                    finished_at_ms: now,
                    run_ms: claimed.map_or(0, |c| now.saturating_sub(c.claimed_at_ms)),
                });
            }
            RegistryMsg::ForgetWorker { worker_id } => {
                state.in_flight.retain(|_, job| job.worker_id != worker_id);
            }
            RegistryMsg::RestartsChanged(restarts) => state.restarts = restarts,
            RegistryMsg::GetJob(id, reply) => {
                let _ = reply.send(state.in_flight.get(&id).cloned());
            }
            RegistryMsg::Snapshot(reply) => {
                let mut in_flight: Vec<_> = state.in_flight.values().cloned().collect();
                in_flight.sort_by_key(|j| j.claimed_at_ms);
                let _ = reply.send(RegistrySnapshot {
                    in_flight,
                    recent: state.recent.iter().rev().cloned().collect(),
                    finished: state.finished.clone(),
                    peak_in_flight: state.peak_in_flight,
                    restarts: state.restarts.clone(),
                });
            }
            RegistryMsg::InjectFault => {
                return Err("fault injected into the job registry".into());
            }
        }
        Ok(())
    }
}

/// The current `JobRegistry`, wherever the supervisor last (re)started it.
/// Shared by the dispatcher, the runners and the HTTP handlers.
#[derive(Clone, Default)]
pub struct RegistryHandle {
    current: Arc<RwLock<Option<ActorRef<RegistryMsg>>>>,
    /// Woken when a job is claimed, changes phase or finishes, so that the
    /// worker's heartbeat publishes phases soon (other processes read them
    /// there).
    changed: Arc<tokio::sync::Notify>,
}

impl RegistryHandle {
    pub fn set(&self, registry: Option<ActorRef<RegistryMsg>>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = registry;
    }

    pub fn get(&self) -> Option<ActorRef<RegistryMsg>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sends without waiting; a registry that is restarting misses it.
    pub fn tell(&self, message: RegistryMsg) {
        if matches!(
            message,
            RegistryMsg::JobClaimed { .. }
                | RegistryMsg::JobPhase { .. }
                | RegistryMsg::JobFinished { .. }
        ) {
            self.changed.notify_one();
        }
        if let Some(registry) = self.get() {
            let _ = registry.cast(message);
        }
    }

    /// The job, if it is in flight in this process; `None` also when the
    /// registry does not answer within [`CALL_TIMEOUT`].
    pub async fn job(&self, id: &str) -> Option<LiveJob> {
        let registry = self.get()?;
        let id = id.to_string();
        match registry
            .call(|reply| RegistryMsg::GetJob(id, reply), Some(CALL_TIMEOUT))
            .await
        {
            Ok(ractor::rpc::CallResult::Success(job)) => job,
            _ => None,
        }
    }

    /// Returns once a job was claimed, changed phase or finished since the
    /// last call returned.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Everything it knows; `None` when it does not answer within
    /// [`CALL_TIMEOUT`].
    pub async fn snapshot(&self) -> Option<RegistrySnapshot> {
        let registry = self.get()?;
        match registry
            .call(RegistryMsg::Snapshot, Some(CALL_TIMEOUT))
            .await
        {
            Ok(ractor::rpc::CallResult::Success(snapshot)) => Some(snapshot),
            _ => None,
        }
    }
}
