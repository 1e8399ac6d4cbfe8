//! Redis's memory, held to a budget whatever Redis it is (the embedded one
//! with its `maxmemory`, or an external one with none): the live streams of
//! ended jobs, then finished jobs, are removed oldest first once Redis holds
//! [`TRIM_AT`] of the budget
//! ([`Retention`], in every process that runs jobs), and submissions are
//! refused with 507 once it holds all of it (`http::admission`). Retention
//! by count and age (BullMQ's `removeOnComplete`) stays as well: this one
//! bounds bytes, which counts cannot (one job may keep megabytes).

use std::time::Duration;

use super::{JobQueue, QueueError, with_timeout};

/// Share of the budget at which retention starts removing finished jobs.
pub const TRIM_AT: f64 = 0.6;
/// Share it removes them down to.
const TRIM_TO: f64 = 0.5;
/// Most finished jobs removed per step (then Redis's use is read again);
/// steps start at one job and double, so large results are removed a few
/// at a time (never more than twice what had to go) and small ones by
/// hundreds.
const TRIM_STEP: u32 = 200;
/// How often retention looks at Redis's memory.
const EVERY: Duration = Duration::from_millis(500);

/// Entries kept in BullMQ's event stream (`opts.maxLenEvents`; BullMQ's
/// own default is 10,000). BullMQ's scripts write each completed job's
/// result into its `completed` event, a copy of every result; this
/// service reads the stream only as it comes (to wake `?wait=true`
/// requests), so a short window is all it needs, and retention empties it
/// first under memory pressure.
pub const EVENTS_KEPT: u64 = 256;

/// What Redis says of its memory (`INFO memory`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RedisMemory {
    /// `used_memory`: bytes its allocator holds for data.
    pub used: u64,
    /// `maxmemory`; 0 when it has none.
    pub max: u64,
}

impl RedisMemory {
    /// The figures of one server's `INFO memory`.
    fn of_info(info: &str) -> RedisMemory {
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        RedisMemory {
            used: field("used_memory:").unwrap_or(0),
            max: field("maxmemory:").unwrap_or(0),
        }
    }

    /// The fullest of some servers' figures (none: nothing used).
    fn fullest(servers: impl Iterator<Item = RedisMemory>) -> RedisMemory {
        servers
            .max_by(|a, b| a.fullness().total_cmp(&b.fullness()))
            .unwrap_or(RedisMemory { used: 0, max: 0 })
    }

    /// How full it is: its share of its `maxmemory`, or (with none) its use.
    fn fullness(&self) -> f64 {
        if self.max > 0 {
            self.used as f64 / self.max as f64
        } else {
            self.used as f64 / u64::MAX as f64
        }
    }

    /// The budget the service holds Redis to: `configured` (bytes), else
    /// nine tenths of Redis's own `maxmemory`, else `fallback`.
    pub fn budget(&self, configured: Option<u64>, fallback: u64) -> u64 {
        configured.unwrap_or(if self.max > 0 {
            self.max / 10 * 9
        } else {
            fallback
        })
    }
}

impl JobQueue {
    /// Redis's memory use and limit. A Redis Cluster answers `INFO` with
    /// every primary's: the fullest of them (against its own limit) is the
    /// one that refuses writes first.
    pub async fn redis_memory(&self) -> Result<RedisMemory, QueueError> {
        let info: redis::Value =
            with_timeout(self.connection().cmd(redis::cmd("INFO").arg("memory"))).await?;
        let texts: Vec<String> = match info {
            redis::Value::Map(nodes) => nodes
                .into_iter()
                .filter_map(|(_, text)| redis::from_redis_value(text).ok())
                .collect(),
            one => vec![redis::from_redis_value(one).map_err(|e| {
                QueueError::Unavailable(format!("INFO memory answered oddly: {e}"))
            })?],
        };
        Ok(RedisMemory::fullest(
            texts.iter().map(|text| RedisMemory::of_info(text)),
        ))
    }

    /// Bounds BullMQ's event stream to its last `entries` (read by its
    /// scripts from the queue's meta hash at each event).
    pub async fn keep_events(&self, entries: u64) -> Result<(), QueueError> {
        let meta = format!("{}:{}:meta", self.settings.prefix, self.settings.queue_name);
        let mut cmd = redis::cmd("HSET");
        cmd.arg(meta).arg("opts.maxLenEvents").arg(entries);
        with_timeout(self.connection().cmd::<i64>(&mut cmd))
            .await
            .map(|_| ())
    }

