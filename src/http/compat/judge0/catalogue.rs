//! Judge0's public catalogue: its languages, statuses, version, about,
//! configuration, workers and system information.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::compat::judge0::{self};
use crate::http::AppState;
use crate::http::error::{AnyJson, Judge0Error, PathText};

use super::answer;

/// `GET /languages`: every active language's id and name.
#[utoipa::path(get, path = "/languages", tag = "judge0",
    responses(
        (status = 200, description = "`[{\"id\", \"name\"}]`", body = AnyJson),
        (status = 503, description = "Redis unavailable", body = AnyJson),
    ))]
pub async fn languages(State(state): State<AppState>) -> Result<Response, Judge0Error> {
    let versions = state.queue.language_versions().await?;
    Ok(answer(
        StatusCode::OK,
        judge0::languages_json(&state.languages, &versions),
    ))
}

/// `GET /languages/all`: as `/languages`, with `is_archived` (none is).
#[utoipa::path(get, path = "/languages/all", tag = "judge0",
    responses(
        (status = 200, description = "`[{\"id\", \"name\", \"is_archived\"}]`", body = AnyJson),
        (status = 503, description = "Redis unavailable", body = AnyJson),
    ))]
pub async fn all_languages(State(state): State<AppState>) -> Result<Response, Judge0Error> {
    let versions = state.queue.language_versions().await?;
    let mut all = judge0::languages_json(&state.languages, &versions);
    for language in &mut all {
        language["is_archived"] = json!(false);
    }
    Ok(answer(StatusCode::OK, all))
}

/// `GET /languages/{id}`: a language with its source file and commands.
#[utoipa::path(get, path = "/languages/{id}", tag = "judge0",
    params(("id" = i64, Path, description = "A Judge0 language id")),
    responses(
        (status = 200, description = "The language", body = AnyJson),
        (status = 404, description = "No language has this id", body = AnyJson),
        (status = 503, description = "Redis unavailable", body = AnyJson),
    ))]
pub async fn language(
    State(state): State<AppState>,
    PathText(id, _): PathText<Judge0Error>,
) -> Result<Response, Judge0Error> {
    let Some((id, language)) = id
        .trim()
        .parse::<u32>()
        .ok()
        .and_then(|id| state.languages.find_judge0(id).map(|l| (id, l)))
    else {
        return Err(Judge0Error::not_found());
    };
    let versions = state.queue.language_versions().await?;
    let version = language.reported_version(&versions);
    Ok(answer(
        StatusCode::OK,
        judge0::language_json(id, language, version),
    ))
}

/// `GET /statuses`.
#[utoipa::path(get, path = "/statuses", tag = "judge0",
    responses((status = 200, description = "`[{\"id\", \"description\"}]`, 1 to 14", body = AnyJson)))]
pub async fn statuses() -> Response {
    let all: Vec<Value> = judge0::STATUSES
        .iter()
        .map(|(id, description)| json!({ "id": id, "description": description }))
        .collect();
    answer(StatusCode::OK, all)
}

/// `GET /about`.
#[utoipa::path(get, path = "/about", tag = "judge0",
    responses((status = 200, description = "The Judge0 version served", body = AnyJson)))]
pub async fn about() -> Response {
    answer(
        StatusCode::OK,
        json!({
            "version": judge0::VERSION,
            "homepage": "https://github.com/judge0/judge0",
            "source_code": "https://github.com/judge0/judge0",
            "maintainer": concat!("code-runner ", env!("CARGO_PKG_VERSION"), " (Judge0 CE API)"),
        }),
    )
}

/// `GET /version`: plain text, as Judge0 answers it.
#[utoipa::path(get, path = "/version", tag = "judge0",
    responses((status = 200, description = "The Judge0 version served", body = String, content_type = "text/plain")))]
pub async fn version() -> Response {
    (StatusCode::OK, judge0::VERSION).into_response()
}

/// `GET /config_info`: the service's real limits in Judge0's names.
#[utoipa::path(get, path = "/config_info", tag = "judge0",
    responses((status = 200, description = "Judge0's configuration variables", body = AnyJson)))]
pub async fn config_info(State(state): State<AppState>) -> Response {
    answer(StatusCode::OK, state.intake.judge0_settings().config_info())
}

/// `GET /workers`: the job slots of the live workers, as Judge0 counts its
/// workers, on its one queue.
#[utoipa::path(get, path = "/workers", tag = "judge0",
    responses(
        (status = 200, description = "The job slots of the live workers", body = AnyJson),
        (status = 401, description = "No valid API key", body = AnyJson),
        (status = 429, description = "Over the key's rate", body = AnyJson),
        (status = 503, description = "Redis unavailable", body = AnyJson),
    ))]
pub async fn workers(State(state): State<AppState>) -> Result<Response, Judge0Error> {
    let workers = state.queue.live_workers(crate::job::now_ms()).await?;
    let counts = state.queue.counts().await?;
    let slots: u64 = workers.iter().map(|w| u64::from(w.concurrency)).sum();
    let working: u64 = workers.iter().map(|w| w.running as u64).sum();
    let count = |name: &str| counts.get(name).copied().unwrap_or(0);
    Ok(answer(
        StatusCode::OK,
        json!([{
            "queue": judge0::VERSION,
            "size": count("waiting") + count("prioritized") + count("delayed"),
            "available": slots,
            "idle": slots.saturating_sub(working),
            "working": working,
            "paused": if count("paused") > 0 { slots } else { 0 },
            "failed": count("failed"),
        }]),
    ))
}

/// `GET /system_info`: this API process's host, in `lscpu`'s words as
/// Judge0 answers them (the workers' hosts may differ).
#[utoipa::path(get, path = "/system_info", tag = "judge0",
    responses(
        (status = 200, description = "This API process's host", body = AnyJson),
        (status = 401, description = "No valid API key", body = AnyJson),
        (status = 429, description = "Over the key's rate", body = AnyJson),
    ))]
pub async fn system_info() -> Response {
    let cpus = crate::config::machine_cpus();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let kb = |key: &str| {
                text.lines()
                    .find(|l| l.starts_with(key))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
            };
            Some((kb("MemTotal:")?, kb("SwapTotal:").unwrap_or(0)))
        });
    let mut info = serde_json::Map::new();
    info.insert("Architecture".into(), json!(crate::config::machine_arch()));
    info.insert("CPU(s)".into(), json!(cpus.to_string()));
    if !model.is_empty() {
        info.insert("Model name".into(), json!(model));
    }
    if let Some((memory, swap)) = memory {
        info.insert(
            "Mem".into(),
            json!(format!("{:.1}G", memory as f64 / 1048576.0)),
        );
        info.insert(
            "Swap".into(),
            json!(format!("{:.1}G", swap as f64 / 1048576.0)),
        );
    }
    answer(StatusCode::OK, info)
}
