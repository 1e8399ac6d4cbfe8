//! `Supervisor`: the root of the actor tree. It owns the `JobRegistry` and,
//! in a worker process, the `Dispatcher`; when either fails it restarts it
//! with backoff, counts the restart, and tells the (new) registry.
//!
//! ractor has no restart strategy of its own: this actor respawns a failed
//! child itself and swaps the stored `ActorRef` (and, for the registry, the
//! shared [`RegistryHandle`]). Jobs a failed dispatcher held are not lost:
//! they are in Redis, and come back through BullMQ's retry.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::WorkerServices;
use super::dispatcher::{Dispatcher, DispatcherMsg};
use super::registry::{JobRegistry, RegistryHandle, RegistryMsg};
use crate::backoff::Backoff;
use crate::job::now_ms;
use crate::status::RestartRecord;

/// Restart delays: 100 ms, doubled for each further failure within
/// [`BACKOFF_WINDOW`], up to 10 s.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
const BACKOFF_WINDOW: Duration = Duration::from_secs(60);

/// Longest a graceful stop waits for the dispatcher to drain, beyond the
/// configured shutdown grace.
const DRAIN_SLACK: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Child {
    Registry,
    Dispatcher,
}

impl Child {
    fn name(self) -> &'static str {
        match self {
            Child::Registry => "registry",
            Child::Dispatcher => "dispatcher",
        }
    }
}

pub struct SupervisorArgs {
    pub registry: RegistryHandle,
    /// Present in worker processes: the dispatcher's dependencies.
    pub worker: Option<Arc<WorkerServices>>,
}

pub enum SupervisorMsg {
    /// Respawn a child (sent to itself after the backoff).
    Restart(Child),
    /// Restarts per child so far.
    Restarts(RpcReplyPort<BTreeMap<String, RestartRecord>>),
    /// The current dispatcher, if any.
    Dispatcher(RpcReplyPort<Option<ActorRef<DispatcherMsg>>>),
    /// Graceful stop: drain the dispatcher, stop the children, then stop.
    Shutdown(RpcReplyPort<()>),
}

pub struct SupervisorState {
    args: SupervisorArgs,
    registry: Option<ActorRef<RegistryMsg>>,
    dispatcher: Option<ActorRef<DispatcherMsg>>,
    restarts: BTreeMap<String, RestartRecord>,
    recent_failures: HashMap<Child, VecDeque<Instant>>,
    stopping: bool,
}

pub struct Supervisor;

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = SupervisorState {
            args,
            registry: None,
            dispatcher: None,
            restarts: BTreeMap::new(),
            recent_failures: HashMap::new(),
            stopping: false,
        };
        spawn_child(&myself, &mut state, Child::Registry).await?;
        if state.args.worker.is_some() {
            spawn_child(&myself, &mut state, Child::Dispatcher).await?;
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Restart(child) => {
                if state.stopping {
                    return Ok(());
                }
                if let Err(e) = spawn_child(&myself, state, child).await {
                    // E.g. Redis down while the dispatcher starts: try again.
                    failed(&myself, state, child, format!("restart failed: {e}"));
                } else {
                    tracing::info!(child = child.name(), "restarted");
                }
            }
            SupervisorMsg::Restarts(reply) => {
                let _ = reply.send(state.restarts.clone());
            }
            SupervisorMsg::Dispatcher(reply) => {
                let _ = reply.send(state.dispatcher.clone());
            }
            SupervisorMsg::Shutdown(reply) => {
                state.stopping = true;
                if let Some(dispatcher) = state.dispatcher.take() {
                    let grace = state
                        .args
                        .worker
                        .as_ref()
                        .map_or(Duration::ZERO, |w| w.shutdown_grace);
                    let _ = dispatcher
                        .call(DispatcherMsg::Drain, Some(grace + DRAIN_SLACK))
                        .await;
                    dispatcher.stop_and_wait(None, Some(DRAIN_SLACK)).await.ok();
                }
                if let Some(registry) = state.registry.take() {
                    state.args.registry.set(None);
                    registry
                        .stop_and_wait(None, Some(Duration::from_secs(5)))
                        .await
                        .ok();
                }
                let _ = reply.send(());
                myself.stop(Some("shutdown".into()));
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if state.stopping {
            return Ok(());
        }
        let (cell, reason, kind) = match event {
            SupervisionEvent::ActorFailed(cell, error) => (cell, error.to_string(), "panic"),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (
                cell,
                reason.unwrap_or_else(|| "stopped unexpectedly".into()),
                "stopped",
            ),
            _ => return Ok(()),
        };
        if let Some(child) = which_child(state, &cell) {
            crate::metrics::actor_restart(child.name(), kind);
            tracing::error!(child = child.name(), %reason, "supervised actor failed");
            match child {
                Child::Registry => {
                    state.registry = None;
                    state.args.registry.set(None);
                }
                Child::Dispatcher => state.dispatcher = None,
            }
            failed(&myself, state, child, reason);
        }
        Ok(())
    }
}

fn which_child(state: &SupervisorState, cell: &ActorCell) -> Option<Child> {
    let id = cell.get_id();
    if state.registry.as_ref().is_some_and(|r| r.get_id() == id) {
        Some(Child::Registry)
    } else if state.dispatcher.as_ref().is_some_and(|d| d.get_id() == id) {
        Some(Child::Dispatcher)
    } else {
        None
    }
}

/// Counts a failure and schedules the restart after the backoff.
fn failed(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    child: Child,
    reason: String,
) {
    let record = state.restarts.entry(child.name().to_string()).or_default();
    record.count += 1;
    record.last_reason = reason;
    record.last_at_ms = now_ms();

    let now = Instant::now();
    let recent = state.recent_failures.entry(child).or_default();
    while recent
        .front()
        .is_some_and(|t| now.duration_since(*t) > BACKOFF_WINDOW)
    {
        recent.pop_front();
    }
    recent.push_back(now);
    let delay = crate::backoff::jittered(BACKOFF.nth((recent.len() as u32).saturating_sub(1)));
    tracing::warn!(
        child = child.name(),
        delay_ms = delay.as_millis() as u64,
        "restarting after backoff"
    );
    myself.send_after(delay, move || SupervisorMsg::Restart(child));
    state
        .args
        .registry
        .tell(RegistryMsg::RestartsChanged(state.restarts.clone()));
}

async fn spawn_child(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    child: Child,
) -> Result<(), ActorProcessingErr> {
    match child {
        Child::Registry => {
            let (registry, _) =
                Actor::spawn_linked(None, JobRegistry, (), myself.get_cell()).await?;
            state.args.registry.set(Some(registry.clone()));
            // The new registry starts empty: give it the restart record.
            let _ = registry.cast(RegistryMsg::RestartsChanged(state.restarts.clone()));
            state.registry = Some(registry);
        }
        Child::Dispatcher => {
            let Some(services) = state.args.worker.clone() else {
                return Ok(());
            };
            let (dispatcher, _) =
                Actor::spawn_linked(None, Dispatcher, services, myself.get_cell()).await?;
            state.dispatcher = Some(dispatcher);
        }
    }
    Ok(())
}
