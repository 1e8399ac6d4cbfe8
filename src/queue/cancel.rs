//! Cancellation, idempotency keys and the versions workers report.
//!
//! Cancelling a job first records the intent (`…:cr:cancel:<id>`, checked by
//! a worker when it claims the job), then:
//! - a waiting job is removed from the queue, leaving a record
//!   (`…:cr:cancelled:<id>`) so that it still reads as `cancelled`;
//! - a running job's id is published on `…:cr:cancel`; the worker running
//!   it kills its container and completes it with the `cancelled` verdict.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{JobQueue, PublicState, QueueError, QueueSettings, StoredJob, with_timeout};
use crate::backoff::Backoff;
use crate::job::{JobSpec, now_ms};

/// How long a cancellation request waits for a worker to claim the job.
const CANCEL_INTENT_TTL_SECS: u64 = 3_600;
/// How long an idempotency key names its job.
pub const IDEMPOTENCY_TTL_SECS: u64 = 86_400;
/// How long an idempotency key's claim lasts before its job is queued: a
/// claimant that died frees the key after this.
pub const IDEMPOTENCY_PENDING_TTL_SECS: u64 = 30;

/// What holds an idempotency key (see [`JobQueue::claim_idempotency_key`]).
#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyClaim {
    /// It was free and is this request's now: queue the job, then confirm
    /// (or release) the key.
    Claimed,
    /// It names this job, queued for an identical request.
    Existing(Uuid),
    /// An identical request is queuing this job right now.
    Pending(Uuid),
    /// It was used for a different request.
    Conflict,
}

/// Deletes an idempotency key only while it holds the caller's own claim
/// (a claim that expired may have been taken by another request since).
static RELEASE_CLAIM: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0
"#,
    )
});

/// What a cancellation did.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// The job was waiting: it was removed and will never run (with its
    /// data, for what its end owes: see `crate::ending::cancel`).
    Removed(Option<Box<JobSpec>>),
    /// The job is running: its worker was told to stop it.
    Signalled,
    /// The job had already ended in this state.
    Finished(PublicState),
    NotFound,
}

#[derive(Serialize, Deserialize)]
struct CancelledRecord {
    spec: Option<JobSpec>,
    cancelled_at_ms: u64,
}

impl QueueSettings {
    /// The pub/sub channel of cancellations of running jobs.
    pub fn cancel_channel(&self) -> String {
        self.own_key("cancel")
    }
}

impl JobQueue {
    fn cancel_key(&self, id: &str) -> String {
        self.settings.own_key(&format!("cancel:{id}"))
    }

    fn cancelled_key(&self, id: &str) -> String {
        self.settings.own_key(&format!("cancelled:{id}"))
    }

    /// Cancels a job: a waiting one never runs, a running one is stopped.
    pub async fn cancel(&self, id: &Uuid) -> Result<CancelOutcome, QueueError> {
        let id = id.to_string();
        let conn = self.connection();
        let _: () = with_timeout(
            conn.cmd(
                redis::cmd("SET")
                    .arg(self.cancel_key(&id))
                    .arg(1)
                    .arg("EX")
                    .arg(CANCEL_INTENT_TTL_SECS),
            ),
        )
        .await?;
        let Some(job) = self.get_raw(&id).await? else {
            let _: () = with_timeout(conn.cmd(redis::cmd("DEL").arg(self.cancel_key(&id)))).await?;
            return Ok(match self.cancelled_record(&id).await? {
                Some(_) => CancelOutcome::Finished(PublicState::Cancelled),
                None => CancelOutcome::NotFound,
            });
        };
        match job.state {
            PublicState::Completed | PublicState::Failed | PublicState::Cancelled => {
                let _: () =
                    with_timeout(conn.cmd(redis::cmd("DEL").arg(self.cancel_key(&id)))).await?;
                Ok(CancelOutcome::Finished(job.state))
            }
            PublicState::Waiting => {
                let spec = job.spec;
                // The record first, so the job never reads as missing.
                let record = serde_json::to_string(&CancelledRecord {
                    spec: spec.clone(),
                    cancelled_at_ms: now_ms(),
                })
                .map_err(bullmq::Error::from)?;
                let _: () = with_timeout(
                    conn.cmd(
                        redis::cmd("SET")
                            .arg(self.cancelled_key(&id))
                            .arg(record)
                            .arg("EX")
                            .arg(self.settings.cancelled_retention_secs.max(1)),
                    ),
                )
                .await?;
                if with_timeout(self.queue.remove(&id)).await? {
                    // What its end owes is paid by the caller (a job with
                    // no data owes nothing but its record).
                    if spec.is_none() {
                        self.record_cancelled(&id).await?;
                    }
                    Ok(CancelOutcome::Removed(spec.map(Box::new)))
                } else {
                    // Claimed meanwhile (locked): stop it where it runs.
                    let _: () =
                        with_timeout(conn.cmd(redis::cmd("DEL").arg(self.cancelled_key(&id))))
                            .await?;
                    self.signal_cancel(&id).await?;
                    Ok(CancelOutcome::Signalled)
                }
            }
            PublicState::Active => {
                self.signal_cancel(&id).await?;
                Ok(CancelOutcome::Signalled)
            }
        }
    }

