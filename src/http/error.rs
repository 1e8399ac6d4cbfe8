//! The HTTP boundary's one error type. Every error a client can cause is a
//! 4xx with a JSON body `{"error": "...", "field": "..."}` (`field` names the
//! offending input when there is one); a dependency that is down is a 503.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::queue::QueueError;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub field: Option<String>,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
}

/// Every error's body.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// What went wrong.
    pub error: &'a str,
    /// The input at fault, when one is (`limits.wall_time_ms`, `jobs[2].language`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// A 400 about one input field.
    pub fn bad_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            field: Some(field.into()),
            retry_after: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: &self.message,
            field: self.field.as_deref(),
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        response
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        if let QueueError::Full(_) = e {
            tracing::error!(error = %e, "Redis is full: a request was refused");
            let mut error = ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "the job queue is full (Redis reached its memory limit); nothing was \
                 queued: retry once finished jobs have been trimmed",
            );
            error.retry_after = Some(30);
            return error;
        }
        tracing::warn!(error = %e, "queue unavailable for a request");
        let mut error = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the job queue is unavailable, try again shortly ({e})"),
        );
        error.retry_after = Some(2);
        error
    }
}

/// Unknown paths.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}

/// Known paths, wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
    )
}

/// Any JSON value, in the OpenAPI document: the answers of the foreign APIs
/// whose shape depends on the request (Judge0's `fields`, a batch's errors).
pub struct AnyJson;

impl utoipa::PartialSchema for AnyJson {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::AnyValue)
            .into()
    }
}

impl utoipa::ToSchema for AnyJson {}
