//! `Dispatcher`: takes jobs from Redis and runs each in its own
//! `ContainerRunner`, never more than the concurrency cap at once.
//!
//! It owns the process's BullMQ worker, whose concurrency is the cap: the
//! worker claims a job only while fewer than `cap` are in flight, so jobs
//! wait in Redis, never in this actor's (unbounded) mailbox. Each claimed
//! job arrives as [`DispatcherMsg::Run`] with a reply port; the dispatcher
//! spawns a linked runner and answers the port when the runner reports.
//!
//! When a runner fails (panics, or stops without reporting) the dispatcher
//! removes the job's container by label, fails the job with
//! `internal_error` (no retry: the job itself may be what broke it) and
//! frees the slot.
//!
//! Its helpers, so that its own mailbox never waits on I/O: the
//! [`Sweeper`] (a linked actor, respawned if it fails) removes containers
//! left behind, at start, every 15 seconds and after an engine outage; the
//! [`heartbeat`] and [`engine_watch`] tasks live as long as its state.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::engine_watch::{self, EngineChange};
use super::heartbeat::{self, WorkerVitals};
use super::registry::RegistryMsg;
use super::runner::{ContainerRunner, RunnerArgs, RunnerMsg, RunnerReport};
use super::sweeper::{SWEEP_INTERVAL, SweepMode, Sweeper, SweeperMsg, sweep};
use super::{AbortOnDrop, WorkerServices};
use crate::backoff::Backoff;
use crate::execute::{ExecutionSettings, prepare};
use crate::job::JobOutcome;
use crate::queue::cancel::watch_cancellations;
use crate::queue::worker::{ClaimedJob, QueueWorker, SweptJob};

/// With fault injection on, a job whose code contains this makes its runner
/// panic while the program runs (tests only).
pub const PANIC_RUNNER_MARKER: &str = "code-runner:fault:panic-runner";

pub enum DispatcherMsg {
    /// A job claimed by the queue worker; answer `reply` when it ends.
    Run {
        job: ClaimedJob,
        reply: RpcReplyPort<JobOutcome>,
    },
    /// A runner's outcome.
    RunnerDone {
        runner: ActorId,
        outcome: JobOutcome,
    },
    /// A runner stopped (queued behind any `RunnerDone` it sent first).
    RunnerExited { runner: ActorId, reason: String },
    /// A client cancelled this job; stop it if it runs here.
    CancelJob(String),
    /// Look for leftover containers.
    Sweep,
    /// Stop taking jobs; after the shutdown grace, stop the running ones
    /// (their jobs go back to the queue). Answers when none is left.
    Drain(RpcReplyPort<()>),
    /// The shutdown grace is over.
    DrainDeadline,
    /// The Docker engine stopped answering: claim no more jobs.
    EngineDown(String),
    /// The engine answers again: sweep what the outage left, then resume.
    EngineUp,
    /// Claim jobs again (after the post-outage sweep).
    Resume,
    /// Jobs in flight now.
    Running(RpcReplyPort<usize>),
    /// Test-only fault hook: fail the dispatcher.
    InjectFault,
}

impl From<RunnerReport> for DispatcherMsg {
    fn from(report: RunnerReport) -> Self {
        match report {
            RunnerReport::Done { runner, outcome } => DispatcherMsg::RunnerDone { runner, outcome },
            RunnerReport::EngineDown(reason) => DispatcherMsg::EngineDown(reason),
        }
    }
}

/// Only for ractor's `get_derived` (a report that could not be delivered
/// comes back in its own type).
impl TryFrom<DispatcherMsg> for RunnerReport {
    type Error = DispatcherMsg;

    fn try_from(message: DispatcherMsg) -> Result<Self, DispatcherMsg> {
        match message {
            DispatcherMsg::RunnerDone { runner, outcome } => {
                Ok(RunnerReport::Done { runner, outcome })
            }
            DispatcherMsg::EngineDown(reason) => Ok(RunnerReport::EngineDown(reason)),
            other => Err(other),
        }
    }
}

/// A job in flight.
struct InFlight {
    job_id: String,
    /// Its worker slot: the job's programs run under the slot's own uid.
    slot: u32,
    reply: RpcReplyPort<JobOutcome>,
    /// Its runner, told to stop when the job is cancelled or the worker
    /// stops.
    runner: ActorRef<RunnerMsg>,
}

