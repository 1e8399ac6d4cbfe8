//! Reading request bodies with clear errors: 415 when the body is not sent
//! as JSON, 413 when it is too large, 408 when it comes too slowly, 400 when
//! it is not JSON, 503 when the process is reading too many bodies at once.
//!
//! **The budget.** A body is read whole before it is checked, so the
//! connection caps alone would let many large bodies at once take the
//! process's memory (64 connections of 15 MB each: a gigabyte). Every
//! [`BodyReader`] shares one budget of bytes being read
//! (`CODE_RUNNER_MAX_BODY_BYTES_IN_FLIGHT_MB`): each body's bytes beyond its
//! first [`FREE_BYTES`] take from it as they arrive (so a client that
//! declares a large body and trickles it holds only what it sent), and give
//! back when the bytes are dropped (once the request is parsed, or handled).
//! A body that does not fit is refused at once with 503 and `Retry-After`;
//! ordinary small requests never meet it. Once no large body is held any
//! more, the allocator is asked to give the freed memory back to the system
//! (glibc keeps it otherwise: measured, 1.9 GB stayed after such an attack).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;

/// Bytes of each body read outside the budget: every small request.
pub const FREE_BYTES: usize = 64 * 1024;
/// A body holding at least this much asks for the memory back when dropped.
const LARGE_BYTES: usize = 1 << 20;

/// Reads request bodies within the process's budget (see the module's
/// doc). Cheap to clone: every clone shares the budget.
#[derive(Clone)]
pub struct BodyReader {
    /// Budget bytes not held by a body being read or kept.
    budget: Arc<Semaphore>,
    /// The whole budget.
    total: usize,
    /// Longest a body may take to arrive.
    timeout: std::time::Duration,
    /// A trim of the allocator is due once the budget is whole again.
    trim: Arc<AtomicBool>,
}

/// A body read whole, holding its share of the budget until dropped.
pub struct BodyBytes {
    bytes: Bytes,
    held: Option<OwnedSemaphorePermit>,
    reader: BodyReader,
}

impl std::ops::Deref for BodyBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for BodyBytes {
    fn drop(&mut self) {
        let large = self.bytes.len() >= LARGE_BYTES;
        self.bytes = Bytes::new();
        drop(self.held.take());
        if large {
            self.reader.trim.store(true, Ordering::Relaxed);
        }
        self.reader.trim_when_idle();
    }
}

impl BodyReader {
    /// A reader with a budget of `budget_bytes` bytes in flight and
    /// `timeout` per body.
    pub fn new(budget_bytes: usize, timeout: std::time::Duration) -> Self {
        let total = budget_bytes.min(Semaphore::MAX_PERMITS);
        BodyReader {
            budget: Arc::new(Semaphore::new(total)),
            total,
            timeout,
            trim: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Budget bytes held now by bodies being read or kept.
    pub fn in_flight(&self) -> usize {
        self.total - self.budget.available_permits()
    }

    /// Once no body holds any of the budget and a large one was dropped,
    /// hands the allocator's free memory back to the system (in the
    /// background: it walks the heap).
    fn trim_when_idle(&self) {
        if self.in_flight() != 0 || !self.trim.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // A moment later: what was parsed from the body is dropped with its
        // request, after the body itself.
        let reader = self.clone();
        runtime.spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            if reader.in_flight() == 0 && reader.trim.swap(false, Ordering::Relaxed) {
                let _ = tokio::task::spawn_blocking(give_memory_back).await;
            }
        });
    }

    /// The body of a JSON request (415 when it is not sent as JSON). Parse
    /// it into the request's own type with [`super::request::parse`]:
    /// never into a `serde_json::Value`, whose nested empty arrays cost
    /// many times their size in memory.
    pub async fn json(
        &self,
        headers: &HeaderMap,
        body: Body,
        limit: usize,
    ) -> Result<BodyBytes, ApiError> {
        require_json(headers)?;
        self.any(headers, body, limit).await
    }

    /// Reads a JSON body straight into the request's type `T` (see
    /// [`super::request::parse`]); the bytes are dropped once parsed.
    pub async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        headers: &HeaderMap,
        body: Body,
        limit: usize,
    ) -> Result<T, ApiError> {
        let bytes = self.json(headers, body, limit).await?;
        super::request::parse(&bytes, "")
    }

    /// A request body of any type, at most `limit` bytes (413), all within
    /// the reader's timeout (408) and its budget (503).
    pub async fn any(
        &self,
        headers: &HeaderMap,
        body: Body,
        limit: usize,
    ) -> Result<BodyBytes, ApiError> {
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is over {limit} bytes"),
            )
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(too_large());
        }
        let read = async {
            let mut body = body;
            // Exactly what was declared, else grown as bytes come.
            let mut buffer = Vec::with_capacity(declared.map_or(0, |l| l as usize).min(limit));
            let mut held: Option<OwnedSemaphorePermit> = None;
            // Over the budget: the rest is read and dropped, so that the
            // client, still sending, gets the 503 rather than a reset.
            let mut refused = false;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else {
                    // The body itself failed: it stalled past the
                    // listener's timeout, or the client went away.
                    return Err(too_slow());
                };
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if refused {
                    continue;
                }
                let after = buffer.len() + data.len();
                if after > limit {
                    return Err(too_large());
                }
                let owed =
                    after.saturating_sub(FREE_BYTES) - buffer.len().saturating_sub(FREE_BYTES);
                if owed > 0 {
                    match self.budget.clone().try_acquire_many_owned(owed as u32) {
                        Ok(permit) => match held.as_mut() {
                            Some(held) => held.merge(permit),
                            None => held = Some(permit),
                        },
                        Err(_) => {
                            refused = true;
                            buffer = Vec::new();
                            held = None;
                            continue;
                        }
                    }
                }
                buffer.extend_from_slice(&data);
            }
            if refused {
                return Err(self.busy());
            }
            Ok((buffer, held))
        };
        // The whole body within the timeout; the listener also ends a body
        // that stalls between two chunks (tower-http's `RequestBodyTimeout`).
        match tokio::time::timeout(self.timeout, read).await {
            Err(_) => Err(too_slow()),
            Ok(Err(e)) => Err(e),
            Ok(Ok((buffer, held))) => Ok(BodyBytes {
                bytes: Bytes::from(buffer),
                held,
                reader: self.clone(),
            }),
        }
    }

    fn busy(&self) -> ApiError {
        let mut error = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "this process is reading {} MiB of request bodies at once, its most \
                 (CODE_RUNNER_MAX_BODY_BYTES_IN_FLIGHT_MB); retry shortly",
                self.total >> 20
            ),
        );
        error.retry_after = Some(1);
        error
    }
}

fn too_slow() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "the request body was not sent in time (or was cut off)",
    )
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON, sent with Content-Type: application/json",
        ))
    }
}

/// Asks glibc's allocator to return the free memory of its heaps to the
/// system (`malloc_trim`); nothing elsewhere.
fn give_memory_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}
