//! The OpenAPI document of the whole API, generated from the handlers and
//! types (utoipa) and served at `GET /openapi.json`.

use axum::Json;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "code-runner",
        description = "Runs untrusted code in throwaway, hardened Docker containers. \
                       Every error answers `{\"error\", \"field\"}`. The job endpoints \
                       take `Authorization: Bearer <API key>` when keys are configured \
                       (401 without one, 404 for another key's job, 429 past the key's \
                       rate or when the queue is full).",
    ),
    paths(
        super::v1::create_job,
        super::v1::create_batch,
        super::v1::get_job,
        super::v1::cancel_job,
        super::v1::languages,
        super::api::run,
        super::api::status,
        super::health::healthz,
        super::health::readyz,
        openapi_json,
    ),
    tags(
        (name = "jobs", description = "The versioned API"),
        (name = "languages"),
        (name = "proof of concept", description = "The Node.js proof of concept's API, kept valid"),
        (name = "operations"),
    )
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document")))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