pub struct DispatcherState {
    services: Arc<WorkerServices>,
    /// Dropped with the state, even on panic: stops claiming jobs.
    worker: QueueWorker,
    running: HashMap<ActorId, InFlight>,
    /// Jobs in flight and whether the engine answers, shared with the
    /// heartbeat.
    vitals: WorkerVitals,
    sweeper: ActorRef<SweeperMsg>,
    /// Pings the engine every second.
    _engine_watch: AbortOnDrop,
    _heartbeat: AbortOnDrop,
    /// Listens for cancellations of running jobs.
    _cancellations: AbortOnDrop,
    draining: Option<RpcReplyPort<()>>,
    /// Worker slots not in use. A slot comes back once its job's containers
    /// are gone (or their processes killed), so no two jobs' programs share
    /// a uid at the same time.
    free_slots: Arc<std::sync::Mutex<Vec<u32>>>,
}

/// The sweeper goes with the state, also when the dispatcher fails (ractor
/// stops no child of a failed actor).
impl Drop for DispatcherState {
    fn drop(&mut self) {
        self.sweeper.stop(None);
    }
}

pub struct Dispatcher;

impl Actor for Dispatcher {
    type Msg = DispatcherMsg;
    type State = DispatcherState;
    type Arguments = Arc<WorkerServices>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        services: Arc<WorkerServices>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let worker_id = services.worker_settings.worker_id.clone();
        // Whatever this worker's runners left (a restart means they are all
        // gone) and whatever dead workers left on this engine.
        sweep(&services, &HashSet::new(), SweepMode::NoRunners).await;
        services.registry.tell(RegistryMsg::ForgetWorker {
            worker_id: worker_id.clone(),
        });
        // Alive before the first container exists, so that no other
        // worker's sweep takes this one's containers for a dead worker's.
        let vitals = WorkerVitals::default();
        heartbeat::beat(&services, &vitals).await?;
        let heartbeat = tokio::spawn(heartbeat::run(services.clone(), vitals.clone()));
        let engine_watch = {
            let me = myself.clone();
            tokio::spawn(engine_watch::run(services.clone(), move |change| {
                let _ = me.cast(match change {
                    EngineChange::Down(reason) => DispatcherMsg::EngineDown(reason),
                    EngineChange::Up => DispatcherMsg::EngineUp,
                });
            }))
        };
        let (sweeper, _) =
            Actor::spawn_linked(None, Sweeper, services.clone(), myself.get_cell()).await?;

