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
//! frees the slot. It also sweeps containers left behind (see [`sweep`]): at
//! start and every 15 seconds.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio_util::sync::CancellationToken;

use super::WorkerServices;
use super::registry::RegistryMsg;
use super::runner::{ContainerRunner, RunnerArgs, RunnerReport};
use crate::execute::{ExecutionSettings, prepare};
use crate::job::now_ms;
use crate::queue::cancel::watch_cancellations;
use crate::queue::heartbeat::HEARTBEAT_INTERVAL;
use crate::queue::worker::{ClaimedJob, JobOutcome, QueueWorker};
use crate::sandbox::pool::POOL_JOB;
use crate::status::{WorkerInfo, WorkerJob};

/// With fault injection on, a job whose code contains this makes its runner
/// panic while the program runs (tests only).
pub const PANIC_RUNNER_MARKER: &str = "code-runner:fault:panic-runner";

/// How often leftover containers are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_secs(15);
/// A container younger than this is swept only when its worker is dead: its
/// runner may have just created it.
const SWEEP_MIN_AGE_SECS: i64 = 30;
/// How often the engine is pinged, and how long a ping may take.
const ENGINE_PING_INTERVAL: Duration = Duration::from_secs(1);
const ENGINE_PING_TIMEOUT: Duration = Duration::from_secs(3);

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
    /// The client cancelled it.
    cancel: CancellationToken,
    /// The worker is stopping.
    shutdown: CancellationToken,
}

