//! The OpenAPI document of the whole API, generated from the handlers and
//! types (utoipa) and served at `GET /openapi.json`, with what the service's
//! checks accept written into it from its settings ([`document`]): the
//! languages it serves, each limit's range, the sizes of lists, which
//! fields go together. A client generated from it, or a fuzzer, sends
//! requests the handlers take.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::AppState;
use super::request::{MAX_ARG_BYTES, MAX_ARGS, MAX_FILES, MAX_GROUP, MAX_POINTS};

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
pub async fn openapi_json(State(state): State<AppState>) -> Json<Value> {
    Json(document(&state))
}

/// The document, with this service's rules written into its schemas.
pub fn document(state: &AppState) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let languages = &state.languages;
    let names: Vec<&str> = languages
        .all()
        .iter()
        .flat_map(|l| std::iter::once(l.id.as_str()).chain(l.aliases.iter().map(String::as_str)))
        .collect();
    let max = &state.intake.max_limits;
    let schemas = &mut doc["components"]["schemas"];

    // Ours.
    let job = &mut schemas["JobRequest"];
    job["properties"]["language"]["enum"] = json!(names);
    job["properties"]["code"]["maxLength"] = json!(state.intake.max_code_bytes);
    job["properties"]["files"]["maxItems"] = json!(MAX_FILES);
    job["properties"]["files"]["minItems"] = json!(1);
    job["properties"]["args"]["maxItems"] = json!(MAX_ARGS);
    job["properties"]["args"]["items"]["maxLength"] = json!(MAX_ARG_BYTES);
    job["properties"]["args"]["items"]["pattern"] = json!("^[^\\u0000]*$");
    job["properties"]["test_cases"]["maxItems"] = json!(state.intake.max_test_cases);
    job["properties"]["callback_url"]["format"] = json!("uri");
    job["properties"]["callback_url"]["maxLength"] = json!(2048);
    // `code` or `files`; a checker or an interactor, not both.
    job["oneOf"] = json!([{ "required": ["code"] }, { "required": ["files"] }]);
    job["not"] = json!({ "required": ["checker", "interactor"] });
    schemas["ProgramRequest"]["properties"]["language"]["enum"] = json!(names);
    schemas["ProgramRequest"]["properties"]["code"]["minLength"] = json!(1);
    schemas["FileRequest"]["properties"]["name"]["pattern"] =
        json!("^(?![-@])(?!\\.{1,2}$)[^/\\u0000-\\u001f]{1,255}$");
    let case = &mut schemas["TestCaseRequest"]["properties"];
    case["points"]["minimum"] = json!(0);
    case["points"]["maximum"] = json!(MAX_POINTS);
    case["group"]["minLength"] = json!(1);
    case["group"]["maxLength"] = json!(MAX_GROUP);
    case["group"]["pattern"] = json!("^[^\\u0000-\\u001f]*$");
    let limits = &mut schemas["LimitsRequest"]["properties"];
    for (name, most) in [
        ("wall_time_ms", max.wall_time_ms),
        ("cpu_time_ms", max.cpu_time_ms),
        ("memory_mb", max.memory_bytes >> 20),
        ("processes", max.processes.max(1) as u64),
        ("output_bytes", max.output_bytes),
        ("compile_wall_time_ms", max.compile_wall_time_ms),
        ("idle_time_ms", max.wall_time_ms),
    ] {
        let least = if name == "memory_mb" {
            crate::limits::MIN_MEMORY_MB
        } else {
            1
        };
        limits[name]["minimum"] = json!(least);
        limits[name]["maximum"] = json!(most);
    }

    // Judge0's: its ids, and each number within Judge0's settings.
    let settings = state.intake.judge0_settings();
    let ids: Vec<u32> = languages.judge0_ids().map(|(id, _)| id).collect();
    let judge0 = &mut schemas["SubmissionParams"]["properties"];
    judge0["language_id"] = json!({ "type": "integer", "enum": ids });
    for (name, least, most) in [
        ("cpu_time_limit", 0.0, settings.max_cpu_time_limit),
        ("cpu_extra_time", 0.0, settings.max_cpu_extra_time),
        ("wall_time_limit", 1.0, settings.max_wall_time_limit),
        (
            "memory_limit",
            settings.min_memory_limit as f64,
            settings.max_memory_limit as f64,
        ),
        ("stack_limit", 0.0, settings.max_stack_limit as f64),
        ("max_file_size", 0.0, settings.max_max_file_size as f64),
    ] {
        judge0[name] = json!({ "type": "number", "minimum": least, "maximum": most });
    }
    judge0["max_processes_and_or_threads"] = json!({ "type": "integer", "minimum": 1,
        "maximum": settings.max_max_processes_and_or_threads });
    judge0["number_of_runs"] = json!({ "type": "integer", "minimum": 1,
        "maximum": settings.max_number_of_runs });
    for never in [
        "enable_per_process_and_thread_time_limit",
        "enable_per_process_and_thread_memory_limit",
        "enable_network",
    ] {
        judge0[never] = json!({ "type": "boolean", "enum": [false] });
    }
    for flag in ["redirect_stderr_to_stdout", "base64_encoded", "wait"] {
        judge0[flag] = json!({ "type": "boolean" });
    }
    for text in ["compiler_options", "command_line_arguments"] {
        judge0[text] = json!({ "type": "string", "maxLength": 512 });
    }

    // A batch: one to Judge0's most submissions.
    let batch = &mut schemas["BatchParams"];
    batch["required"] = json!(["submissions"]);
    batch["properties"]["submissions"]["minItems"] = json!(1);
    batch["properties"]["submissions"]["maxItems"] = json!(settings.max_submission_batch_size);

    // Piston's: its names and aliases.
    let piston: Vec<&str> = languages
        .all()
        .iter()
        .flat_map(|l| {
            std::iter::once(crate::compat::piston::piston_name(l))
                .chain(std::iter::once(l.id.as_str()))
                .chain(l.aliases.iter().map(String::as_str))
        })
        .collect();
    let execute = &mut schemas["ExecuteParams"]["properties"];
    execute["language"]["enum"] = json!(piston);
    // A SemVer selector (`*`, `3.11`, `^3.10.0`, ...) the language's version
    // must match: not a pattern a schema can say; `*` always matches.
    execute["version"] = json!({ "type": "string", "minLength": 1, "examples": ["*"] });
    execute["files"]["minItems"] = json!(1);
    // One file at least is UTF-8 (the program).
    execute["files"]["contains"] = json!({ "anyOf": [
        { "not": { "required": ["encoding"] } },
        { "properties": { "encoding": { "enum": ["utf8", null] } } },
    ] });
    // -1 or 0 take the default; else at most the most (and a run's memory
    // at least the least a run may have).
    let constraints = crate::compat::piston::Constraints::new(max);
    for (name, least, most) in [
        ("compile_timeout", 0, constraints.compile_timeout),
        ("run_timeout", 0, constraints.run_timeout),
        ("compile_cpu_time", 0, constraints.compile_cpu_time),
        ("run_cpu_time", 0, constraints.run_cpu_time),
        ("compile_memory_limit", 0, constraints.compile_memory_limit),
        (
            "run_memory_limit",
            crate::limits::MIN_MEMORY_MB << 20,
            constraints.run_memory_limit,
        ),
    ] {
        let within = if least == 0 {
            json!({ "type": "number", "exclusiveMinimum": 0, "maximum": most })
        } else {
            json!({ "type": "number", "minimum": least, "maximum": most })
        };
        execute[name] = json!({ "anyOf": [{ "type": "number", "enum": [-1, 0] }, within] });
    }
    // Its content as its encoding says.
    schemas["FileParams"]["allOf"] = json!([
        {
            "if": { "required": ["encoding"], "properties": { "encoding": { "const": "base64" } } },
            "then": { "properties": { "content": { "pattern":
                "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$" } } },
        },
        {
            "if": { "required": ["encoding"], "properties": { "encoding": { "const": "hex" } } },
            "then": { "properties": { "content": { "pattern": "^(?:[0-9a-fA-F]{2})*$" } } },
        },
    ]);

    // The proof of concept's `/run`.
    doc["components"]["schemas"]["RunRequest"]["properties"]["language"]["enum"] = json!(names);
    // Judge0's submission needs a language and (but for multi-file
    // programs) a source.
    let submission = &mut doc["components"]["schemas"]["SubmissionParams"];
    submission["required"] = json!(["language_id", "source_code"]);
    submission["properties"]["source_code"] = json!({ "type": "string", "minLength": 1 });
    // A job's id, a token: a UUID.
    if let Some(paths) = doc["paths"].as_object_mut() {
        let jobs = paths
            .iter_mut()
            .filter(|(path, _)| !path.starts_with("/languages"))
            .filter_map(|(_, operations)| operations.as_object_mut());
        for operations in jobs {
            for operation in operations.values_mut() {
                // `get_mut`: indexing would add a `null` where none is.
                let Some(parameters) = operation
                    .get_mut("parameters")
                    .and_then(Value::as_array_mut)
                else {
                    continue;
                };
                for parameter in parameters {
                    let is_id = parameter["in"] == "path"
                        && matches!(parameter["name"].as_str(), Some("id" | "jobId" | "token"));
                    if is_id {
                        parameter["schema"]["format"] = json!("uuid");
                    }
                }
            }
        }
    }

    // Links from what makes a job to what reads it, so that a generated
    // client (and the fuzzer's stateful phase) follows a real id; the
    // inferred ones cover `/v1/jobs` but for its input.
    let link = |path: &str, method: &str, parameter: &str, from: &str| {
        json!({
            "operationRef": format!("#/paths/{}/{method}", path.replace('~', "~0").replace('/', "~1")),
            "parameters": { parameter: format!("$response.body#/{from}") },
        })
    };
    doc["paths"]["/run"]["post"]["responses"]["200"]["links"] = json!({
        "status": link("/status/{jobId}", "get", "jobId", "jobId"),
    });
    doc["paths"]["/submissions"]["post"]["responses"]["201"]["links"] = json!({
        "show": link("/submissions/{token}", "get", "token", "token"),
        "delete": link("/submissions/{token}", "delete", "token", "token"),
        "batch": link("/submissions/batch", "get", "tokens", "token"),
    });
    doc["paths"]["/v1/jobs"]["post"]["responses"]["201"]["links"]["input"] =
        link("/v1/jobs/{id}/input", "post", "id", "id");

    // A server-sent event as it is on the wire (`event`, `id`, and `data`
    // holding a `LiveMessage` as JSON), not the message alone.
    doc["paths"]["/v1/jobs/{id}/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]
        ["schema"] = json!({
        "type": "object",
        "required": ["data"],
        "properties": {
            "event": { "type": "string" },
            "id": { "type": "string" },
            "retry": { "type": "integer" },
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": { "$ref": "#/components/schemas/LiveMessage" }
            }
        }
    });
    doc
}
