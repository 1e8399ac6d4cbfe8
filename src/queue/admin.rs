//! What the dashboard reads and does on the queue: counts, throughput,
//! latency percentiles, job lists with paging and filters, and the actions
//! (retry, retry all failed, remove, clean, pause, resume).
//!
//! Lists read job ids (cheap), then summaries through one Lua script per
//! 500 jobs that returns only the few fields a row shows (never the code),
//! so a queue retaining 10,000 jobs stays quick to browse and filter.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{JobQueue, QueueError, with_timeout};
use crate::job::now_ms;

/// Jobs a summary script call reads at once.
const SUMMARY_CHUNK: usize = 500;
/// Finished jobs the latency percentiles are computed over.
const LATENCY_SAMPLE: i64 = 500;

/// The summary fields of many jobs, without their code or output.
const SUMMARIES: &str = r#"
local out = {}
local function field(text, name)
  if type(text) ~= 'string' then return '' end
  local pattern = '"' .. name .. '"%s*:%s*"([^"]*)"'
  return string.match(string.sub(text, 1, 512), pattern) or string.match(text, pattern) or ''
end
for i, key in ipairs(KEYS) do
  local f = redis.call('HMGET', key, 'data', 'returnvalue', 'timestamp', 'processedOn',
    'finishedOn', 'atm', 'pb', 'failedReason')
  local reason = ''
  if type(f[8]) == 'string' then reason = string.sub(f[8], 1, 300) end
  out[i] = {
    type(f[1]) == 'string' and '1' or '0',
    field(f[1], 'language'), field(f[2], 'verdict'),
    f[3] or '', f[4] or '', f[5] or '', f[6] or '', f[7] or '', reason,
  }
end
return out
"#;

/// One row of a job list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobSummary {
    pub id: String,
    pub state: String,
    pub language: String,
    /// The verdict, once the job completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    pub submitted_at_ms: Option<u64>,
    pub started_at_ms: Option<u64>,
    pub finished_at_ms: Option<u64>,
    pub attempts_made: u32,
    /// The worker that ran it last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// Why it failed (the start of it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_reason: Option<String>,
}

/// Which jobs a list shows.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub language: Option<String>,
    pub verdict: Option<String>,
    /// Submitted at or after (ms since the Unix epoch).
    pub since_ms: Option<u64>,
    /// Submitted at or before.
    pub until_ms: Option<u64>,
}

impl JobFilter {
    fn is_empty(&self) -> bool {
        self.language.is_none()
            && self.verdict.is_none()
            && self.since_ms.is_none()
            && self.until_ms.is_none()
    }

    fn admits(&self, job: &JobSummary) -> bool {
        self.language.as_ref().is_none_or(|l| &job.language == l)
            && self
                .verdict
                .as_ref()
                .is_none_or(|v| job.verdict.as_ref() == Some(v))
            && self
                .since_ms
                .is_none_or(|s| job.submitted_at_ms.is_some_and(|t| t >= s))
            && self
                .until_ms
                .is_none_or(|u| job.submitted_at_ms.is_some_and(|t| t <= u))
    }
}

/// A page of a job list, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobPage {
    pub state: String,
    pub jobs: Vec<JobSummary>,
    /// Jobs matching in all pages.
    pub total: usize,
    pub page: usize,
    pub page_size: usize,
}

/// p50 / p90 / p99 / max of a duration, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl Percentiles {
    fn of(mut values: Vec<u64>) -> Percentiles {
        if values.is_empty() {
            return Percentiles::default();
        }
        values.sort_unstable();
        let at = |q: f64| values[((values.len() as f64 - 1.0) * q).round() as usize];
        Percentiles {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: *values.last().unwrap_or(&0),
        }
    }
}

/// Latency of the latest finished jobs.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Latency {
    /// From submission to the start of its (last) run.
    pub queue_wait_ms: Percentiles,
    /// From the start of its run to its end.
    pub run_ms: Percentiles,
    /// From submission to the end.
    pub end_to_end_ms: Percentiles,
    /// How many jobs these are computed over.
    pub sample: usize,
}

