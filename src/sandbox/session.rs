//! One container for every run of a job's test cases: the task goes in once
//! (with `cases`), then each case's input; the monitor runs the command once
//! per case and restores the container between cases (every process killed,
//! the scratch file systems emptied, the work directory written afresh), so
//! that a job of N cases costs one container lifecycle, not N.
//!
//! A case whose report does not say the container is clean again (the last
//! case, a restore that failed, a monitor that did not report, tampered
//! frames) ends the session: its container is removed, and the caller opens
//! a fresh one for the next case.
//!
//! A batch task run alone ([`Sandbox::open_once`]: a checker, a compilation
//! in a container of its own) whose container may serve other jobs is a
//! session of one task, so that its container goes back to the pool too.
//!
//! A session may begin with a compilation ([`Sandbox::open_chain`]): the
//! compiler runs first, under the compilation's limits, and the monitor
//! clears the container after it; the container's memory and processes
//! limits are then set to the run's ([`CaseSession::then_cases`]) before
//! the run's task goes in, so that a compiled job of any number of cases
//! costs one container lifecycle. If the limits cannot be set, the session
//! ends and the cases get a container of their own.

use std::sync::Arc;
use std::time::Duration;

use monitor_protocol::{Input, Task, encode_input};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::pool::{PoolKey, Returning, Taken, WarmPool};
use super::run::{
    DEADLINE_GRACE, HeldIo, ReadEnd, Reading, Reuse, RunObserver, TaskOutcome, TaskRequest,
};
use super::spec::{ContainerLimits, limits_update, monitor_task};
use super::{Sandbox, SandboxError};
use crate::job::Phase;
use crate::metrics;

/// How long past a case's own deadline the service waits for the monitor's
/// restore of the container (the monitor gives up on it after 2 s).
const RESTORE_GRACE: Duration = Duration::from_secs(3);

/// A container running a job's cases one after another.
pub struct CaseSession<'a> {
    sandbox: &'a Sandbox,
    pool: Option<&'a Arc<WarmPool>>,
    /// The container, until the session ends.
    held: Option<Holding<'a>>,
    output: super::run::OutputStream,
    /// Encoded frames (and a next task) for the monitor's stdin.
    input: tokio::sync::mpsc::Sender<Vec<u8>>,
    writer: tokio::task::JoinHandle<()>,
    /// The task (its nonce, limits and caps read each case's frames).
    task: Task,
    /// A first task (a compilation) ran and the container was cleared:
    /// the run's task is awaited ([`CaseSession::then_cases`]).
    awaiting_task: bool,
    /// Set when the container may serve another job after the last case.
    recycling: Option<Recycling>,
}

/// What the pool needs to keep a recyclable session's container.
struct Recycling {
    key: PoolKey,
    /// Whose jobs it may serve next (`None`: anyone's).
    sharers: Option<String>,
    reuse: Reuse,
    /// The limits it was created with, given back before it is kept (a
    /// compilation's container ran its program under the run's).
    restore: Option<bollard::models::ContainerUpdateBody>,
}

