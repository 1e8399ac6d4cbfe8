//! Piston's API v2 routes, as its documentation describes them (also under
//! `/api/v2/piston/`, the public instance's paths):
//!
//! - `GET /api/v2/runtimes` (public);
//! - `POST /api/v2/execute`: runs the code and answers when it is done
//!   (behind the API's keys);
//! - `GET /api/v2/packages` (public); installing or removing a package
//!   answers 400 saying so: every language is built into the runner images.
//!
//! Errors keep Piston's shape: `{"message": "..."}`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use uuid::Uuid;

use crate::compat::piston::{self, Constraints, ExecuteParams, Translated};
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::{AnyJson, ApiError, PistonError};
use crate::http::request::{self, FileRequest, JobRequest, LimitsRequest};
use crate::queue::PublicState;

/// `{"message": message}` with `status`, as Piston answers an error.
fn message(status: StatusCode, message: impl Into<String>) -> PistonError {
    PistonError(ApiError::new(status, message))
}

/// `GET /api/v2/runtimes` (Piston).
#[utoipa::path(get, path = "/api/v2/runtimes", tag = "piston",
    responses(
        (status = 200, description = "`[{\"language\", \"version\", \"aliases\"}]`", body = AnyJson),
        (status = 503, description = "Redis unavailable", body = AnyJson),
    ))]
pub async fn runtimes(State(state): State<AppState>) -> Result<Response, PistonError> {
    let versions = state.queue.language_versions().await?;
    Ok(Json(piston::runtimes(&state.languages, &versions)).into_response())
}

/// `GET /api/v2/packages`: each language, `installed` once a live worker
/// has its image.
#[utoipa::path(get, path = "/api/v2/packages", tag = "piston",
    responses(
        (status = 200, description = "`[{\"language\", \"language_version\", \"installed\"}]`", body = AnyJson),
        (status = 503, description = "Redis unavailable", body = AnyJson),
    ))]
pub async fn packages(State(state): State<AppState>) -> Result<Response, PistonError> {
    let versions = state.queue.language_versions().await?;
    let workers = state.queue.live_workers(crate::job::now_ms()).await?;
    let ready = |l: &crate::language::Language| {
        workers.iter().any(|w| !w.missing_languages.contains(&l.id))
    };
    Ok(Json(piston::packages(&state.languages, &versions, ready)).into_response())
}

/// `POST` or `DELETE /api/v2/packages`: not offered here.
#[utoipa::path(post, path = "/api/v2/packages", tag = "piston",
    responses((status = 400, description = "Not offered: `{\"message\"}`", body = AnyJson)))]
pub async fn manage_packages() -> PistonError {
    refuse_package_change()
}

/// `DELETE /api/v2/packages`: not offered here.
#[utoipa::path(delete, path = "/api/v2/packages", tag = "piston",
    responses((status = 400, description = "Not offered: `{\"message\"}`", body = AnyJson)))]
pub async fn remove_packages() -> PistonError {
    refuse_package_change()
}

fn refuse_package_change() -> PistonError {
    message(
        StatusCode::BAD_REQUEST,
        "packages are not installed through this API: every language is built into the \
         service's runner images (docker/build-images.sh); GET /api/v2/packages lists them",
    )
}

/// The job API's request for a translated execution: files and stdin in
/// base64 (exact bytes).
fn job_request(t: &Translated) -> JobRequest {
    let text = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let limits = &t.limits;
    JobRequest {
        language: t.language.clone(),
        files: Some(
            t.files
                .iter()
                .map(|(name, bytes)| FileRequest {
                    name: name.clone(),
                    content: text(bytes),
                })
                .collect(),
        ),
        stdin: Some(text(t.stdin.as_bytes())),
        args: (!t.args.is_empty()).then(|| t.args.clone()),
        limits: Some(LimitsRequest {
            wall_time_ms: limits.wall_time_ms,
            cpu_time_ms: limits.cpu_time_ms,
            memory_mb: limits.memory_mb,
            processes: None,
            output_bytes: None,
            compile_wall_time_ms: limits.compile_wall_time_ms,
            idle_time_ms: None,
        }),
        base64: Some(true),
        ..JobRequest::default()
    }
}

/// A Piston execution queued as a job.
struct Queued {
    id: Uuid,
    translated: Translated,
    /// Its language compiles (Piston then shows a compile stage).
    compiled: bool,
}

