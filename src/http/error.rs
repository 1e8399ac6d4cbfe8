//! The HTTP boundary's errors. Every error a client can cause is a 4xx
//! with a JSON body, a dependency that is down a 503, each in the wire
//! format of the API the route belongs to ([`Family`]), one type per API so
//! that `?` can only render that API's shape:
//!
//! - [`ApiError`], ours and the proof of concept's:
//!   `{"error": "...", "field": "..."}` (`field` names the offending input
//!   when there is one);
//! - [`Judge0Error`]: Judge0's `{"error": "..."}`, and its validation
//!   errors `422 {"attribute": ["message"]}`;
//! - [`PistonError`]: Piston's `{"message": "..."}`.
//!
//! Extractor rejections answer the same way: [`PathText`] for path
//! parameters; bodies are read by `body.rs`, which says what went wrong.

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

/// Which API a route belongs to, for the shape of its errors (the
/// middleware of the listener answers before a route's handler does).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Family {
    Ours,
    Judge0,
    Piston,
}

impl Family {
    /// The API of a request path.
    pub fn of(path: &str) -> Family {
        const JUDGE0: [&str; 8] = [
            "/submissions",
            "/languages",
            "/statuses",
            "/about",
            "/version",
            "/config_info",
            "/workers",
            "/system_info",
        ];
        let under = |prefix: &str| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        if under("/api/v2") {
            Family::Piston
        } else if JUDGE0.into_iter().any(under) {
            Family::Judge0
        } else {
            Family::Ours
        }
    }

    /// `error` in this API's shape.
    pub fn render(self, error: ApiError) -> Response {
        match self {
            Family::Ours => error.into_response(),
            Family::Judge0 => Judge0Error::Api(error).into_response(),
            Family::Piston => PistonError(error).into_response(),
        }
    }
}

/// `error`'s status, `body` and `Retry-After`.
fn with_retry_after(error: &ApiError, body: serde_json::Value) -> Response {
    let mut response = (error.status, Json(body)).into_response();
    if let Some(seconds) = error.retry_after {
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(seconds),
        );
    }
    response
}

/// An error on Judge0's routes, in one of Judge0's two shapes: a
/// submission's validation errors as Rails renders them (`422
/// {"attribute": ["message"]}`), anything else as `{"error": "..."}`.
#[derive(Debug)]
pub enum Judge0Error {
    Api(ApiError),
    Invalid(Judge0Invalid),
}

/// Judge0's validation errors (`422 {"attribute": ["message"]}`): one
/// submission's, or a batch's (each submission's own, `{}` for a valid one).
#[derive(Debug)]
pub enum Judge0Invalid {
    One(crate::compat::judge0::Errors),
    Batch(Vec<serde_json::Value>),
}

impl IntoResponse for Judge0Error {
    fn into_response(self) -> Response {
        match self {
            Judge0Error::Api(e) => with_retry_after(&e, serde_json::json!({ "error": e.message })),
            Judge0Error::Invalid(Judge0Invalid::One(errors)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, Json(errors)).into_response()
            }
            Judge0Error::Invalid(Judge0Invalid::Batch(answers)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, Json(answers)).into_response()
            }
        }
    }
}

impl Judge0Error {
    /// `{"error": message}` with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Judge0Error::Api(ApiError::new(status, message))
    }

    /// Judge0's 404: `{"error": "Not Found"}`.
    pub fn not_found() -> Self {
        Judge0Error::new(StatusCode::NOT_FOUND, "Not Found")
    }
}

impl From<crate::compat::judge0::Errors> for Judge0Error {
    fn from(errors: crate::compat::judge0::Errors) -> Self {
        Judge0Error::Invalid(Judge0Invalid::One(errors))
    }
}

/// An error on Piston's routes: `{"message": "..."}`.
#[derive(Debug)]
pub struct PistonError(pub ApiError);

impl IntoResponse for PistonError {
    fn into_response(self) -> Response {
        with_retry_after(&self.0, serde_json::json!({ "message": self.0.message }))
    }
}

