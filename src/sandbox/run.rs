//! One container's lifecycle: create → attach → start → write the monitor's
//! task on stdin → read its frames (output, artifacts, report) → remove.
//!
//! The monitor inside enforces the run's wall-clock, CPU and output limits
//! and measures it; the service keeps a deadline of its own (the wall limit
//! plus [`DEADLINE_GRACE`]) and kills the container past it, whatever
//! happens inside. The container is removed on every path this function
//! returns through; if the future is dropped instead (its runner was
//! killed), the dispatcher removes it by label.

use std::sync::Arc;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptionsBuilder,
    RemoveContainerOptionsBuilder, RenameContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::StreamExt;
use monitor_protocol::{FileSpec, Frame, FrameReader, Input, LimitHit, Report, Task};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::pool::{POOL_JOB, PoolKey, Taken, WarmPool};
use super::spec::{ContainerLimits, container_spec};
use super::{Sandbox, SandboxError};
use crate::job::Phase;
use crate::metrics;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;

/// How long past a run's wall-clock limit the service waits for the
/// monitor's report before killing the container itself.
pub const DEADLINE_GRACE: Duration = Duration::from_secs(3);

/// Monitor diagnostics kept (the container's stderr).
const DIAGNOSTICS_CAP: usize = 8 * 1024;

/// One container's work.
pub struct TaskRequest<'a> {
    pub job_id: &'a str,
    /// The language's image folder (`<prefix>/<image>:latest`).
    pub image: &'a str,
    pub limits: ContainerLimits,
    /// What the monitor does.
    pub task: Task,
    /// The phase reported once the container started.
    pub running_phase: Phase,
    /// Which step of the job this is (`compile`, `run-<n>`), as a label.
    pub step: String,
    /// An interactive task's input, fed to the monitor as it comes (the
    /// container's stdin stays open until this ends).
    pub input: Option<tokio::sync::mpsc::Receiver<Input>>,
    /// Who submitted the job (its key, or its client address): with
    /// recycling `per-caller`, only that caller's jobs share a container.
    pub client: Option<String>,
    /// Holds none of the cap's slots (an interactor: its job holds one
    /// through its solution's container).
    pub slotless: bool,
}

/// Hears a container's run as it goes: each phase (with the container's
/// id) and the command's output as the monitor relays it. Called on the
/// run's own task: it must not wait.
pub trait RunObserver: Send + Sync {
    fn phase(&self, phase: Phase, container_id: &str);
    /// A chunk of stdout (or stderr) as it arrived, within its cap.
    fn output(&self, stderr: bool, bytes: &[u8]) {
        let _ = (stderr, bytes);
    }
}

impl<F: Fn(Phase, &str) + Send + Sync> RunObserver for F {
    fn phase(&self, phase: Phase, container_id: &str) {
        self(phase, container_id)
    }
}

/// What one container produced.
#[derive(Debug, Default)]
pub struct TaskOutput {
    pub report: Report,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Files sent back (the work directory after a compilation).
    pub files: Vec<FileSpec>,
    pub container_id: String,
    /// Set when the monitor could not report because of what ran inside:
    /// the program corrupted the report stream, or stopped the monitor
    /// (which only a runtime weaker than runc's PID namespace allows).
    pub lost: Option<String>,
    /// Set when the monitor never reported and the engine tells why (what
    /// that means for the job is `execute`'s to decide).
    pub unreported: Option<Unreported>,
}

/// Why a container ended without its monitor's report, as the engine and
/// the service's own clock saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreported {
    /// The engine says the container was OOM-killed (the monitor with it).
    OomKilled { wall_ms: u64 },
    /// The service's own deadline for the run passed first.
    Deadline { wall_ms: u64 },
}

/// How a container's work ended, from the service's point of view.
#[derive(Debug)]
pub enum TaskOutcome {
    Done(Box<TaskOutput>),
    /// Cancelled (its container killed and removed) before it ended.
    Cancelled,
}