/// The queue at a glance.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Overview {
    /// Jobs per state: waiting, active, completed, failed, delayed, cancelled.
    pub counts: BTreeMap<String, u64>,
    pub paused: bool,
    /// Jobs completed per minute, newest minute first (last 15 minutes;
    /// the first is the minute in progress).
    pub completed_per_minute: Vec<u64>,
    /// Jobs failed per minute, newest first.
    pub failed_per_minute: Vec<u64>,
    pub latency: Latency,
    pub at_ms: u64,
}

/// Jobs per minute over the last `minutes` minutes as of `now_ms`, newest
/// (the minute in progress) first, from BullMQ's metrics. BullMQ writes a
/// minute's count into its list only when a job finishes in a later minute:
/// until then the jobs since `prevTS` are `count - prevCount`, and the list
/// starts at the minute before `prevTS`'s. Minutes with no job finished
/// since are zero.
fn per_minute(metrics: &bullmq::types::Metrics, now_ms: u64, minutes: usize) -> Vec<u64> {
    let now_minute = now_ms / 60_000;
    if metrics.meta.prev_ts == 0 {
        return vec![0; minutes];
    }
    let last_minute = metrics.meta.prev_ts / 60_000;
    let pending = metrics.meta.count.saturating_sub(metrics.meta.prev_count);
    (0..minutes as u64)
        .map(|back| {
            let minute = now_minute.saturating_sub(back);
            match minute.cmp(&last_minute) {
                std::cmp::Ordering::Greater => 0,
                std::cmp::Ordering::Equal => pending,
                std::cmp::Ordering::Less => {
                    let index = (last_minute - minute - 1) as usize;
                    metrics.data.get(index).copied().unwrap_or(0)
                }
            }
        })
        .collect()
}

/// The states the dashboard lists, and BullMQ's sets behind each.
pub const LIST_STATES: &[&str] = &[
    "waiting",
    "active",
    "completed",
    "failed",
    "delayed",
    "cancelled",
];

fn bullmq_types(state: &str) -> &'static [&'static str] {
    match state {
        "waiting" => &["waiting", "prioritized"],
        "active" => &["active"],
        "completed" => &["completed"],
        "failed" => &["failed"],
        "delayed" => &["delayed"],
        _ => &[],
    }
}

impl JobQueue {
    fn cancelled_index(&self) -> String {
        self.settings.own_key("cancelled-index")
    }

    /// Records a cancellation for the dashboard's `cancelled` list.
    pub async fn record_cancelled(&self, id: &str) -> Result<(), QueueError> {
        let _: i64 = with_timeout(
            self.connection().cmd(
                redis::cmd("ZADD")
                    .arg(self.cancelled_index())
                    .arg(now_ms())
                    .arg(id),
            ),
        )
        .await?;
        Ok(())
    }

    /// Ids of cancelled jobs still retained, newest first.
    async fn cancelled_ids(&self) -> Result<Vec<String>, QueueError> {
        let oldest = now_ms().saturating_sub(self.settings.cancelled_retention_secs * 1000);
        let _: i64 = with_timeout(
            self.connection().cmd(
                redis::cmd("ZREMRANGEBYSCORE")
                    .arg(self.cancelled_index())
                    .arg("-inf")
                    .arg(format!("({oldest}")),
            ),
        )
        .await?;
        with_timeout(
            self.connection().cmd(
                redis::cmd("ZREVRANGE")
                    .arg(self.cancelled_index())
                    .arg(0)
                    .arg(-1),
            ),
        )
        .await
    }

    async fn ids_in(&self, state: &str) -> Result<Vec<String>, QueueError> {
        if state == "cancelled" {
            return self.cancelled_ids().await;
        }
        with_timeout(self.queue.get_ranges(bullmq_types(state), 0, -1, false)).await
    }

