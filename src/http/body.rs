//! Reading JSON request bodies with clear errors: 415 when the body is not
//! sent as JSON, 413 when it is too large, 408 when it comes too slowly, 400
//! when it is not JSON.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};

use super::error::ApiError;

/// The body of a JSON request, or the error a client should see (408 when
/// it is not all sent within `timeout`). Parse it into the request's own
/// type with [`super::request::parse`]: never into a `serde_json::Value`,
/// whose nested empty arrays cost many times their size in memory.
pub async fn json_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, ApiError> {
    require_json(headers)?;
    any_body(body, limit, timeout).await
}

/// A request body of any type, read as [`json_body`] reads one (413, 408).
pub async fn any_body(
    body: Body,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, ApiError> {
    let too_slow = || {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "the request body was not sent in time (or was cut off)",
        )
    };
    // The whole body within `timeout`; the listener also ends a body that
    // stalls between two chunks (tower-http's `RequestBodyTimeout`).
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit));
    let bytes = match read.await {
        Err(_) => return Err(too_slow()),
        Ok(Err(e)) => {
            // Over the limit, or the body itself failed: it stalled past the
            // listener's timeout, or the client went away.
            if e.into_inner().is::<http_body_util::LengthLimitError>() {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the request body is over {limit} bytes"),
                ));
            }
            return Err(too_slow());
        }
        Ok(Ok(bytes)) => bytes,
    };
    Ok(bytes)
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

/// Reads a JSON body (see [`json_body`]) straight into the request's type
/// `T` (see [`super::request::parse`]); the bytes are dropped once parsed.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<T, ApiError> {
    let bytes = json_body(headers, body, limit, timeout).await?;
    super::request::parse(&bytes, "")
}