impl Sandbox {
    /// Runs one task in a container (a warm one from `pool` if it has one,
    /// else a fresh one) and removes the container.
    ///
    /// `observer` hears each phase with the container's id, and the output
    /// as it comes; `cancel` stops the run at any point.
    pub async fn run_task(
        &self,
        request: TaskRequest<'_>,
        pool: Option<&Arc<WarmPool>>,
        cancel: &CancellationToken,
        observer: &dyn RunObserver,
    ) -> Result<TaskOutcome, SandboxError> {
        let outcome = self.run_container(request, pool, cancel, observer).await;
        count(&outcome);
        outcome
    }

    async fn run_container(
        &self,
        mut request: TaskRequest<'_>,
        pool: Option<&Arc<WarmPool>>,
        cancel: &CancellationToken,
        observer: &dyn RunObserver,
    ) -> Result<TaskOutcome, SandboxError> {
        // A task whose container may serve other jobs (a checker, a
        // compilation of its own, an interactor, a live run) runs as a
        // session of one task, which gives the container back to the pool
        // after it.
        if pool.is_some_and(|p| p.recycles(request.client.as_deref()).is_some()) {
            let phase = request.running_phase;
            let live = request.input.take();
            let session = self.open_once(request, pool, observer).await?;
            return session.once(phase, live, cancel, observer).await;
        }
        // A secret of this container's run: every frame must carry it.
        request.task.nonce = *uuid::Uuid::new_v4().as_bytes();
        super::spec::monitor_task(self.settings(), &request.limits, &mut request.task);
        // One task and its container removed (this caller's containers are
        // not recycled).
        request.task.recycle = false;
        let held = self.hold(&request, pool, observer).await?;
        let HeldIo::Attached(io) = held.io else {
            unreachable!("hold gives a recycled container only to a recyclable task")
        };
        let outcome = self
            .drive(&held.id, io, held.fresh, &mut request, cancel, observer)
            .await;
        self.let_go(&held.id, pool, held.slot, held.taken).await;
        outcome
    }

