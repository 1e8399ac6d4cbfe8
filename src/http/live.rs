//! Live runs, in whichever process the client is connected to:
//!
//! - `GET /v1/jobs/{id}/events`: Server-Sent Events: the job's phases,
//!   its output as it is printed, then its result (as `GET /v1/jobs/{id}`
//!   answers it). Each event's `id` is its place in the job's live stream:
//!   a client that reconnects with `Last-Event-ID` goes on from there.
//! - `GET /v1/jobs/{id}/stream`: the same as WebSocket messages, and an
//!   interactive job's input the other way (`stdin`, `eof`, `signal`).
//! - `GET /v1/stream`: a WebSocket whose first message is the job to run
//!   (as `POST /v1/jobs` takes it), then as above.
//! - `POST /v1/jobs/{id}/input`: an interactive job's input over plain
//!   HTTP.
//!
//! Everything comes from Redis (`queue::live`): the worker that runs the
//! job may be another process on another machine. Each follower reads at
//! its client's pace through a bounded channel; a slow client only slows
//! its own reads, never the job.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use monitor_protocol::Input;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody, PathText};
use super::request::JobRequest;
use super::v1::{job_id, not_found, submit, view_of};
use crate::job::Phase;
use crate::queue::live::LiveEvent;
use crate::queue::{JobView, PublicState};

/// How long one read of the live stream waits for an entry.
const READ_BLOCK: Duration = Duration::from_millis(1000);
/// How often a follower renews its client's presence (interactive jobs).
const PRESENCE_EVERY: Duration = Duration::from_secs(2);
/// How long the result is waited for once the run ended.
const RESULT_WAIT: Duration = Duration::from_secs(15);
/// Messages waiting for a slow client at most (then reading waits).
const FOLLOW_BUFFER: usize = 64;
/// How long a `/v1/stream` client has to send its job.
pub(crate) const FIRST_MESSAGE_WAIT: Duration = Duration::from_secs(10);
/// The largest WebSocket message a client may send.
pub(crate) const MAX_MESSAGE: usize = 256 * 1024;

/// One message to a client, as SSE data or a WebSocket text message
/// (`type` is also the SSE event's name).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveMessage {
    /// The job was queued (`/v1/stream`).
    Created { id: String },
    /// Where the job is when the client connects.
    State { state: PublicState },
    /// It reached a phase (`compiling`, `running`, …); `case` counts runs
    /// from 0.
    Phase { phase: Phase, case: usize },
    /// A chunk of its stdout, in the job's encoding (`utf8` text, or
    /// `base64`); `step` is `compile` or `run`.
    Stdout {
        data: String,
        step: String,
        case: usize,
    },
    Stderr {
        data: String,
        step: String,
        case: usize,
    },
    /// This many bytes were not streamed (the result has them).
    Gap { bytes: u64 },
    /// The attempt ended without a result: the job runs again from the
    /// start (what was streamed so far is void).
    Reset,
    /// The job ended: as `GET /v1/jobs/{id}` answers it. Last.
    Result { job: Box<JobView> },
    /// Something went wrong with this connection (not the job).
    Error {
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<String>,
    },
}

impl LiveMessage {
    fn error(e: &ApiError) -> LiveMessage {
        LiveMessage::Error {
            message: e.message.clone(),
            field: e.field.clone(),
        }
    }
}

/// What a follower needs to know of its job.
#[derive(Clone, Copy)]
pub(crate) struct Followed {
    pub id: Uuid,
    pub base64: bool,
    pub interactive: bool,
}

pub(crate) async fn followed(
    state: &AppState,
    caller: &Caller,
    id: &Uuid,
) -> Result<Followed, ApiError> {
    let Some(loaded) = super::jobs::load(state, Some(caller), id).await? else {
        return Err(not_found(id));
    };
    let spec = loaded.job.spec.as_ref();
    Ok(Followed {
        id: *id,
        base64: spec.is_some_and(|s| s.base64),
        interactive: spec.is_some_and(|s| s.interactive),
    })
}