    /// Summaries of these jobs (missing ones, removed meanwhile, left out).
    pub async fn summaries(
        &self,
        state: &str,
        ids: &[String],
    ) -> Result<Vec<JobSummary>, QueueError> {
        let script = redis::Script::new(SUMMARIES);
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(SUMMARY_CHUNK) {
            let mut invocation = script.prepare_invoke();
            for id in chunk {
                invocation.key(self.queue.keys().job_key(id));
            }
            let rows: Vec<Vec<String>> = self.invoke(invocation).await?;
            for (id, row) in chunk.iter().zip(rows) {
                let text = |i: usize| row.get(i).cloned().unwrap_or_default();
                let number = |i: usize| text(i).parse::<u64>().ok();
                if text(0) != "1" && state != "cancelled" {
                    continue;
                }
                let verdict = Some(text(2)).filter(|v| !v.is_empty());
                out.push(JobSummary {
                    id: id.clone(),
                    state: state.to_string(),
                    language: text(1),
                    verdict: if state == "cancelled" {
                        Some("cancelled".into())
                    } else {
                        verdict
                    },
                    submitted_at_ms: number(3),
                    started_at_ms: number(4),
                    finished_at_ms: number(5),
                    attempts_made: number(6).unwrap_or(0) as u32,
                    worker_id: Some(text(7)).filter(|w| !w.is_empty()),
                    failed_reason: Some(text(8)).filter(|r| !r.is_empty()),
                });
            }
        }
        Ok(out)
    }

    /// One page of the jobs in `state`, newest first, filtered.
    pub async fn list_jobs(
        &self,
        state: &str,
        page: usize,
        page_size: usize,
        filter: &JobFilter,
    ) -> Result<JobPage, QueueError> {
        let ids = self.ids_in(state).await?;
        let start = (page - 1) * page_size;
        let (jobs, total) = if filter.is_empty() {
            let end = (start + page_size).min(ids.len());
            let slice = if start < ids.len() {
                &ids[start..end]
            } else {
                &[][..]
            };
            (self.summaries(state, slice).await?, ids.len())
        } else {
            let mut matching = self.summaries(state, &ids).await?;
            matching.retain(|j| filter.admits(j));
            let total = matching.len();
            (
                matching.into_iter().skip(start).take(page_size).collect(),
                total,
            )
        };
        Ok(JobPage {
            state: state.to_string(),
            jobs,
            total,
            page,
            page_size,
        })
    }

    /// Counts, throughput and latency.
    pub async fn overview(&self) -> Result<Overview, QueueError> {
        let raw = with_timeout(self.queue.get_job_counts_by_types(&[
            "waiting",
            "prioritized",
            "paused",
            "active",
            "completed",
            "failed",
            "delayed",
        ]))
        .await?;
        let get = |k: &str| raw.get(k).copied().unwrap_or(0);
        let cancelled = self.cancelled_ids().await?.len() as u64;
        let counts = BTreeMap::from([
            (
                "waiting".to_string(),
                get("waiting") + get("prioritized") + get("paused"),
            ),
            ("active".to_string(), get("active")),
            ("completed".to_string(), get("completed")),
            ("failed".to_string(), get("failed")),
            ("delayed".to_string(), get("delayed")),
            ("cancelled".to_string(), cancelled),
        ]);
        let paused = with_timeout(self.queue.is_paused()).await?;
        let completed = with_timeout(self.queue.get_metrics("completed", 0, 14)).await?;
        let failed = with_timeout(self.queue.get_metrics("failed", 0, 14)).await?;
        let now = now_ms();
        let recent: Vec<String> =
            with_timeout(
                self.queue
                    .get_ranges(&["completed"], 0, LATENCY_SAMPLE - 1, false),
            )
            .await?;
        let rows = self.summaries("completed", &recent).await?;
        let mut wait = Vec::new();
        let mut run = Vec::new();
        let mut total = Vec::new();
        for job in &rows {
            if let (Some(s), Some(b), Some(f)) =
                (job.submitted_at_ms, job.started_at_ms, job.finished_at_ms)
            {
                wait.push(b.saturating_sub(s));
                run.push(f.saturating_sub(b));
                total.push(f.saturating_sub(s));
            }
        }
        Ok(Overview {
            counts,
            paused,
            completed_per_minute: per_minute(&completed, now, 15),
            failed_per_minute: per_minute(&failed, now, 15),
            latency: Latency {
                sample: total.len(),
                queue_wait_ms: Percentiles::of(wait),
                run_ms: Percentiles::of(run),
                end_to_end_ms: Percentiles::of(total),
            },
            at_ms: now_ms(),
        })
    }