    async fn signal_cancel(&self, id: &str) -> Result<(), QueueError> {
        let _: i64 = with_timeout(
            self.connection().cmd(
                redis::cmd("PUBLISH")
                    .arg(self.settings.cancel_channel())
                    .arg(id),
            ),
        )
        .await?;
        Ok(())
    }

    /// True when a client asked to cancel the job (checked at claim time).
    pub async fn is_cancel_requested(&self, id: &str) -> Result<bool, QueueError> {
        with_timeout(
            self.connection()
                .cmd(redis::cmd("EXISTS").arg(self.cancel_key(id))),
        )
        .await
    }

    /// A job cancelled before it ran, from its record.
    pub(crate) async fn cancelled_record(&self, id: &str) -> Result<Option<StoredJob>, QueueError> {
        let record: Option<String> = with_timeout(
            self.connection()
                .cmd(redis::cmd("GET").arg(self.cancelled_key(id))),
        )
        .await?;
        Ok(record
            .and_then(|r| serde_json::from_str::<CancelledRecord>(&r).ok())
            .map(|record| StoredJob {
                id: id.to_string(),
                state: PublicState::Cancelled,
                result: None,
                failed_reason: None,
                attempts_made: 0,
                spec: record.spec,
                started_at_ms: None,
                finished_at_ms: Some(record.cancelled_at_ms),
                processed_by: None,
            }))
    }

    /// Claims an idempotency key for job `id` of a request whose content
    /// hashes to `fingerprint`, or says what holds it. The key's value is
    /// `pending <id> <fingerprint>` while its claimant enqueues the job
    /// (expiring after [`IDEMPOTENCY_PENDING_TTL_SECS`], should that
    /// process die), then `done <id> <fingerprint>` for a day
    /// ([`JobQueue::confirm_idempotency_key`]). A racing request never gets
    /// an id before its job exists: it waits on `pending`, and may check
    /// whether the job is there already.
    pub async fn claim_idempotency_key(
        &self,
        key: &str,
        id: &Uuid,
        fingerprint: &str,
    ) -> Result<IdempotencyClaim, QueueError> {
        let redis_key = self.idempotency_key(key);
        loop {
            let set: Option<String> = with_timeout(
                self.connection().cmd(
                    redis::cmd("SET")
                        .arg(&redis_key)
                        .arg(format!("pending {id} {fingerprint}"))
                        .arg("NX")
                        .arg("EX")
                        .arg(IDEMPOTENCY_PENDING_TTL_SECS),
                ),
            )
            .await?;
            if set.is_some() {
                return Ok(IdempotencyClaim::Claimed);
            }
            let existing: Option<String> =
                with_timeout(self.connection().cmd(redis::cmd("GET").arg(&redis_key))).await?;
            // Gone between the two calls (its claimant failed): claim again.
            let Some(existing) = existing else { continue };
            let mut parts = existing.split(' ');
            let (Some(phase), Some(Ok(held)), Some(held_fingerprint)) = (
                parts.next(),
                parts.next().map(Uuid::parse_str),
                parts.next(),
            ) else {
                // A key written by an older version (the id alone).
                return Ok(match Uuid::parse_str(&existing) {
                    Ok(held) => IdempotencyClaim::Existing(held),
                    Err(_) => IdempotencyClaim::Conflict,
                });
            };
            return Ok(if held_fingerprint != fingerprint {
                IdempotencyClaim::Conflict
            } else if phase == "done" {
                IdempotencyClaim::Existing(held)
            } else {
                IdempotencyClaim::Pending(held)
            });
        }
    }