/// Follows a job for a client: where it is, what its live stream holds
/// after `after` (all of it from `"0"`), the rest as it comes, then its
/// result. Ends when the client goes (`tx` closed).
async fn follow(
    state: AppState,
    caller: Caller,
    job: Followed,
    mut after: String,
    tx: mpsc::Sender<(Option<String>, LiveMessage)>,
) {
    let key = job.id.to_string();
    let send = |message: LiveMessage, id: Option<String>| {
        let tx = tx.clone();
        async move { tx.send((id, message)).await.is_ok() }
    };
    let mut reader = match state.queue.live_reader().await {
        Ok(reader) => reader,
        Err(e) => {
            send(LiveMessage::error(&e.into()), None).await;
            return;
        }
    };
    match view_of(&state, &caller, &job.id).await {
        Ok(view) => {
            if !send(LiveMessage::State { state: view.state }, None).await {
                return;
            }
        }
        Err(e) => {
            send(LiveMessage::error(&e), None).await;
            return;
        }
    }
    let mut presence_at: Option<tokio::time::Instant> = None;
    loop {
        if tx.is_closed() {
            return;
        }
        if job.interactive && presence_at.is_none_or(|at| at.elapsed() >= PRESENCE_EVERY) {
            let _ = state.queue.mark_client(&key).await;
            presence_at = Some(tokio::time::Instant::now());
        }
        let entries = match reader.read(&key, &after, READ_BLOCK).await {
            Ok(entries) => entries,
            Err(e) => {
                tracing::debug!(error = %e, "reading a job's live stream");
                tokio::time::sleep(READ_BLOCK).await;
                Vec::new()
            }
        };
        let mut ended = false;
        for (entry_id, event) in &entries {
            after = entry_id.clone();
            let message = match event {
                LiveEvent::Phase { phase, case } => LiveMessage::Phase {
                    phase: *phase,
                    case: *case,
                },
                LiveEvent::Output {
                    stderr,
                    compile,
                    case,
                    data,
                } => {
                    let data = if job.base64 {
                        base64::engine::general_purpose::STANDARD.encode(data)
                    } else {
                        String::from_utf8_lossy(data).into_owned()
                    };
                    let step = if *compile { "compile" } else { "run" }.to_string();
                    let case = *case;
                    if *stderr {
                        LiveMessage::Stderr { data, step, case }
                    } else {
                        LiveMessage::Stdout { data, step, case }
                    }
                }
                LiveEvent::Gap { bytes } => LiveMessage::Gap { bytes: *bytes },
                LiveEvent::Reset => LiveMessage::Reset,
                LiveEvent::End => {
                    ended = true;
                    break;
                }
            };
            if !send(message, Some(entry_id.clone())).await {
                return;
            }
        }
        // The run ended, or the job ended without one (cancelled while it
        // waited, failed, or its live stream already expired).
        let view = if ended {
            let _ = state
                .queue
                .wait_finished(&state.events, &job.id, RESULT_WAIT)
                .await;
            view_of(&state, &caller, &job.id).await
        } else if entries.is_empty() {
            view_of(&state, &caller, &job.id).await
        } else {
            continue;
        };
        match view {
            Ok(view) if view.state.has_ended() => {
                send(
                    LiveMessage::Result {
                        job: Box::new(view),
                    },
                    None,
                )
                .await;
                return;
            }
            Ok(_) => {}
            Err(e) => {
                send(LiveMessage::error(&e), None).await;
                return;
            }
        }
    }
}

pub(crate) fn start_following(
    state: &AppState,
    caller: &Caller,
    job: Followed,
    after: String,
) -> mpsc::Receiver<(Option<String>, LiveMessage)> {
    let (tx, rx) = mpsc::channel(FOLLOW_BUFFER);
    tokio::spawn(follow(state.clone(), caller.clone(), job, after, tx));
    rx
}

