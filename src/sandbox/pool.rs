//! The warm pool: containers created, attached and started ahead of need,
//! each waiting (its monitor blocked on stdin, nothing of any job inside)
//! for one task. A run takes one instead of creating a container, which
//! moves the engine's create and start (most of a run's cost) off the
//! critical path.
//!
//! With recycling on ([`Recycle`]), a plain job's container is not removed
//! after its last case: its monitor restores it and checks it fit, and the
//! pool keeps it (under a pool name again) for the next job of its key and
//! of its caller (`per-caller`) or of anyone (`all`), up to
//! [`PoolSettings::recycle_jobs`] jobs and [`PoolSettings::recycle_age`]
//! of age. Anything else (a monitor that does not say fit in time, frames
//! out of place, the pool full or stopping) removes it.
//!
//! Containers are pooled per [`PoolKey`] (image, every host limit, and the
//! CPU a pinned run gets: one key per CPU), so a warm container has exactly
//! the limits and pin of a fresh one; a run whose limits
//! differ from every pooled key gets a fresh container. The pool of a key
//! fills once a run of that key found it empty, refills in the background
//! after each take, and empties when the key has not been used for
//! [`IDLE_TTL`]. Isolation is unchanged: the same spec, the same hardening,
//! one container per run.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::container::AttachContainerResults;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::{AbortOnDropHandle, TaskTracker};

use bollard::query_parameters::RenameContainerOptionsBuilder;

use super::OutputStream;
use super::recycle::{Discard, RECYCLE_WAIT, ready};
pub use super::recycle::{Recycle, Recycled};
pub use super::spec::PoolKey;
use super::spec::container_spec;
use super::{Sandbox, SandboxError};
use crate::status::{PoolStats, RecycledContainer};

/// A key not taken from for this long is emptied.
pub const IDLE_TTL: Duration = Duration::from_secs(300);
/// After a failed creation, a key waits this long before the next.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// The job label of a pooled container (labels cannot change; a taken
/// container is renamed after its job instead).
pub const POOL_JOB: &str = "pool";
/// The name prefix of a container waiting in the pool.
pub const POOL_NAME_PREFIX: &str = "code-runner-pool-";
/// Most distinct keys warmed at once (jobs with unusual limits each make
/// one; past this they get fresh containers).
const MAX_KEYS: usize = 16;

/// How big the pool may grow.
#[derive(Debug, Clone, Default)]
pub struct PoolSettings {
    /// Most idle containers per key; 0 disables the pool.
    pub size: usize,
    /// Per-image overrides of `size` (image folder → size).
    pub sizes: HashMap<String, usize>,
    /// Containers created at once while refilling.
    pub parallel: usize,
    /// Most job containers alive at once, counting those being removed
    /// (the worker's concurrency cap); 0 means no bound.
    pub slots: usize,
    /// Who may share a container, one job after another.
    pub recycle: Recycle,
    /// Most jobs one container serves.
    pub recycle_jobs: u32,
    /// Oldest a container may be and still take a job.
    pub recycle_age: Duration,
}

impl PoolSettings {
    fn max_for(&self, image: &str) -> usize {
        self.sizes.get(image).copied().unwrap_or(self.size)
    }

    /// Parses `python=4,c=1` (image folder = size).
    pub fn parse_sizes(text: &str) -> Result<HashMap<String, usize>, String> {
        let mut sizes = HashMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (image, size) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not image=size"))?;
            let size = size
                .trim()
                .parse()
                .map_err(|_| format!("`{part}`: the size is not a number"))?;
            sizes.insert(image.trim().to_string(), size);
        }
        Ok(sizes)
    }
}

/// A started container waiting for its task, already attached.
pub struct Warm {
    pub id: String,
    pub io: AttachContainerResults,
}

