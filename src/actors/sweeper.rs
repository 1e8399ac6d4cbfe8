//! `Sweeper`: removes containers left behind, one sweep at a time.
//!
//! A container is left behind when its runner died before removing it (a
//! panic, a kill), when its worker process died, or when the engine lost
//! track during an outage. The dispatcher asks for a sweep every
//! [`SWEEP_INTERVAL`] and after an engine outage; the sweeper's mailbox
//! queues them, so two sweeps never overlap, and the dispatcher's own
//! mailbox never waits on Docker or Redis for one. At the dispatcher's start
//! and stop, when no runner of it exists, [`sweep`] is called directly.
//!
//! What is left over is decided by [`decide`] from what the engine says
//! (pure, unit-tested), then by Redis for other workers' containers.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::WorkerServices;
use crate::job::now_ms;
use crate::sandbox::pool::POOL_JOB;
use crate::sandbox::sweep::ManagedContainer;

/// How often leftover containers are looked for.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(15);
/// A container younger than this is swept only when its worker is dead: its
/// runner may have just created it.
const SWEEP_MIN_AGE_SECS: i64 = 30;

/// When a sweep runs, which says what of this worker's own is left over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SweepMode {
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

pub enum SweeperMsg {
    /// Sweep, knowing the jobs in flight when asked; answer `done` after.
    Sweep {
        mode: SweepMode,
        in_flight: HashSet<String>,
        done: Option<RpcReplyPort<()>>,
    },
}

pub struct Sweeper;

impl Actor for Sweeper {
    type Msg = SweeperMsg;
    type State = Arc<WorkerServices>;
    type Arguments = Arc<WorkerServices>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        services: Arc<WorkerServices>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(services)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        services: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let SweeperMsg::Sweep {
            mode,
            in_flight,
            done,
        } = message;
        sweep(services, &in_flight, mode).await;
        if let Some(done) = done {
            let _ = done.send(());
        }
        Ok(())
    }
}

/// What a sweep decides about one container from what the engine says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    Keep,
    Remove,
    /// Another worker's: remove it if that worker is dead, or (with
    /// `if_job_ended`) if its job is no longer active in Redis.
    AskRedis {
        if_job_ended: bool,
    },
}

/// Decides about container `c`, seen at `now_secs` by worker `own`, whose
/// in-flight jobs are `in_flight` and whose warm pool holds `pooled_now`.
pub fn decide(
    c: &ManagedContainer,
    own: &str,
    mode: SweepMode,
    in_flight: &HashSet<String>,
    pooled_now: &HashSet<String>,
    now_secs: i64,
) -> Decision {
    let old = now_secs - c.created > SWEEP_MIN_AGE_SECS;
    let waiting_in_pool = c.pooled && c.job_id == POOL_JOB;
    let remove = |yes: bool| {
        if yes {
            Decision::Remove
        } else {
            Decision::Keep
        }
    };
    if pooled_now.contains(&c.id) {
        Decision::Keep
    } else if c.worker_id == own && waiting_in_pool {
        // Warm, but not the pool's: the pool lost track of it.
        remove(old || mode != SweepMode::Periodic)
    } else if c.worker_id == own {
        remove(match mode {
            SweepMode::NoRunners => true,
            SweepMode::Paused => !in_flight.contains(&c.job_id),
            SweepMode::Periodic => !in_flight.contains(&c.job_id) && old,
        })
    } else {
        // Another live worker's warm container is its own business.
        Decision::AskRedis {
            if_job_ended: !waiting_in_pool && old,
        }
    }
}