    /// A container for `request`: a warm one from `pool` if it has one
    /// (renamed after the job; created pinned to its CPUs), else a fresh one,
    /// created and attached; with a pool, holding one of the cap's slots.
    pub(super) async fn hold<'p>(
        &self,
        request: &TaskRequest<'_>,
        pool: Option<&'p Arc<WarmPool>>,
        observer: &dyn RunObserver,
    ) -> Result<Held<'p>, SandboxError> {
        let name = format!(
            "code-runner-{}-{}",
            request.job_id,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        // With a pool, the container is removed in the background (the
        // result does not wait for it), holding one of the cap's slots.
        let slot = match pool {
            Some(pool) if !request.slotless => Some(pool.slot().await),
            _ => None,
        };
        // A pinned run's warm container was created pinned to its CPU (the
        // pool keeps one key per CPU): an update when taking one would cost
        // the engine more than the rename (BENCHMARKS.md), and gVisor
        // cannot make it at all.
        let key = PoolKey::pinned(request.image, &request.limits);
        // Labels cannot change: a taken container is named after its job
        // (beside the job, see `rename_beside`), so that people, the sweep
        // and a failed runner's clean-up can tell whose it is; until then
        // the pool counts it taken, and the sweep leaves it alone.
        if request.task.recycle
            && let Some(pool) = pool
            && let Some(sharers) = pool.recycles(request.client.as_deref())
            && let Some(recycled) = pool.take_recycled(&key, &sharers)
        {
            let taken = Taken::new(pool, &recycled.id);
            observer.phase(Phase::Created, &recycled.id);
            let reuse = Reuse {
                served: recycled.served,
                born: recycled.born,
            };
            return Ok(Held {
                id: recycled.id.clone(),
                naming: Some(self.rename_beside(&recycled.id, name, "recycled")),
                io: HeldIo::Recycled(recycled),
                fresh: false,
                slot,
                taken: Some(taken),
                reuse: Some(reuse),
            });
        }
        if let Some(pool) = pool
            && let Some(warm) = pool.take(&key)
        {
            let taken = Taken::new(pool, &warm.id);
            observer.phase(Phase::Created, &warm.id);
            return Ok(Held {
                naming: Some(self.rename_beside(&warm.id, name, "warm")),
                id: warm.id,
                io: HeldIo::Attached(warm.io),
                fresh: false,
                slot,
                taken: Some(taken),
                reuse: request.task.recycle.then(Reuse::new),
            });
        }
        let image = self.image_name(request.image);
        // A container that may serve other jobs after this one is labelled
        // as the pool's (labels cannot change), named after its job.
        let (job_label, step_label) = if request.task.recycle {
            (POOL_JOB, POOL_JOB)
        } else {
            (request.job_id, request.step.as_str())
        };
        let body = container_spec(
            self.settings(),
            image.clone(),
            &request.limits,
            job_label,
            step_label,
        );
        let id = self.create(&name, image, body).await?;
        tracing::debug!(container = %id, "created a container");
        observer.phase(Phase::Created, &id);
        match self.attach(&id).await {
            Ok(io) => Ok(Held {
                id,
                io: HeldIo::Attached(io),
                fresh: true,
                slot,
                taken: None,
                reuse: request.task.recycle.then(Reuse::new),
                naming: None,
            }),
            Err(e) => {
                self.let_go(&id, pool, slot, None).await;
                Err(e.into())
            }
        }
    }

    /// Names a container taken from the pool (`kind`: warm or recycled)
    /// after its job, beside the job: its monitor is waiting for a task,
    /// which goes in at once instead of after the engine's rename. True
    /// once named; false (said in the log) when the engine refused, and the
    /// container is then removed after the job, never given back. A runner
    /// that dies meanwhile drops its hold, which removes the container by
    /// its id.
    fn rename_beside(&self, id: &str, name: String, kind: &'static str) -> JoinHandle<bool> {
        let sandbox = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let options = RenameContainerOptionsBuilder::new().name(&name).build();
            match sandbox.docker().rename_container(&id, options).await {
                Ok(()) => {
                    tracing::debug!(container = %id, kind, "took a container from the pool");
                    true
                }
                Err(e) => {
                    tracing::warn!(container = %id, kind, error = %e,
                        "cannot name a container taken from the pool after its job; \
                         it is removed after the job");
                    false
                }
            }
        })
    }

    /// Removes a held container: in the background with a pool (its slot
    /// held until it is gone), else now.
    pub(super) async fn let_go(
        &self,
        id: &str,
        pool: Option<&Arc<WarmPool>>,
        slot: Option<OwnedSemaphorePermit>,
        taken: Option<Taken<'_>>,
    ) {
        drop(taken);
        match (pool, slot) {
            (Some(pool), Some(slot)) => pool.remove_later(id, slot),
            _ => {
                if self.remove(id).await {
                    tracing::debug!(container = %id, "container removed");
                }
            }
        }
    }

    /// Creates a container named `name` from `body` (of `image`), timed;
    /// its id. A missing image is [`SandboxError::ImageMissing`]; a create
    /// the engine warns about is removed and refused: Docker drops limits
    /// the kernel cannot enforce and only warns, and no job runs with a
    /// limit missing.
    pub(super) async fn create(
        &self,
        name: &str,
        image: String,
        body: bollard::models::ContainerCreateBody,
    ) -> Result<String, SandboxError> {
        let options = CreateContainerOptionsBuilder::new().name(name).build();
        let creating = Instant::now();
        let created = self.docker().create_container(Some(options), body).await;
        metrics::container_phase("create", creating.elapsed());
        let created = match created {
            Ok(created) => created,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                message,
            }) if message.contains("image") => return Err(SandboxError::ImageMissing { image }),
            Err(e) => return Err(e.into()),
        };
        if !created.warnings.is_empty() {
            self.remove(&created.id).await;
            return Err(SandboxError::UnsafeCreate(created.warnings.join("; ")));
        }
        Ok(created.id)
    }

    /// Attaches to a container's stdin, stdout and stderr (before its start,
    /// so that no output is missed).
    pub(super) async fn attach(
        &self,
        id: &str,
    ) -> Result<bollard::container::AttachContainerResults, bollard::errors::Error> {
        let options = AttachContainerOptionsBuilder::new()
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .build();
        self.docker().attach_container(id, Some(options)).await
    }

    /// Starts a created container, timed.
    pub(super) async fn start(&self, id: &str) -> Result<(), bollard::errors::Error> {
        let starting = Instant::now();
        let started = self.docker().start_container(id, None).await;
        metrics::container_phase("start", starting.elapsed());
        started
    }

    /// Runs the task in an attached container, starting it first unless it
    /// is a warm one already waiting for its task.
    async fn drive(
        &self,
        id: &str,
        mut io: bollard::container::AttachContainerResults,
        start: bool,
        request: &mut TaskRequest<'_>,
        cancel: &CancellationToken,
        observer: &dyn RunObserver,
    ) -> Result<TaskOutcome, SandboxError> {
        if start {
            self.start(id).await?;
        }
        let started = Instant::now();
        let deadline = started + Duration::from_millis(request.task.wall_ms) + DEADLINE_GRACE;
        observer.phase(request.running_phase, id);

        // Feed the task (and an interactive command's input as it comes)
        // from its own task, so a slow reader inside cannot stall the
        // output loop.
        let writer = spawn_writer(io.input, request.task.encode(), request.input.take());

        let mut reading = Reading::new(id, &request.task);
        let end = reading
            .until_report(&mut io.output, deadline, cancel, observer)
            .await;
        metrics::container_phase("run", started.elapsed());
        // Recorded when this function returns, whichever way.
        let _collect = PhaseTimer::new("collect");
        drop(io.output);
        writer.abort();
        self.conclude(id, reading, end, started, observer).await
    }

    /// What a container's reading ended with, as the job sees it: kills
    /// the container unless its monitor reported, and asks the engine why
    /// when it did not.
    pub(super) async fn conclude(
        &self,
        id: &str,
        reading: Reading,
        end: ReadEnd,
        started: Instant,
        observer: &dyn RunObserver,
    ) -> Result<TaskOutcome, SandboxError> {
        let docker = self.docker();
        let Reading {
            mut output,
            diagnostics,
            ..
        } = reading;
        if !matches!(end, ReadEnd::Report(_)) {
            self.kill(id).await;
        }
        observer.phase(Phase::Collecting, id);
        let (timed_out, stream_error) = match end {
            ReadEnd::Cancelled => return Ok(TaskOutcome::Cancelled),
            ReadEnd::Tampered(tampered) => {
                output.lost = Some(format!(
                    "the program wrote into the sandbox's report stream: {tampered}"
                ));
                return Ok(TaskOutcome::Done(Box::new(output)));
            }
            ReadEnd::Report(report) => {
                output.report = report;
                return Ok(TaskOutcome::Done(Box::new(output)));
            }
            ReadEnd::TimedOut => (true, None),
            ReadEnd::Ended(stream_error) => (false, stream_error),
        };
        // No report: find out why from the engine.
        let condition = WaitContainerOptionsBuilder::new()
            .condition("not-running")
            .build();
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            docker.wait_container(id, Some(condition)).next(),
        )
        .await;
        let state = docker.inspect_container(id, None).await?.state;
        let oom_killed = state.as_ref().and_then(|s| s.oom_killed).unwrap_or(false);
        let exited = state.as_ref().and_then(|s| s.running) == Some(false);
        if oom_killed || timed_out {
            // The monitor itself was OOM-killed, or never answered in time.
            let wall_ms = started.elapsed().as_millis() as u64;
            output.unreported = Some(if oom_killed {
                Unreported::OomKilled { wall_ms }
            } else {
                Unreported::Deadline { wall_ms }
            });
            return Ok(TaskOutcome::Done(Box::new(output)));
        }
        let diagnostics = String::from_utf8_lossy(&diagnostics).trim().to_string();
        if exited && stream_error.is_none() {
            // The stream ended cleanly and the container stopped, but the
            // monitor never reported: something inside stopped it.
            let code = state.as_ref().and_then(|s| s.exit_code).unwrap_or(-1);
            output.lost = Some(format!(
                "the sandbox's monitor stopped before reporting (exit status {code}): \
                 the program killed it or exhausted the sandbox{}",
                if diagnostics.is_empty() {
                    String::new()
                } else {
                    format!(" ({diagnostics})")
                }
            ));
            return Ok(TaskOutcome::Done(Box::new(output)));
        }
        Err(SandboxError::Monitor(format!(
            "the container ended without a report ({}){}",
            stream_error.unwrap_or_else(|| "no frame error".into()),
            if diagnostics.is_empty() {
                String::new()
            } else {
                format!(": {diagnostics}")
            }
        )))
    }

    /// SIGKILLs a container; one that already stopped is fine.
    pub(super) async fn kill(&self, id: &str) {
        let options = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
        if let Err(e) = self.docker().kill_container(id, Some(options)).await {
            tracing::debug!(container = id, error = %e, "kill (container may have stopped)");
        }
    }

    /// Force-removes a container; a failure is logged and left to the sweep.
    pub async fn remove(&self, id: &str) -> bool {
        let _remove = PhaseTimer::new("remove");
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.docker().remove_container(id, Some(options)).await {
            Ok(()) => true,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => true,
            Err(e) => {
                tracing::warn!(container = id, error = %e, "could not remove container; the sweep will");
                false
            }
        }
    }
}

