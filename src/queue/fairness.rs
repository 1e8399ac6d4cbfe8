//! Each caller's share of the queue: the jobs it has waiting or running,
//! in a sorted set per caller (`…:cr:share:<bucket>`: job id → submission
//! time). The API adds a job's id when it admits it (atomically with the
//! check against the caller's cap) and the worker removes it when the job
//! ends; ids whose job ended without being removed (its worker died at that
//! moment, a client cancelled it while it waited, retention removed it) are
//! pruned, in the same script, when the caller meets its cap.

use super::{JobQueue, QueueError};

impl JobQueue {
    fn share_key(&self, bucket: &str) -> String {
        self.settings.own_key(&format!("share:{bucket}"))
    }

    /// Records `ids` as `bucket`'s unfinished jobs if it then has at most
    /// `cap`: `Some(unfinished before)`, or `None` (nothing recorded) when
    /// they would take it past its cap.
    pub async fn admit_share(
        &self,
        bucket: &str,
        ids: &[uuid::Uuid],
        cap: u64,
    ) -> Result<Option<u64>, QueueError> {
        let mut invocation = ADMIT_SHARE.prepare_invoke();
        invocation
            .key(self.share_key(bucket))
            .arg(cap)
            .arg(crate::job::now_ms())
            .arg(self.queue.keys().job_key(""));
        for id in ids {
            invocation.arg(id.to_string());
        }
        let before: i64 = self.invoke(invocation).await?;
        Ok(u64::try_from(before).ok())
    }

    /// Forgets `ids` as `bucket`'s unfinished jobs (they ended, or were
    /// never queued), in one round trip.
    pub async fn release_share(&self, bucket: &str, ids: &[String]) -> Result<(), QueueError> {
        super::with_timeout(
            self.connection()
                .cmd(redis::cmd("ZREM").arg(self.share_key(bucket)).arg(ids)),
        )
        .await
        .map(|_: i64| ())
    }
}

/// See [`JobQueue::admit_share`]: the count and the additions in one step,
/// so two submissions at once cannot both pass a cap that fits only one.
static ADMIT_SHARE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"
local cap = tonumber(ARGV[1])
local adding = #ARGV - 3
local unfinished = redis.call("ZCARD", KEYS[1])
if unfinished + adding > cap then
  -- Drop the ids of jobs that ended (finishedOn set) or are gone (no
  -- hash) without being given back, then count again. Ids admitted in the
  -- last ten seconds stay: their job may not be added yet.
  local settled = tonumber(ARGV[2]) - 10000
  for _, id in ipairs(redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", settled)) do
    local job = redis.call("HMGET", ARGV[3] .. id, "finishedOn", "timestamp")
    if job[1] or not job[2] then redis.call("ZREM", KEYS[1], id) end
  end
  unfinished = redis.call("ZCARD", KEYS[1])
  if unfinished + adding > cap then return -1 end
end
for i = 4, #ARGV do
  redis.call("ZADD", KEYS[1], ARGV[2], ARGV[i])
end
return unfinished
"#,
    )
});
