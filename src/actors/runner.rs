//! `ContainerRunner`: one per job, spawned linked to the dispatcher. It
//! drives the job (compile once, then each run: see [`crate::execute`] for
//! which containers they share) in a task it owns, and hears about it as
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
//! The execution's phases and output also go to the job's live stream in
//! Redis (`queue::live`), which ends with `end` (the result follows) or
//! `reset` (the job runs again); an interactive job's input comes from its
//! input stream through a relay task the runner owns, which also ends the
//! job when no client has been connected for the grace.
//!
//! **Invariant:** a runner that panics or is killed never cleans up after
//! itself (ractor runs no `post_stop` then; its execution task is aborted
//! with its state): its dispatcher removes its containers by label.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use monitor_protocol::Input;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, DerivedActorRef};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::AbortOnDrop;
use super::registry::{RegistryHandle, RegistryMsg};
use crate::execute::{Execution, ExecutionSettings, PreparedJob, execute};
use crate::job::JobOutcome;
use crate::job::{Phase, PhaseMark};
use crate::queue::JobQueue;
use crate::queue::live::{LiveEvent, LiveSender};
use crate::sandbox::pool::WarmPool;
use crate::sandbox::{RunObserver, Sandbox, SandboxError};

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
    /// For the job's live stream and an interactive job's input.
    pub queue: JobQueue,
    /// How long an interactive job runs with no client connected.
    pub interactive_grace: Duration,
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
    /// The execution ended with this; its live stream is ended by the
    /// outcome.
    Ended(Result<Execution, SandboxError>, LiveSender),
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
            RunnerMsg::Ended(ended, live) => {
                let outcome = outcome(state, ended);
                // A result follows (`end`), or the job runs again (`reset`).
                live.finish(match &outcome {
                    JobOutcome::Finished(_) => LiveEvent::End,
                    _ => LiveEvent::Reset,
                });
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
    let job = &state.args.job;
    let live = state.args.queue.live_sender(&job.job_id, !job.base64);
    // An interactive job's input, relayed from Redis as it comes.
    let (input, relay_input) = if job.interactive.is_some() {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let relay = tokio::spawn(
            relay_input(
                state.args.queue.clone(),
                job.job_id.clone(),
                tx,
                state.args.interactive_grace,
            )
            .instrument(state.span.clone()),
        );
        (Some(rx), Some(AbortOnDrop(relay)))
    } else {
        (None, None)
    };
    let execution = {
        let (args, stop, me) = (state.args.clone(), state.stop.clone(), myself.clone());
        tokio::spawn(
            async move {
                let observer = Observer {
                    runner: me.clone(),
                    live,
                    compiling: AtomicBool::new(false),
                    checking: AtomicBool::new(false),
                    runs: AtomicUsize::new(0),
                };
                let ended = execute(
                    &args.sandbox,
                    args.pool.as_ref(),
                    &args.job,
                    &args.settings,
                    &stop,
                    &observer,
                    input,
                )
                .await;
                let _ = me.cast(RunnerMsg::Ended(ended, observer.live));
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
    state.tasks.extend(relay_input);
}

/// What the execution tells as it goes: phases to the runner (and the
/// live stream), output to the live stream.
struct Observer {
    runner: ActorRef<RunnerMsg>,
    live: LiveSender,
    /// The compiler runs (its output is the compilation's).
    compiling: AtomicBool,
    /// The job's checker is running (its output is not the program's).
    checking: AtomicBool,
    /// Runs started so far.
    runs: AtomicUsize,
}

impl RunObserver for Observer {
    fn phase(&self, phase: Phase, container_id: &str) {
        let _ = self.runner.cast(RunnerMsg::Phase {
            phase,
            container_id: container_id.to_string(),
        });
        match phase {
            Phase::Compiling => self.compiling.store(true, Ordering::Relaxed),
            Phase::Running => {
                self.compiling.store(false, Ordering::Relaxed);
                self.checking.store(false, Ordering::Relaxed);
                self.runs.fetch_add(1, Ordering::Relaxed);
            }
            Phase::Checking => self.checking.store(true, Ordering::Relaxed),
            _ => {}
        }
        self.live.send(LiveEvent::Phase {
            phase,
            case: self.case(),
        });
    }

    fn output(&self, stderr: bool, bytes: &[u8]) {
        if self.checking.load(Ordering::Relaxed) {
            // The checker's words are in the case's result, not the
            // program's output.
            return;
        }
        self.live.send(LiveEvent::Output {
            stderr,
            compile: self.compiling.load(Ordering::Relaxed),
            case: self.case(),
            data: bytes.to_vec(),
        });
    }
}

impl Observer {
    fn case(&self) -> usize {
        self.runs.load(Ordering::Relaxed).saturating_sub(1)
    }
}

/// How often an interactive job's relay looks for input, and for its
/// client.
const INPUT_POLL: Duration = Duration::from_millis(500);

/// Relays an interactive job's input from Redis to its run, in order, and
/// tells the run its client left once none has been connected for `grace`.
async fn relay_input(
    queue: JobQueue,
    job_id: String,
    tx: tokio::sync::mpsc::Sender<Input>,
    grace: Duration,
) {
    let mut stream = match queue.input_stream(&job_id).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the job's input; it runs without");
            let _ = tx.send(Input::ClientLeft).await;
            return;
        }
    };
    let mut last_seen = tokio::time::Instant::now();
    let mut last_look = tokio::time::Instant::now();
    loop {
        match stream.next(INPUT_POLL).await {
            Ok(inputs) => {
                for input in inputs {
                    if tx.send(input).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "reading the job's input");
                tokio::time::sleep(INPUT_POLL).await;
            }
        }
        // The client's presence, at most every INPUT_POLL (not per input).
        if last_look.elapsed() < INPUT_POLL {
            continue;
        }
        last_look = tokio::time::Instant::now();
        if queue.client_present(&job_id).await.unwrap_or(true) {
            last_seen = tokio::time::Instant::now();
        } else if last_seen.elapsed() >= grace {
            let _ = tx.send(Input::ClientLeft).await;
            return;
        }
    }
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