        let me = myself.clone();
        let queue = services.queue.clone();
        let worker = QueueWorker::start(
            &services.queue,
            &services.worker_settings,
            move |job: ClaimedJob| {
                let me = me.clone();
                let queue = queue.clone();
                async move {
                    let outcome = if job.cancel_requested {
                        crate::ending::cancelled_before_it_ran()
                    } else {
                        let claimed = job.clone();
                        match me
                            .call(
                                |reply| DispatcherMsg::Run {
                                    job: claimed,
                                    reply,
                                },
                                None,
                            )
                            .await
                        {
                            Ok(ractor::rpc::CallResult::Success(outcome)) => outcome,
                            _ => JobOutcome::Failed {
                                reason: "the worker's dispatcher stopped while the job ran".into(),
                                retryable: true,
                            },
                        }
                    };
                    // Whatever ended it, its end is paid in one place.
                    crate::ending::settle_claimed(&queue, &job, &outcome).await;
                    outcome
                }
            },
            {
                let queue = services.queue.clone();
                move |job: SweptJob| {
                    let queue = queue.clone();
                    async move { crate::ending::settle_swept(&queue, &job).await }
                }
            },
        )
        .await?;
        myself.send_interval(SWEEP_INTERVAL, || DispatcherMsg::Sweep);
        // Clients' cancellations of running jobs, from any API process.
        let cancellations = {
            let me = myself.clone();
            tokio::spawn(watch_cancellations(
                services.queue_settings.clone(),
                move |job_id| {
                    let _ = me.cast(DispatcherMsg::CancelJob(job_id));
                },
            ))
        };
        tracing::info!(worker = %worker_id, cap = services.worker_settings.concurrency,
            "dispatcher started");
        let free_slots = Arc::new(std::sync::Mutex::new(
            (0..services.worker_settings.concurrency).rev().collect(),
        ));
        Ok(DispatcherState {
            services,
            worker,
            running: HashMap::new(),
            free_slots,
            vitals,
            sweeper,
            _heartbeat: AbortOnDrop(heartbeat),
            _engine_watch: AbortOnDrop(engine_watch),
            _cancellations: AbortOnDrop(cancellations),
            draining: None,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.worker.close(Duration::from_secs(10)).await;
        state.services.pool.drain().await;
        // Every runner has ended: whatever of this worker is still on the
        // engine (a create that completed after its runner died) goes now.
        sweep(&state.services, &HashSet::new(), SweepMode::NoRunners).await;
        let worker_id = &state.services.worker_settings.worker_id;
        if let Err(e) = state.services.queue.forget_worker(worker_id).await {
            tracing::warn!(error = %e, "could not remove this worker's heartbeat");
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            DispatcherMsg::Run { job, reply } => start_job(&myself, state, job, reply).await,
            DispatcherMsg::RunnerDone { runner, outcome } => {
                if let Some(entry) = state.running.remove(&runner) {
                    finish(state, entry, outcome);
                }
            }
            DispatcherMsg::RunnerExited { runner, reason } => {
                if let Some(entry) = state.running.remove(&runner) {
                    runner_failed(state, entry, reason);
                }
            }
            DispatcherMsg::CancelJob(job_id) => {
                if let Some(entry) = state.running.values().find(|e| e.job_id == job_id) {
                    tracing::info!(job = %job_id, "cancelling a running job");
                    let _ = entry.runner.cast(RunnerMsg::Cancel);
                }
            }
            DispatcherMsg::Sweep => ask_sweep(state, SweepMode::Periodic, None),
            DispatcherMsg::Drain(reply) => {
                state.worker.pause();
                // Warm containers go meanwhile; post_stop waits for them.
                let pool = state.services.pool.clone();
                tokio::spawn(async move { pool.drain().await });
                state.draining = Some(reply);
                let grace = state.services.shutdown_grace;
                if grace.is_zero() {
                    cancel_all(state);
                } else {
                    myself.send_after(grace, || DispatcherMsg::DrainDeadline);
                }
                answer_drain_if_done(state);
            }
            DispatcherMsg::DrainDeadline => cancel_all(state),
            DispatcherMsg::EngineDown(reason) => {
                tracing::error!(%reason, "the Docker engine does not answer: claiming no jobs");
                state.vitals.engine_ok.store(false, Ordering::Relaxed);
                state.worker.pause();
                // Its idle containers may be gone with the engine.
                let pool = state.services.pool.clone();
                tokio::spawn(async move { pool.pause().await });
            }
            DispatcherMsg::EngineUp => {
                tracing::info!("the Docker engine answers again");
                state.vitals.engine_ok.store(true, Ordering::Relaxed);
                // Remove what the outage left (runs whose removal failed)
                // while nothing new starts, then claim jobs again.
                let (done, swept) = ractor::concurrency::oneshot();
                ask_sweep(state, SweepMode::Paused, Some(done.into()));
                let me = myself.clone();
                tokio::spawn(async move {
                    let _ = swept.await;
                    let _ = me.cast(DispatcherMsg::Resume);
                });
            }
            DispatcherMsg::Resume => {
                if state.vitals.engine_ok.load(Ordering::Relaxed) && state.draining.is_none() {
                    state.services.pool.resume();
                    state.worker.resume();
                }
            }
            DispatcherMsg::Running(reply) => {
                let _ = reply.send(state.running.len());
            }
            DispatcherMsg::InjectFault => {
                return Err("fault injected into the dispatcher".into());
            }
        }
        Ok(())
    }

    // Runners are short-lived children: one stopping or failing must never
    // stop the dispatcher (ractor's default would). Nor may its sweeper.
    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let ended = matches!(
            event,
            SupervisionEvent::ActorTerminated(..) | SupervisionEvent::ActorFailed(..)
        );
        if ended
            && event
                .actor_cell()
                .is_some_and(|cell| cell.get_id() == state.sweeper.get_id())
        {
            // A sweep failed: the next one gets a new sweeper.
            tracing::error!("the sweeper stopped; starting another");
            let (sweeper, _) =
                Actor::spawn_linked(None, Sweeper, state.services.clone(), myself.get_cell())
                    .await?;
            state.sweeper = sweeper;
            return Ok(());
        }
        let (runner, reason) = match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell.get_id(), reason.unwrap_or_else(|| "stopped".into()))
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                crate::metrics::runner_panic();
                (cell.get_id(), format!("panicked: {error}"))
            }
            _ => return Ok(()),
        };
        // Supervision events overtake ordinary messages; going through the
        // mailbox puts this after any RunnerDone the runner sent first.
        myself.cast(DispatcherMsg::RunnerExited { runner, reason })?;
        Ok(())
    }
}

