//! Who may use the job API, and how much.
//!
//! - API keys are configured as `name:sha256:<hex>` (the SHA-256 of the key;
//!   the key itself is never stored), in `CODE_RUNNER_API_KEYS` or one per
//!   line in `CODE_RUNNER_API_KEYS_FILE`, and sent as
//!   `Authorization: Bearer <key>` (or `X-Auth-Token: <key>`, as Judge0's
//!   clients send theirs). `code-runner new-key <name>` makes one.
//! - Keys are required whenever some are configured, and the service refuses
//!   to listen on anything but loopback without keys (unless
//!   `CODE_RUNNER_AUTH=off` says so explicitly).
//! - Each job belongs to the key that submitted it: any other key gets 404.
//! - Two budgets per caller (its key; without keys, its client address, an
//!   IPv6 client by its /64), each answered past its end with 429 and
//!   `Retry-After`:
//!   - **submissions**: jobs a minute (a batch counts as its jobs), counted
//!     in Redis so that every API process shares it: each job costs a
//!     container, which is what a limit protects;
//!   - **requests**: every call of the job API, reads and polls included,
//!     counted in this process (a read costs this process and one Redis
//!     read, nothing more), generous enough that a client polling its jobs
//!     never meets it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;

/// The caller of a request, once authenticated.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The key's name; `None` when keys are off.
    pub key: Option<String>,
    /// The key's own share of the queue, when its entry sets one.
    pub share: KeyShare,
    /// Whose budgets the request spends: `key:<name>`, or without keys
    /// `addr:<client address>` (an IPv6 client by its /64, which one
    /// machine can fill with addresses).
    pub bucket: String,
}

impl Caller {
    /// Whether this caller may see a job submitted by `owner`.
    pub fn may_see(&self, owner: Option<&str>) -> bool {
        match &self.key {
            None => true,
            Some(key) => owner == Some(key.as_str()),
        }
    }
}

/// What an operator may set per key, after its hash in its entry
/// (`name:sha256:<hex>:max_jobs=50:weight=4`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct KeyShare {
    /// Jobs it may have waiting or running at once, instead of
    /// `CODE_RUNNER_MAX_JOBS_PER_CALLER`.
    pub max_jobs: Option<u64>,
    /// How much of the queue's order it gets: each of its unfinished jobs
    /// pushes its next one back by `1 / weight` (1 by default).
    pub weight: Option<u32>,
}

/// Configured keys, by the SHA-256 of the key.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    by_hash: HashMap<[u8; 32], (String, KeyShare)>,
}

