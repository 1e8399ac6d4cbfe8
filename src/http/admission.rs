//! What every submission route checks before it enqueues, whatever its
//! API: the queue's depth, the body's size, and the caller's place in the
//! queue (its budgets and share are in [`super::auth`]).

use axum::http::StatusCode;
use uuid::Uuid;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use crate::job::JobSpec;

/// 429 when the queue cannot take `adding` more jobs; nothing is enqueued.
pub async fn check_queue_depth(state: &AppState, adding: u64) -> Result<(), ApiError> {
    let waiting = match state
        .intake
        .depth
        .recent(adding, state.intake.max_queue_depth)
    {
        Some(waiting) => waiting,
        None => {
            let waiting = state.queue.waiting_count().await?;
            state.intake.depth.store(waiting);
            waiting
        }
    };
    if waiting + adding > state.intake.max_queue_depth {
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "the queue is full ({waiting} jobs waiting, at most {}); retry later",
                state.intake.max_queue_depth
            ),
        );
        error.retry_after = Some(5);
        return Err(error);
    }
    state.intake.depth.added(adding);
    Ok(())
}

/// 507 when Redis holds the memory budget the service keeps it to
/// (`queue::memory`), whatever Redis it is: a job refused now is better
/// than a Redis that refuses every write later, a worker's results among
/// them. Retention removes finished jobs long before this.
pub async fn check_redis_memory(state: &AppState) -> Result<(), ApiError> {
    let room = &state.intake.redis_room;
    let full = match room.recent() {
        Some(full) => full,
        None => {
            let memory = state.queue.redis_memory().await?;
            let budget = memory.budget(room.configured, room.fallback);
            let full = memory.used >= budget;
            room.store(full);
            full
        }
    };
    if full {
        let mut error = ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "the job queue is full: Redis holds its memory budget \
             (CODE_RUNNER_REDIS_MEMORY_BUDGET_MB, or nine tenths of its maxmemory); nothing was \
             queued: retry once finished jobs have been removed",
        );
        error.retry_after = Some(30);
        return Err(error);
    }
    Ok(())
}

/// Whether Redis held its memory budget when last read, read again after
/// [`RedisRoom::MAX_AGE_MS`] (one `INFO` a second per API process).
#[derive(Debug, Default)]
pub struct RedisRoom {
    /// `CODE_RUNNER_REDIS_MEMORY_BUDGET_MB` in bytes, when set.
    pub configured: Option<u64>,
    /// The budget when it is not set and Redis has no `maxmemory`.
    pub fallback: u64,
    full: std::sync::atomic::AtomicBool,
    /// When it was read (ms since the epoch); 0: never.
    read_at_ms: std::sync::atomic::AtomicU64,
}

impl RedisRoom {
    const MAX_AGE_MS: u64 = 1_000;

    pub fn new(configured: Option<u64>, fallback: u64) -> Self {
        RedisRoom {
            configured,
            fallback,
            ..RedisRoom::default()
        }
    }

    fn recent(&self) -> Option<bool> {
        use std::sync::atomic::Ordering::Relaxed;
        let read_at = self.read_at_ms.load(Relaxed);
        (read_at != 0 && crate::job::now_ms().saturating_sub(read_at) < Self::MAX_AGE_MS)
            .then(|| self.full.load(Relaxed))
    }

    fn store(&self, full: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        self.full.store(full, Relaxed);
        self.read_at_ms.store(crate::job::now_ms(), Relaxed);
    }
}

/// The waiting count as last read, so that a submission far below the
/// queue's cap costs no extra Redis round trip: it is read again after
/// [`QueueDepth::MAX_AGE_MS`], or at once when within a tenth of the cap.
#[derive(Debug, Default)]
pub struct QueueDepth {
    waiting: std::sync::atomic::AtomicU64,
    /// When it was read (ms since the epoch); 0: never.
    read_at_ms: std::sync::atomic::AtomicU64,
}

