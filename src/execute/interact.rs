//! An interactive judging: the solution and the interactor run side by
//! side, each one's output relayed to the other's input.

use monitor_protocol::{Input, Task};

use super::{checker::Judge, prepare::PreparedCase, result::report_of, steps::Steps};
use crate::job::Phase;
use crate::language::Language;
use crate::limits::StepLimits;
use crate::sandbox::{RunObserver, SandboxError, TaskOutput};

/// Passes a run's phases on (when `inner` is given) and sends its stdout,
/// as it comes, to the other program of an interaction.
pub(super) struct Relay<'a> {
    pub(super) inner: Option<&'a dyn RunObserver>,
    pub(super) to: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    /// Which side's run ended first (`SOLUTION` or `INTERACTOR`, 0 while
    /// neither has), and which side this is: set when its run is over
    /// (the monitor's report read), not when its container is gone.
    pub(super) ended_first: &'a std::sync::atomic::AtomicU8,
    pub(super) side: u8,
    /// Told once this side's program has its task (the interactor's: the
    /// solution starts only then, so that its clock never counts the
    /// interactor's container starting).
    pub(super) running: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

pub(super) const SOLUTION: u8 = 1;

pub(super) const INTERACTOR: u8 = 2;

/// Records `side` as the one that ended first unless a side already is;
/// whether `side` is the first.
pub(super) fn claim_first(ended_first: &std::sync::atomic::AtomicU8, side: u8) -> bool {
    use std::sync::atomic::Ordering::SeqCst;
    ended_first
        .compare_exchange(0, side, SeqCst, SeqCst)
        .map_or_else(|first| first == side, |_| true)
}

impl RunObserver for Relay<'_> {
    fn phase(&self, phase: Phase, container_id: &str) {
        if phase == Phase::Collecting {
            claim_first(self.ended_first, self.side);
        }
        if matches!(phase, Phase::Running | Phase::Checking)
            && let Some(running) = self.running.lock().ok().and_then(|mut r| r.take())
        {
            let _ = running.send(());
        }
        if let Some(inner) = self.inner {
            inner.phase(phase, container_id);
        }
    }

    fn output(&self, stderr: bool, bytes: &[u8]) {
        if !stderr {
            // Unbounded here, bounded by the sender's output cap (the
            // monitor stops a program at it).
            let _ = self.to.send(bytes.to_vec());
        }
        if let Some(inner) = self.inner {
            inner.output(stderr, bytes);
        }
    }
}

/// Feeds what one program of an interaction wrote to the other's stdin, in
/// order, then closes it; with `kill`, kills it once `kill` says to (its
/// partner judged the exchange a failure and it need not run on).
pub(super) async fn relay(
    mut from: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    to: tokio::sync::mpsc::Sender<Input>,
    kill: Option<tokio::sync::oneshot::Receiver<bool>>,
) {
    while let Some(bytes) = from.recv().await {
        // Once the reader is gone, what it did not read is dropped.
        let _ = to.send(Input::Data(bytes)).await;
    }
    let _ = to.send(Input::Close).await;
    if let Some(kill) = kill
        && kill.await == Ok(true)
    {
        let _ = to.send(Input::Signal(SIGKILL)).await;
    }
}

/// SIGKILL's number (one of the signals the monitor takes from input).
pub(super) const SIGKILL: i32 = 9;