/// Counts what a run's outcome says in the metrics (output sizes, OOM
/// kills, timeouts, engine errors).
pub(super) fn count(outcome: &Result<TaskOutcome, SandboxError>) {
    match outcome {
        Ok(TaskOutcome::Done(output)) => {
            metrics::output_bytes("stdout", output.stdout.len());
            metrics::output_bytes("stderr", output.stderr.len());
            let unreported = output.unreported;
            if output.report.oom_killed || matches!(unreported, Some(Unreported::OomKilled { .. }))
            {
                metrics::oom_kill();
            }
            if matches!(output.report.limit, Some(LimitHit::Wall | LimitHit::Cpu))
                || matches!(unreported, Some(Unreported::Deadline { .. }))
            {
                metrics::timeout();
            }
        }
        Ok(TaskOutcome::Cancelled) => {}
        Err(e) => metrics::docker_error(e.kind()),
    }
}

/// Writes `first` (the task) on a container's stdin, then the `live`
/// inputs as they come, then ends it: on a task of its own, so that a slow
/// reader inside cannot stall the output loop.
pub(super) fn spawn_writer<T: Outgoing>(
    mut input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    first: Vec<u8>,
    mut live: Option<tokio::sync::mpsc::Receiver<T>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if input.write_all(&first).await.is_err() || input.flush().await.is_err() {
            return;
        }
        if let Some(live) = live.as_mut() {
            while let Some(next) = live.recv().await {
                let bytes = next.encoded();
                if input.write_all(&bytes).await.is_err() || input.flush().await.is_err() {
                    return;
                }
            }
        }
        let _ = input.shutdown().await;
    })
}

