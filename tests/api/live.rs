//! Live runs: output streamed as it is printed (SSE and WebSocket), stdin
//! typed while the program runs, across an API process and a separate
//! worker process that meet only in Redis.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::TestService;

/// An API process and a worker process on the same queue.
struct Split {
    api: TestService,
    worker: code_runner::app::App,
}

impl Split {
    async fn start(adjust: impl Fn(&mut code_runner::config::Config)) -> Split {
        let api = TestService::start_role(code_runner::app::Role::Api, &adjust).await;
        let mut config = api.config.clone();
        config.data_dir =
            std::env::temp_dir().join(format!("code-runner-{}-worker", config.queue_name));
        adjust(&mut config);
        let worker = code_runner::app::App::start(code_runner::app::Role::Worker, config)
            .await
            .expect("worker starts");
        Split { api, worker }
    }

    async fn stop(self) {
        self.worker.shutdown().await;
        self.api.stop().await;
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
struct Sse {
    event: String,
    id: Option<String>,
    data: Value,
}

/// Reads a job's events until `result` (or `until` says stop), calling
/// `on_event` as each arrives.
async fn read_events(
    service: &TestService,
    id: &str,
    last_event_id: Option<&str>,
    mut on_event: impl AsyncFnMut(&Sse),
) -> Vec<Sse> {
    let mut request = service
        .client
        .get(format!("{}/v1/jobs/{id}/events", service.url));
    if let Some(last) = last_event_id {
        request = request.header("last-event-id", last);
    }
    let mut response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut buffer: Vec<u8> = Vec::new();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline.into(), response.chunk()).await
    {
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buffer.drain(..end + 2).collect();
            let block = String::from_utf8(block).unwrap();
            let mut event = Sse {
                event: "message".into(),
                id: None,
                data: Value::Null,
            };
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event.event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("id:") {
                    event.id = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if data.is_empty() {
                continue; // a keep-alive comment
            }
            event.data = serde_json::from_str(&data).unwrap();
            on_event(&event).await;
            let last = event.event == "result";
            events.push(event);
            if last {
                return events;
            }
        }
    }
    panic!("no result event: {events:?}");
}

fn stdout_of(events: &[Sse]) -> String {
    events
        .iter()
        .filter(|e| e.event == "stdout")
        .map(|e| e.data["data"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn output_streams_as_it_is_printed_then_the_result_even_to_a_late_client() {
    let split = Split::start(|_| {}).await;
    let api = &split.api;
    let id = api
        .submit_v1(json!({
            "language": "python",
            "code": "import sys, time\nfor i in range(5):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.4)\nprint('é€😀', end='', flush=True)\nsys.stderr.write('warn\\n')",
        }))
        .await;
    let mut active_when_first_printed = None;
    let events = read_events(api, &id, None, async |event: &Sse| {
        if event.event == "stdout" && active_when_first_printed.is_none() {
            let (_, view) = api.get(&format!("/v1/jobs/{id}")).await;
            active_when_first_printed = Some(view["state"].clone());
        }
    })
    .await;
    // The first chunk arrived while the program was still running.
    assert_eq!(
        active_when_first_printed,
        Some(json!("active")),
        "{events:?}"
    );
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names[0], "state", "{names:?}");
    assert!(names.contains(&"phase"), "{names:?}");
    let running = events
        .iter()
        .position(|e| e.event == "phase" && e.data["phase"] == "running")
        .expect("a running phase");
    let first_out = names.iter().position(|n| *n == "stdout").unwrap();
    assert!(running < first_out, "{names:?}");
    assert!(
        names.iter().filter(|n| **n == "stdout").count() >= 5,
        "printed in one chunk: {names:?}"
    );
    assert_eq!(
        stdout_of(&events),
        "tick 0\ntick 1\ntick 2\ntick 3\ntick 4\né€😀"
    );
    let stderr: Vec<&Sse> = events.iter().filter(|e| e.event == "stderr").collect();
    assert_eq!(stderr[0].data["data"], "warn\n");
    assert_eq!(stderr[0].data["step"], "run");
    assert_eq!(stderr[0].data["case"], 0);
    // Last, the job as GET answers it.
    let result = events.last().unwrap();
    let (_, view) = api.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(result.data["job"], view);
    assert_eq!(view["result"]["verdict"], "accepted");

    // A client that connects after the end gets everything printed, then
    // the result; one that resumes after an event gets only what followed.
    let late = read_events(api, &id, None, async |_: &Sse| {}).await;
    assert_eq!(stdout_of(&late), stdout_of(&events));
    assert_eq!(late.last().unwrap().data["job"], view);
    let outputs: Vec<Sse> = late
        .iter()
        .filter(|e| e.event == "stdout")
        .cloned()
        .collect();
    let third = &outputs[2];
    let resumed = read_events(api, &id, third.id.as_deref(), async |_: &Sse| {}).await;
    assert_eq!(
        stdout_of(&resumed),
        stdout_of(&outputs[3..]),
        "resumed after {third:?}: {late:?}"
    );
    assert!(
        resumed
            .iter()
            .all(|e| e.event != "stdout" || e.id > third.id)
    );
    split.stop().await;
}

async fn ws_connect(
    service: &TestService,
    path: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!("{}{path}", service.url.replacen("http", "ws", 1));
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    socket
}

/// The next JSON message, skipping none.
async fn next_json<S>(socket: &mut S) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(60), socket.next())
            .await
            .expect("a message within a minute")
            .expect("the socket is open")
            .unwrap();
        match message {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Close(_) => panic!("closed"),
            _ => continue,
        }
    }
}