/// Runs one case as an interaction: the solution (`task`) and the
/// interactor each in its own container at once, each one's stdout relayed
/// to the other's stdin. The interactor gets the case's input and answer as
/// files. `None` when cancelled; else the solution's run, the
/// interactor's, and whether the interactor ended first.
pub(super) async fn interact(
    steps: &Steps<'_>,
    interactor: &Judge<'_>,
    language: &Language,
    step: &StepLimits,
    task: Task,
    case: &PreparedCase,
    index: usize,
) -> Result<Option<(TaskOutput, TaskOutput, bool)>, SandboxError> {
    let program = interactor.program;
    let ended_first = std::sync::atomic::AtomicU8::new(0);
    // The interactor outlives the solution by the margin, so that a
    // solution that hangs is the one stopped by its limit, and no more: an
    // interactor that stalls once the solution is done is stopped then, not
    // at a wall-clock limit of its own.
    let mut interactor_step = program.limits.run();
    interactor_step.wall_ms = step.wall_ms + INTERACTOR_MARGIN_MS;
    let interactor_task = Task {
        interactive: Some(past(interactor_step.wall_ms)),
        ..interactor.task(&interactor_step, case, None, steps.settings.uid)
    };
    let (solution_out, solution_said) = tokio::sync::mpsc::unbounded_channel();
    let (interactor_out, interactor_said) = tokio::sync::mpsc::unbounded_channel();
    let (solution_in, solution_reads) = tokio::sync::mpsc::channel(RELAY_DEPTH);
    let (interactor_in, interactor_reads) = tokio::sync::mpsc::channel(RELAY_DEPTH);
    let (judged, kill_solution) = tokio::sync::oneshot::channel();
    let (interactor_running, interactor_started) = tokio::sync::oneshot::channel();

    let solution_side = async {
        let observer = Relay {
            inner: Some(steps.observer),
            to: solution_out,
            ended_first: &ended_first,
            side: SOLUTION,
            running: std::sync::Mutex::new(None),
        };
        // The interactor's container (never a warm one) takes a moment to
        // start; the solution's clock starts once the interactor runs (or
        // could not start: the exchange then fails either way).
        let _ = interactor_started.await;
        let run = steps
            .run_observed(
                &observer,
                language,
                step,
                task,
                Phase::Running,
                format!("run-{index}"),
                Some(solution_reads),
            )
            .await;
        // A run that ended without reaching its collection (an engine
        // error) ends here.
        claim_first(&ended_first, SOLUTION);
        run
    };
    // The interactor's container takes no worker slot of its own: the job
    // holds its slot through the solution's, and two slots per job could
    // leave every job at the cap holding one and waiting for another while
    // their solutions idle. Nor a warm container, unless this caller's
    // containers are recycled: it may then take a recycled one and be
    // recycled itself.
    let unslotted = Steps {
        pool: steps
            .pool
            .filter(|pool| pool.recycles(steps.client).is_some()),
        slotless: true,
        ..*steps
    };
    let interactor_side = async {
        let observer = Relay {
            inner: None,
            to: interactor_out,
            ended_first: &ended_first,
            side: INTERACTOR,
            running: std::sync::Mutex::new(Some(interactor_running)),
        };
        let run = unslotted
            .run_observed(
                &observer,
                &program.language,
                &interactor_step,
                interactor_task,
                Phase::Checking,
                format!("interact-{index}"),
                Some(interactor_reads),
            )
            .await;
        drop(observer);
        let first = claim_first(&ended_first, INTERACTOR);
        // It ended: a failed exchange need not wait for the solution.
        let failed = match &run {
            Ok(Some(output)) => report_of(output).exit_code != Some(0),
            _ => true,
        };
        let _ = judged.send(failed);
        run.map(|run| run.map(|output| (output, first)))
    };
    let (solution, interaction, (), ()) = tokio::join!(
        solution_side,
        interactor_side,
        relay(solution_said, interactor_in, None),
        relay(interactor_said, solution_in, Some(kill_solution)),
    );
    match (solution?, interaction?) {
        (Some(solution), Some((interaction, first))) => Ok(Some((solution, interaction, first))),
        _ => Ok(None),
    }
}

/// An idle limit that never comes before the wall-clock limit `wall_ms`.
pub(super) fn past(wall_ms: u64) -> u64 {
    wall_ms.saturating_mul(2).saturating_add(1000)
}

/// How much longer than the solution an interactor may run: it starts
/// first, and the solution's container may take a moment to start after it.
pub(super) const INTERACTOR_MARGIN_MS: u64 = 3000;

/// Chunks waiting for a program of an interaction to read them, past
/// which the relay waits (the monitor holds more inside).
pub(super) const RELAY_DEPTH: usize = 64;
