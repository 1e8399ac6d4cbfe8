//! CPUs held by workers, per Docker engine: a worker that pins each of its
//! slots to a CPU of its own first claims that many CPUs of its engine no
//! other live worker holds, so two workers sharing an engine never pin jobs
//! to the same CPU, with no CPU numbers set by hand.
//!
//! Key (in the queue's hash slot): `…:cr:cpus` (hash: `<engine id>/<cpu>` →
//! worker id). A claim by a worker whose heartbeat expired is void; a
//! worker's claims go when it is forgotten (stopping, or found dead).

use super::heartbeat::HEARTBEAT_TTL;
use super::{JobQueue, QueueError};

impl JobQueue {
    fn cpus_key(&self) -> String {
        self.settings.own_key("cpus")
    }

    /// Claims `want` of the engine's CPUs `0..engine_cpus` for `worker_id`,
    /// the lowest no other live worker holds, in one step (two workers
    /// starting at once get different ones). Gives the CPUs, one per slot,
    /// or nothing (and holds nothing) when fewer than `want` are free. Any
    /// earlier claim of this worker on the engine is replaced. A worker
    /// with no heartbeat yet is counted alive from here for
    /// [`HEARTBEAT_TTL`], which its heartbeats then extend.
    pub async fn claim_cpus(
        &self,
        engine_id: &str,
        worker_id: &str,
        want: u32,
        engine_cpus: u32,
        now_ms: u64,
    ) -> Result<Vec<u32>, QueueError> {
        let mut invocation = CLAIM_CPUS.prepare_invoke();
        invocation
            .key(self.cpus_key())
            .key(self.expiry_key())
            .arg(engine_id)
            .arg(worker_id)
            .arg(now_ms)
            .arg(HEARTBEAT_TTL.as_millis() as u64)
            .arg(want)
            .arg(engine_cpus);
        self.invoke(invocation).await
    }

    /// The CPUs `worker_id` holds on each engine (`(engine id, cpu)`).
    pub async fn held_cpus(&self, worker_id: &str) -> Result<Vec<(String, u32)>, QueueError> {
        let all: std::collections::HashMap<String, String> = super::with_timeout(
            self.connection()
                .cmd(redis::cmd("HGETALL").arg(self.cpus_key())),
        )
        .await?;
        let mut held: Vec<(String, u32)> = all
            .into_iter()
            .filter(|(_, owner)| owner == worker_id)
            .filter_map(|(field, _)| {
                let (engine, cpu) = field.rsplit_once('/')?;
                Some((engine.to_string(), cpu.parse().ok()?))
            })
            .collect();
        held.sort();
        Ok(held)
    }

    /// Gives back every CPU `worker_id` holds.
    pub(super) async fn release_cpus(&self, worker_id: &str) -> Result<(), QueueError> {
        let mut invocation = RELEASE_CPUS.prepare_invoke();
        invocation.key(self.cpus_key()).arg(worker_id);
        self.invoke::<i64>(invocation).await.map(|_| ())
    }
}

/// See [`JobQueue::claim_cpus`]. KEYS: the claims, the workers' expiry set.
/// ARGV: engine, worker, now, heartbeat TTL, how many, the engine's CPUs.
static CLAIM_CPUS: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"
local engine, me = ARGV[1], ARGV[2]
local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local want, cpus = tonumber(ARGV[5]), tonumber(ARGV[6])
local prefix = engine .. "/"
local held = {}
local claims = redis.call("HGETALL", KEYS[1])
for i = 1, #claims, 2 do
  local field, owner = claims[i], claims[i + 1]
  local expiry = tonumber(redis.call("ZSCORE", KEYS[2], owner) or "0")
  if owner == me and string.sub(field, 1, #prefix) == prefix then
    redis.call("HDEL", KEYS[1], field)
  elseif owner ~= me and expiry <= now then
    redis.call("HDEL", KEYS[1], field)
  elseif string.sub(field, 1, #prefix) == prefix then
    held[string.sub(field, #prefix + 1)] = true
  end
end
local got = {}
for cpu = 0, cpus - 1 do
  if #got < want and not held[tostring(cpu)] then table.insert(got, cpu) end
end
if #got < want then return {} end
redis.call("ZADD", KEYS[2], "NX", now + ttl, me)
for _, cpu in ipairs(got) do
  redis.call("HSET", KEYS[1], prefix .. cpu, me)
end
return got
"#,
    )
});

/// See [`JobQueue::release_cpus`]. KEYS: the claims. ARGV: the worker.
static RELEASE_CPUS: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"
local claims = redis.call("HGETALL", KEYS[1])
local released = 0
for i = 1, #claims, 2 do
  if claims[i + 1] == ARGV[1] then
    redis.call("HDEL", KEYS[1], claims[i])
    released = released + 1
  end
end
return released
"#,
    )
});
