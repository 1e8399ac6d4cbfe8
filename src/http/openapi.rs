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
        super::live::events,
        super::live::stream,
        super::live::stream_new,
        super::live::input,
        super::v1::languages,
        super::api::run,
        super::api::status,
        super::health::healthz,
        super::health::readyz,
        openapi_json,
        super::compat::judge0::create,
        super::compat::judge0::show,
        super::compat::judge0::destroy,
        super::compat::judge0::batch_show,
        super::compat::judge0::batch_create,
        super::compat::judge0::languages,
        super::compat::judge0::all_languages,
        super::compat::judge0::language,
        super::compat::judge0::statuses,
        super::compat::judge0::about,
        super::compat::judge0::version,
        super::compat::judge0::config_info,
        super::compat::judge0::workers,
        super::compat::judge0::system_info,
        super::compat::piston::runtimes,
        super::compat::piston::execute,
        super::compat::piston::connect,
        super::compat::piston::packages,
        super::compat::piston::manage_packages,
        super::compat::piston::remove_packages,
    ),
    tags(
        (name = "jobs", description = "The versioned API"),
        (name = "languages"),
        (name = "proof of concept", description = "The Node.js proof of concept's API, kept valid"),
        (name = "operations"),
        (name = "judge0", description = "Judge0 CE's API (1.13.1), served as its documentation describes it"),
        (name = "piston", description = "Piston's API v2, served as its documentation describes it"),
    )
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document")))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