impl QueueDepth {
    const MAX_AGE_MS: u64 = 100;

    /// The count, if read recently and far enough below `cap`.
    fn recent(&self, adding: u64, cap: u64) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let read_at = self.read_at_ms.load(Relaxed);
        let waiting = self.waiting.load(Relaxed);
        let fresh = read_at != 0 && crate::job::now_ms().saturating_sub(read_at) < Self::MAX_AGE_MS;
        let far = waiting.saturating_add(adding).saturating_add(cap / 10) < cap;
        (fresh && far).then_some(waiting)
    }

    fn store(&self, waiting: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.waiting.store(waiting, Relaxed);
        self.read_at_ms.store(crate::job::now_ms(), Relaxed);
    }

    fn added(&self, adding: u64) {
        self.waiting
            .fetch_add(adding, std::sync::atomic::Ordering::Relaxed);
    }
}

/// 503 naming the language when workers are up and none of them has its
/// image yet (on a fresh machine the images build one after another): the
/// client learns at once, rather than waiting on a job no worker can start.
/// `languages`: each job's language id, with the field naming it.
pub async fn check_languages_ready(
    state: &AppState,
    languages: impl Iterator<Item = (String, String)>,
) -> Result<(), ApiError> {
    let unready = state.intake.unready.get(state).await?;
    if unready.is_empty() {
        return Ok(());
    }
    for (field, language) in languages {
        if unready.contains(&language) {
            let mut error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{language} is not ready yet: no worker has its image (it is still being \
                     built); retry later, or see GET /v1/languages for the ready ones"
                ),
            )
            .with_field(field);
            error.retry_after = Some(30);
            return Err(error);
        }
    }
    Ok(())
}

/// The languages no live worker has the image of
/// ([`crate::status::unready_languages`]), read from the workers'
/// heartbeats at most every [`UnreadyLanguages::MAX_AGE_MS`].
#[derive(Debug, Default)]
pub struct UnreadyLanguages {
    last: std::sync::Mutex<Option<(u64, std::sync::Arc<std::collections::BTreeSet<String>>)>>,
}

impl UnreadyLanguages {
    const MAX_AGE_MS: u64 = 1_000;

    pub async fn get(
        &self,
        state: &AppState,
    ) -> Result<std::sync::Arc<std::collections::BTreeSet<String>>, ApiError> {
        let now = crate::job::now_ms();
        if let Some((read_at, unready)) = &*self.last.lock().unwrap_or_else(|e| e.into_inner())
            && now.saturating_sub(*read_at) < Self::MAX_AGE_MS
        {
            return Ok(unready.clone());
        }
        let workers = state.queue.live_workers(now).await?;
        let unready = std::sync::Arc::new(crate::status::unready_languages(&workers));
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((now, unready.clone()));
        Ok(unready)
    }
}

/// The largest body worth reading: JSON may spell one byte of code as six
/// (`\u00XX`), and stdin and expected outputs come on top.
pub fn max_body_bytes(state: &AppState) -> usize {
    state
        .intake
        .max_code_bytes
        .saturating_mul(12)
        .saturating_add(64 * 1024)
}

/// A job's BullMQ priority: what it asked for, pushed back by its caller's
/// unfinished jobs (see [`super::auth::admit_share`]), within BullMQ's range.
pub fn fair_priority(requested: u32, offset: Option<u32>, index: u32) -> u32 {
    /// BullMQ's largest priority (2^21 - 1).
    const MAX: u32 = 2_097_151;
    match offset {
        None => requested,
        Some(offset) => requested
            .saturating_add(offset)
            .saturating_add(index)
            .min(MAX),
    }
}

