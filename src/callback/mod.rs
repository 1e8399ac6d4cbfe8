//! Webhooks: when a job has a `callback_url`, its finished view is POSTed
//! there, signed. What is owed is recorded in Redis
//! ([`crate::queue::deliveries`]) and retried with backoff by any worker;
//! this module makes one attempt: check the destination ([`policy`]),
//! connect only to a checked address, over http or https, and post.
//! A receiver that is down never changes the job's own result.
//!
//! The signature is `X-Code-Runner-Signature: sha256=<hex>`, an HMAC-SHA256
//! of the exact body with the configured secret. Receivers recompute it
//! over the raw body and compare in constant time.

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

    /// `sha256=<hex>` of the body.
    pub fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(body);
        let digest = mac.finalize().into_bytes();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256={hex}")
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
        let signature = Self::sign(&self.secret, delivery.body.as_bytes());
        let sent = client
            .post(destination.url)
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
    fn the_signature_is_the_rfc_4231_hmac() {
        // RFC 4231 test case 2.
        let signature = CallbackSender::sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            signature,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