impl ApiKeys {
    /// Parses `name:sha256:<hex>[:max_jobs=N][:weight=W]` entries (comma- or
    /// newline-separated; `#` starts a comment).
    pub fn parse(text: &str) -> Result<ApiKeys, String> {
        let mut keys = ApiKeys::default();
        for entry in text
            .split([',', '\n'])
            .map(|e| e.split('#').next().unwrap_or("").trim())
            .filter(|e| !e.is_empty())
        {
            let mut parts = entry.split(':');
            let (name, algorithm, hex) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            let mut share = KeyShare::default();
            for option in parts {
                let bad =
                    || format!("API key {name}: {option:?} is not max_jobs=<n> or weight=<n>");
                match option.split_once('=') {
                    Some(("max_jobs", n)) => share.max_jobs = Some(n.parse().map_err(|_| bad())?),
                    Some(("weight", n)) => {
                        share.weight = Some(n.parse().ok().filter(|w| *w > 0).ok_or_else(bad)?)
                    }
                    _ => return Err(bad()),
                }
            }
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !valid_name || algorithm != "sha256" || hex.len() != 64 {
                return Err(format!(
                    "an API key entry must be name:sha256:<64 hex digits> \
                     (`code-runner new-key <name>` makes one), not {:?}",
                    entry.chars().take(24).collect::<String>()
                ));
            }
            let mut hash = [0u8; 32];
            hex::decode_to_slice(hex, &mut hash)
                .map_err(|_| format!("API key {name}: the hash is not hex"))?;
            if keys
                .by_hash
                .insert(hash, (name.to_string(), share))
                .is_some()
            {
                return Err(format!("API key {name}: the same key is listed twice"));
            }
        }
        Ok(keys)
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The name of the key, if `key` is one.
    pub fn identify(&self, key: &str) -> Option<&str> {
        self.lookup(key).map(|(name, _)| name)
    }

    /// The name and share of the key, if `key` is one.
    pub fn lookup(&self, key: &str) -> Option<(&str, KeyShare)> {
        let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        self.by_hash
            .get(&hash)
            .map(|(name, share)| (name.as_str(), *share))
    }
}

/// A new random key and the entry that configures it.
pub fn new_key(name: &str) -> (String, String) {
    let key = format!(
        "crk_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    (key.clone(), entry_for(name, &key))
}

/// The configuration entry of a key.
pub fn entry_for(name: &str, key: &str) -> String {
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    format!("{name}:sha256:{hash}")
}

/// How the job API is guarded.
#[derive(Clone)]
pub struct AccessPolicy {
    /// `None`: no keys; callers are told apart by address.
    pub keys: Option<Arc<ApiKeys>>,
    /// Jobs a minute per caller across all API processes (0: unlimited).
    pub submit_per_minute: u64,
    /// Requests per caller in this process; `None`: unlimited.
    pub requests: Option<Arc<RequestLimiter>>,
    /// Jobs a caller may have waiting or running at once (0: no cap, and
    /// no fair ordering between callers).
    pub max_jobs_per_caller: u64,
}

impl AccessPolicy {
    /// No keys and no limits (processes without the job API).
    pub fn open() -> AccessPolicy {
        AccessPolicy {
            keys: None,
            submit_per_minute: 0,
            requests: None,
            max_jobs_per_caller: 0,
        }
    }
}

/// The request budget: a GCRA limiter per caller (the `governor` crate),
/// refilled at the configured rate with bursts of a sixth of a minute's.
pub struct RequestLimiter {
    limiter: governor::DefaultKeyedRateLimiter<String>,
    per_minute: u64,
    /// Checks since the idle callers' state was last dropped.
    checks: std::sync::atomic::AtomicU64,
}

impl RequestLimiter {
    /// How often (in checks) the state of callers idle for a whole refill
    /// is dropped, so that one-off addresses do not accumulate.
    const PRUNE_EVERY: u64 = 4096;

    /// `None` for 0 (no limit).
    pub fn new(per_minute: u64) -> Option<RequestLimiter> {
        let per_minute_u32 = u32::try_from(per_minute).unwrap_or(u32::MAX);
        let burst = std::num::NonZeroU32::new((per_minute_u32 / 6).max(1))?;
        std::num::NonZeroU32::new(per_minute_u32)?;
        let period = std::time::Duration::from_secs(60) / per_minute_u32;
        let quota = governor::Quota::with_period(period.max(std::time::Duration::from_nanos(1)))?
            .allow_burst(burst);
        Some(RequestLimiter {
            limiter: governor::RateLimiter::keyed(quota),
            per_minute,
            checks: Default::default(),
        })
    }

    /// Takes one request of `bucket`: `Err(seconds)` to wait when over.
    pub fn check(&self, bucket: &str) -> Result<(), u64> {
        use governor::clock::Clock;
        if self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .is_multiple_of(Self::PRUNE_EVERY)
        {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&bucket.to_string())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
                wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
            })
    }
}

/// The budget bucket of a caller without a key: its address; an IPv6
/// client by its /64 (one machine's share), an IPv4-mapped one as IPv4.
fn address_bucket(address: Option<std::net::IpAddr>) -> String {
    use std::net::IpAddr;
    match address.map(|a| a.to_canonical()) {
        Some(IpAddr::V4(v4)) => format!("addr:{v4}"),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("addr:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        None => "addr:unknown".to_string(),
    }
}

fn too_many(message: String, retry_after: u64) -> ApiError {
    let mut error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, message);
    error.retry_after = Some(retry_after.max(1));
    error
}