/// A job's phases, output and result as Server-Sent Events.
///
/// Events (each event's name is its `type`): `state`, then `phase`,
/// `stdout`, `stderr` (in the job's encoding), `gap`, `reset`, and last
/// `result` (the job as `GET /v1/jobs/{id}` answers it). A client that
/// connects late gets everything printed so far first; `Last-Event-ID`
/// resumes after an event.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs",
    params(("id" = String, Path, description = "The job's id"),
           ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    responses(
        (status = 200, description = "`text/event-stream` of `LiveMessage`s", body = LiveMessage, content_type = "text/event-stream"),
        (status = 400, description = "Not a job id", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 404, description = "No such job (or another key's)", body = ErrorBody),
        (status = 429, description = "Over the key's rate", body = ErrorBody),
        (status = 503, description = "Redis unavailable", body = ErrorBody),
    ))]
pub async fn events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathText(id, _): PathText<ApiError>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    let job = followed(&state, &caller, &id).await?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_entry_id(v))
        .unwrap_or("0")
        .to_string();
    let rx = start_following(&state, &caller, job, after);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let (id, message) = rx.recv().await?;
        // The event's name is the message's `type`.
        let json = serde_json::to_value(&message).unwrap_or_default();
        let mut event = Event::default().event(json["type"].as_str().unwrap_or("error"));
        if let Some(id) = id {
            event = event.id(id);
        }
        let event = event
            .json_data(&json)
            .unwrap_or_else(|_| Event::default().event("error"));
        Some((Ok::<_, Infallible>(event), rx))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// A Redis stream entry id (`<ms>-<seq>`).
fn is_entry_id(text: &str) -> bool {
    text.split_once('-').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.len() <= 20
            && b.len() <= 20
            && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
    })
}

/// A job's phases, output and result over a WebSocket, and an interactive
/// job's input the other way.
///
/// Server messages are the `LiveMessage`s of `/v1/jobs/{id}/events` as JSON
/// text; the socket closes after `result`. Client messages (interactive
/// jobs): `{"type":"stdin","data":"..."}` (base64 for a base64 job),
/// `{"type":"eof"}`, `{"type":"signal","signal":"SIGINT"}` (SIGINT,
/// SIGTERM, SIGKILL, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2).
#[utoipa::path(get, path = "/v1/jobs/{id}/stream", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 101, description = "WebSocket of `LiveMessage`s"),
        (status = 400, description = "Not a job id, or not a WebSocket request (`field`: `upgrade`)", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 404, description = "No such job (or another key's)", body = ErrorBody),
        (status = 426, description = "The connection cannot be upgraded", body = ErrorBody),
        (status = 429, description = "Over the key's rate", body = ErrorBody),
        (status = 503, description = "Redis unavailable", body = ErrorBody),
    ))]
pub async fn stream(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathText(id, _): PathText<ApiError>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    let ws = ws.map_err(not_websocket)?;
    let job = followed(&state, &caller, &id).await?;
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| session(state, caller, job, socket)))
}

/// A WebSocket whose first message is the job to run.
///
/// The first client message is a job as `POST /v1/jobs` takes it; the
/// server answers `{"type":"created","id":...}` (or `error` with the field
/// and closes), then as `/v1/jobs/{id}/stream`.
#[utoipa::path(get, path = "/v1/stream", tag = "jobs",
    responses(
        (status = 101, description = "WebSocket: the job in, `LiveMessage`s out"),
        (status = 400, description = "Not a WebSocket request (`field`: `upgrade`)", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 426, description = "The connection cannot be upgraded", body = ErrorBody),
        (status = 429, description = "Over the key's rate", body = ErrorBody),
    ))]
