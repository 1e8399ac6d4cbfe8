//! `ContainerRunner`: one per job, spawned linked to the dispatcher. It runs
//! the job (compile once, then each run, each in its own container) through
//! [`crate::execute`], reports each phase to the `JobRegistry`, sends the
//! outcome to its dispatcher and stops.
//!
//! The job runs inside one handler, so this actor's mailbox is busy while it
//! runs; it hears "stop" through two cancellation tokens instead: `cancel`
//! (the client cancelled the job: it ends as `cancelled`) and `shutdown`
//! (the worker is stopping: the job goes back to the queue).
//!
//! **Invariant:** a runner that panics or is killed never cleans up after
//! itself (ractor runs no `post_stop` then): its dispatcher removes its
//! containers by label.

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, DerivedActorRef};
use tokio_util::sync::CancellationToken;

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
    /// The client cancelled the job.
    pub cancel: CancellationToken,
    /// The worker is stopping.
    pub shutdown: CancellationToken,
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
    Start,
}

pub struct ContainerRunner;

impl Actor for ContainerRunner {
    type Msg = RunnerMsg;
    type State = Option<RunnerArgs>;
    type Arguments = RunnerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: RunnerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(Some(args))
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        myself.cast(RunnerMsg::Start)?;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let RunnerMsg::Start = message;
        let Some(args) = state.take() else {
            return Ok(());
        };
        // The job's span: its id and the submitting request's trace id, on
        // every line this run logs (in JSON, as span fields).
        let span = tracing::info_span!("job", job = %args.job.job_id,
            trace_id = %args.job.trace_id, language = %args.job.language.id);
        let outcome = tracing::Instrument::instrument(
            async {
                tracing::info!("job started");
                let outcome = run(&args).await;
                match &outcome {
                    JobOutcome::Finished(result) => {
                        tracing::info!(verdict = result.verdict.as_str(), "job finished")
                    }
                    JobOutcome::Failed { reason, .. } => {
                        tracing::warn!(%reason, "job failed")
                    }
                    JobOutcome::Requeue => tracing::info!("job goes back to the queue"),
                }
                outcome
            },
            span,
        )
        .await;
        args.report
            .send_message(RunnerReport::Done {
                runner: myself.get_id(),
                outcome,
            })
            .map_err(|e| e.to_string())?;
        myself.stop(None);
        Ok(())
    }
}

async fn run(args: &RunnerArgs) -> JobOutcome {
    let job_id = &args.job.job_id;
    // Whether any container was created: a job the engine never saw can go
    // back to the queue without spending an attempt.
    let started = std::sync::atomic::AtomicBool::new(false);
    let claimed_at = crate::job::now_ms();
    let timeline = std::sync::Mutex::new(vec![PhaseMark {
        phase: Phase::Claimed,
        at_ms: claimed_at,
        container_id: String::new(),
    }]);
    let on_phase = |phase: Phase, container_id: &str| {
        started.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut marks) = timeline.lock() {
            marks.push(PhaseMark {
                phase,
                at_ms: crate::job::now_ms(),
                container_id: container_id.to_string(),
            });
        }
        args.registry.tell(RegistryMsg::JobPhase {
            job_id: job_id.clone(),
            phase,
            container_id: container_id.to_string(),
        });
        if args.panic_when_running && phase == Phase::Running {
            panic!("fault injection: runner panics while its program runs");
        }
    };
    // Either token stops the run; which one says what becomes of the job.
    let stop = CancellationToken::new();
    let relay = {
        let (stop, cancel, shutdown) = (stop.clone(), args.cancel.clone(), args.shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => stop.cancel(),
                _ = shutdown.cancelled() => stop.cancel(),
                _ = stop.cancelled() => {}
            }
        })
    };
    let outcome = execute(
        &args.sandbox,
        args.pool.as_ref(),
        &args.job,
        &args.settings,
        &stop,
        &on_phase,
    )
    .await;
    stop.cancel();
    let _ = relay.await;
    let timeline = timeline.into_inner().unwrap_or_default();
    match outcome {
        Ok(Execution::Finished(mut result)) => {
            result.timeline = timeline;
            JobOutcome::Finished(result)
        }
        Ok(Execution::Cancelled) if args.cancel.is_cancelled() => {
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
            if started.load(std::sync::atomic::Ordering::Relaxed) {
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
