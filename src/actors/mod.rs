//! The actor tree (ractor):
//!
//! ```text
//! Supervisor                  restarts a failed child with backoff, counts it
//! ├── JobRegistry             live view: jobs in flight, phases, recent results, restarts
//! └── Dispatcher              (worker processes) claims jobs while running < cap
//!     ├── Sweeper             removes leftover containers, one sweep at a time
//!     ├── ContainerRunner ×N  one per job: drives its containers, reports phases + result
//!     └── (tasks)             heartbeat, engine watch, cancellation listener
//! ```
//!
//! Actors reach Docker only through [`crate::sandbox`] and Redis only
//! through [`crate::queue`].

pub mod dispatcher;
pub mod engine_watch;
pub mod heartbeat;
pub mod registry;
pub mod runner;
pub mod supervisor;
pub mod sweeper;

use std::sync::Arc;
use std::time::Duration;

use crate::execute::ExecutionSettings;
use crate::language::LanguageTable;
use crate::limits::Limits;
use crate::queue::worker::WorkerSettings;
use crate::queue::{JobQueue, QueueSettings};
use crate::sandbox::Sandbox;
use crate::sandbox::pool::WarmPool;

pub use registry::RegistryHandle;

/// What a dispatcher (and its runners) need, shared read-only.
pub struct WorkerServices {
    pub queue: JobQueue,
    pub queue_settings: QueueSettings,
    pub worker_settings: WorkerSettings,
    pub sandbox: Sandbox,
    pub languages: Arc<LanguageTable>,
    pub registry: RegistryHandle,
    /// Limits of a job that asks for none (before its language's overrides).
    pub default_limits: Limits,
    /// The most a job may have.
    pub max_limits: Limits,
    pub execution: ExecutionSettings,
    /// The languages whose image this worker's engine has, and their
    /// versions (refreshed by the engine watch).
    pub images: Arc<crate::sandbox::images::LanguageImages>,
    /// Warm containers (see [`crate::sandbox::pool`]); also when disabled.
    pub pool: Arc<WarmPool>,
    /// How long a stopping worker lets running jobs finish.
    pub shutdown_grace: Duration,
    /// How long an interactive job runs with no client connected.
    pub interactive_grace: Duration,
    /// The CPU each worker slot's jobs run on (slot N on `slot_cpus[N]`),
    /// claimed from those no other worker on the engine holds; empty when
    /// jobs are not pinned (more than one CPU each, more slots than free
    /// CPUs, or an operator cpuset).
    pub slot_cpus: Vec<u32>,
    /// Test-only fault hooks enabled.
    pub fault_injection: bool,
}

/// Aborts a background task when dropped (also when its owner panics).
pub(crate) struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
