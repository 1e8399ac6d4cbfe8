//! Webhooks: when a job has a `callback_url`, its finished view is POSTed
//! there, signed (a Judge0 submission's is PUT, in Judge0's shape). What is owed is recorded in Redis
//! ([`crate::queue::deliveries`]) and retried with backoff by any worker;
//! this module makes one attempt: check the destination ([`policy`]),
//! connect only to a checked address, over http or https, and post.
//! A receiver that is down never changes the job's own result.
//!
//! The signature is `X-Code-Runner-Signature: t=<unix seconds>,v1=<hex>`,
//! an HMAC-SHA256 of `<t>.<exact body>` (as Stripe signs): a receiver
//! recomputes it over the raw body, compares in constant time, and refuses a
//! `t` more than a few minutes old, so a captured call cannot be replayed
//! later. Each API key's jobs are signed with that key's own secret
//! (derived from `CODE_RUNNER_CALLBACK_SECRET` and the key's name;
//! `code-runner callback-secret <name>` prints it), so one tenant's signed
//! call is worthless to another's receiver; jobs without a key use the
//! configured secret itself.

pub mod policy;

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use self::policy::{DestinationError, DestinationPolicy};
use crate::queue::deliveries::{Delivery, DeliveryOutcome};

/// Header carrying the body's HMAC-SHA256.
pub const SIGNATURE_HEADER: &str = "X-Code-Runner-Signature";
/// Header carrying the job id.
pub const JOB_HEADER: &str = "X-Code-Runner-Job";

/// Longest one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends webhooks. Cheap to clone.
#[derive(Clone)]
pub struct CallbackSender {
    secret: Arc<Vec<u8>>,
    policy: Arc<DestinationPolicy>,
    /// Certificate authorities trusted beside the webpki roots (a private
    /// deployment's own, `CODE_RUNNER_CALLBACK_CA_FILE`).
    extra_roots: Arc<Vec<reqwest::Certificate>>,
}

impl CallbackSender {
    pub fn new(
        secret: &[u8],
        policy: Arc<DestinationPolicy>,
        extra_roots: Vec<reqwest::Certificate>,
    ) -> CallbackSender {
        CallbackSender {
            secret: Arc::new(secret.to_vec()),
            policy,
            extra_roots: Arc::new(extra_roots),
        }
    }

    /// The certificates of a PEM file (one or several), for `new`.
    pub fn read_roots(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
        let pem = std::fs::read(path)
            .map_err(|e| format!("reading the callback CA file {}: {e}", path.display()))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("the callback CA file {}: {e}", path.display()))?;
        if certificates.is_empty() {
            return Err(format!(
                "the callback CA file {} holds no certificate",
                path.display()
            ));
        }
        Ok(certificates)
    }

    /// The signature header's value for `body` sent at `timestamp` (Unix
    /// seconds): `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
    pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let digest = mac.finalize().into_bytes();
        format!("t={timestamp},v1={}", hex::encode(digest))
    }

    /// The webhook secret of an API key's jobs: the hex HMAC-SHA256 of the
    /// key's name under the configured secret. Its receiver verifies with
    /// this string (as bytes) as the secret.
    pub fn key_secret(secret: &[u8], key: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(b"code-runner webhook secret of key ");
        mac.update(key.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The secret a delivery is signed with: its key's, or the configured one.
    fn secret_for(&self, owner: Option<&str>) -> Vec<u8> {
        match owner {
            Some(key) => Self::key_secret(&self.secret, key).into_bytes(),
            None => self.secret.to_vec(),
        }
    }

    /// One attempt at a delivery.
    pub async fn attempt(&self, delivery: &Delivery) -> DeliveryOutcome {
        // Resolved and checked now, whatever was checked at submission.
        let destination = match self.policy.resolve(&delivery.url).await {
            Ok(destination) => destination,
            // Does not resolve (yet): DNS may come back.
            Err(why @ DestinationError::Unresolved(_)) => {
                return DeliveryOutcome::Retry(why.to_string());
            }
            Err(why) => return DeliveryOutcome::GiveUp(why.to_string()),
        };
        let mut client = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would be what is connected to.
            .no_proxy()
            .user_agent(concat!("code-runner/", env!("CARGO_PKG_VERSION")));
        for root in self.extra_roots.iter() {
            client = client.add_root_certificate(root.clone());
        }
        if let Some(domain) = &destination.domain {
            // Connect to the checked addresses only, never to what a second
            // lookup might answer.
            client = client.resolve_to_addrs(domain, &destination.addrs);
        }
        let client = match client.build() {
            Ok(client) => client,
            Err(e) => return DeliveryOutcome::Retry(format!("HTTP client: {e}")),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let signature = Self::sign(
            &self.secret_for(delivery.owner.as_deref()),
            now,
            delivery.body.as_bytes(),
        );
        let method = if delivery.put {
            reqwest::Method::PUT
        } else {
            reqwest::Method::POST
        };
        let sent = client
            .request(method, destination.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(JOB_HEADER, &delivery.job_id)
            .body(delivery.body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => DeliveryOutcome::Delivered,
            Ok(response) => DeliveryOutcome::Retry(format!("answered {}", response.status())),
            Err(e) => DeliveryOutcome::Retry(format!("{e:#}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        // HMAC-SHA256 of "1700000000.{}" under "secret", as any HMAC library
        // computes it (Python: hmac.new(b"secret", b"1700000000.{}", sha256)).
        let signature = CallbackSender::sign(b"secret", 1_700_000_000, b"{}");
        assert!(signature.starts_with("t=1700000000,v1="), "{signature}");
        assert_ne!(
            signature,
            CallbackSender::sign(b"secret", 1_700_000_001, b"{}")
        );
        assert_ne!(
            signature,
            CallbackSender::sign(b"other", 1_700_000_000, b"{}")
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(b"1700000000.{}");
        assert_eq!(
            signature,
            format!(
                "t=1700000000,v1={}",
                hex::encode(mac.finalize().into_bytes())
            )
        );
    }

    #[test]
    fn each_key_has_a_secret_of_its_own() {
        let alice = CallbackSender::key_secret(b"master", "alice");
        assert_eq!(alice.len(), 64);
        assert_ne!(alice, CallbackSender::key_secret(b"master", "bob"));
        assert_ne!(alice, CallbackSender::key_secret(b"other master", "alice"));
    }
}