impl Sandbox {
    /// Holds a container for `request` (a warm one from `pool` if it has
    /// one), starts it and gives its monitor the task, which runs once per
    /// case given to [`CaseSession::run`]. The task's own stdin is unused:
    /// each case brings its own.
    pub async fn open_cases<'a>(
        &'a self,
        mut request: TaskRequest<'_>,
        pool: Option<&'a Arc<WarmPool>>,
        observer: &dyn RunObserver,
    ) -> Result<CaseSession<'a>, SandboxError> {
        request.task.cases = true;
        request.task.stdin = Vec::new();
        request.task.interactive = None;
        self.open_session(request, pool, observer, None).await
    }

    /// Holds a container for a compilation followed by its program's cases
    /// (see the module's doc): `request` is the compilation's, run by
    /// [`CaseSession::first`].
    pub async fn open_chain<'a>(
        &'a self,
        mut request: TaskRequest<'_>,
        pool: Option<&'a Arc<WarmPool>>,
        observer: &dyn RunObserver,
    ) -> Result<CaseSession<'a>, SandboxError> {
        request.task.then = true;
        request.task.cases = false;
        request.task.interactive = None;
        let restore = limits_update(self.settings(), &request.limits);
        self.open_session(request, pool, observer, Some(restore))
            .await
    }

    /// Holds a container for one task, batch or interactive, run by
    /// [`CaseSession::once`] (a task run alone whose container may serve
    /// other jobs after it).
    pub(super) async fn open_once<'a>(
        &'a self,
        mut request: TaskRequest<'_>,
        pool: Option<&'a Arc<WarmPool>>,
        observer: &dyn RunObserver,
    ) -> Result<CaseSession<'a>, SandboxError> {
        request.task.then = false;
        request.task.cases = false;
        self.open_session(request, pool, observer, None).await
    }

    /// Opens a session; its container may serve other jobs after this
    /// one's last case when the pool recycles this job's containers (a
    /// chain's given back `restore`, its creation limits, first).
    async fn open_session<'a>(
        &'a self,
        mut request: TaskRequest<'_>,
        pool: Option<&'a Arc<WarmPool>>,
        observer: &dyn RunObserver,
        restore: Option<bollard::models::ContainerUpdateBody>,
    ) -> Result<CaseSession<'a>, SandboxError> {
        let sharers = pool.and_then(|p| p.recycles(request.client.as_deref()));
        request.task.recycle = sharers.is_some();
        request.task.nonce = *uuid::Uuid::new_v4().as_bytes();
        monitor_task(self.settings(), &request.limits, &mut request.task);
        let held = self.hold(&request, pool, observer).await?;
        if held.fresh
            && let Err(e) = self.start(&held.id).await
        {
            self.let_go(&held.id, pool, held.slot, held.taken).await;
            let e = SandboxError::from(e);
            metrics::docker_error(e.kind());
            return Err(e);
        }
        let recycling = held.reuse.zip(sharers).map(|(reuse, sharers)| Recycling {
            key: PoolKey::pinned(request.image, &request.limits),
            sharers,
            reuse,
            restore,
        });
        // A first task followed by another (`then`) leaves recycling to
        // the second.
        request.task.recycle &= !request.task.then;
        let (input, writer, output) = match held.io {
            HeldIo::Attached(io) => {
                let (input, inputs) = tokio::sync::mpsc::channel(4);
                let writer =
                    super::run::spawn_writer(io.input, request.task.encode(), Some(inputs));
                (input, writer, io.output)
            }
            HeldIo::Recycled(mut recycled) => {
                // The writer of its stdin goes on, fed the new task.
                let sent = recycled.input.send(request.task.encode()).await;
                let output = std::mem::replace(
                    &mut recycled.output,
                    Box::pin(futures_util::stream::empty()),
                );
                let (input, writer) = recycled.into_writer();
                if sent.is_err() {
                    writer.abort();
                    self.let_go(&held.id, pool, held.slot, held.taken).await;
                    return Err(SandboxError::Monitor(
                        "a recycled container's monitor stopped reading".into(),
                    ));
                }
                (input, writer, output)
            }
        };
        Ok(CaseSession {
            sandbox: self,
            pool,
            held: Some(Holding {
                id: held.id,
                slot: held.slot,
                taken: held.taken,
                naming: held.naming,
            }),
            output,
            input,
            writer,
            task: request.task,
            awaiting_task: false,
            recycling,
        })
    }
}

/// The session's container and what lets it go.
struct Holding<'a> {
    id: String,
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
    taken: Option<Taken<'a>>,
    /// A pool container's rename after the job, under way.
    naming: Option<tokio::task::JoinHandle<bool>>,
}