    /// The claimant's job was queued: the key names it for a day.
    pub async fn confirm_idempotency_key(
        &self,
        key: &str,
        id: &Uuid,
        fingerprint: &str,
    ) -> Result<(), QueueError> {
        let redis_key = self.idempotency_key(key);
        with_timeout(
            self.connection().cmd(
                redis::cmd("SET")
                    .arg(&redis_key)
                    .arg(format!("done {id} {fingerprint}"))
                    .arg("EX")
                    .arg(IDEMPOTENCY_TTL_SECS),
            ),
        )
        .await
        .map(|_: Option<String>| ())
    }

    /// The claimant's job could not be queued: the key is free again (if
    /// it still holds this claim), so a racing request may claim it.
    pub async fn release_idempotency_key(
        &self,
        key: &str,
        id: &Uuid,
        fingerprint: &str,
    ) -> Result<(), QueueError> {
        let mut invocation = RELEASE_CLAIM.prepare_invoke();
        invocation
            .key(self.idempotency_key(key))
            .arg(format!("pending {id} {fingerprint}"));
        self.invoke::<i64>(invocation).await.map(|_| ())
    }

    /// Where an idempotency key's claim is kept (the key hashed: a
    /// client's key may be any text).
    fn idempotency_key(&self, key: &str) -> String {
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(key.as_bytes()));
        self.settings.own_key(&format!("idempotency:{digest}"))
    }

    /// Records the versions a worker's images provide (language id → version).
    pub async fn publish_versions(
        &self,
        versions: &HashMap<String, String>,
    ) -> Result<(), QueueError> {
        if versions.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("HSET");
        cmd.arg(self.settings.own_key("versions"));
        for (language, version) in versions {
            cmd.arg(format!("{language}\u{1f}{version}")).arg(now_ms());
        }
        let _: i64 = with_timeout(self.connection().cmd(&mut cmd)).await?;
        Ok(())
    }

    /// Versions workers reported in the last week, per language id.
    pub async fn language_versions(&self) -> Result<HashMap<String, Vec<String>>, QueueError> {
        let all: HashMap<String, u64> = with_timeout(
            self.connection()
                .cmd(redis::cmd("HGETALL").arg(self.settings.own_key("versions"))),
        )
        .await?;
        let week_ago = now_ms().saturating_sub(7 * 86_400_000);
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for (entry, seen) in all {
            if seen < week_ago {
                continue;
            }
            if let Some((language, version)) = entry.split_once('\u{1f}') {
                out.entry(language.to_string())
                    .or_default()
                    .push(version.to_string());
            }
        }
        for versions in out.values_mut() {
            versions.sort();
        }
        Ok(out)
    }
}

/// Calls `on_cancel` with each job id published on the cancel channel, for
/// as long as it runs (reconnecting with backoff when Redis goes away).
pub async fn watch_cancellations(settings: QueueSettings, on_cancel: impl Fn(String)) {
    let channel = settings.cancel_channel();
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    loop {
        let subscribed = async {
            let client = settings.client()?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match subscribed.await {
            Ok(mut pubsub) => {
                backoff.reset();
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    if let Ok(id) = message.get_payload::<String>() {
                        on_cancel(id);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to cancellations; retrying"),
        }
        backoff.wait().await;
    }
}