/// Removes leftover containers (see [`decide`]); another worker's container
/// goes when its heartbeat expired (that process is dead) or, once older
/// than [`SWEEP_MIN_AGE_SECS`], when its job is no longer active in Redis
/// (finished, or taken over by another worker). When Redis cannot tell, the
/// container stays.
pub async fn sweep(services: &WorkerServices, in_flight: &HashSet<String>, mode: SweepMode) {
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
        let orphan = match decide(&c, own, mode, in_flight, &pooled_now, (now / 1000) as i64) {
            Decision::Keep => false,
            Decision::Remove => true,
            Decision::AskRedis { if_job_ended } => {
                let live = match alive.get(&c.worker_id) {
                    Some(&live) => live,
                    None => {
                        let live = services
                            .queue
                            .is_worker_alive(&c.worker_id, now)
                            .await
                            .unwrap_or(true);
                        alive.insert(c.worker_id.clone(), live);
                        live
                    }
                };
                !live
                    || (if_job_ended && !services.queue.is_active(&c.job_id).await.unwrap_or(true))
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn container(worker: &str, job: &str, pooled: bool, age_secs: i64) -> ManagedContainer {
        ManagedContainer {
            id: format!("c-{worker}-{job}"),
            worker_id: worker.into(),
            job_id: job.into(),
            pooled,
            created: NOW - age_secs,
            queue: "q".into(),
            deployment: None,
        }
    }

    fn decide_for(c: &ManagedContainer, mode: SweepMode, in_flight: &[&str]) -> Decision {
        let in_flight = in_flight.iter().map(|s| s.to_string()).collect();
        decide(c, "me", mode, &in_flight, &HashSet::new(), NOW)
    }

    #[test]
    fn own_containers_go_when_no_runner_exists() {
        let c = container("me", "job-1", false, 1);
        assert_eq!(
            decide_for(&c, SweepMode::NoRunners, &["job-1"]),
            Decision::Remove
        );
    }

    #[test]
    fn a_young_own_container_stays_in_a_periodic_sweep_even_without_its_job() {
        // Its runner may have created it a moment ago.
        let young = container("me", "job-1", false, 5);
        assert_eq!(decide_for(&young, SweepMode::Periodic, &[]), Decision::Keep);
        let old = container("me", "job-1", false, 60);
        assert_eq!(decide_for(&old, SweepMode::Periodic, &[]), Decision::Remove);
        assert_eq!(
            decide_for(&old, SweepMode::Periodic, &["job-1"]),
            Decision::Keep
        );
    }

    #[test]
    fn a_paused_sweep_takes_any_own_container_no_job_owns() {
        let young = container("me", "job-1", false, 1);
        assert_eq!(decide_for(&young, SweepMode::Paused, &[]), Decision::Remove);
        assert_eq!(
            decide_for(&young, SweepMode::Paused, &["job-1"]),
            Decision::Keep
        );
    }

    #[test]
    fn a_warm_container_the_pool_holds_always_stays() {
        let c = container("me", POOL_JOB, true, 600);
        let pooled = HashSet::from([c.id.clone()]);
        for mode in [SweepMode::NoRunners, SweepMode::Paused, SweepMode::Periodic] {
            assert_eq!(
                decide(&c, "me", mode, &HashSet::new(), &pooled, NOW),
                Decision::Keep
            );
        }
        // The pool lost track of it: gone once old, or when nothing runs.
        let lost_young = container("me", POOL_JOB, true, 1);
        assert_eq!(
            decide_for(&lost_young, SweepMode::Periodic, &[]),
            Decision::Keep
        );
        assert_eq!(
            decide_for(&lost_young, SweepMode::Paused, &[]),
            Decision::Remove
        );
    }

    #[test]
    fn another_workers_containers_are_decided_by_redis() {
        let warm = container("other", POOL_JOB, true, 600);
        assert_eq!(
            decide_for(&warm, SweepMode::NoRunners, &[]),
            Decision::AskRedis {
                if_job_ended: false
            }
        );
        let young = container("other", "job-2", false, 1);
        assert_eq!(
            decide_for(&young, SweepMode::Periodic, &[]),
            Decision::AskRedis {
                if_job_ended: false
            }
        );
        let old = container("other", "job-2", false, 60);
        assert_eq!(
            decide_for(&old, SweepMode::Periodic, &[]),
            Decision::AskRedis { if_job_ended: true }
        );
    }
}