pub async fn stream_new(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws = ws.map_err(not_websocket)?;
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .on_upgrade(move |mut socket| async move {
            let first = tokio::time::timeout(FIRST_MESSAGE_WAIT, socket.recv()).await;
            let submitted = match first {
                Ok(Some(Ok(Message::Text(text)))) => {
                    match serde_json::from_str::<JobRequest>(text.as_str()) {
                        Ok(request) => submit(&state, &caller, request).await,
                        Err(e) => Err(ApiError::bad_field(
                            "job",
                            format!("the first message must be a job: {e}"),
                        )),
                    }
                }
                Ok(_) => return,
                Err(_) => Err(ApiError::bad_field("job", "no job within 10 s")),
            };
            let job = match submitted {
                Ok((id, _)) => followed(&state, &caller, &id).await.map(|job| (id, job)),
                Err(e) => Err(e),
            };
            match job {
                Ok((id, job)) => {
                    let created = LiveMessage::Created { id: id.to_string() };
                    if send_json(&mut socket, &created).await {
                        session(state, caller, job, socket).await;
                    }
                }
                Err(e) => {
                    let _ = send_json(&mut socket, &LiveMessage::error(&e)).await;
                    let _ = socket.send(Message::Close(None)).await;
                }
            }
        }))
}

/// A plain request where a WebSocket was expected, said in JSON.
pub(crate) fn not_websocket(rejection: WebSocketUpgradeRejection) -> ApiError {
    ApiError::new(
        rejection.status(),
        format!("a WebSocket request is expected here: {rejection}"),
    )
    .with_field("upgrade")
}

async fn send_json(socket: &mut WebSocket, message: &LiveMessage) -> bool {
    let text = serde_json::to_string(message).unwrap_or_default();
    socket.send(Message::Text(text.into())).await.is_ok()
}

/// What a WebSocket client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    Stdin { data: String },
    Eof,
    Signal { signal: String },
}

/// One WebSocket session on a job: its messages out, input in.
async fn session(state: AppState, caller: Caller, job: Followed, socket: WebSocket) {
    let (mut sink, mut incoming) = socket.split();
    let mut rx = start_following(&state, &caller, job, "0".into());
    loop {
        tokio::select! {
            next = rx.recv() => {
                let Some((_, message)) = next else { break };
                let last = matches!(message, LiveMessage::Result { .. });
                let text = serde_json::to_string(&message).unwrap_or_default();
                if sink.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
                if last {
                    break;
                }
            }
            message = incoming.next() => {
                let input = match message {
                    Some(Ok(Message::Text(text))) => {
                        match serde_json::from_str::<ClientMessage>(text.as_str()) {
                            Ok(message) => input_of(message, job.base64),
                            Err(e) => Err(ApiError::bad_field(
                                "type",
                                format!("not a stdin, eof or signal message: {e}"),
                            )),
                        }
                    }
                    Some(Ok(Message::Binary(bytes))) => Ok(Input::Data(bytes.to_vec())),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let sent = match input {
                    Ok(input) => send_input(&state, &job, &input).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = sent {
                    let text = serde_json::to_string(&LiveMessage::error(&e)).unwrap_or_default();
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
    let _ = sink.send(Message::Close(None)).await;
}

/// A client's message as the run's input.
fn input_of(message: ClientMessage, base64: bool) -> Result<Input, ApiError> {
    Ok(match message {
        ClientMessage::Stdin { data } => Input::Data(if base64 {
            base64::engine::general_purpose::STANDARD
                .decode(&data)
                .map_err(|_| ApiError::bad_field("data", "data must be base64 (a base64 job)"))?
        } else {
            data.into_bytes()
        }),
        ClientMessage::Eof => Input::Close,
        ClientMessage::Signal { signal } => Input::Signal(signal_of(&signal)?),
    })
}

/// A signal a client may send, by name (`SIGINT` or `INT`).
pub(crate) fn signal_of(name: &str) -> Result<i32, ApiError> {
    let full = if name.starts_with("SIG") {
        name.to_string()
    } else {
        format!("SIG{name}")
    };
    monitor_protocol::signal_number(&full)
        .filter(|n| monitor_protocol::INPUT_SIGNALS.contains(n))
        .ok_or_else(|| {
            ApiError::bad_field(
                "signal",
                "signal must be one of SIGINT, SIGTERM, SIGKILL, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2",
            )
        })
}

/// Adds `input` to an interactive job's input stream.
pub(crate) async fn send_input(
    state: &AppState,
    job: &Followed,
    input: &Input,
) -> Result<(), ApiError> {
    if !job.interactive {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the job is not interactive: its stdin was given when it was submitted",
        )
        .with_field("interactive"));
    }
    let max = state.intake.max_code_bytes as u64;
    if !state
        .queue
        .send_input(&job.id.to_string(), input, max)
        .await?
    {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("an interactive job takes at most {max} bytes of input in all"),
        )
        .with_field("data"));
    }
    Ok(())
}

/// Input for an interactive job over HTTP.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputRequest {
    /// Bytes for its stdin (base64 for a base64 job).
    #[serde(default)]
    pub data: Option<String>,
    /// Then end its stdin.
    #[serde(default)]
    pub eof: bool,
    /// Then send its processes this signal (`SIGINT`, `SIGTERM`, …).
    #[serde(default)]
    pub signal: Option<String>,
}

/// Send an interactive job's input (and its end, or a signal).
#[utoipa::path(post, path = "/v1/jobs/{id}/input", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    request_body = InputRequest,
    responses(
        (status = 202, description = "Queued for the program, in order", body = InputAccepted),
        (status = 400, description = "A bad field; `field` names it", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 404, description = "No such job (or another key's)", body = ErrorBody),
        (status = 408, description = "The body came too slowly", body = ErrorBody),
        (status = 409, description = "The job is not interactive, or has ended", body = ErrorBody),
        (status = 413, description = "Past the job's input budget, or the body is too large", body = ErrorBody),
        (status = 415, description = "Not sent as application/json", body = ErrorBody),
        (status = 429, description = "Over the key's rate", body = ErrorBody),
        (status = 503, description = "Redis unavailable", body = ErrorBody),
    ))]
