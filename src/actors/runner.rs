//! `ContainerRunner`: one per job, spawned linked to the dispatcher. It
//! drives the job's container through the sandbox, reports each phase to
//! the `JobRegistry`, sends the outcome to its dispatcher and stops.
//!
//! The run happens inside one handler, so this actor's mailbox is busy while
//! it runs; it hears "stop" through the job's cancellation token instead.
//!
//! **Invariant:** a runner that panics or is killed never cleans up after
//! itself (ractor runs no `post_stop` then): its dispatcher removes its
//! container by label.

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef};
use tokio_util::sync::CancellationToken;

use super::registry::{RegistryHandle, RegistryMsg};
use crate::job::{Limits, Phase};
use crate::language::Language;
use crate::queue::worker::JobOutcome;
use crate::sandbox::{RunOutcome, RunRequest, Sandbox, SandboxError};

/// Everything one run needs.
pub struct RunnerArgs {
    pub job_id: String,
    pub language: Language,
    pub code: String,
    pub stdin: String,
    pub limits: Limits,
    pub sandbox: Sandbox,
    pub registry: RegistryHandle,
    /// Where the outcome goes.
    pub dispatcher: ActorRef<super::dispatcher::DispatcherMsg>,
    /// Stops the run (shutdown, cancellation).
    pub cancel: CancellationToken,
    /// Test-only fault hook: panic once the program is running, leaving its
    /// container behind for the dispatcher to remove.
    pub panic_when_running: bool,
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
        let outcome = run(&args).await;
        args.dispatcher
            .cast(super::dispatcher::DispatcherMsg::RunnerDone {
                runner: myself.get_id(),
                outcome,
            })?;
        myself.stop(None);
        Ok(())
    }
}

async fn run(args: &RunnerArgs) -> JobOutcome {
    let on_phase = |phase: Phase, container_id: &str| {
        args.registry.tell(RegistryMsg::JobPhase {
            job_id: args.job_id.clone(),
            phase,
            container_id: container_id.to_string(),
        });
        if args.panic_when_running && phase == Phase::Running {
            panic!("fault injection: runner panics while its program runs");
        }
    };
    let request = RunRequest {
        job_id: &args.job_id,
        language: &args.language,
        code: &args.code,
        stdin: &args.stdin,
        limits: args.limits,
    };
    match args.sandbox.run(request, &args.cancel, &on_phase).await {
        Ok(RunOutcome::Finished(result)) => JobOutcome::Finished(result),
        Ok(RunOutcome::Cancelled) => JobOutcome::Requeue,
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

/// The id a dispatcher keys its runners by.
pub type RunnerId = ActorId;