/// Admits `jobs` (id, spec, requested priority) for `caller` and queues
/// them, all or none: their languages' readiness, the queue's depth, the caller's submission budget
/// (`budget_field` names what a batch too large for any minute's budget
/// gets its 400 on) and its share of the queue, which sets each job's fair
/// priority. A refused enqueue gives the share back.
pub async fn queue_jobs(
    state: &AppState,
    caller: &Caller,
    mut jobs: Vec<(Uuid, JobSpec, u32)>,
    budget_field: &str,
) -> Result<(), ApiError> {
    check_languages_ready(
        state,
        jobs.iter().enumerate().flat_map(|(i, (_, spec, _))| {
            let field = |name: &str| match budget_field {
                "" => name.to_string(),
                batch => format!("{batch}[{i}].{name}"),
            };
            let checker = spec
                .checker
                .as_ref()
                .map(|c| (field("checker.language"), c.language.clone()));
            let interactor = spec
                .interactor
                .as_ref()
                .map(|c| (field("interactor.language"), c.language.clone()));
            std::iter::once((field("language"), spec.language.clone()))
                .chain(checker)
                .chain(interactor)
        }),
    )
    .await?;
    check_redis_memory(state).await?;
    check_queue_depth(state, jobs.len() as u64).await?;
    super::auth::admit_jobs(state, caller, jobs.len() as u64, budget_field).await?;
    let ids: Vec<Uuid> = jobs.iter().map(|(id, _, _)| *id).collect();
    let offset = super::auth::admit_share(state, caller, &ids).await?;
    for (index, (_, spec, priority)) in jobs.iter_mut().enumerate() {
        spec.caller = offset.map(|_| caller.bucket.clone());
        spec.client = Some(caller.bucket.clone());
        *priority = fair_priority(*priority, offset, index as u32);
    }
    let options = &state.intake.enqueue;
    let queued = match jobs.as_slice() {
        [(id, spec, priority)] => state
            .queue
            .enqueue_with_id(*id, spec, *priority, options)
            .await
            .map(|_| ()),
        _ => state.queue.enqueue_batch(&jobs, options).await,
    };
    if let Err(e) = queued {
        super::auth::return_share(state, caller, offset, &ids).await;
        return Err(e.into());
    }
    for (id, spec, _) in &jobs {
        tracing::info!(job = %id, language = %spec.language, "job accepted");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fair_priority_pushes_a_callers_jobs_back_by_its_share_within_bullmqs_range() {
        // No share taken (fairness off): the priority asked for.
        assert_eq!(fair_priority(7, None, 3), 7);
        // Behind the caller's unfinished jobs, each job of a batch after
        // the one before it.
        assert_eq!(fair_priority(0, Some(10), 0), 10);
        assert_eq!(fair_priority(0, Some(10), 2), 12);
        assert_eq!(fair_priority(5, Some(10), 1), 16);
        assert_eq!(fair_priority(u32::MAX, Some(u32::MAX), 1), 2_097_151);
    }

    #[test]
    fn a_cached_depth_answers_only_while_fresh_and_far_from_the_cap() {
        let depth = QueueDepth::default();
        // Never read: Redis must be asked.
        assert_eq!(depth.recent(1, 1_000), None);
        depth.store(100);
        assert_eq!(depth.recent(1, 1_000), Some(100));
        // Within a tenth of the cap: asked again, whatever its age.
        assert_eq!(depth.recent(850, 1_000), None);
        depth.added(50);
        assert_eq!(depth.recent(1, 1_000), Some(150));
        // Stale: asked again.
        std::thread::sleep(std::time::Duration::from_millis(
            QueueDepth::MAX_AGE_MS + 20,
        ));
        assert_eq!(depth.recent(1, 1_000), None);
    }

    #[test]
    fn redis_rooms_answer_only_while_fresh() {
        let room = RedisRoom::new(Some(1), 2);
        assert_eq!(room.recent(), None);
        room.store(true);
        assert_eq!(room.recent(), Some(true));
        room.store(false);
        assert_eq!(room.recent(), Some(false));
    }
}