/// Reads a Piston execution (`/execute`'s body, `/connect`'s `init`),
/// translates it, checks it as the job API does and queues it. A refusal
/// carries Piston's status and words.
async fn queue_execution(
    state: &AppState,
    caller: &Caller,
    bytes: &[u8],
    interactive: bool,
) -> Result<Queued, ApiError> {
    let refuse = |text: String| ApiError::new(StatusCode::BAD_REQUEST, text);
    // Piston reads attributes only from an object: anything else gives none.
    let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let bytes: &[u8] = if object { bytes } else { b"{}" };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let params: ExecuteParams = match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(params) => params,
        Err(e) => {
            let path = e.path().to_string();
            return Err(refuse(if e.inner().is_data() && path != "." {
                piston::type_error(&path)
            } else {
                format!("malformed JSON: {}", e.inner())
            }));
        }
    };
    if let Err(e) = deserializer.end() {
        return Err(refuse(format!("malformed JSON: {e}")));
    }
    let versions = state.queue.language_versions().await?;
    let constraints = Constraints::new(&state.intake.max_limits);
    let translated =
        piston::translate(params, &state.languages, &versions, &constraints).map_err(refuse)?;
    let compiled = state
        .languages
        .find(&translated.language)
        .is_some_and(|l| l.compile.is_some());
    // The job API's own checks (names, sizes, arguments, limits).
    let mut request = job_request(&translated);
    request.interactive = Some(interactive);
    let mut spec = request::check(request, &state.request_rules(&versions), "")
        .map_err(|e| refuse(e.message))?
        .spec;
    spec.owner = caller.key.clone();
    spec.trace_id = crate::telemetry::current_trace_id();
    let id = Uuid::new_v4();
    super::super::admission::queue_jobs(state, caller, vec![(id, spec, 0)], "").await?;
    Ok(Queued {
        id,
        translated,
        compiled,
    })
}

/// `POST /api/v2/execute`: the job, run to its end, as Piston answers it.
#[utoipa::path(post, path = "/api/v2/execute", tag = "piston",
    request_body = ExecuteParams,
    responses(
        (status = 200, description = "`{\"language\", \"version\", \"run\", \"compile\"?}`", body = AnyJson),
        (status = 400, description = "A bad request: `{\"message\"}` in Piston's words", body = AnyJson),
        (status = 401, description = "No valid API key", body = AnyJson),
        (status = 408, description = "The body came too slowly", body = AnyJson),
        (status = 413, description = "The body is too large", body = AnyJson),
        (status = 415, description = "Not sent as application/json", body = AnyJson),
        (status = 429, description = "Over the key's rate, or the queue is full", body = AnyJson),
        (status = 500, description = "The service could not run it", body = AnyJson),
        (status = 503, description = "Redis unavailable, or the language not ready", body = AnyJson),
        (status = 504, description = "Not finished within the bounded wait", body = AnyJson),
        (status = 507, description = "Redis is out of memory", body = AnyJson),
    ))]
pub async fn execute(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PistonError> {
    let declared_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/json"));
    let bytes = state
        .intake
        .bodies
        .any(
            &headers,
            body,
            super::super::admission::max_body_bytes(&state),
        )
        .await?;
    // A body that is JSON is read whatever its content type says (Piston's
    // npm client sends its JSON as text/plain); anything else is Piston's 415.
    if !declared_json && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err() {
        return Err(message(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "requests must be of type application/json",
        ));
    }
    let Queued {
        id,
        translated,
        compiled,
    } = match queue_execution(&state, &caller, &bytes, false).await {
        Ok(queued) => queued,
        Err(refused) => return Err(refused.into()),
    };
    // The body's share of the read budget goes back before the wait.
    drop(bytes);
    tracing::Span::current().record("job", tracing::field::display(&id));
    let finished = state
        .queue
        .wait_finished(&state.events, &id, state.intake.max_wait)
        .await?;
    let Some(job) = finished else {
        return Err(message(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the job did not finish within {} s; its result will be at GET /v1/jobs/{id}",
                state.intake.max_wait.as_secs()
            ),
        ));
    };
    match (job.state, &job.result) {
        (PublicState::Completed, Some(result)) => {
            let version = Some(result.version.as_str())
                .filter(|v| !v.is_empty())
                .unwrap_or(&translated.version);
            Ok(Json(piston::response(
                result,
                &translated.piston_language,
                version,
                compiled,
            ))
            .into_response())
        }
        _ => Err(message(
            StatusCode::INTERNAL_SERVER_ERROR,
            job.failed_reason
                .or_else(|| job.result.and_then(|r| r.message))
                .unwrap_or_else(|| "the job did not run".into()),
        )),
    }
}

