//! Piston's API v2, driven as its documentation and its clients drive it:
//! the documented execute request and answer, runtimes, packages, file
//! encodings, version selectors, every stage's status, and Piston's errors.
//! Real jobs in real containers.

use axum::http::Method;
use serde_json::{Value, json};

use crate::helpers::TestService;

async fn execute(service: &TestService, body: Value) -> (u16, Value) {
    service
        .send(Method::POST, "/api/v2/execute", Some(body))
        .await
}

#[tokio::test]
async fn the_documented_execution_runs_and_answers_as_piston_does() {
    let service = TestService::start().await;
    let (status, runtimes) = service.send(Method::GET, "/api/v2/runtimes", None).await;
    assert_eq!(status, 200);
    let node = runtimes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["language"] == "javascript")
        .expect("javascript listed");
    assert!(
        node["aliases"].as_array().unwrap().contains(&json!("js")),
        "{node}"
    );
    let version = node["version"].as_str().unwrap().to_string();
    assert!(
        runtimes
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["language"] == "c++")
    );

    // The documentation's example, with our Node's version.
    let (status, answer) = execute(
        &service,
        json!({
            "language": "js",
            "version": version,
            "files": [{"name": "my_cool_code.js", "content": "console.log(process.argv)"}],
            "stdin": "",
            "args": ["1", "2", "3"],
            "compile_timeout": 10000,
            "run_timeout": 3000,
            "compile_memory_limit": -1,
            "run_memory_limit": -1
        }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["language"], "javascript");
    assert_eq!(answer["version"], version.as_str());
    assert!(
        answer.get("compile").is_none(),
        "no compile stage: {answer}"
    );
    let run = &answer["run"];
    for arg in ["'1'", "'2'", "'3'", "my_cool_code.js"] {
        assert!(run["stdout"].as_str().unwrap().contains(arg), "{run}");
    }
    assert_eq!(run["output"], run["stdout"]);
    assert_eq!(
        (run["code"].as_i64(), &run["signal"]),
        (Some(0), &Value::Null)
    );
    assert_eq!(
        (&run["status"], &run["message"]),
        (&Value::Null, &Value::Null)
    );
    assert!(
        run["wall_time"].is_u64()
            && run["cpu_time"].is_u64()
            && run["memory"].as_u64().unwrap() > 0,
        "{run}"
    );

    // The public instance's paths work too; `*` takes any version.
    let (status, answer) = service
        .send(
            Method::POST,
            "/api/v2/piston/execute",
            Some(json!({"language": "python", "version": "*", "files": [{"content": "print(input()[::-1])"}], "stdin": "olleh"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["run"]["stdout"], "hello\n");

    let (status, packages) = service.send(Method::GET, "/api/v2/packages", None).await;
    assert_eq!(status, 200);
    let python = packages
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["language"] == "python")
        .unwrap();
    assert_eq!(python["installed"], true, "{python}");
    assert!(
        python["language_version"]
            .as_str()
            .unwrap()
            .starts_with("3.11")
    );
    let (status, refused) = service
        .send(
            Method::POST,
            "/api/v2/packages",
            Some(json!({"language": "bash", "version": "5.x"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("not installed through this API")
    );
    service.stop().await;
}

#[tokio::test]
async fn every_stage_outcome_has_pistons_status() {
    let service = TestService::start().await;
    let c = |code: &str| json!({"language": "c", "version": "*", "files": [{"name": "main.c", "content": code}]});
    // Compiled: a compile stage, then the run.
    let (_, ok) = execute(
        &service,
        c("#include <stdio.h>\nint main(void) { puts(\"built\"); return 0; }"),
    )
    .await;
    assert_eq!(ok["compile"]["code"], 0, "{ok}");
    assert_eq!(ok["run"]["stdout"], "built\n");
    // A compilation error: the compiler's words, a run that did not happen.
    let (status, broken) = execute(&service, c("int main(void) { return 0 }")).await;
    assert_eq!(status, 200);
    assert_ne!(broken["compile"]["code"], 0, "{broken}");
    assert!(
        broken["compile"]["stderr"]
            .as_str()
            .unwrap()
            .contains("error"),
        "{broken}"
    );
    assert_eq!(broken["run"]["code"], Value::Null);
    // A non-zero exit, a signal, a timeout.
    let python = |code: &str, extra: Value| {
        let mut body = json!({"language": "py", "version": "3", "files": [{"content": code}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let (_, exited) = execute(
        &service,
        python("import sys; print('bye'); sys.exit(4)", json!({})),
    )
    .await;
    assert_eq!(
        (
            exited["run"]["code"].as_i64(),
            exited["run"]["status"].as_str()
        ),
        (Some(4), Some("RE")),
        "{exited}"
    );
    assert_eq!(exited["run"]["message"], "Exited with error status 4");
    // Ranges that select Python 3.11.2 (comparators with a space in
    // between used to be refused as an unknown runtime).
    for selector in [">=3.0.0 <4.0.0", "3.x", "~3.11.0", "2 || 3"] {
        let mut body = python("print('ranged')", json!({}));
        body["version"] = json!(selector);
        let (status, ranged) = execute(&service, body).await;
        assert_eq!(status, 200, "{selector}: {ranged}");
        assert_eq!(ranged["run"]["stdout"], "ranged\n", "{selector}: {ranged}");
    }
    let (_, killed) = execute(
        &service,
        python(
            "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)",
            json!({}),
        ),
    )
    .await;
    assert_eq!(
        (
            killed["run"]["signal"].as_str(),
            killed["run"]["status"].as_str()
        ),
        (Some("SIGSEGV"), Some("SG")),
        "{killed}"
    );
    assert_eq!(killed["run"]["code"], Value::Null);
    let (_, slow) = execute(
        &service,
        python(
            "while True: pass",
            json!({"run_timeout": 1000, "run_cpu_time": 500}),
        ),
    )
    .await;
    assert_eq!(
        (
            slow["run"]["status"].as_str(),
            slow["run"]["signal"].as_str()
        ),
        (Some("TO"), Some("SIGKILL")),
        "{slow}"
    );
    // Files in base64 and hex keep their bytes; the first UTF-8 file runs.
    let (status, files) = execute(
        &service,
        json!({
            "language": "python",
            "version": "*",
            "files": [
                {"name": "data.bin", "content": "AAH/", "encoding": "base64"},
                {"name": "main.py", "content": "print(list(open('data.bin','rb').read()), open('h.txt').read())"},
                {"name": "h.txt", "content": "6869", "encoding": "hex"}
            ]
        }),
    )
    .await;
    assert_eq!(status, 200, "{files}");
    assert_eq!(files["run"]["stdout"], "[0, 1, 255] hi\n");
    service.stop().await;
}

#[tokio::test]
async fn bad_requests_get_pistons_errors() {
    let service = TestService::start().await;
    let error = |body: Value| {
        let service = &service;
        async move {
            let (status, answer) = execute(service, body).await;
            assert_eq!(status, 400, "{answer}");
            answer["message"].as_str().unwrap().to_string()
        }
    };
    assert_eq!(error(json!({})).await, "language is required as a string");
    assert_eq!(
        error(json!({"language": 3})).await,
        "language is required as a string"
    );
    assert_eq!(
        error(json!({"language": "python"})).await,
        "version is required as a string"
    );
    assert_eq!(
        error(json!({"language": "python", "version": "*"})).await,
        "files is required as an array"
    );
    assert_eq!(
        error(json!({"language": "python", "version": "*", "files": [{"name": "a.py"}]})).await,
        "files[0].content is required as a string"
    );
    assert_eq!(
        error(json!({"language": "brainfuck", "version": "*", "files": [{"content": "+"}]})).await,
        "brainfuck-* runtime is unknown"
    );
    assert_eq!(
        error(json!({"language": "python", "version": "2.7", "files": [{"content": "print 1"}]}))
            .await,
        "python-2.7 runtime is unknown"
    );
    // node-semver's ranges, as Piston passes them on: Python 3.11.2 is not
    // `^3.99` (the ranges it is are run below).
    assert_eq!(
        error(json!({"language": "python", "version": "^3.99", "files": [{"content": "1"}]})).await,
        "python-^3.99 runtime is unknown"
    );
    assert_eq!(
        error(json!({"language": "python", "version": "*", "files": [{"content": "aGk=", "encoding": "base64"}]})).await,
        "files must include at least one utf8 encoded file"
    );
    assert_eq!(
        error(json!({"language": "python", "version": "*", "files": [{"content": "1"}], "run_timeout": "soon"})).await,
        "If specified, run_timeout must be a number"
    );
    assert_eq!(
        error(json!({"language": "python", "version": "*", "files": [{"content": "1"}], "run_timeout": -5})).await,
        "run_timeout must be non-negative"
    );
    let most = service.config.max_wall_time_limit_ms;
    assert_eq!(
        error(json!({"language": "python", "version": "*", "files": [{"content": "1"}], "run_timeout": most + 1})).await,
        format!("run_timeout cannot exceed the configured limit of {most}")
    );
    let response = service
        .client
        .post(format!("{}/api/v2/execute", service.url))
        .header("content-type", "text/plain")
        .body("language=python")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "requests must be of type application/json");
    service.stop().await;
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(service: &TestService) -> Socket {
    let url = format!("{}/api/v2/connect", service.url.replacen("http", "ws", 1));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn send(socket: &mut Socket, message: Value) {
    use futures_util::SinkExt;
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            message.to_string().into(),
        ))
        .await
        .unwrap();
}

/// Every message until the server closes: the JSON ones, and the close
/// code and reason.
async fn until_closed(
    socket: &mut Socket,
    mut on_message: impl AsyncFnMut(&mut Socket, &Value),
) -> (Vec<Value>, Option<(u16, String)>) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut messages = Vec::new();
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(60), socket.next())
            .await
            .expect("a message within a minute");
        match next {
            Some(Ok(Message::Text(text))) => {
                let value: Value = serde_json::from_str(text.as_str()).unwrap();
                on_message(socket, &value).await;
                messages.push(value);
            }
            Some(Ok(Message::Close(frame))) => {
                return (
                    messages,
                    frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                );
            }
            Some(Ok(_)) => {}
            None | Some(Err(_)) => return (messages, None),
        }
    }
}

fn printed(messages: &[Value], stream: &str) -> String {
    messages
        .iter()
        .filter(|m| m["type"] == "data" && m["stream"] == stream)
        .map(|m| m["data"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn pistons_interactive_websocket_runs_stages_and_takes_stdin_as_its_docs_say() {
    let service = TestService::start().await;
    // A compiled language: runtime, compile stage and its exit, run stage,
    // data as printed, stdin typed in, the run's exit, close 4999.
    let mut socket = connect(&service).await;
    send(
        &mut socket,
        json!({ "type": "init", "language": "c", "version": "*", "files": [{ "name": "main.c",
            "content": "#include <stdio.h>\nint main(void) { char name[64]; printf(\"name? \"); fflush(stdout);\n if (scanf(\"%63s\", name) != 1) return 2; printf(\"Hello, %s!\\n\", name); return 3; }" }] }),
    )
    .await;
    let mut typed = false;
    let (messages, closed) = until_closed(&mut socket, async |socket, message| {
        if message["type"] == "data" && message["data"] == "name? " && !typed {
            typed = true;
            send(
                socket,
                json!({ "type": "data", "stream": "stdin", "data": "Ada\n" }),
            )
            .await;
        }
    })
    .await;
    assert_eq!(
        closed,
        Some((4999, "Job Completed".to_string())),
        "{messages:?}"
    );
    let kinds: Vec<String> = messages
        .iter()
        .map(|m| match m["type"].as_str().unwrap() {
            "stage" | "exit" => format!(
                "{}:{}",
                m["type"].as_str().unwrap(),
                m["stage"].as_str().unwrap()
            ),
            other => other.to_string(),
        })
        .filter(|k| k != "data")
        .collect();
    assert_eq!(
        kinds,
        [
            "runtime",
            "stage:compile",
            "exit:compile",
            "stage:run",
            "exit:run"
        ],
        "{messages:?}"
    );
    assert_eq!(messages[0]["language"], "c");
    assert_eq!(printed(&messages, "stdout"), "name? Hello, Ada!\n");
    let exit = messages.last().unwrap();
    assert_eq!(
        (exit["code"].clone(), exit["signal"].clone()),
        (json!(3), Value::Null)
    );

    // An interpreted language, interrupted by a signal.
    let mut socket = connect(&service).await;
    send(
        &mut socket,
        json!({ "type": "init", "language": "python", "version": "3", "files": [{
            "content": "import time\nprint('ready', flush=True)\nwhile True:\n    time.sleep(0.05)" }] }),
    )
    .await;
    let (messages, closed) = until_closed(&mut socket, async |socket, message| {
        if message["type"] == "data" && message["data"] == "ready\n" {
            send(socket, json!({ "type": "signal", "signal": "SIGKILL" })).await;
        }
    })
    .await;
    assert_eq!(
        closed,
        Some((4999, "Job Completed".to_string())),
        "{messages:?}"
    );
    let exit = messages.last().unwrap();
    assert_eq!(exit["stage"], "run", "{messages:?}");
    assert_eq!(exit["signal"], "SIGKILL", "{messages:?}");
    assert_eq!(exit["code"], Value::Null, "{messages:?}");

    // Piston's refusals and their close codes.
    let init = json!({ "type": "init", "language": "python", "version": "*",
                       "files": [{ "content": "input()" }] });
    for (first, second, code) in [
        (
            json!({ "type": "data", "stream": "stdin", "data": "x" }),
            None,
            4003,
        ),
        (init.clone(), Some(init.clone()), 4000),
        (
            init.clone(),
            Some(json!({ "type": "data", "stream": "stdout", "data": "x" })),
            4004,
        ),
        (
            init.clone(),
            Some(json!({ "type": "signal", "signal": "SIGSEGV" })),
            4005,
        ),
    ] {
        let mut socket = connect(&service).await;
        send(&mut socket, first.clone()).await;
        if let Some(second) = &second {
            send(&mut socket, second.clone()).await;
        }
        let (messages, closed) = until_closed(&mut socket, async |_, _| {}).await;
        assert_eq!(
            closed.map(|c| c.0),
            Some(code),
            "{first} {second:?}: {messages:?}"
        );
    }
    let mut socket = connect(&service).await;
    send(
        &mut socket,
        json!({ "type": "init", "language": "intercal", "version": "*", "files": [{ "content": "x" }] }),
    )
    .await;
    let (messages, closed) = until_closed(&mut socket, async |_, _| {}).await;
    assert_eq!(closed, Some((4002, "Notified Error".to_string())));
    assert_eq!(messages[0]["type"], "error");
    assert_eq!(messages[0]["message"], "intercal-* runtime is unknown");
    service.stop().await;
}