/// Collects stdout messages until `want` has been printed; the messages seen.
async fn until_printed<S>(socket: &mut S, printed: &mut String, want: &str) -> Vec<Value>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut seen = Vec::new();
    while !printed.contains(want) {
        let message = next_json(socket).await;
        assert_ne!(
            message["type"], "result",
            "ended before {want:?}: {printed}"
        );
        if message["type"] == "stdout" {
            printed.push_str(message["data"].as_str().unwrap());
        }
        seen.push(message);
    }
    seen
}

const GREETER: &str = "name = input('name? ')\nprint(f'Hello, {name}!', flush=True)\nwhile True:\n    try:\n        line = input()\n    except EOFError:\n        break\n    print(f'echo {line}', flush=True)\nprint('bye')";

#[tokio::test]
async fn an_interactive_program_is_driven_over_a_websocket_opened_with_its_job() {
    let split = Split::start(|_| {}).await;
    let mut socket = ws_connect(&split.api, "/v1/stream").await;
    socket
        .send(Message::Text(
            json!({ "language": "python", "code": GREETER, "interactive": true })
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let created = next_json(&mut socket).await;
    assert_eq!(created["type"], "created", "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let mut printed = String::new();
    until_printed(&mut socket, &mut printed, "name? ").await;
    socket
        .send(Message::Text(
            json!({"type": "stdin", "data": "Ada\n"}).to_string().into(),
        ))
        .await
        .unwrap();
    until_printed(&mut socket, &mut printed, "Hello, Ada!\n").await;
    for i in 0..3 {
        socket
            .send(Message::Text(
                json!({"type": "stdin", "data": format!("line {i}\n")})
                    .to_string()
                    .into(),
            ))
            .await
            .unwrap();
        until_printed(&mut socket, &mut printed, &format!("echo line {i}\n")).await;
    }
    // Bad messages are answered, and the session goes on.
    socket
        .send(Message::Text(
            json!({"type": "signal", "signal": "SIGSEGV"})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let refused = next_json(&mut socket).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["field"], "signal");
    socket
        .send(Message::Text(json!({"type": "eof"}).to_string().into()))
        .await
        .unwrap();
    let result = loop {
        let message = next_json(&mut socket).await;
        if message["type"] == "stdout" {
            printed.push_str(message["data"].as_str().unwrap());
        }
        if message["type"] == "result" {
            break message;
        }
    };
    assert_eq!(
        printed,
        "name? Hello, Ada!\necho line 0\necho line 1\necho line 2\nbye\n"
    );
    let job = &result["job"];
    assert_eq!(job["id"], id);
    assert_eq!(job["result"]["verdict"], "accepted", "{job}");
    assert_eq!(job["result"]["stdout"], printed.as_str());
    // The server closes the socket after the result.
    let closed = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap();
    assert!(
        matches!(closed, None | Some(Ok(Message::Close(_))) | Some(Err(_))),
        "{closed:?}"
    );
    split.stop().await;
}

#[tokio::test]
async fn interactive_runs_end_when_idle_signalled_or_left_alone() {
    let split = Split::start(|c| c.interactive_grace_ms = 1_500).await;
    let api = &split.api;
    let post_input = async |id: &str, body: Value| -> (u16, Value) {
        let response = api
            .client
            .post(format!("{}/v1/jobs/{id}/input", api.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    };

    // Idle: a client is connected but sends nothing, and nothing is printed.
    let idle = api
        .submit_v1(
            json!({ "language": "python", "code": "input()", "interactive": true,
                           "limits": { "idle_time_ms": 800 } }),
        )
        .await;
    let events = read_events(api, &idle, None, async |_: &Sse| {}).await;
    let result = &events.last().unwrap().data["job"]["result"];
    assert_eq!(result["verdict"], "time_limit_exceeded", "{result}");
    assert_eq!(result["time_limit"], "idle", "{result}");
    assert!(
        result["message"].as_str().unwrap().contains("idle"),
        "{result}"
    );

    // A signal over plain HTTP, after input the program read.
    let signalled = api
        .submit_v1(json!({ "language": "python", "interactive": true,
            "code": "import time\nprint(input(), flush=True)\nwhile True:\n    time.sleep(0.05)" }))
        .await;
    let (status, answer) = post_input(&signalled, json!({ "data": "go\n" })).await;
    assert_eq!(status, 202, "{answer}");
    let mut interrupted = false;
    let events = read_events(api, &signalled, None, async |event: &Sse| {
        if event.event == "stdout" && !interrupted {
            interrupted = true;
            let (status, answer) = post_input(&signalled, json!({ "signal": "SIGINT" })).await;
            assert_eq!(status, 202, "{answer}");
        }
    })
    .await;
    let result = &events.last().unwrap().data["job"]["result"];
    assert_eq!(stdout_of(&events), "go\n");
    assert_eq!(result["verdict"], "runtime_error", "{result}");
    assert!(
        result["stderr"]
            .as_str()
            .unwrap()
            .contains("KeyboardInterrupt"),
        "{result}"
    );

    // No client at all: it ends after the grace, saying why.
    let alone = api
        .submit_v1(json!({ "language": "python", "code": "input()", "interactive": true }))
        .await;
    let view = api
        .wait_v1(&alone, &["completed"], Duration::from_secs(60))
        .await;
    let result = &view["result"];
    assert_eq!(result["verdict"], "time_limit_exceeded", "{result}");
    assert!(
        result["message"].as_str().unwrap().contains("no client"),
        "{result}"
    );

    // Input after the end, or to a job that is not interactive: 409.
    let (status, answer) = post_input(&alone, json!({ "data": "late\n" })).await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (409, Some("id")),
        "{answer}"
    );
    let batch = api
        .submit_v1(json!({ "language": "python", "code": "import time\ntime.sleep(5)" }))
        .await;
    let (status, answer) = post_input(&batch, json!({ "data": "x" })).await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (409, Some("interactive")),
        "{answer}"
    );
    split.stop().await;
}

#[tokio::test]
async fn bad_live_requests_get_json_errors_naming_the_field() {
    let service = TestService::start().await;
    // An interactive job has one run.
    let response = service
        .client
        .post(format!("{}/v1/jobs", service.url))
        .json(
            &json!({ "language": "python", "code": "x", "interactive": true,
                       "test_cases": [{ "stdin": "1" }] }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["field"], "interactive", "{body}");
    let response = service
        .client
        .post(format!("{}/v1/jobs", service.url))
        .json(
            &json!({ "language": "python", "code": "x", "interactive": true,
                       "limits": { "idle_time_ms": 0 } }),
        )
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["field"], "limits.idle_time_ms", "{body}");

    // A stream path asked without a WebSocket upgrade.
    let id = service
        .submit_v1(json!({ "language": "python", "code": "print(1)" }))
        .await;
    for path in [format!("/v1/jobs/{id}/stream"), "/v1/stream".to_string()] {
        let (status, body) = service.get(&path).await;
        assert!((400..500).contains(&status), "{path}: {status}");
        assert_eq!(body["field"], "upgrade", "{path}: {body}");
    }
    // Unknown and malformed ids.
    let (status, body) = service
        .get(&format!("/v1/jobs/{}/events", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (404, Some("id")),
        "{body}"
    );
    let (status, body) = service.get("/v1/jobs/not-a-job/events").await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("id")),
        "{body}"
    );
    // Bad input bodies.
    for (body, field) in [
        (json!({}), "data"),
        (json!({ "signal": "SIGSTOP" }), "signal"),
        (json!({ "data": 5 }), "data"),
    ] {
        let response = service
            .client
            .post(format!("{}/v1/jobs/{id}/input", service.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["field"], field, "{body}: {answer}");
    }
    // A WebSocket session whose first message is not a job.
    let mut socket = ws_connect(&service, "/v1/stream").await;
    socket
        .send(Message::Text(json!({ "language": 5 }).to_string().into()))
        .await
        .unwrap();
    let error = next_json(&mut socket).await;
    assert_eq!(error["type"], "error", "{error}");
    assert!(error["field"].is_string(), "{error}");
    service
        .wait_v1(&id, &["completed"], Duration::from_secs(30))
        .await;
    service.stop().await;
}

/// A client that does not read never holds the program or the worker up:
/// the job ends while its events wait unread, all of them still readable
/// after (or a `gap` saying how much was not streamed), and the WebSocket
/// follower of a job gets the same.
#[tokio::test]
async fn a_client_that_does_not_read_slows_nothing() {
    let split = Split::start(|_| {}).await;
    let api = &split.api;
    let id = api
        .submit_v1(json!({ "language": "python", "limits": { "output_bytes": 1_000_000 },
            "code": "import sys\nfor i in range(30000):\n    sys.stdout.write(f'{i:09d}\\n'[:10] * 4)\n    sys.stdout.flush()" }))
        .await;
    // Open the event stream, take its head, and read nothing more.
    let mut stalled = api
        .client
        .get(format!("{}/v1/jobs/{id}/events", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(stalled.status(), 200);
    let view = api
        .wait_v1(&id, &["completed"], Duration::from_secs(60))
        .await;
    assert_eq!(view["result"]["verdict"], "output_limit_exceeded", "{view}");
    let stored = view["result"]["stdout"].as_str().unwrap().len();
    // Now read it all: everything printed arrives (or is said to be missing).
    let mut buffer = Vec::new();
    while let Ok(Ok(Some(chunk))) =
        tokio::time::timeout(Duration::from_secs(60), stalled.chunk()).await
    {
        // The stream ends after the result.
        buffer.extend_from_slice(&chunk);
    }
    assert!(
        buffer.windows(13).any(|w| w == b"event: result"),
        "no result"
    );
    let text = String::from_utf8(buffer).unwrap();
    let mut streamed = 0;
    let mut missing = 0;
    for block in text.split("\n\n") {
        let data: String = block
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim_start)
            .collect();
        if data.is_empty() {
            continue;
        }
        let message: Value = serde_json::from_str(&data).unwrap();
        match message["type"].as_str().unwrap() {
            "stdout" => streamed += message["data"].as_str().unwrap().len(),
            "gap" => missing += message["bytes"].as_u64().unwrap() as usize,
            _ => {}
        }
    }
    assert_eq!(
        streamed + missing,
        stored,
        "streamed {streamed}, gaps {missing}"
    );

    // The WebSocket follower of the same (finished) job: its output, then
    // the result.
    let mut socket = ws_connect(api, &format!("/v1/jobs/{id}/stream")).await;
    let mut printed = 0;
    loop {
        let message = next_json(&mut socket).await;
        match message["type"].as_str().unwrap() {
            "stdout" => printed += message["data"].as_str().unwrap().len(),
            "result" => {
                assert_eq!(message["job"], view);
                break;
            }
            _ => {}
        }
    }
    assert!(printed <= stored && printed > 0, "{printed} of {stored}");
    split.stop().await;
}