/// Checks the bearer key and the request budget; puts the [`Caller`] in
/// the request for the handlers.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let family = super::error::Family::of(request.uri().path());
    let caller = match &state.intake.access.keys {
        None => {
            let address = super::serve::client_address(&request).map(|addr| addr.ip());
            Caller {
                key: None,
                share: KeyShare::default(),
                bucket: address_bucket(address),
            }
        }
        Some(keys) => {
            // Judge0's clients send their token as `X-Auth-Token`.
            let presented = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .or_else(|| {
                    request
                        .headers()
                        .get("x-auth-token")
                        .and_then(|v| v.to_str().ok())
                })
                .map(str::trim);
            let Some((name, share)) = presented.and_then(|key| keys.lookup(key)) else {
                let mut response = family.render(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "an API key is needed: send Authorization: Bearer <key>",
                ));
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            };
            Caller {
                key: Some(name.to_string()),
                share,
                bucket: format!("key:{name}"),
            }
        }
    };
    if let Some(key) = &caller.key {
        tracing::Span::current().record("key", key.as_str());
    }
    if let Some(limiter) = &state.intake.access.requests
        && let Err(retry_after) = limiter.check(&caller.bucket)
    {
        return family.render(too_many(
            format!(
                "over {} requests a minute; retry in {retry_after} s",
                limiter.per_minute
            ),
            retry_after,
        ));
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The caller's share of the queue for `ids` (about to be enqueued): 429
/// when they would take it past its cap of unfinished jobs, else how far
/// back each of them goes in the queue's order (its priority offset).
///
/// Fairness: a job's BullMQ priority is what it asked for plus its caller's
/// unfinished jobs at submission (divided by the key's weight), so a
/// caller who floods the queue pushes only its own later jobs back, and
/// another caller's first job runs next.
pub async fn admit_share(
    state: &AppState,
    caller: &Caller,
    ids: &[Uuid],
) -> Result<Option<u32>, ApiError> {
    let cap = caller
        .share
        .max_jobs
        .unwrap_or(state.intake.access.max_jobs_per_caller);
    if cap == 0 {
        return Ok(None);
    }
    match state.queue.admit_share(&caller.bucket, ids, cap).await? {
        Some(unfinished) => {
            let weight = u64::from(caller.share.weight.unwrap_or(1));
            Ok(Some(u32::try_from(unfinished / weight).unwrap_or(u32::MAX)))
        }
        None => Err(too_many(
            format!(
                "{cap} jobs of this caller are waiting or running already; retry as they finish"
            ),
            5,
        )),
    }
}

/// Gives back the share [`admit_share`] took for `ids` when they could not
/// be enqueued after all (`offset` is what it answered: `None` took none).
pub async fn return_share(state: &AppState, caller: &Caller, offset: Option<u32>, ids: &[Uuid]) {
    if offset.is_some() {
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        crate::ending::give_share_back(&state.queue, &caller.bucket, &ids).await;
    }
}

/// Spends `jobs` of the caller's submission budget, or answers 429 (with
/// `Retry-After`) and spends nothing. `field` names what a batch too large
/// for any minute's budget gets its 400 on.
pub async fn admit_jobs(
    state: &AppState,
    caller: &Caller,
    jobs: u64,
    field: &str,
) -> Result<(), ApiError> {
    let limit = state.intake.access.submit_per_minute;
    if limit == 0 {
        return Ok(());
    }
    if jobs > limit {
        return Err(ApiError::bad_field(
            field,
            format!("{jobs} jobs at once are more than the {limit} a minute a caller may submit"),
        ));
    }
    match state
        .queue
        .take_submissions(&caller.bucket, jobs, limit)
        .await?
    {
        None => Ok(()),
        Some(retry_after) => Err(too_many(
            format!("over {limit} jobs a minute; retry in {retry_after} s"),
            retry_after,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_identified_by_its_entry_only() {
        let (key, entry) = new_key("alice");
        let keys = ApiKeys::parse(&format!("{entry}, # a comment\n")).unwrap();
        assert_eq!(keys.identify(&key), Some("alice"));
        assert_eq!(keys.identify("crk_wrong"), None);
        assert!(!entry.contains(&key), "the entry must not hold the key");
    }

    #[test]
    fn a_key_entry_may_set_its_share_of_the_queue() {
        let (alice, alice_entry) = new_key("alice");
        let (bob, bob_entry) = new_key("bob");
        let keys =
            ApiKeys::parse(&format!("{alice_entry}:max_jobs=5:weight=3\n{bob_entry}")).unwrap();
        let share = |key: &str| keys.lookup(key).unwrap().1;
        assert_eq!(
            share(&alice),
            KeyShare {
                max_jobs: Some(5),
                weight: Some(3)
            }
        );
        assert_eq!(share(&bob), KeyShare::default());
        for bad in [":max_jobs=x", ":weight=0", ":priority=1", ":max_jobs"] {
            let error = ApiKeys::parse(&format!("{alice_entry}{bad}")).unwrap_err();
            assert!(error.contains("alice"), "{bad}: {error}");
        }
    }

    #[test]
    fn callers_without_keys_are_told_apart_by_address() {
        let bucket = |a: &str| address_bucket(Some(a.parse().unwrap()));
        assert_eq!(bucket("192.0.2.7"), "addr:192.0.2.7");
        assert_eq!(bucket("::ffff:192.0.2.7"), "addr:192.0.2.7");
        // One /64 is one machine's: its addresses share a budget.
        assert_eq!(bucket("2001:db8:1:2::1"), bucket("2001:db8:1:2:ffff::9"));
        assert_ne!(bucket("2001:db8:1:2::1"), bucket("2001:db8:1:3::1"));
        assert_eq!(address_bucket(None), "addr:unknown");
    }

    #[test]
    fn the_request_budget_is_per_caller_and_says_when_to_retry() {
        assert!(RequestLimiter::new(0).is_none());
        // 60 a minute: a burst of 10, then one a second.
        let limiter = RequestLimiter::new(60).unwrap();
        for _ in 0..10 {
            limiter.check("addr:a").unwrap();
        }
        assert_eq!(limiter.check("addr:a"), Err(1));
        // Another caller's budget is untouched.
        limiter.check("addr:b").unwrap();
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "alice",
            "alice:md5:abcd",
            "alice:sha256:zz",
            "bad name:sha256:00",
        ] {
            assert!(ApiKeys::parse(bad).is_err(), "{bad}");
        }
    }
}
