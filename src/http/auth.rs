//! Who may use the job API, and how much.
//!
//! - API keys are configured as `name:sha256:<hex>` (the SHA-256 of the key;
//!   the key itself is never stored), in `CODE_RUNNER_API_KEYS` or one per
//!   line in `CODE_RUNNER_API_KEYS_FILE`, and sent as
//!   `Authorization: Bearer <key>`. `code-runner new-key <name>` makes one.
//! - Keys are required whenever some are configured, and the service refuses
//!   to listen on anything but loopback without keys (unless
//!   `CODE_RUNNER_AUTH=off` says so explicitly).
//! - Each job belongs to the key that submitted it: any other key gets 404.
//! - Each key (or, without keys, everyone together) has a request budget per
//!   minute, counted in Redis so that every API process shares it: past it,
//!   429 with `Retry-After`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;

/// The caller of a request, once authenticated.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The key's name; `None` when keys are off.
    pub key: Option<String>,
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

/// Configured keys, by the SHA-256 of the key.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    by_hash: HashMap<[u8; 32], String>,
}

impl ApiKeys {
    /// Parses `name:sha256:<hex>` entries (comma- or newline-separated;
    /// `#` starts a comment).
    pub fn parse(text: &str) -> Result<ApiKeys, String> {
        let mut keys = ApiKeys::default();
        for entry in text
            .split([',', '\n'])
            .map(|e| e.split('#').next().unwrap_or("").trim())
            .filter(|e| !e.is_empty())
        {
            let mut parts = entry.splitn(3, ':');
            let (name, algorithm, hex) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
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
            for (i, byte) in hash.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                    .map_err(|_| format!("API key {name}: the hash is not hex"))?;
            }
            if keys.by_hash.insert(hash, name.to_string()).is_some() {
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
        let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        self.by_hash.get(&hash).map(String::as_str)
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
    let hash = Sha256::digest(key.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("{name}:sha256:{hex}")
}

/// How the job API is guarded.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    /// `None`: no keys, everyone is the same anonymous caller.
    pub keys: Option<Arc<ApiKeys>>,
    /// Requests per minute per key (0: unlimited).
    pub rate_per_minute: u64,
}

/// Checks the bearer key and the rate budget; puts the [`Caller`] in the
/// request for the handlers.
pub async fn guard(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = match &state.access.keys {
        None => Caller { key: None },
        Some(keys) => {
            let presented = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            let Some(name) = presented.and_then(|key| keys.identify(key)) else {
                let mut response = ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "an API key is needed: send Authorization: Bearer <key>",
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return Ok(response);
            };
            Caller {
                key: Some(name.to_string()),
            }
        }
    };
    if let Some(key) = &caller.key {
        tracing::Span::current().record("key", key.as_str());
    }
    if state.access.rate_per_minute > 0 {
        let bucket = caller.key.as_deref().unwrap_or("anonymous");
        if let Some(retry_after) = state
            .queue
            .take_rate(bucket, state.access.rate_per_minute)
            .await?
        {
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "over {} requests a minute; retry in {retry_after} s",
                    state.access.rate_per_minute
                ),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            return Ok(response);
        }
    }
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
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