/// A job's container handed back after its last case, its monitor
/// restoring it (see [`WarmPool::give_back`]).
pub struct Returning {
    pub id: String,
    pub key: PoolKey,
    pub client: Option<String>,
    pub output: OutputStream,
    /// Bytes read past the job's last report.
    pub leftover: Vec<u8>,
    pub nonce: [u8; 16],
    pub input: tokio::sync::mpsc::Sender<Vec<u8>>,
    pub writer: tokio::task::JoinHandle<()>,
    pub served: u32,
    pub born: Instant,
    pub slot: Option<OwnedSemaphorePermit>,
    /// Limits to give it back before it is kept (see `CaseSession`).
    pub restore: Option<bollard::models::ContainerUpdateBody>,
    /// Its rename after the job it served, if still under way: awaited
    /// before it is named the pool's again; refused, it is removed.
    pub naming: Option<tokio::task::JoinHandle<bool>>,
}

/// How many containers a key wants: it starts at one when a run of the key
/// finds none, grows by one each time a run finds the key empty (up to the
/// key's maximum) and drops to zero after [`IDLE_TTL`] without a run.
#[derive(Default)]
struct Demand {
    target: usize,
    last_used: Option<Instant>,
    /// Containers being created for this key.
    filling: usize,
    /// A creation failed: no new one before this time.
    retry_at: Option<Instant>,
}

#[derive(Default)]
struct PoolState {
    idle: HashMap<PoolKey, VecDeque<Warm>>,
    recycled: HashMap<PoolKey, VecDeque<Recycled>>,
    /// Recycled containers of keys emptied by a refill's plan, to remove.
    unwanted: Vec<Recycled>,
    demand: HashMap<PoolKey, Demand>,
    /// Created for the pool, not idle yet (being attached and started).
    pending: HashSet<String>,
    /// Taken by a run that has not removed it yet.
    taken: HashSet<String>,
    /// Containers being created now, all keys.
    filling: usize,
    /// The engine is away: no refilling.
    paused: bool,
    stopped: bool,
    hits: u64,
    misses: u64,
}

impl PoolState {
    /// Records a run's look for `key` at `now`: the key is in use, and a
    /// miss asks for one more of it, up to `max`. Past [`MAX_KEYS`] keys a
    /// new one is not tracked (its runs get fresh containers).
    fn record_take(&mut self, key: &PoolKey, max: usize, hit: bool, now: Instant) {
        let keys = self.demand.len();
        let demand = match self.demand.get_mut(key) {
            Some(demand) => demand,
            None if keys < MAX_KEYS => self.demand.entry(key.clone()).or_default(),
            None => return,
        };
        demand.last_used = Some(now);
        if !hit {
            demand.target = (demand.target + 1).min(max);
        }
    }

