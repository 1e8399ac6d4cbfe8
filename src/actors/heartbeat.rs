//! The worker's heartbeat: a task, owned by the dispatcher, that writes this
//! worker's [`WorkerInfo`] to Redis every [`HEARTBEAT_INTERVAL`] and soon
//! after a job changes phase. Other processes read it: a worker whose
//! heartbeat expired is dead (its containers are swept, its jobs retried),
//! and an `api` process answers a running job's phase from it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use super::WorkerServices;
use crate::job::now_ms;
use crate::queue::QueueError;
use crate::queue::heartbeat::HEARTBEAT_INTERVAL;
use crate::status::{WorkerInfo, WorkerJob};

/// How long after a phase change the heartbeat publishing it is written
/// (the changes within it go in one write).
const PHASE_PUBLISH_DELAY: Duration = Duration::from_millis(200);

/// What the dispatcher shares with its heartbeat.
#[derive(Clone)]
pub struct WorkerVitals {
    pub started_at_ms: u64,
    /// Jobs in flight.
    pub running: Arc<AtomicUsize>,
    /// Whether the engine answers.
    pub engine_ok: Arc<AtomicBool>,
}

impl Default for WorkerVitals {
    fn default() -> Self {
        WorkerVitals {
            started_at_ms: now_ms(),
            running: Arc::new(AtomicUsize::new(0)),
            engine_ok: Arc::new(AtomicBool::new(true)),
        }
    }
}

/// Writes one heartbeat now (the dispatcher's first, before any container
/// of it exists, so that no other worker's sweep takes this one's for a
/// dead worker's).
pub async fn beat(services: &WorkerServices, vitals: &WorkerVitals) -> Result<(), QueueError> {
    let mut info = worker_info(services, vitals);
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
    services.queue.heartbeat(&info).await
}

/// Beats for as long as it runs.
pub async fn run(services: Arc<WorkerServices>, vitals: WorkerVitals) {
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
        if let Err(e) = beat(&services, &vitals).await {
            tracing::warn!(error = %e, "heartbeat not recorded");
        }
    }
}

fn worker_info(services: &WorkerServices, vitals: &WorkerVitals) -> WorkerInfo {
    WorkerInfo {
        id: services.worker_settings.worker_id.clone(),
        host: crate::config::hostname(),
        concurrency: services.worker_settings.concurrency,
        running: vitals.running.load(Ordering::Relaxed),
        cpus: services.slot_cpus.clone(),
        engine_ok: vitals.engine_ok.load(Ordering::Relaxed),
        started_at_ms: vitals.started_at_ms,
        heartbeat_at_ms: now_ms(),
        jobs: Vec::new(),
        restarts: Default::default(),
        pool: Some(services.pool.stats()),
        missing_languages: services.images.missing().unwrap_or_default(),
    }
}