/// `GET /api/v2/connect`: Piston's interactive execution over a WebSocket.
///
/// The client's first message is `{"type":"init", ...}` with
/// `/api/v2/execute`'s attributes (within 10 s, else close 4001); the
/// server answers `runtime`, then `stage` (`compile`, `run`), `data`
/// (`stream`: `stdout`/`stderr`) as the program prints, and `exit` (`stage`,
/// `code`, `signal`) as each stage ends, and closes with 4999 "Job
/// Completed". The client sends `{"type":"data","stream":"stdin","data"}`
/// and `{"type":"signal","signal":"SIGINT"}`. Errors are an `error`
/// message, then close 4002; Piston's other close codes: 4000 (a second
/// init), 4003 (data before init), 4004 (a stream other than stdin), 4005
/// (a signal not offered: SIGINT, SIGTERM, SIGKILL, SIGHUP, SIGQUIT,
/// SIGUSR1, SIGUSR2).
#[utoipa::path(get, path = "/api/v2/connect", tag = "piston",
    responses(
        (status = 101, description = "WebSocket: Piston's interactive protocol"),
        (status = 400, description = "Not a WebSocket request", body = AnyJson),
        (status = 401, description = "No valid API key", body = AnyJson),
        (status = 426, description = "The connection cannot be upgraded", body = AnyJson),
        (status = 429, description = "Over the key's rate", body = AnyJson),
    ))]