    /// Moves a failed job back to the queue. `false` when it is not failed.
    pub async fn retry_failed_job(&self, id: &str) -> Result<bool, QueueError> {
        if self.job_state(id).await? != bullmq::JobState::Failed {
            return Ok(false);
        }
        let Some(mut job) = with_timeout(self.queue.get_job(id)).await? else {
            return Ok(false);
        };
        with_timeout(job.retry("failed", None)).await?;
        Ok(true)
    }

    /// Moves every failed job back to the queue; how many there were.
    pub async fn retry_all_failed(&self) -> Result<u64, QueueError> {
        let before = with_timeout(self.queue.get_failed_count()).await?;
        for _ in 0..100 {
            if with_timeout(self.queue.get_failed_count()).await? == 0 {
                break;
            }
            with_timeout(self.queue.retry_jobs("failed", 1000, None)).await?;
        }
        Ok(before)
    }

    /// Removes a job that is not running. `false` when it is running (locked).
    pub async fn remove_job(&self, id: &str) -> Result<bool, QueueError> {
        let removed = with_timeout(self.queue.remove(id)).await?;
        if removed {
            let _: i64 = with_timeout(
                self.connection()
                    .cmd(redis::cmd("ZREM").arg(self.cancelled_index()).arg(id)),
            )
            .await?;
            let _: i64 = with_timeout(
                self.connection()
                    .cmd(redis::cmd("DEL").arg(self.settings.own_key(&format!("cancelled:{id}")))),
            )
            .await?;
        }
        Ok(removed)
    }

    /// Removes the `completed` or `failed` jobs finished more than
    /// `older_than_secs` ago; how many.
    pub async fn clean(&self, state: &str, older_than_secs: u64) -> Result<usize, QueueError> {
        let removed = with_timeout(self.queue.clean(older_than_secs * 1000, 0, state)).await?;
        Ok(removed.len())
    }

    pub async fn pause(&self) -> Result<(), QueueError> {
        with_timeout(self.queue.pause()).await
    }

    pub async fn resume(&self) -> Result<(), QueueError> {
        with_timeout(self.queue.resume()).await
    }

    /// Redis's version, from INFO.
    pub async fn redis_version(&self) -> Result<String, QueueError> {
        let info: String =
            with_timeout(self.connection().cmd(redis::cmd("INFO").arg("server"))).await?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("unknown")
            .trim()
            .to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::{Percentiles, per_minute};

    fn metrics(
        count: u64,
        prev_ts: u64,
        prev_count: u64,
        data: Vec<u64>,
    ) -> bullmq::types::Metrics {
        let mut m = bullmq::types::Metrics::default();
        m.meta.count = count;
        m.meta.prev_ts = prev_ts;
        m.meta.prev_count = prev_count;
        m.data = data;
        m
    }

    #[test]
    fn the_minute_in_progress_is_counted() {
        let minute = 60_000;
        let t0 = 1_000 * minute + 5_000;
        // Three jobs in the first minute ever: BullMQ's list is still empty.
        let first = metrics(3, t0, 0, vec![]);
        assert_eq!(per_minute(&first, t0 + 10_000, 3), vec![3, 0, 0]);
        // A minute later, nothing since: the three are one minute back.
        assert_eq!(per_minute(&first, t0 + minute, 3), vec![0, 3, 0]);
        // Two in the next minute (the first job of it pushed the 3).
        let second = metrics(5, t0 + minute, 3, vec![3]);
        assert_eq!(per_minute(&second, t0 + minute + 1_000, 3), vec![2, 3, 0]);
        // Idle for two minutes: shifted, zeros in front.
        assert_eq!(per_minute(&second, t0 + 3 * minute, 4), vec![0, 0, 2, 3]);
        assert_eq!(per_minute(&metrics(0, 0, 0, vec![]), t0, 2), vec![0, 0]);
    }

    #[test]
    fn percentiles_of_a_sample() {
        let p = Percentiles::of((1..=100).collect());
        assert_eq!((p.p50, p.p90, p.p99, p.max), (51, 90, 99, 100));
        assert_eq!(Percentiles::of(vec![]).max, 0);
    }
}