/// What goes to a monitor's stdin after its task.
pub(super) trait Outgoing: Send + 'static {
    fn encoded(self) -> Vec<u8>;
}

/// An input frame (an interactive command's input, a case).
impl Outgoing for Input {
    fn encoded(self) -> Vec<u8> {
        monitor_protocol::encode_input(&self)
    }
}

/// Bytes already encoded (a case's frames, a next task).
impl Outgoing for Vec<u8> {
    fn encoded(self) -> Vec<u8> {
        self
    }
}

/// A container held for a job's step, and how to let it go.
pub(super) struct Held<'p> {
    pub(super) id: String,
    pub(super) io: HeldIo,
    /// Created for this step (to be started), not a warm one waiting.
    pub(super) fresh: bool,
    pub(super) slot: Option<OwnedSemaphorePermit>,
    pub(super) taken: Option<Taken<'p>>,
    /// Set when the container may serve another job after this one.
    pub(super) reuse: Option<Reuse>,
    /// A pool container's rename after the job, made beside it (see
    /// [`Sandbox::rename_beside`]).
    pub(super) naming: Option<JoinHandle<bool>>,
}

/// How the service talks to a held container's monitor.
pub(super) enum HeldIo {
    /// Attached, nothing written yet.
    Attached(bollard::container::AttachContainerResults),
    /// Recycled: its stdin's writer still running, fed by a channel.
    Recycled(super::recycle::Recycled),
}

/// A recyclable container's story so far.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reuse {
    /// Jobs it served, this one included.
    pub(super) served: u32,
    pub(super) born: std::time::Instant,
}

impl Reuse {
    fn new() -> Reuse {
        Reuse {
            served: 1,
            born: std::time::Instant::now(),
        }
    }
}