/// A judging program's language, its version here and its limits, or why
/// the job cannot start.
fn resolve_program(
    services: &WorkerServices,
    program: &crate::job::JudgeProgram,
) -> Result<crate::execute::ResolvedProgram, JobOutcome> {
    let Some(language) = services.languages.find(&program.language).cloned() else {
        return Err(JobOutcome::Failed {
            reason: format!(
                "unknown language {:?} for the job's judge",
                program.language
            ),
            retryable: false,
        });
    };
    let Some(version) = services.images.version(&language.id) else {
        return Err(JobOutcome::NotReady(format!(
            "the image of {} (the job's checker or interactor) is not on this worker's engine yet",
            language.id
        )));
    };
    let limits = program.limits.unwrap_or_default().resolve(
        &services.default_limits,
        &language.limits,
        &services.max_limits,
    );
    Ok((language, version, limits))
}

async fn start_job(
    myself: &ActorRef<DispatcherMsg>,
    state: &mut DispatcherState,
    job: ClaimedJob,
    reply: RpcReplyPort<JobOutcome>,
) {
    let services = &state.services;
    let spec = job.spec.clone();
    let Some(language) = services.languages.find(&spec.language).cloned() else {
        let _ = reply.send(JobOutcome::Failed {
            reason: format!("unknown language {:?}", spec.language),
            retryable: false,
        });
        return;
    };
    if state.draining.is_some() {
        let _ = reply.send(JobOutcome::Requeue);
        return;
    }
    let limits = spec.limits.unwrap_or_default().resolve(
        &services.default_limits,
        &language.limits,
        &services.max_limits,
    );
    // A language whose image is not here yet (still being built): the job
    // waits, delayed, for this or another worker to have it.
    let Some(version) = services.images.version(&language.id) else {
        let _ = reply.send(JobOutcome::NotReady(format!(
            "the image of {} is not on this worker's engine yet",
            language.id
        )));
        return;
    };
    // The checker's or interactor's language, version and limits, resolved
    // as the job's.
    let judge = match spec.checker.as_ref().or(spec.interactor.as_ref()) {
        None => None,
        Some(program) => match resolve_program(services, program) {
            Ok(resolved) => Some(resolved),
            Err(outcome) => {
                let _ = reply.send(outcome);
                return;
            }
        },
    };
    let prepared = match prepare(&job.id, &spec, &language, &version, limits, judge) {
        Ok(prepared) => prepared,
        Err(reason) => {
            let _ = reply.send(JobOutcome::Failed {
                reason,
                retryable: false,
            });
            return;
        }
    };
    let marker = PANIC_RUNNER_MARKER.as_bytes();
    let panic_when_running = services.fault_injection
        && prepared
            .files
            .iter()
            .any(|f| f.content.windows(marker.len()).any(|w| w == marker));
    services.registry.tell(RegistryMsg::JobClaimed {
        job_id: job.id.clone(),
        language: language.id.clone(),
        worker_id: services.worker_settings.worker_id.clone(),
    });
    let Some(slot) = state
        .free_slots
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop()
    else {
        // BullMQ never hands more jobs than the cap; should it, the job waits.
        let _ = reply.send(JobOutcome::Requeue);
        return;
    };
    let args = RunnerArgs {
        job: prepared,
        settings: ExecutionSettings {
            uid: services.execution.uid + slot,
            cpuset: services.slot_cpus.get(slot as usize).copied(),
            ..services.execution
        },
        sandbox: services.sandbox.clone(),
        pool: Some(services.pool.clone()),
        registry: services.registry.clone(),
        report: myself.get_derived(),
        cancel: job.cancel,
        panic_when_running,
        queue: services.queue.clone(),
        interactive_grace: services.interactive_grace,
    };
    match Actor::spawn_linked(None, ContainerRunner, args, myself.get_cell()).await {
        Ok((runner, _)) => {
            state.running.insert(
                runner.get_id(),
                InFlight {
                    job_id: job.id,
                    slot,
                    reply,
                    runner: runner.clone(),
                },
            );
            state
                .vitals
                .running
                .store(state.running.len(), Ordering::Relaxed);
        }
        Err(e) => {
            give_slot(&state.free_slots, slot);
            let outcome = JobOutcome::Failed {
                reason: format!("could not start a runner: {e}"),
                retryable: true,
            };
            services.registry.tell(RegistryMsg::JobFinished {
                job_id: job.id,
                verdict: None,
                outcome: "failed: could not start a runner".into(),
            });
            let _ = reply.send(outcome);
        }
    }
}

