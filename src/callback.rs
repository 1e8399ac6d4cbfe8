//! Webhooks: when a job has a `callback_url`, its finished view is POSTed
//! there, signed, and retried with backoff. Delivery happens in the
//! background; a receiver that is down never changes the job's own result.
//!
//! The signature is `X-Code-Runner-Signature: sha256=<hex>`, an HMAC-SHA256
//! of the exact body with the configured secret. Receivers recompute it
//! over the raw body and compare in constant time.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying the body's HMAC-SHA256.
pub const SIGNATURE_HEADER: &str = "X-Code-Runner-Signature";
/// Header carrying the job id.
pub const JOB_HEADER: &str = "X-Code-Runner-Job";

/// First retry delay; doubled after each failed attempt.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends webhooks. Cheap to clone.
#[derive(Clone)]
pub struct CallbackSender {
    client: reqwest::Client,
    secret: Arc<Vec<u8>>,
    attempts: u32,
}

impl CallbackSender {
    pub fn new(secret: &[u8], attempts: u32) -> CallbackSender {
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("code-runner/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        CallbackSender {
            client,
            secret: Arc::new(secret.to_vec()),
            attempts: attempts.max(1),
        }
    }

    /// `sha256=<hex>` of the body.
    pub fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(body);
        let digest = mac.finalize().into_bytes();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256={hex}")
    }

    /// Delivers in the background.
    pub fn send(&self, job_id: String, url: String, body: Vec<u8>) {
        let sender = self.clone();
        tokio::spawn(async move { sender.deliver(&job_id, &url, body).await });
    }

    /// Tries up to `attempts` times; true once a 2xx answered.
    pub async fn deliver(&self, job_id: &str, url: &str, body: Vec<u8>) -> bool {
        let signature = Self::sign(&self.secret, &body);
        let mut delay = FIRST_RETRY;
        for attempt in 1..=self.attempts {
            let sent = self
                .client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, &signature)
                .header(JOB_HEADER, job_id)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => {
                    tracing::info!(job = job_id, attempt, "webhook delivered");
                    return true;
                }
                Ok(response) => tracing::warn!(job = job_id, attempt, status = %response.status(),
                    "webhook refused"),
                Err(e) => {
                    tracing::warn!(job = job_id, attempt, error = %e, "webhook not delivered")
                }
            }
            if attempt < self.attempts {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        tracing::warn!(
            job = job_id,
            "webhook given up after {} attempts",
            self.attempts
        );
        false
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