    /// What a refill does at `now`: the idle containers of keys unused for
    /// [`IDLE_TTL`] (to destroy; their keys forgotten), and the keys to
    /// create one container each for (at most `parallel` creations at once
    /// in all; none while paused, none for a key whose last creation failed
    /// too recently). Counts the creations as started.
    fn plan_refill(&mut self, parallel: usize, now: Instant) -> (Vec<Warm>, Vec<PoolKey>) {
        let stale: Vec<PoolKey> = self
            .demand
            .iter()
            .filter(|(_, d)| {
                d.filling == 0 && d.last_used.is_none_or(|t| now.duration_since(t) > IDLE_TTL)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut expired = Vec::new();
        for key in &stale {
            self.demand.remove(key);
            expired.extend(self.idle.remove(key).into_iter().flatten());
            let recycled = self.recycled.remove(key);
            self.unwanted.extend(recycled.into_iter().flatten());
        }
        let mut starts = Vec::new();
        if !self.paused {
            let PoolState {
                idle,
                demand,
                filling,
                ..
            } = self;
            for (key, want) in demand.iter_mut() {
                if want.retry_at.is_some_and(|t| t > now) {
                    continue;
                }
                let have = idle.get(key).map_or(0, VecDeque::len) + want.filling;
                for _ in have..want.target {
                    if *filling >= parallel {
                        break;
                    }
                    *filling += 1;
                    want.filling += 1;
                    starts.push(key.clone());
                }
            }
        }
        (expired, starts)
    }
}

/// The pool. One per worker process; cheap to share.
pub struct WarmPool {
    sandbox: Sandbox,
    settings: PoolSettings,
    state: Mutex<PoolState>,
    /// Wakes the refiller (after a take, a finished creation, or to stop).
    wake: Arc<Notify>,
    /// Creations of warm containers and removals of used ones (done off
    /// the jobs' critical path); [`WarmPool::drain`] waits for them.
    tasks: TaskTracker,
    /// One permit per job container alive (running or being removed).
    slots: Arc<Semaphore>,
}

impl WarmPool {
    /// A pool growing to `settings.size` containers per key in use (0
    /// disables it); its refiller runs until [`WarmPool::drain`].
    pub fn start(sandbox: Sandbox, mut settings: PoolSettings) -> Arc<WarmPool> {
        settings.parallel = settings.parallel.max(1);
        let pool = Arc::new(WarmPool {
            sandbox,
            state: Mutex::default(),
            wake: Arc::new(Notify::new()),
            tasks: TaskTracker::new(),
            slots: Arc::new(Semaphore::new(match settings.slots {
                0 => Semaphore::MAX_PERMITS,
                n => n,
            })),
            settings,
        });
        if pool.enabled() || pool.settings.recycle != Recycle::Off {
            // The refiller holds the pool only while refilling, so a pool
            // nobody uses any more ends it.
            let refiller = Arc::downgrade(&pool);
            let wake = pool.wake.clone();
            tokio::spawn(async move {
                loop {
                    {
                        let Some(pool) = refiller.upgrade() else {
                            return;
                        };
                        if pool.lock().stopped {
                            return;
                        }
                        pool.refill().await;
                    }
                    let _ = tokio::time::timeout(Duration::from_secs(5), wake.notified()).await;
                }
            });
        }
        pool
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn enabled(&self) -> bool {
        self.settings.size > 0 || self.settings.sizes.values().any(|s| *s > 0)
    }

    /// A warm container of this key, if one is ready; records the demand
    /// either way, so the key's pool fills.
    pub fn take(&self, key: &PoolKey) -> Option<Warm> {
        let max = self.settings.max_for(&key.image);
        if max == 0 {
            return None;
        }
        let mut state = self.lock();
        if state.stopped {
            return None;
        }
        let warm = state.idle.get_mut(key).and_then(VecDeque::pop_front);
        if let Some(warm) = &warm {
            state.taken.insert(warm.id.clone());
            state.hits += 1;
        } else {
            state.misses += 1;
        }
        crate::metrics::pool_take(warm.is_some());
        state.record_take(key, max, warm.is_some(), Instant::now());
        drop(state);
        self.wake.notify_one();
        warm
    }

    /// Whether a job of `client` may run in a recycled container and have
    /// its own recycled: `None` when not (recycling off, or `per-caller`
    /// and the job names no caller), else whose jobs the container may
    /// serve (`Some(None)`: anyone's).
    pub fn recycles(&self, client: Option<&str>) -> Option<Option<String>> {
        match self.settings.recycle {
            Recycle::Off => None,
            Recycle::All => Some(None),
            Recycle::PerCaller => client.map(|c| Some(c.to_string())),
        }
    }

    /// A recycled container of `key` that may serve `client`'s job (see
    /// [`WarmPool::recycles`]), young enough; counted as served once more.
    pub fn take_recycled(&self, key: &PoolKey, client: &Option<String>) -> Option<Recycled> {
        let mut state = self.lock();
        if state.stopped {
            return None;
        }
        let age = self.settings.recycle_age;
        // The most recently restored first: the others age out.
        let queue = state.recycled.get_mut(key)?;
        let at = queue
            .iter()
            .rposition(|r| &r.client == client && r.born.elapsed() < age)?;
        let mut recycled = queue.remove(at)?;
        recycled.served += 1;
        state.taken.insert(recycled.id.clone());
        state.hits += 1;
        crate::metrics::pool_take(true);
        if let Some(demand) = state.demand.get_mut(key) {
            demand.last_used = Some(Instant::now());
        }
        Some(recycled)
    }

    /// Takes back a job's container after its last case: waits (in the
    /// background) for its monitor to say it restored it and found it fit,
    /// names it as a pool container again and keeps it for the next job of
    /// its key and client; removes it instead when the monitor says
    /// otherwise or does not say in time, sends anything else, the engine
    /// did not name it after the job it served, or the container served
    /// its most jobs, is too old, or the pool is full, paused or stopping.
    /// The slot is held until then: until it is named the pool's, it still
    /// carries its job's name, and job containers never outnumber the cap.
    pub fn give_back(self: &Arc<Self>, back: Returning) {
        let pool = self.clone();
        self.lock().taken.insert(back.id.clone());
        self.tasks
            .spawn(tracing::Instrument::in_current_span(async move {
                let Returning {
                    id,
                    key,
                    client,
                    mut output,
                    leftover,
                    nonce,
                    input,
                    writer,
                    served,
                    born,
                    slot,
                    restore,
                    naming,
                } = back;
                let fit =
                    match tokio::time::timeout(RECYCLE_WAIT, ready(&mut output, nonce, leftover))
                        .await
                    {
                        Ok(fit) => fit.map_err(Discard::Unfit),
                        Err(_) => Err(Discard::Timeout),
                    };
                let named = match naming {
                    Some(naming) => naming.await.unwrap_or(false),
                    None => true,
                };
                let verdict = fit.and_then(|()| {
                    if !named {
                        Err(Discard::Engine("cannot name it after its job".into()))
                    } else if served >= pool.settings.recycle_jobs {
                        Err(Discard::Jobs)
                    } else if born.elapsed() >= pool.settings.recycle_age {
                        Err(Discard::Aged)
                    } else {
                        Ok(())
                    }
                });
                let kept = match verdict {
                    Err(why) => {
                        writer.abort();
                        Err(why)
                    }
                    Ok(()) => {
                        let recycled = Recycled {
                            id: id.clone(),
                            output,
                            input,
                            writer: AbortOnDropHandle::new(writer),
                            client,
                            served,
                            born,
                        };
                        pool.keep(key, recycled, restore).await
                    }
                };
                if let Err(why) = kept {
                    tracing::debug!(container = %id, %why, "not recycling a container");
                    crate::metrics::recycle_discard(why.metric());
                    crate::metrics::jobs_per_container(served);
                    pool.release(&id);
                    if pool.sandbox.remove(&id).await {
                        tracing::debug!(container = %id, "container removed");
                    }
                }
                drop(slot);
            }));
    }

    /// Names a fit recycled container as the pool's again and keeps it.
    async fn keep(
        &self,
        key: PoolKey,
        recycled: Recycled,
        restore: Option<bollard::models::ContainerUpdateBody>,
    ) -> Result<(), Discard> {
        let room = self.settings.max_for(&key.image).max(1);
        {
            let state = self.lock();
            if state.stopped || state.paused {
                return Err(Discard::Stopped);
            }
            if state.recycled.get(&key).map_or(0, VecDeque::len) >= room {
                return Err(Discard::Full);
            }
        }
        if let Some(update) = restore {
            self.sandbox
                .docker()
                .update_container(&recycled.id, update)
                .await
                .map_err(|e| Discard::Engine(format!("cannot update it: {e}")))?;
        }
        // The finished job's name off it first: a clean-up of that job by
        // name must not find the container serving another.
        let name = format!(
            "{POOL_NAME_PREFIX}{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let options = RenameContainerOptionsBuilder::new().name(&name).build();
        self.sandbox
            .docker()
            .rename_container(&recycled.id, options)
            .await
            .map_err(|e| Discard::Engine(format!("cannot rename it: {e}")))?;
        let mut state = self.lock();
        if state.stopped || state.paused {
            return Err(Discard::Stopped);
        }
        state.taken.remove(&recycled.id);
        crate::metrics::recycled();
        tracing::debug!(container = %recycled.id, "container recycled");
        state.recycled.entry(key).or_default().push_back(recycled);
        Ok(())
    }

    /// Removes a recycled container nobody will use.
    async fn discard(&self, recycled: Recycled, why: Discard) {
        crate::metrics::recycle_discard(why.metric());
        crate::metrics::jobs_per_container(recycled.served);
        let id = recycled.id.clone();
        drop(recycled);
        tracing::debug!(container = %id, %why, "removing a recycled container");
        self.sandbox.remove(&id).await;
    }

    /// A taken container is removed (or its run was dropped, and the
    /// runner's clean-up or the sweep removes it by its job's name).
    pub fn release(&self, id: &str) {
        self.lock().taken.remove(id);
    }

    /// Removes a used container in the background (its run's result does
    /// not wait for the engine's removal); it counts as taken until gone.
    /// The `slot` is held until the container is gone, so that job
    /// containers alive never exceed the worker's cap.
    pub fn remove_later(self: &Arc<Self>, id: &str, slot: OwnedSemaphorePermit) {
        let sandbox = self.sandbox.clone();
        let pool = Arc::downgrade(self);
        let id = id.to_string();
        self.lock().taken.insert(id.clone());
        // In the job's span: the removal ends the job's story in the logs.
        self.tasks
            .spawn(tracing::Instrument::in_current_span(async move {
                if sandbox.remove(&id).await {
                    tracing::debug!(container = %id, "container removed");
                }
                if let Some(pool) = pool.upgrade() {
                    pool.release(&id);
                }
                drop(slot);
            }));
    }

    /// A job container's slot: waits while the cap's worth of containers
    /// are still running or being removed.
    pub async fn slot(&self) -> OwnedSemaphorePermit {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .expect("the slot semaphore is never closed")
    }

    /// Ids of the containers the pool holds (idle, being started, or taken
    /// by a run); the sweep leaves them alone.
    pub fn container_ids(&self) -> HashSet<String> {
        let state = self.lock();
        let mut ids: HashSet<String> = state.pending.union(&state.taken).cloned().collect();
        for queue in state.idle.values() {
            ids.extend(queue.iter().map(|w| w.id.clone()));
        }
        for queue in state.recycled.values() {
            ids.extend(queue.iter().map(|r| r.id.clone()));
        }
        ids
    }

    pub fn stats(&self) -> PoolStats {
        let state = self.lock();
        let mut stats = PoolStats {
            enabled: self.enabled(),
            hits: state.hits,
            misses: state.misses,
            ..PoolStats::default()
        };
        for (key, queue) in &state.idle {
            *stats.idle.entry(key.image.clone()).or_default() += queue.len();
        }
        for (key, queue) in &state.recycled {
            *stats.recycled.entry(key.image.clone()).or_default() += queue.len();
            stats.recycled_jobs_served += queue.iter().map(|r| u64::from(r.served)).sum::<u64>();
            stats
                .recycled_containers
                .extend(queue.iter().map(|r| RecycledContainer {
                    image: key.image.clone(),
                    container: r.id.chars().take(12).collect(),
                    jobs_served: r.served,
                    age_ms: r.born.elapsed().as_millis() as u64,
                }));
        }
        stats
            .recycled_containers
            .sort_by(|a, b| (&a.image, b.jobs_served).cmp(&(&b.image, a.jobs_served)));
        for (key, demand) in &state.demand {
            *stats.target.entry(key.image.clone()).or_default() += demand.target;
        }
        stats
    }

    /// The engine went away: stop refilling and drop every idle container
    /// (removing it if the engine still answers; the sweep gets the rest).
    pub async fn pause(&self) {
        self.lock().paused = true;
        self.discard_idle().await;
    }

    /// The engine is back: refill.
    pub fn resume(&self) {
        self.lock().paused = false;
        self.wake.notify_one();
    }

    async fn discard_idle(&self) {
        let (idle, recycled): (Vec<Warm>, Vec<Recycled>) = {
            let mut state = self.lock();
            (
                state.idle.drain().flat_map(|(_, q)| q).collect(),
                state.recycled.drain().flat_map(|(_, q)| q).collect(),
            )
        };
        for warm in idle {
            self.destroy(warm).await;
        }
        for recycled in recycled {
            self.discard(recycled, Discard::Stopped).await;
        }
    }

    /// Removes a warm container nobody will use.
    async fn destroy(&self, warm: Warm) {
        // Close the attach stream first: the engine's removal of a
        // container can wait on an attached stream nobody reads.
        let Warm { id, io } = warm;
        drop(io);
        tracing::debug!(container = %id, "removing a warm container");
        self.sandbox.remove(&id).await;
    }

    /// Stops refilling, removes every idle container, and waits for the
    /// creations under way (whose containers are then removed) and the
    /// removals of used ones.
    pub async fn drain(&self) {
        self.lock().stopped = true;
        self.wake.notify_one();
        self.discard_idle().await;
        self.tasks.close();
        tracing::debug!(tasks = self.tasks.len(), "draining the warm pool");
        self.tasks.wait().await;
        tracing::debug!("warm pool drained");
        self.tasks.reopen();
        // A creation that finished meanwhile may have queued one.
        self.discard_idle().await;
    }

    /// Starts creating what is missing, at most `parallel` at a time, and
    /// empties keys unused for [`IDLE_TTL`].
    async fn refill(self: &Arc<Self>) {
        let (expired, starts) = {
            let mut state = self.lock();
            if state.stopped {
                return;
            }
            state.plan_refill(self.settings.parallel, Instant::now())
        };
        for warm in expired {
            self.destroy(warm).await;
        }
        let aged: Vec<Recycled> = {
            let mut state = self.lock();
            let age = self.settings.recycle_age;
            let mut aged = std::mem::take(&mut state.unwanted);
            for queue in state.recycled.values_mut() {
                let (old, young): (VecDeque<Recycled>, VecDeque<Recycled>) =
                    queue.drain(..).partition(|r| r.born.elapsed() >= age);
                *queue = young;
                aged.extend(old);
            }
            aged
        };
        for recycled in aged {
            self.discard(recycled, Discard::Aged).await;
        }
        for key in starts {
            let pool = self.clone();
            self.tasks.spawn(async move { pool.fill_one(key).await });
        }
    }

    async fn fill_one(self: Arc<Self>, key: PoolKey) {
        let made = self.sandbox.create_warm(&key, &self).await;
        tracing::debug!(image = %key.image, ok = made.is_ok(), "warmed a container");
        let unwanted = {
            let mut state = self.lock();
            state.filling -= 1;
            if let Some(demand) = state.demand.get_mut(&key) {
                demand.filling -= 1;
            }
            match made {
                Ok(warm) => {
                    state.pending.remove(&warm.id);
                    let wanted = !state.stopped
                        && !state.paused
                        && state.demand.get(&key).is_some_and(|d| {
                            state.idle.get(&key).map_or(0, VecDeque::len) < d.target
                        });
                    if wanted {
                        state.idle.entry(key.clone()).or_default().push_back(warm);
                        None
                    } else {
                        Some(warm)
                    }
                }
                Err(e) => {
                    tracing::warn!(image = %key.image, error = %e, "cannot warm a container");
                    if let Some(demand) = state.demand.get_mut(&key) {
                        demand.retry_at = Some(Instant::now() + RETRY_AFTER);
                    }
                    None
                }
            }
        };
        if let Some(warm) = unwanted {
            self.destroy(warm).await;
        }
        self.wake.notify_one();
    }

    fn add_pending(&self, id: &str) {
        self.lock().pending.insert(id.to_string());
    }

    fn forget_pending(&self, id: &str) {
        self.lock().pending.remove(id);
    }
}

impl Sandbox {
    /// Creates, attaches and starts a container that waits for a task.
    async fn create_warm(&self, key: &PoolKey, pool: &WarmPool) -> Result<Warm, SandboxError> {
        let image = self.image_name(&key.image);
        let body = container_spec(
            self.settings(),
            image.clone(),
            &key.limits(),
            POOL_JOB,
            POOL_JOB,
        );
        let name = format!(
            "{POOL_NAME_PREFIX}{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let id = self.create(&name, image, body).await?;
        pool.add_pending(&id);
        let io = match self.attach(&id).await {
            Ok(io) => io,
            Err(e) => {
                self.remove(&id).await;
                pool.forget_pending(&id);
                return Err(e.into());
            }
        };
        if let Err(e) = self.start(&id).await {
            self.remove(&id).await;
            pool.forget_pending(&id);
            return Err(e.into());
        }
        Ok(Warm { id, io })
    }
}

/// Releases a taken container when its run ends, however it ends.
pub struct Taken<'a> {
    pool: &'a WarmPool,
    id: String,
}

impl<'a> Taken<'a> {
    pub fn new(pool: &'a WarmPool, id: &str) -> Taken<'a> {
        Taken {
            pool,
            id: id.to_string(),
        }
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        self.pool.release(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::spec::ContainerLimits;

    fn key(image: &str) -> PoolKey {
        PoolKey::new(
            image,
            &ContainerLimits {
                memory_bytes: 256 << 20,
                processes: 64,
                cpus: 1.0,
                tmpfs_bytes: 64 << 20,
                runtime: None,
                cpuset: Some("1".into()),
            },
        )
    }

    #[test]
    fn sizes_parse_per_image_and_refuse_nonsense() {
        let sizes = PoolSettings::parse_sizes(" python=4, c=1,,").unwrap();
        assert_eq!(sizes.get("python"), Some(&4));
        assert_eq!(sizes.get("c"), Some(&1));
        assert!(PoolSettings::parse_sizes("python").is_err());
        assert!(PoolSettings::parse_sizes("python=many").is_err());
        let settings = PoolSettings {
            size: 2,
            sizes,
            ..PoolSettings::default()
        };
        assert_eq!((settings.max_for("python"), settings.max_for("go")), (4, 2));
    }

    #[test]
    fn a_plain_key_gives_back_its_limits_but_no_cpu_pin() {
        let limits = key("python").limits();
        assert_eq!((limits.memory_bytes, limits.processes), (256 << 20, 64));
        assert_eq!(limits.cpus, 1.0);
        assert_eq!(limits.cpuset, None);
    }

    #[test]
    fn a_pinned_key_gives_back_its_cpu_pin_and_differs_from_the_unpinned() {
        let limits = ContainerLimits {
            cpuset: Some("1".into()),
            ..key("python").limits()
        };
        let pinned = PoolKey::pinned("python", &limits);
        assert_eq!(pinned.limits().cpuset.as_deref(), Some("1"));
        assert_ne!(pinned, PoolKey::new("python", &limits));
    }

    #[test]
    fn each_miss_asks_for_one_more_up_to_the_keys_maximum() {
        let mut state = PoolState::default();
        let now = Instant::now();
        for _ in 0..5 {
            state.record_take(&key("python"), 3, false, now);
        }
        assert_eq!(state.demand[&key("python")].target, 3);
        state.record_take(&key("python"), 3, true, now);
        assert_eq!(
            state.demand[&key("python")].target,
            3,
            "a hit asks for nothing"
        );
        // Past MAX_KEYS keys, a new one is not tracked.
        for i in 0..MAX_KEYS {
            state.record_take(&key(&format!("image-{i}")), 1, false, now);
        }
        assert_eq!(state.demand.len(), MAX_KEYS);
        assert!(!state.demand.contains_key(&key("image-15")));
    }

    #[test]
    fn a_refill_starts_what_is_missing_within_its_parallelism() {
        let mut state = PoolState::default();
        let now = Instant::now();
        for _ in 0..3 {
            state.record_take(&key("python"), 3, false, now);
        }
        let (expired, starts) = state.plan_refill(2, now);
        assert!(expired.is_empty());
        assert_eq!(starts, [key("python"), key("python")]);
        // Those two are being created: one more once one finishes.
        assert!(state.plan_refill(2, now).1.is_empty());
        state.filling -= 1;
        state.demand.get_mut(&key("python")).unwrap().filling -= 1;
        assert_eq!(state.plan_refill(2, now).1.len(), 1);
    }

    #[test]
    fn nothing_is_started_while_paused_or_after_a_failure_and_unused_keys_expire() {
        let mut state = PoolState::default();
        let now = Instant::now();
        state.record_take(&key("python"), 2, false, now);
        state.paused = true;
        assert!(state.plan_refill(4, now).1.is_empty());
        state.paused = false;
        state.demand.get_mut(&key("python")).unwrap().retry_at = Some(now + Duration::from_secs(5));
        assert!(state.plan_refill(4, now).1.is_empty());
        // Unused for longer than IDLE_TTL: the key is forgotten.
        let later = now + IDLE_TTL + Duration::from_secs(1);
        state.plan_refill(4, later);
        assert!(state.demand.is_empty());
    }
}