/// How reading a container's frames up to its monitor's report ended.
pub(super) enum ReadEnd {
    Report(Report),
    Cancelled,
    /// The service's own deadline passed first.
    TimedOut,
    /// Frames that do not carry the task's nonce, or more than the caps.
    Tampered(String),
    /// The output stream ended (with an error, if it broke).
    Ended(Option<String>),
}

/// One run's frames as they are read: its output so far, and the monitor's
/// diagnostics (the container's stderr).
pub(super) struct Reading {
    reader: FrameReader,
    output: TaskOutput,
    files_bytes: usize,
    diagnostics: Vec<u8>,
    /// The monitor caps output; these bound what the service holds even if
    /// a monitor misbehaved.
    output_cap: usize,
    files_cap: usize,
}

pub(super) use super::OutputStream;

impl Reading {
    pub(super) fn new(id: &str, task: &Task) -> Reading {
        Reading {
            reader: FrameReader::new(task.nonce),
            output: TaskOutput {
                container_id: id.to_string(),
                ..TaskOutput::default()
            },
            files_bytes: 0,
            diagnostics: Vec::new(),
            output_cap: task.output_bytes as usize + 64 * 1024,
            files_cap: task.artifacts.unwrap_or(0) as usize + 64 * 1024,
        }
    }

    /// What was read past the last whole frame (after a report: what the
    /// monitor sent next, for a recycled container's pool to read).
    pub(super) fn rest(&mut self) -> Vec<u8> {
        self.reader.take_pending()
    }

    /// Reads frames (relaying output to `observer`) until the monitor's
    /// report, the deadline, a cancel, tampering or the stream's end.
    pub(super) async fn until_report(
        &mut self,
        stream: &mut OutputStream,
        deadline: Instant,
        cancel: &CancellationToken,
        observer: &dyn RunObserver,
    ) -> ReadEnd {
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return ReadEnd::Cancelled,
                _ = tokio::time::sleep_until(deadline) => return ReadEnd::TimedOut,
                item = stream.next() => match item {
                    Some(Ok(LogOutput::StdOut { message })) => {
                        self.reader.push(&message);
                        loop {
                            match self.reader.next_frame() {
                                Ok(Some(Frame::Stdout(b))) => {
                                    observer.output(false, &b);
                                    self.output.stdout.extend_from_slice(&b);
                                }
                                Ok(Some(Frame::Stderr(b))) => {
                                    observer.output(true, &b);
                                    self.output.stderr.extend_from_slice(&b);
                                }
                                Ok(Some(Frame::File(f))) => {
                                    self.files_bytes += f.content.len();
                                    self.output.files.push(f);
                                }
                                // The report is the monitor's last word
                                // for this run: no need to wait for more.
                                Ok(Some(Frame::Report(r))) => return ReadEnd::Report(r),
                                Ok(Some(Frame::Ready(_))) => {
                                    return ReadEnd::Tampered(
                                        "a recycling frame before the report".into(),
                                    );
                                }
                                Ok(None) => break,
                                Err(e) => return ReadEnd::Tampered(e),
                            }
                        }
                        if self.output.stdout.len() > self.output_cap
                            || self.output.stderr.len() > self.output_cap
                            || self.files_bytes > self.files_cap
                            || self.reader.pending() > self.files_cap.max(self.output_cap) + 16
                        {
                            return ReadEnd::Tampered(
                                "the container sent more than its caps".into(),
                            );
                        }
                    }
                    Some(Ok(LogOutput::StdErr { message })) => {
                        let room = DIAGNOSTICS_CAP.saturating_sub(self.diagnostics.len());
                        self.diagnostics
                            .extend_from_slice(&message[..message.len().min(room)]);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return ReadEnd::Ended(Some(format!("output stream: {e}"))),
                    None => return ReadEnd::Ended(None),
                },
            }
        }
    }
}

/// Records a container phase's duration when dropped.
struct PhaseTimer {
    phase: &'static str,
    started: Instant,
}

impl PhaseTimer {
    fn new(phase: &'static str) -> PhaseTimer {
        PhaseTimer {
            phase,
            started: Instant::now(),
        }
    }
}

impl Drop for PhaseTimer {
    fn drop(&mut self) {
        metrics::container_phase(self.phase, self.started.elapsed());
    }
}