fn finish(state: &mut DispatcherState, entry: InFlight, outcome: JobOutcome) {
    let (verdict, summary) = match &outcome {
        JobOutcome::Finished(result) => (Some(result.verdict), "completed".to_string()),
        JobOutcome::Requeue => (None, "requeued".to_string()),
        JobOutcome::NotReady(reason) => (None, format!("delayed: {reason}")),
        JobOutcome::Failed { reason, .. } => (None, format!("failed: {reason}")),
    };
    state.services.registry.tell(RegistryMsg::JobFinished {
        job_id: entry.job_id,
        verdict,
        outcome: summary,
    });
    let _ = entry.reply.send(outcome);
    // The monitor killed every process of the run before it reported.
    give_slot(&state.free_slots, entry.slot);
    state
        .vitals
        .running
        .store(state.running.len(), Ordering::Relaxed);
    answer_drain_if_done(state);
}

fn give_slot(free_slots: &std::sync::Mutex<Vec<u32>>, slot: u32) {
    free_slots
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(slot);
}

/// A runner died without reporting: remove its container, then fail the job.
fn runner_failed(state: &mut DispatcherState, entry: InFlight, reason: String) {
    tracing::error!(job = %entry.job_id, %reason, "runner failed; failing its job");
    let services = state.services.clone();
    let free_slots = state.free_slots.clone();
    state.services.registry.tell(RegistryMsg::JobFinished {
        job_id: entry.job_id.clone(),
        verdict: None,
        outcome: format!("failed: runner {reason}"),
    });
    tokio::spawn(async move {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(8));
        for attempt in 0..5 {
            match services.sandbox.remove_job_containers(&entry.job_id).await {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(job = %entry.job_id, error = %e, attempt,
                        "could not remove a failed runner's container yet");
                    backoff.wait().await;
                }
            }
        }
        // Its uid is free once its containers (and programs) are gone.
        give_slot(&free_slots, entry.slot);
        let _ = entry.reply.send(JobOutcome::Failed {
            reason: format!("internal_error: the job's runner failed ({reason})"),
            retryable: false,
        });
    });
    state
        .vitals
        .running
        .store(state.running.len(), Ordering::Relaxed);
    answer_drain_if_done(state);
}

/// Stops every running job for a shutdown (they go back to the queue).
fn cancel_all(state: &mut DispatcherState) {
    for entry in state.running.values() {
        let _ = entry.runner.cast(RunnerMsg::Shutdown);
    }
}

fn answer_drain_if_done(state: &mut DispatcherState) {
    if state.running.is_empty()
        && let Some(reply) = state.draining.take()
    {
        let _ = reply.send(());
    }
}

/// Asks the sweeper for a sweep that spares the jobs in flight now.
fn ask_sweep(state: &DispatcherState, mode: SweepMode, done: Option<RpcReplyPort<()>>) {
    let in_flight: HashSet<String> = state.running.values().map(|e| e.job_id.clone()).collect();
    let _ = state.sweeper.cast(SweeperMsg::Sweep {
        mode,
        in_flight,
        done,
    });
}