pub async fn input(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathText(id, _): PathText<ApiError>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    let request: InputRequest = state
        .intake
        .bodies
        .read_json(&headers, body, super::admission::max_body_bytes(&state))
        .await?;
    let job = followed(&state, &caller, &id).await?;
    let mut inputs = Vec::new();
    if let Some(data) = request.data {
        inputs.push(input_of(ClientMessage::Stdin { data }, job.base64)?);
    }
    if request.eof {
        inputs.push(Input::Close);
    }
    if let Some(signal) = request.signal {
        inputs.push(Input::Signal(signal_of(&signal)?));
    }
    if inputs.is_empty() {
        return Err(ApiError::bad_field(
            "data",
            "give data, eof or signal (or several)",
        ));
    }
    let view = view_of(&state, &caller, &id).await?;
    if view.state.has_ended() {
        return Err(ApiError::new(StatusCode::CONFLICT, "the job has ended").with_field("id"));
    }
    for input in &inputs {
        send_input(&state, &job, input).await?;
    }
    // Presence: a client that sends input is there.
    let _ = state.queue.mark_client(&id.to_string()).await;
    Ok((
        StatusCode::ACCEPTED,
        Json(InputAccepted {
            accepted: inputs.len(),
        }),
    )
        .into_response())
}

/// Input queued for an interactive job's program.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InputAccepted {
    /// How many inputs (data, end, signal) were queued, in that order.
    pub accepted: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_named_either_way_and_only_the_allowed_ones() {
        assert_eq!(signal_of("SIGINT").unwrap(), 2);
        assert_eq!(signal_of("TERM").unwrap(), 15);
        assert_eq!(signal_of("SIGKILL").unwrap(), 9);
        for bad in ["SIGSEGV", "SIGSTOP", "9", "", "sigint"] {
            assert!(signal_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_stream_entry_ids_resume() {
        assert!(is_entry_id("1700000000000-0"));
        for bad in ["0", "-", "1-", "a-1", "1-2-3", "$"] {
            assert!(!is_entry_id(bad), "{bad}");
        }
    }
}