pub async fn connect(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ws: Result<
        axum::extract::ws::WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> Result<Response, PistonError> {
    let ws = ws.map_err(crate::http::live::not_websocket)?;
    Ok(ws
        .max_message_size(crate::http::live::MAX_MESSAGE)
        .on_upgrade(move |socket| piston_session(state, caller, socket)))
}

mod session {
    //! One `/api/v2/connect` session.

    use axum::extract::ws::{CloseFrame, Message, WebSocket};
    use base64::Engine;
    use monitor_protocol::Input;
    use serde_json::{Value, json};

    use super::{Queued, queue_execution};
    use crate::compat::piston;
    use crate::http::AppState;
    use crate::http::auth::Caller;
    use crate::http::live::{
        FIRST_MESSAGE_WAIT, Followed, LiveMessage, send_input, signal_of, start_following,
    };
    use crate::job::Phase;
    use crate::queue::live::complete_utf8_prefix;

    async fn send(socket: &mut WebSocket, message: Value) -> bool {
        socket
            .send(Message::Text(message.to_string().into()))
            .await
            .is_ok()
    }

    async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = socket.send(Message::Close(Some(frame))).await;
    }

    /// Piston's `error` message, then close 4002.
    async fn notify_error(socket: &mut WebSocket, message: &str) {
        send(socket, json!({ "type": "error", "message": message })).await;
        close(socket, 4002, "Notified Error").await;
    }

    /// Text of a base64 chunk, its last incomplete character kept for the
    /// next one.
    fn text_of(data: &str, carry: &mut Vec<u8>) -> String {
        let mut bytes = std::mem::take(carry);
        bytes.extend(
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap_or_default(),
        );
        let keep = complete_utf8_prefix(&bytes);
        *carry = bytes.split_off(keep);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub async fn run(state: AppState, caller: Caller, mut socket: WebSocket) {
        // Wait for `init`; Piston ignores messages of unknown types.
        let deadline = tokio::time::Instant::now() + FIRST_MESSAGE_WAIT;
        let init = loop {
            let message = match tokio::time::timeout_at(deadline, socket.recv()).await {
                Err(_) => return close(&mut socket, 4001, "Initialization Timeout").await,
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return,
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(_))) => continue,
            };
            let Ok(value) = serde_json::from_str::<Value>(message.as_str()) else {
                return notify_error(&mut socket, "malformed JSON").await;
            };
            match value["type"].as_str() {
                Some("init") => break message,
                Some("data" | "signal") => {
                    return close(&mut socket, 4003, "Not yet initialized").await;
                }
                _ => continue,
            }
        };
        let Queued {
            id,
            translated,
            compiled,
        } = match queue_execution(&state, &caller, init.as_bytes(), true).await {
            Ok(queued) => queued,
            Err(e) => return notify_error(&mut socket, &e.message).await,
        };
        let version = translated.version.clone();
        if !send(
            &mut socket,
            json!({ "type": "runtime", "language": translated.piston_language, "version": version }),
        )
        .await
        {
            return;
        }
        let job = Followed {
            id,
            base64: true,
            interactive: true,
        };
        let mut rx = start_following(&state, &caller, job, "0".into());
        let mut stage: Option<&str> = None;
        let mut carry = [Vec::new(), Vec::new()];
        loop {
            tokio::select! {
                next = rx.recv() => {
                    let Some((_, message)) = next else { return };
                    let out = match message {
                        LiveMessage::Phase { phase, .. } => {
                            let next_stage = match phase {
                                Phase::Compiling => "compile",
                                Phase::Running => "run",
                                _ => continue,
                            };
                            if stage == Some(next_stage) {
                                continue;
                            }
                            if stage == Some("compile") {
                                // A run starts only after a compilation that succeeded.
                                let exit = json!({ "type": "exit", "stage": "compile", "code": 0, "signal": null });
                                if !send(&mut socket, exit).await {
                                    return;
                                }
                            }
                            stage = Some(next_stage);
                            vec![json!({ "type": "stage", "stage": next_stage })]
                        }
                        LiveMessage::Stdout { data, .. } => {
                            vec![json!({ "type": "data", "stream": "stdout", "data": text_of(&data, &mut carry[0]) })]
                        }
                        LiveMessage::Stderr { data, .. } => {
                            vec![json!({ "type": "data", "stream": "stderr", "data": text_of(&data, &mut carry[1]) })]
                        }
                        LiveMessage::Reset => {
                            stage = None;
                            continue;
                        }
                        LiveMessage::Result { job } => {
                            let Some(result) = job.result.as_ref() else {
                                let why = job.error.clone().unwrap_or_else(|| "the job did not run".into());
                                return notify_error(&mut socket, &why).await;
                            };
                            let answer = piston::response(result, &translated.piston_language, &version, compiled);
                            let mut out = Vec::new();
                            let last_stage = if answer.get("run").is_some() && stage != Some("compile") {
                                "run"
                            } else {
                                "compile"
                            };
                            if stage.is_none() {
                                out.push(json!({ "type": "stage", "stage": last_stage }));
                            }
                            let figures = &answer[last_stage];
                            out.push(json!({
                                "type": "exit",
                                "stage": last_stage,
                                "code": figures["code"],
                                "signal": figures["signal"],
                            }));
                            for message in out {
                                if !send(&mut socket, message).await {
                                    return;
                                }
                            }
                            return close(&mut socket, 4999, "Job Completed").await;
                        }
                        LiveMessage::Error { message, .. } => {
                            return notify_error(&mut socket, &message).await;
                        }
                        _ => continue,
                    };
                    for message in out {
                        if !send(&mut socket, message).await {
                            return;
                        }
                    }
                }
                incoming = socket.recv() => {
                    let text = match incoming {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                        Some(Ok(_)) => continue,
                    };
                    let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
                        return notify_error(&mut socket, "malformed JSON").await;
                    };
                    let input = match value["type"].as_str() {
                        Some("init") => return close(&mut socket, 4000, "Already Initialized").await,
                        Some("data") => {
                            if value["stream"] != "stdin" {
                                return close(&mut socket, 4004, "Can only write to stdin").await;
                            }
                            Input::Data(value["data"].as_str().unwrap_or_default().as_bytes().to_vec())
                        }
                        Some("signal") => match value["signal"].as_str().map(signal_of) {
                            Some(Ok(n)) => Input::Signal(n),
                            _ => return close(&mut socket, 4005, "Invalid signal").await,
                        },
                        _ => continue,
                    };
                    if let Err(e) = send_input(&state, &job, &input).await {
                        return notify_error(&mut socket, &e.message).await;
                    }
                }
            }
        }
    }
}

async fn piston_session(state: AppState, caller: Caller, socket: axum::extract::ws::WebSocket) {
    session::run(state, caller, socket).await
}
