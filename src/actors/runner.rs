//! `ContainerRunner`: one per job, spawned linked to the dispatcher. It
//! drives the job (compile once, then each run, each in its own container)
//! through [`crate::execute`], in a task it owns, and hears about it as
//! messages, so that its mailbox stays free while the job runs:
//!
//! - `Start` (sent to itself once spawned) starts the execution;
//! - `Phase` (from the execution, in order) records the phase in the job's
//!   timeline and tells the `JobRegistry`;
//! - `Cancel` (the client cancelled: the job ends as `cancelled`) and
//!   `Shutdown` (the worker is stopping: the job goes back to the queue)
//!   stop the execution at its next step, its containers removed;
//! - `Ended` (from the execution, last) turns what it gave into the job's
//!   outcome, reports it to the dispatcher, and stops the runner.
//!
//! **Invariant:** a runner that panics or is killed never cleans up after
//! itself (ractor runs no `post_stop` then; its execution task is aborted
//! with its state): its dispatcher removes its containers by label.

use std::sync::Arc;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, DerivedActorRef};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::AbortOnDrop;
use super::registry::{RegistryHandle, RegistryMsg};
use crate::execute::{Execution, ExecutionSettings, PreparedJob, execute};
use crate::job::{Phase, PhaseMark};
use crate::queue::worker::JobOutcome;
use crate::sandbox::pool::WarmPool;
use crate::sandbox::{Sandbox, SandboxError};

/// Everything one job needs.
pub struct RunnerArgs {
    pub job: PreparedJob,
    pub settings: ExecutionSettings,
    pub sandbox: Sandbox,
    /// Warm containers to take instead of creating them.
    pub pool: Option<std::sync::Arc<WarmPool>>,
    pub registry: RegistryHandle,
    /// Where its reports go (its dispatcher, which this module need not
    /// know).
    pub report: DerivedActorRef<RunnerReport>,
    /// The queue asks the job to stop (as a `Cancel`).
    pub cancel: CancellationToken,
    /// Test-only fault hook: panic once the program is running, leaving its
    /// container behind for the dispatcher to remove.
    pub panic_when_running: bool,
}

/// What a runner tells the actor that spawned it.
#[derive(Debug)]
pub enum RunnerReport {
    /// Its job ended with `outcome`; the runner stops next.
    Done {
        runner: ActorId,
        outcome: JobOutcome,
    },
    /// Its Docker engine stopped answering: claim no more jobs until it is
    /// back.
    EngineDown(String),
}

pub enum RunnerMsg {
    /// Start the job (sent to itself once spawned).
    Start,
    /// The job reached `phase`, in `container_id` if it has one.
    Phase { phase: Phase, container_id: String },
    /// The client cancelled the job: stop it; it ends as `cancelled`.
    Cancel,
    /// The worker is stopping: stop the job; it goes back to the queue.
    Shutdown,
    /// The execution ended with this.
    Ended(Result<Execution, SandboxError>),
}

pub struct ContainerRunner;

pub struct RunnerState {
    args: Arc<RunnerArgs>,
    /// The job's span: its id and the submitting request's trace id, on
    /// every line this runner logs (in JSON, as span fields).
    span: tracing::Span,
    /// The phases so far, for the job's result.
    timeline: Vec<PhaseMark>,
    /// Whether any container was created: a job the engine never saw can go
    /// back to the queue without spending an attempt.
    started: bool,
    /// Stops the execution.
    stop: CancellationToken,
    /// The client cancelled (rather than the worker stopping).
    cancelled: bool,
    /// The execution, and the relay of the queue's cancellation; aborted
    /// with the state.
    tasks: Vec<AbortOnDrop>,
}