    /// Says a job ended (its result stored or about to be): retention
    /// looks at Redis's memory at once.
    pub fn job_ended(&self) {
        self.ended.notify_one();
    }

    /// Removes up to `limit` of the finished jobs that finished first,
    /// completed ones before failed ones; how many.
    pub async fn remove_oldest_finished(&self, limit: u32) -> Result<usize, QueueError> {
        let mut removed = 0;
        for state in ["completed", "failed"] {
            let left = limit.saturating_sub(removed as u32);
            if left == 0 {
                break;
            }
            removed += with_timeout(self.queue.clean(0, left, state)).await?.len();
        }
        Ok(removed)
    }
}

/// Retention by bytes: while Redis holds [`TRIM_AT`] of the budget or more,
/// the oldest finished jobs are removed, step by step, until it holds
/// [`TRIM_TO`] or none is left; looked at every [`EVERY`] and at each job's
/// end ([`JobQueue::job_ended`]), so how fast jobs end does not matter.
/// Every process that runs jobs runs one (they agree: removing a job twice
/// removes it once).
pub struct Retention {
    task: tokio::task::JoinHandle<()>,
}

impl Retention {
    /// Starts looking every [`EVERY`]; `budget` as [`RedisMemory::budget`]
    /// takes its arguments.
    pub fn start(queue: JobQueue, configured: Option<u64>, fallback: u64) -> Retention {
        let task = tokio::spawn(async move {
            if let Err(e) = queue.keep_events(EVENTS_KEPT).await {
                tracing::warn!(error = %e, "cannot bound BullMQ's event stream");
            }
            loop {
                // Jobs ending in a burst are looked at once.
                tokio::select! {
                    () = tokio::time::sleep(EVERY) => {}
                    () = queue.ended.notified() => {}
                }
                if let Err(e) = trim(&queue, configured, fallback).await {
                    tracing::debug!(error = %e, "retention by bytes: Redis did not answer");
                }
            }
        });
        Retention { task }
    }
}

impl Drop for Retention {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn trim(queue: &JobQueue, configured: Option<u64>, fallback: u64) -> Result<(), QueueError> {
    let memory = queue.redis_memory().await?;
    let budget = memory.budget(configured, fallback);
    if (memory.used as f64) < budget as f64 * TRIM_AT {
        return Ok(());
    }
    let mut total = 0;
    let mut step = 1;
    loop {
        // BullMQ's event stream (its completed events copy results) and
        // the live streams of ended jobs first (views: the results are
        // stored), then the finished jobs themselves, oldest first.
        with_timeout(queue.queue.trim_events(0)).await?;
        let mut removed = queue.remove_ended_live_streams(TRIM_STEP as usize).await?;
        if removed == 0 {
            removed = queue.remove_oldest_finished(step).await?;
            step = (step * 2).min(TRIM_STEP);
        }
        total += removed;
        let now = queue.redis_memory().await?;
        if removed == 0 || (now.used as f64) < budget as f64 * TRIM_TO {
            tracing::info!(
                removed = total,
                used_mb = now.used >> 20,
                budget_mb = budget >> 20,
                "retention by bytes: removed the oldest finished jobs"
            );
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fullest_server_of_a_cluster_is_the_one_that_counts() {
        let info = |used: u64, max: u64| {
            RedisMemory::of_info(&format!(
                "# Memory\r\nused_memory:{used}\r\nused_memory_human:x\r\nmaxmemory:{max}\r\n"
            ))
        };
        assert_eq!(info(2100, 0), RedisMemory { used: 2100, max: 0 });
        let nodes = [info(900, 1000), info(5000, 100_000), info(100, 0)];
        assert_eq!(
            RedisMemory::fullest(nodes.into_iter()),
            RedisMemory {
                used: 900,
                max: 1000
            }
        );
        assert!(info(10, 0).fullness() < info(20, 0).fullness());
    }

    #[test]
    fn the_budget_is_the_setting_else_most_of_maxmemory_else_the_fallback() {
        let with_max = RedisMemory { used: 1, max: 1000 };
        let without = RedisMemory { used: 1, max: 0 };
        assert_eq!(with_max.budget(Some(500), 7), 500);
        assert_eq!(with_max.budget(None, 7), 900);
        assert_eq!(without.budget(None, 7), 7);
    }
}