impl CaseSession<'_> {
    /// False once a case ended the session: open another for what remains.
    pub fn is_open(&self) -> bool {
        self.held.is_some()
    }

    /// A session whose first task ran is waiting for the run's task.
    pub fn awaits_task(&self) -> bool {
        self.is_open() && self.awaiting_task
    }

    /// Runs the first task of a session opened by [`Sandbox::open_chain`]
    /// (heard as `phase`). The session stays open, awaiting the run's
    /// task, only if the monitor cleared the container after it.
    pub async fn first(
        &mut self,
        phase: Phase,
        cancel: &CancellationToken,
        observer: &dyn RunObserver,
    ) -> Result<TaskOutcome, SandboxError> {
        let Some(id) = self.held.as_ref().map(|h| h.id.clone()) else {
            return Err(SandboxError::Monitor(
                "a first task was asked of a session that had ended".into(),
            ));
        };
        let started = Instant::now();
        let deadline =
            started + Duration::from_millis(self.task.wall_ms) + DEADLINE_GRACE + RESTORE_GRACE;
        observer.phase(phase, &id);
        let mut reading = Reading::new(&id, &self.task);
        let end = reading
            .until_report(&mut self.output, deadline, cancel, observer)
            .await;
        metrics::container_phase("run", started.elapsed());
        let clean = matches!(&end, ReadEnd::Report(report) if report.clean);
        let outcome = self
            .sandbox
            .conclude(&id, reading, end, started, observer)
            .await;
        if clean {
            self.awaiting_task = true;
        } else {
            self.close().await;
        }
        super::run::count(&outcome);
        outcome
    }

    /// Runs the task of a session opened by [`Sandbox::open_once`] (heard
    /// as `phase`) and ends the session: the container goes back to the
    /// pool if its monitor reported with no error and no OOM kill (the
    /// pool waits for its word that it restored it), else it is removed.
    ///
    /// An interactive task's `live` input is passed on as it comes (its
    /// end as the end of the command's stdin) until the report; then, for
    /// a container going back, [`Input::End`] tells the monitor that
    /// nothing more of this task follows.
    pub async fn once(
        mut self,
        phase: Phase,
        live: Option<tokio::sync::mpsc::Receiver<Input>>,
        cancel: &CancellationToken,
        observer: &dyn RunObserver,
    ) -> Result<TaskOutcome, SandboxError> {
        let Some(id) = self.held.as_ref().map(|h| h.id.clone()) else {
            return Err(SandboxError::Monitor(
                "a task was asked of a session that had ended".into(),
            ));
        };
        let started = Instant::now();
        let deadline = started + Duration::from_millis(self.task.wall_ms) + DEADLINE_GRACE;
        let forward = live.map(|mut live| {
            let input = self.input.clone();
            tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
                while let Some(frame) = live.recv().await {
                    if input.send(encode_input(&frame)).await.is_err() {
                        return;
                    }
                }
                let _ = input.send(encode_input(&Input::Close)).await;
            }))
        });
        observer.phase(phase, &id);
        let mut reading = Reading::new(&id, &self.task);
        let end = reading
            .until_report(&mut self.output, deadline, cancel, observer)
            .await;
        drop(forward);
        metrics::container_phase("run", started.elapsed());
        let recyclable = matches!(&end, ReadEnd::Report(r) if r.error.is_none() && !r.oom_killed);
        let leftover = reading.rest();
        let outcome = self
            .sandbox
            .conclude(&id, reading, end, started, observer)
            .await;
        let recyclable = recyclable
            && self.recycling.is_some()
            && (self.task.interactive.is_none()
                || self.input.send(encode_input(&Input::End)).await.is_ok());
        if recyclable {
            self.give_back(leftover);
        } else {
            self.close().await;
        }
        // Counted by `run_task`, its only caller.
        outcome
    }

    /// Gives a session whose first task ran the run's `limits` (memory,
    /// processes) and then its task, whose cases [`CaseSession::run`]
    /// runs. False when the limits could not be set: the session has
    /// then ended, and nothing of the run entered its container.
    pub async fn then_cases(&mut self, limits: &ContainerLimits, mut task: Task) -> bool {
        let Some(id) = self.held.as_ref().map(|h| h.id.clone()) else {
            return false;
        };
        if !self.awaiting_task {
            return false;
        }
        self.awaiting_task = false;
        let update = limits_update(self.sandbox.settings(), limits);
        if let Err(e) = self.sandbox.docker().update_container(&id, update).await {
            tracing::warn!(container = %id, error = %e,
                "cannot give the compilation's container the run's limits; the run gets its own");
            self.close().await;
            return false;
        }
        task.nonce = self.task.nonce;
        monitor_task(self.sandbox.settings(), limits, &mut task);
        task.cases = true;
        task.then = false;
        task.recycle = self.recycling.is_some();
        task.stdin = Vec::new();
        task.interactive = None;
        if self.input.send(task.encode()).await.is_err() {
            self.close().await;
            return false;
        }
        self.task = task;
        true
    }

    /// Runs the command on one case's `stdin` (`last`: no case follows, so
    /// the container needs no restore after it). The session stays open
    /// only if the monitor reported the container clean again.
    pub async fn run(
        &mut self,
        stdin: &[u8],
        last: bool,
        cancel: &CancellationToken,
        observer: &dyn RunObserver,
    ) -> Result<TaskOutcome, SandboxError> {
        let Some(id) = self.held.as_ref().map(|h| h.id.clone()) else {
            return Err(SandboxError::Monitor(
                "a case was given to a session that had ended".into(),
            ));
        };
        let started = Instant::now();
        let mut deadline = started + Duration::from_millis(self.task.wall_ms) + DEADLINE_GRACE;
        if !last {
            deadline += RESTORE_GRACE;
        }
        if self.awaiting_task {
            return Err(SandboxError::Monitor(
                "a case was given to a session awaiting its task".into(),
            ));
        }
        observer.phase(Phase::Running, &id);
        let mut frames = encode_input(&Input::Case { last });
        if !stdin.is_empty() {
            frames.extend(encode_input(&Input::Data(stdin.to_vec())));
        }
        frames.extend(encode_input(&Input::Close));
        let _ = self.input.send(frames).await;
        let mut reading = Reading::new(&id, &self.task);
        let end = reading
            .until_report(&mut self.output, deadline, cancel, observer)
            .await;
        metrics::container_phase("run", started.elapsed());
        let clean = matches!(&end, ReadEnd::Report(report) if report.clean);
        // After the last case, a recyclable container whose monitor
        // reported, with no error and no OOM kill, goes back to the pool
        // (which waits for the monitor's word that it restored it).
        let recyclable =
            last && matches!(&end, ReadEnd::Report(r) if r.error.is_none() && !r.oom_killed);
        let leftover = reading.rest();
        let outcome = self
            .sandbox
            .conclude(&id, reading, end, started, observer)
            .await;
        if recyclable && self.recycling.is_some() {
            self.give_back(leftover);
        } else if !clean {
            self.close().await;
        }
        super::run::count(&outcome);
        outcome
    }

    /// Hands the container, its monitor restoring it, back to the pool.
    fn give_back(&mut self, leftover: Vec<u8>) {
        let (Some(pool), Some(held), Some(recycling)) =
            (self.pool, self.held.take(), self.recycling.take())
        else {
            return;
        };
        let (input, _) = tokio::sync::mpsc::channel(1);
        let input = std::mem::replace(&mut self.input, input);
        let writer = std::mem::replace(&mut self.writer, tokio::spawn(async {}));
        let output = std::mem::replace(&mut self.output, Box::pin(futures_util::stream::empty()));
        pool.give_back(Returning {
            id: held.id,
            key: recycling.key,
            client: recycling.sharers,
            output,
            leftover,
            nonce: self.task.nonce,
            input,
            writer,
            served: recycling.reuse.served,
            born: recycling.reuse.born,
            slot: held.slot,
            restore: recycling.restore,
            naming: held.naming,
        });
        // Released only now that the pool counts it as taken again (the
        // sweep leaves either alone).
        drop(held.taken);
    }

    /// Ends the session: the container is removed (in the background, its
    /// slot held until it is gone, with a pool).
    pub async fn close(&mut self) {
        self.writer.abort();
        if let Some(recycling) = self.recycling.take() {
            metrics::jobs_per_container(recycling.reuse.served);
        }
        if let Some(held) = self.held.take() {
            self.sandbox
                .let_go(&held.id, self.pool, held.slot, held.taken)
                .await;
        }
    }
}

impl Drop for CaseSession<'_> {
    /// A session dropped open (its job ended early, or its runner was
    /// stopped) still lets its container go.
    fn drop(&mut self) {
        self.writer.abort();
        let Some(held) = self.held.take() else {
            return;
        };
        drop(held.taken);
        match (self.pool, held.slot) {
            (Some(pool), Some(slot)) => pool.remove_later(&held.id, slot),
            _ => {
                let sandbox = self.sandbox.clone();
                tokio::spawn(async move {
                    sandbox.remove(&held.id).await;
                });
            }
        }
    }
}