/// Aborts a background task when dropped (also when the owner panics).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub struct DispatcherState {
    services: Arc<WorkerServices>,
    /// Dropped with the state, even on panic: stops claiming jobs.
    worker: QueueWorker,
    running: HashMap<ActorId, InFlight>,
    /// `running.len()`, for the heartbeat task.
    running_count: Arc<AtomicUsize>,
    /// Whether the engine answers, for the heartbeat and `resume`.
    engine_ok: Arc<AtomicBool>,
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

        let running_count = Arc::new(AtomicUsize::new(0));
        let engine_ok = Arc::new(AtomicBool::new(true));
        // Alive before the first container exists, so that no other
        // worker's sweep takes this one's containers for a dead worker's.
        let started_at_ms = now_ms();
        services
            .queue
            .heartbeat(&worker_info(&services, started_at_ms, 0, true))
            .await?;
        let heartbeat = tokio::spawn(heartbeat_loop(
            services.clone(),
            running_count.clone(),
            engine_ok.clone(),
            started_at_ms,
        ));
        let engine_watch = tokio::spawn(engine_watch(services.clone(), myself.clone()));

        let me = myself.clone();
        let worker = QueueWorker::start(
            &services.queue,
            &services.worker_settings,
            move |job: ClaimedJob| {
                let me = me.clone();
                async move {
                    match me
                        .call(|reply| DispatcherMsg::Run { job, reply }, None)
                        .await
                    {
                        Ok(ractor::rpc::CallResult::Success(outcome)) => outcome,
                        _ => JobOutcome::Failed {
                            reason: "the worker's dispatcher stopped while the job ran".into(),
                            retryable: true,
                        },
                    }
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
            running_count,
            _heartbeat: AbortOnDrop(heartbeat),
            engine_ok,
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
                    entry.cancel.cancel();
                }
            }
            DispatcherMsg::Sweep => {
                let services = state.services.clone();
                let known: HashSet<String> =
                    state.running.values().map(|e| e.job_id.clone()).collect();
                tokio::spawn(async move { sweep(&services, &known, SweepMode::Periodic).await });
            }
            DispatcherMsg::Drain(reply) => {
                state.worker.pause();
                state.services.pool.drain().await;
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
                state.engine_ok.store(false, Ordering::Relaxed);
                state.worker.pause();
                // Its idle containers may be gone with the engine.
                let pool = state.services.pool.clone();
                tokio::spawn(async move { pool.pause().await });
            }
            DispatcherMsg::EngineUp => {
                tracing::info!("the Docker engine answers again");
                state.engine_ok.store(true, Ordering::Relaxed);
                // Remove what the outage left (runs whose removal failed)
                // while nothing new starts, then claim jobs again.
                let services = state.services.clone();
                let known: HashSet<String> =
                    state.running.values().map(|e| e.job_id.clone()).collect();
                let me = myself.clone();
                tokio::spawn(async move {
                    sweep(&services, &known, SweepMode::Paused).await;
                    let _ = me.cast(DispatcherMsg::Resume);
                });
            }
            DispatcherMsg::Resume => {
                if state.engine_ok.load(Ordering::Relaxed) && state.draining.is_none() {
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
    // stop the dispatcher (ractor's default would).
    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
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
    let version = services
        .versions
        .get(&language.id)
        .cloned()
        .unwrap_or_else(|| language.version.clone());
    let prepared = match prepare(&job.id, &spec, &language, &version, limits) {
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
    let shutdown = CancellationToken::new();
    let args = RunnerArgs {
        job: prepared,
        settings: ExecutionSettings {
            uid: services.execution.uid + slot,
            cpuset: services.pinned_cpus.then_some(slot),
            ..services.execution
        },
        sandbox: services.sandbox.clone(),
        pool: Some(services.pool.clone()),
        registry: services.registry.clone(),
        report: myself.get_derived(),
        cancel: job.cancel.clone(),
        shutdown: shutdown.clone(),
        panic_when_running,
    };
    match Actor::spawn_linked(None, ContainerRunner, args, myself.get_cell()).await {
        Ok((runner, _)) => {
            state.running.insert(
                runner.get_id(),
                InFlight {
                    job_id: job.id,
                    slot,
                    reply,
                    cancel: job.cancel,
                    shutdown,
                },
            );
            state
                .running_count
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
        .running_count
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
        for attempt in 0..5 {
            match services.sandbox.remove_job_containers(&entry.job_id).await {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(job = %entry.job_id, error = %e, attempt,
                        "could not remove a failed runner's container yet");
                    tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
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
        .running_count
        .store(state.running.len(), Ordering::Relaxed);
    answer_drain_if_done(state);
}

/// Stops every running job for a shutdown (they go back to the queue).
fn cancel_all(state: &mut DispatcherState) {
    for entry in state.running.values() {
        entry.shutdown.cancel();
    }
}

fn answer_drain_if_done(state: &mut DispatcherState) {
    if state.running.is_empty()
        && let Some(reply) = state.draining.take()
    {
        let _ = reply.send(());
    }
}

/// When a sweep runs, which says what of this worker's own is left over.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SweepMode {
    /// The dispatcher starts or stops: no runner of it exists, all of this
    /// worker's containers are left over.
    NoRunners,
    /// No runner starts meanwhile (the queue worker is paused): this
    /// worker's containers that no job in flight owns are left over.
    Paused,
    /// Runners may start meanwhile: only containers older than
    /// [`SWEEP_MIN_AGE_SECS`] that no job in flight owns are left over.
    Periodic,
}

/// Removes leftover containers. A container is left over when:
/// - it is this worker's and no runner owns it (see [`SweepMode`]);
/// - its worker's heartbeat expired (that process is dead);
/// - its job is no longer active in Redis (finished, or taken over by
///   another worker after its own died), and it is older than
///   [`SWEEP_MIN_AGE_SECS`], so a fresh container is never taken.
async fn sweep(services: &WorkerServices, in_flight: &HashSet<String>, mode: SweepMode) {
    let own = &services.worker_settings.worker_id;
    let containers = match services.sandbox.list_queue_containers().await {
        Ok(containers) => containers,
        Err(e) => {
            tracing::warn!(error = %e, "sweep: cannot list containers");
            return;
        }
    };
    // After the listing: a container the pool adds meanwhile is too young
    // for a periodic sweep, and the other modes run while it does not refill.
    let pooled_now = services.pool.container_ids();
    let now = now_ms();
    let mut alive: HashMap<String, bool> = HashMap::new();
    let mut orphans = Vec::new();
    for c in containers {
        let old = (now / 1000) as i64 - c.created > SWEEP_MIN_AGE_SECS;
        let waiting_in_pool = c.pooled && c.job_id == POOL_JOB;
        let orphan = if pooled_now.contains(&c.id) {
            false
        } else if &c.worker_id == own && waiting_in_pool {
            // Warm, but not the pool's: the pool lost track of it.
            old || mode != SweepMode::Periodic
        } else if &c.worker_id == own {
            match mode {
                SweepMode::NoRunners => true,
                SweepMode::Paused => !in_flight.contains(&c.job_id),
                SweepMode::Periodic => !in_flight.contains(&c.job_id) && old,
            }
        } else {
            let live = match alive.get(&c.worker_id) {
                Some(&live) => live,
                None => {
                    // When Redis cannot tell, leave the container alone.
                    let live = services
                        .queue
                        .is_worker_alive(&c.worker_id, now)
                        .await
                        .unwrap_or(true);
                    alive.insert(c.worker_id.clone(), live);
                    live
                }
            };
            // Another live worker's warm container is its own business.
            !live
                || (!waiting_in_pool
                    && old
                    && !services.queue.is_active(&c.job_id).await.unwrap_or(true))
        };
        if orphan {
            orphans.push(c);
        }
    }
    if !orphans.is_empty() {
        let removed = services.sandbox.remove_all(&orphans).await;
        tracing::info!(removed, "sweep removed leftover containers");
    }
}

fn worker_info(
    services: &WorkerServices,
    started_at_ms: u64,
    running: usize,
    engine_ok: bool,
) -> WorkerInfo {
    WorkerInfo {
        id: services.worker_settings.worker_id.clone(),
        host: crate::config::hostname(),
        concurrency: services.worker_settings.concurrency,
        running,
        engine_ok,
        started_at_ms,
        heartbeat_at_ms: now_ms(),
        jobs: Vec::new(),
        restarts: Default::default(),
        pool: Some(services.pool.stats()),
    }
}

/// Pings the engine every second and tells the dispatcher when it stops
/// or starts answering again.
async fn engine_watch(services: Arc<WorkerServices>, dispatcher: ActorRef<DispatcherMsg>) {
    let mut up = true;
    let mut ticker = tokio::time::interval(ENGINE_PING_INTERVAL);
    loop {
        ticker.tick().await;
        let ping = tokio::time::timeout(ENGINE_PING_TIMEOUT, services.sandbox.engine_info()).await;
        match (up, ping) {
            (true, Ok(Err(e))) => {
                up = false;
                let _ = dispatcher.cast(DispatcherMsg::EngineDown(e.to_string()));
            }
            (true, Err(_)) => {
                up = false;
                let _ = dispatcher.cast(DispatcherMsg::EngineDown("no answer in time".into()));
            }
            (false, Ok(Ok(_))) => {
                up = true;
                let _ = dispatcher.cast(DispatcherMsg::EngineUp);
            }
            _ => {}
        }
    }
}

/// How long after a phase change the heartbeat publishing it is written
/// (the changes within it go in one write).
const PHASE_PUBLISH_DELAY: Duration = Duration::from_millis(200);

async fn heartbeat_loop(
    services: Arc<WorkerServices>,
    running: Arc<AtomicUsize>,
    engine_ok: Arc<AtomicBool>,
    started_at_ms: u64,
) {
    let mut ticker = tokio::time::interval(HEARTBEAT_INTERVAL);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            // Phases are read from the heartbeat by other processes (an
            // `api` process answering for a running job): publish changes
            // soon, at most every PHASE_PUBLISH_DELAY.
            _ = services.registry.changed() => {
                tokio::time::sleep(PHASE_PUBLISH_DELAY).await;
            }
        }
        let mut info = worker_info(
            &services,
            started_at_ms,
            running.load(Ordering::Relaxed),
            engine_ok.load(Ordering::Relaxed),
        );
        // The live view of this process's actors, for dashboards elsewhere.
        if let Some(snapshot) = services.registry.snapshot().await {
            info.jobs = snapshot
                .in_flight
                .into_iter()
                .filter(|j| j.worker_id == info.id)
                .map(|j| WorkerJob {
                    job_id: j.job_id,
                    language: j.language,
                    phase: j.phase,
                    claimed_at_ms: j.claimed_at_ms,
                    phase_at_ms: j.phase_at_ms,
                    container_id: j.container_id,
                })
                .collect();
            info.restarts = snapshot.restarts;
        }
        if let Err(e) = services.queue.heartbeat(&info).await {
            tracing::warn!(error = %e, "heartbeat not recorded");
        }
    }
}