impl From<ApiError> for Judge0Error {
    fn from(e: ApiError) -> Self {
        Judge0Error::Api(e)
    }
}

impl From<QueueError> for Judge0Error {
    fn from(e: QueueError) -> Self {
        Judge0Error::Api(e.into())
    }
}

impl From<ApiError> for PistonError {
    fn from(e: ApiError) -> Self {
        PistonError(e)
    }
}

impl From<QueueError> for PistonError {
    fn from(e: QueueError) -> Self {
        PistonError(e.into())
    }
}

/// A path parameter as text; when it is not (its percent-encoding is not
/// UTF-8) the rejection names it, in the shape of `E`, the route's API.
pub struct PathText<E>(pub String, pub std::marker::PhantomData<fn() -> E>);

impl<S, E> axum::extract::FromRequestParts<S> for PathText<E>
where
    S: Send + Sync,
    E: From<ApiError> + IntoResponse,
{
    type Rejection = E;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, E> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(text)) => Ok(PathText(text, std::marker::PhantomData)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(E::from(match e.kind() {
                ErrorKind::InvalidUtf8InPathParam { key } => {
                    ApiError::bad_field(key.clone(), format!("{key} is not UTF-8 text"))
                }
                other => ApiError::new(StatusCode::BAD_REQUEST, other.to_string()),
            })),
            Err(other) => Err(E::from(ApiError::new(other.status(), other.body_text()))),
        }
    }
}

/// Unknown paths, answered in the shape of the API whose path it looks like.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    Family::of(uri.path()).render(ApiError::new(StatusCode::NOT_FOUND, "no such endpoint"))
}

/// Known paths, wrong method.
pub async fn method_not_allowed(uri: axum::http::Uri) -> Response {
    Family::of(uri.path()).render(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
    ))
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

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;
    use crate::compat::judge0::Errors;

    async fn answered(response: Response) -> (StatusCode, Option<String>, serde_json::Value) {
        let status = response.status();
        let retry = response
            .headers()
            .get(axum::http::header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_string());
        let body = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, retry, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn redis_errors_are_503_or_507_with_retry_after() {
        let (status, retry, body) =
            answered(ApiError::from(QueueError::Full("OOM".into())).into_response()).await;
        assert_eq!(
            (status, retry.as_deref()),
            (StatusCode::INSUFFICIENT_STORAGE, Some("30"))
        );
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("the job queue is full")
        );
        let down = QueueError::Timeout(std::time::Duration::from_secs(3));
        let (status, retry, _) = answered(ApiError::from(down).into_response()).await;
        assert_eq!(
            (status, retry.as_deref()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("2"))
        );
    }

    #[tokio::test]
    async fn each_api_renders_its_own_shape() {
        let error = ApiError::bad_field("wait", "wait must be true or false");
        let (status, _, ours) = answered(error.clone().into_response()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            ours,
            serde_json::json!({"error": "wait must be true or false", "field": "wait"})
        );
        let (_, _, judge0) = answered(Family::Judge0.render(error.clone())).await;
        assert_eq!(
            judge0,
            serde_json::json!({"error": "wait must be true or false"})
        );
        let (_, _, piston) = answered(Family::Piston.render(error)).await;
        assert_eq!(
            piston,
            serde_json::json!({"message": "wait must be true or false"})
        );
        let (status, _, invalid) = answered(
            Judge0Error::from(Errors::one("source_code", "can't be blank")).into_response(),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            invalid,
            serde_json::json!({"source_code": ["can't be blank"]})
        );
        let (status, _, _) = answered(Judge0Error::not_found().into_response()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_path_names_its_api() {
        assert_eq!(Family::of("/submissions/batch"), Family::Judge0);
        assert_eq!(Family::of("/languages/71"), Family::Judge0);
        assert_eq!(Family::of("/api/v2/execute"), Family::Piston);
        assert_eq!(Family::of("/v1/jobs"), Family::Ours);
        assert_eq!(Family::of("/submissionsx"), Family::Ours);
    }
}
