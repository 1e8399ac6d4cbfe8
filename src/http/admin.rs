//! The admin listener: stats (and, later, the dashboard and metrics), on
//! its own address, loopback by default. Off loopback it requires the admin
//! token (`Authorization: Bearer <token>`); the service refuses to start
//! otherwise.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::error::{self, ApiError};
use super::{AppState, health};

/// The admin token's SHA-256, compared instead of the token itself.
#[derive(Clone)]
struct AdminToken(Option<Arc<[u8; 32]>>);

pub fn admin_router(state: AppState, token: Option<&str>) -> Router {
    let token = AdminToken(token.map(|t| Arc::new(Sha256::digest(t.as_bytes()).into())));
    Router::new()
        .route("/v1/stats", get(health::stats))
        .route("/v1/workers", get(health::workers))
        .route("/admin/queues", get(queues_page))
        .route_layer(axum::middleware::from_fn_with_state(token, require_token))
        .route("/healthz", get(health::healthz))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
}

async fn require_token(
    State(token): State<AdminToken>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let AdminToken(Some(expected)) = &token {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| -> [u8; 32] { Sha256::digest(t.trim().as_bytes()).into() });
        if presented.as_ref() != Some(&**expected) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "the admin token is needed: send Authorization: Bearer <token>",
            ));
        }
    }
    Ok(next.run(request).await)
}

/// A minimal page until the dashboard lands: it points at the JSON.
async fn queues_page() -> impl IntoResponse {
    Html(
        "<!doctype html><title>code-runner</title>\
         <h1>code-runner</h1><p>Queue and actor stats: <a href=\"/v1/stats\">/v1/stats</a></p>",
    )
}