impl Actor for ContainerRunner {
    type Msg = RunnerMsg;
    type State = RunnerState;
    type Arguments = RunnerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: RunnerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let span = tracing::info_span!("job", job = %args.job.job_id,
            trace_id = %args.job.trace_id, language = %args.job.language.id);
        myself.cast(RunnerMsg::Start)?;
        Ok(RunnerState {
            args: Arc::new(args),
            span,
            timeline: vec![PhaseMark {
                phase: Phase::Claimed,
                at_ms: crate::job::now_ms(),
                container_id: String::new(),
            }],
            started: false,
            stop: CancellationToken::new(),
            cancelled: false,
            tasks: Vec::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RunnerMsg::Start => start(&myself, state),
            RunnerMsg::Phase {
                phase,
                container_id,
            } => {
                state.started = true;
                state.timeline.push(PhaseMark {
                    phase,
                    at_ms: crate::job::now_ms(),
                    container_id: container_id.clone(),
                });
                state.args.registry.tell(RegistryMsg::JobPhase {
                    job_id: state.args.job.job_id.clone(),
                    phase,
                    container_id,
                });
                if state.args.panic_when_running && phase == Phase::Running {
                    panic!("fault injection: runner panics while its program runs");
                }
            }
            RunnerMsg::Cancel => {
                state.cancelled = true;
                state.stop.cancel();
            }
            RunnerMsg::Shutdown => state.stop.cancel(),
            RunnerMsg::Ended(ended) => {
                let outcome = outcome(state, ended);
                state.span.in_scope(|| match &outcome {
                    JobOutcome::Finished(result) => {
                        tracing::info!(verdict = result.verdict.as_str(), "job finished")
                    }
                    JobOutcome::Failed { reason, .. } => tracing::warn!(%reason, "job failed"),
                    JobOutcome::Requeue => tracing::info!("job goes back to the queue"),
                    JobOutcome::NotReady(reason) => tracing::info!(%reason, "job delayed"),
                });
                state
                    .args
                    .report
                    .send_message(RunnerReport::Done {
                        runner: myself.get_id(),
                        outcome,
                    })
                    .map_err(|e| e.to_string())?;
                myself.stop(None);
            }
        }
        Ok(())
    }
}

/// Starts the execution, whose phases and end come back as messages.
fn start(myself: &ActorRef<RunnerMsg>, state: &mut RunnerState) {
    state.span.in_scope(|| tracing::info!("job started"));
    let execution = {
        let (args, stop, me) = (state.args.clone(), state.stop.clone(), myself.clone());
        tokio::spawn(
            async move {
                let on_phase = |phase: Phase, container_id: &str| {
                    let _ = me.cast(RunnerMsg::Phase {
                        phase,
                        container_id: container_id.to_string(),
                    });
                };
                let ended = execute(
                    &args.sandbox,
                    args.pool.as_ref(),
                    &args.job,
                    &args.settings,
                    &stop,
                    &on_phase,
                )
                .await;
                let _ = me.cast(RunnerMsg::Ended(ended));
            }
            .instrument(state.span.clone()),
        )
    };
    // The queue's own request to stop the job arrives as a `Cancel`.
    let relay = {
        let (cancel, stop, me) = (
            state.args.cancel.clone(),
            state.stop.clone(),
            myself.clone(),
        );
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => { let _ = me.cast(RunnerMsg::Cancel); }
                _ = stop.cancelled() => {}
            }
        })
    };
    state.tasks = vec![AbortOnDrop(execution), AbortOnDrop(relay)];
}

/// The job's outcome from what its execution gave.
fn outcome(state: &mut RunnerState, ended: Result<Execution, SandboxError>) -> JobOutcome {
    let args = &state.args;
    let timeline = std::mem::take(&mut state.timeline);
    match ended {
        Ok(Execution::Finished(mut result)) => {
            result.timeline = timeline;
            JobOutcome::Finished(result)
        }
        Ok(Execution::Cancelled) if state.cancelled => {
            let mut result = crate::execute::cancelled(
                Some(&args.job),
                &args.sandbox.settings().worker_id,
                "cancelled while it ran",
            );
            result.timeline = timeline;
            JobOutcome::Finished(Box::new(result))
        }
        Ok(Execution::Cancelled) => JobOutcome::Requeue,
        Err(e) if e.is_unreachable() => {
            // The engine went away: stop claiming at once rather than at
            // the next ping, so waiting jobs wait instead of failing.
            let _ = args
                .report
                .send_message(RunnerReport::EngineDown(e.to_string()));
            if state.started {
                JobOutcome::Failed {
                    reason: e.to_string(),
                    retryable: true,
                }
            } else {
                JobOutcome::Requeue
            }
        }
        Err(e @ SandboxError::UnsafeCreate(_)) => JobOutcome::Failed {
            reason: e.to_string(),
            retryable: false,
        },
        Err(e) => JobOutcome::Failed {
            reason: e.to_string(),
            retryable: true,
        },
    }
}
