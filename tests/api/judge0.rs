//! Judge0 CE's API, driven as its documentation and its clients drive it:
//! the documented requests and answers, base64 on and off, wait on and off,
//! `fields`, batches, every verdict's status and its language ids (its error
//! shapes, token header, callbacks and files: `judge0_requests.rs`). Real
//! jobs in real containers.

use std::time::{Duration, Instant};

use axum::http::Method;
use base64::Engine;
use serde_json::{Value, json};

use crate::helpers::TestService;

pub(crate) fn b64(text: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A request with an optional JSON body; status and the JSON answer.
pub(crate) async fn call(
    service: &TestService,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    service.send(method, path, body).await
}

/// `POST /submissions` expecting 201 with a token.
pub(crate) async fn submit(service: &TestService, query: &str, body: Value) -> String {
    let (status, answer) = call(
        service,
        Method::POST,
        &format!("/submissions{query}"),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "POST /submissions{query}: {answer}");
    answer["token"].as_str().expect("token").to_string()
}

/// Polls `GET /submissions/{token}` until its status is past In Queue and
/// Processing, as Judge0's clients poll.
pub(crate) async fn finished(service: &TestService, token: &str, query: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, submission) = call(
            service,
            Method::GET,
            &format!("/submissions/{token}{query}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "GET /submissions/{token}: {submission}");
        let id = submission["status"]["id"].as_u64().unwrap_or(0);
        if id > 2 {
            return submission;
        }
        assert!(
            Instant::now() < deadline,
            "submission {token} not finished: {submission}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_documented_submission_runs_and_reads_back_as_judge0_shows_it() {
    let service = TestService::start().await;
    // Judge0's documentation's example, with today's C id.
    let token = submit(
        &service,
        "",
        json!({
            "source_code": "#include <stdio.h>\n\nint main(void) {\n  char name[10];\n  scanf(\"%s\", name);\n  printf(\"hello, %s\\n\", name);\n  return 0;\n}",
            "language_id": 50,
            "stdin": "world",
            "expected_output": "hello, world"
        }),
    )
    .await;
    assert!(uuid::Uuid::parse_str(&token).is_ok(), "{token}");
    let submission = finished(&service, &token, "").await;
    // The eight default attributes, exactly.
    let mut keys: Vec<&str> = submission
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "compile_output",
            "memory",
            "message",
            "status",
            "stderr",
            "stdout",
            "time",
            "token"
        ]
    );
    assert_eq!(submission["stdout"], "hello, world\n");
    assert_eq!(
        submission["status"],
        json!({"id": 3, "description": "Accepted"})
    );
    assert_eq!(submission["token"], token.as_str());
    assert_eq!(submission["stderr"], Value::Null);
    assert_eq!(submission["message"], Value::Null);
    let time: f64 = submission["time"]
        .as_str()
        .expect("time is a decimal string")
        .parse()
        .unwrap();
    assert!(time >= 0.0);
    assert!(submission["memory"].as_u64().unwrap() > 0, "{submission}");
    // The same job through our own API.
    let (status, job) = call(&service, Method::GET, &format!("/v1/jobs/{token}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(job["result"]["verdict"], "accepted");

    // fields: a chosen few, all of them, and a bad one.
    let (_, some) = call(
        &service,
        Method::GET,
        &format!("/submissions/{token}?fields=stdout,status_id,language_id"),
        None,
    )
    .await;
    assert_eq!(
        some,
        json!({"stdout": "hello, world\n", "status_id": 3, "language_id": 50})
    );
    let (_, all) = call(
        &service,
        Method::GET,
        &format!("/submissions/{token}?fields=*"),
        None,
    )
    .await;
    for field in [
        "source_code",
        "stdin",
        "expected_output",
        "created_at",
        "finished_at",
        "wall_time",
        "exit_code",
        "cpu_time_limit",
        "memory_limit",
        "number_of_runs",
        "language",
    ] {
        assert!(all.get(field).is_some(), "fields=* lacks {field}: {all}");
    }
    assert_eq!(all["stdin"], "world");
    assert_eq!(all["expected_output"], "hello, world");
    assert_eq!(all["exit_code"], 0);
    assert!(all["created_at"].as_str().unwrap().ends_with('Z'), "{all}");
    assert!(
        all["language"]["name"]
            .as_str()
            .unwrap()
            .starts_with("C (GCC 12"),
        "{all}"
    );
    let (status, bad) = call(
        &service,
        Method::GET,
        &format!("/submissions/{token}?fields=stdout,nope"),
        None,
    )
    .await;
    assert_eq!(
        (status, bad),
        (400, json!({"error": "invalid fields: [nope]"}))
    );
    // A finished submission may be deleted; then it is gone.
    let (status, deleted) = call(
        &service,
        Method::DELETE,
        &format!("/submissions/{token}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        deleted["stdout"],
        b64("hello, world\n"),
        "answered in base64: {deleted}"
    );
    let (status, _) = call(
        &service,
        Method::GET,
        &format!("/submissions/{token}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, missing) = call(&service, Method::GET, "/submissions/not-a-token", None).await;
    assert_eq!(status, 404, "{missing}");
    service.stop().await;
}

#[tokio::test]
async fn base64_and_wait_work_as_documented() {
    let service = TestService::start().await;
    // wait=true answers the finished submission; base64 both ways.
    let (status, done) = call(
        &service,
        Method::POST,
        "/submissions?base64_encoded=true&wait=true",
        Some(json!({
            "source_code": b64("import sys\nname = sys.stdin.read()\nprint('hi ' + name)\nsys.stdout.flush()\nsys.stdout.buffer.write(bytes([255, 0]))\n"),
            "language_id": 71,
            "stdin": b64("there")
        })),
    )
    .await;
    assert_eq!(status, 201, "{done}");
    assert_eq!(done["status"]["id"], 3, "{done}");
    let token = done["token"].as_str().unwrap().to_string();
    let stdout = base64::engine::general_purpose::STANDARD
        .decode(done["stdout"].as_str().unwrap())
        .unwrap();
    assert_eq!(stdout, b"hi there\n\xff\x00");
    // Not UTF-8: without base64, Judge0's error asking for it.
    let (status, error) = call(
        &service,
        Method::GET,
        &format!("/submissions/{token}"),
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        error["error"],
        "some attributes for this submission cannot be converted to UTF-8, use base64_encoded=true query parameter"
    );
    // ...unless only attributes that are text are asked for.
    let (status, fine) = call(
        &service,
        Method::GET,
        &format!("/submissions/{token}?fields=status,time"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{fine}");
    // wait=false (and the flags in the body, as some clients send them).
    let (status, created) = call(
        &service,
        Method::POST,
        "/submissions",
        Some(json!({
            "source_code": b64("print('plain')"),
            "language_id": "71",
            "base64_encoded": "true",
            "wait": "false"
        })),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        created.as_object().unwrap().len(),
        1,
        "only the token: {created}"
    );
    let plain = finished(
        &service,
        created["token"].as_str().unwrap(),
        "?base64_encoded=false",
    )
    .await;
    assert_eq!(plain["stdout"], "plain\n");
    // wait=true with a non-UTF-8 answer: the token and the error, 201.
    let (status, answer) = call(
        &service,
        Method::POST,
        "/submissions?wait=true",
        Some(json!({"source_code": "import sys; sys.stdout.buffer.write(b'\\xfe')", "language_id": 71})),
    )
    .await;
    assert_eq!(status, 201);
    assert!(
        answer["token"].is_string() && answer["error"].is_string(),
        "{answer}"
    );
    service.stop().await;
}

#[tokio::test]
async fn every_verdict_has_judge0s_status() {
    let service = TestService::start().await;
    let c = |code: &str| json!({"source_code": code, "language_id": 50});
    let python = |code: &str| json!({"source_code": code, "language_id": 71});
    let cases: Vec<(Value, u64, &str)> = vec![
        (c("int main(void) { return 0 }"), 6, "Compilation Error"),
        (
            json!({"source_code": "print(2)", "language_id": 71, "expected_output": "3"}),
            4,
            "Wrong Answer",
        ),
        (
            json!({"source_code": "while True: pass", "language_id": 71, "cpu_time_limit": 0.5, "cpu_extra_time": 0.2}),
            5,
            "Time Limit Exceeded",
        ),
        (
            c("int main(void) { volatile int *p = 0; return *p; }"),
            7,
            "Runtime Error (SIGSEGV)",
        ),
        (
            c(
                "#include <stdio.h>\nint main(void) { FILE *f = fopen(\"big\", \"w\"); for (int i = 0; i < 1 << 22; i++) fputc('x', f); fclose(f); return 0; }",
            ),
            8,
            "Runtime Error (SIGXFSZ)",
        ),
        (
            c(
                "int main(void) { volatile int zero = 0; volatile int seven = 7; return seven / zero; }",
            ),
            9,
            "Runtime Error (SIGFPE)",
        ),
        (
            c("#include <stdlib.h>\nint main(void) { abort(); }"),
            10,
            "Runtime Error (SIGABRT)",
        ),
        (
            python("import sys; sys.exit(3)"),
            11,
            "Runtime Error (NZEC)",
        ),
        (
            json!({"source_code": "x = b'a' * (400 << 20)", "language_id": 71, "memory_limit": 65536}),
            12,
            "Runtime Error (Other)",
        ),
        (
            python("import sys\nwhile True: sys.stdout.write('x' * 65536)"),
            8,
            "Runtime Error (SIGXFSZ)",
        ),
    ];
    let bodies: Vec<Value> = cases.iter().map(|(b, _, _)| b.clone()).collect();
    let (status, tokens) = call(
        &service,
        Method::POST,
        "/submissions/batch",
        Some(json!({"submissions": bodies})),
    )
    .await;
    assert_eq!(status, 201, "{tokens}");
    let tokens: Vec<String> = tokens
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["token"].as_str().expect("token").to_string())
        .collect();
    for token in &tokens {
        finished(&service, token, "").await;
    }
    let (status, batch) = call(
        &service,
        Method::GET,
        &format!("/submissions/batch?tokens={}&fields=status,message,exit_code,exit_signal,compile_output", tokens.join(",")),
        None,
    )
    .await;
    assert_eq!(status, 200, "{batch}");
    let shown = batch["submissions"].as_array().unwrap();
    for ((_, id, description), submission) in cases.iter().zip(shown) {
        assert_eq!(
            submission["status"],
            json!({"id": id, "description": description}),
            "{submission}"
        );
    }
    assert!(
        shown[0]["compile_output"]
            .as_str()
            .unwrap()
            .contains("error"),
        "{}",
        shown[0]
    );
    assert_eq!(shown[3]["exit_signal"], 11);
    assert_eq!(shown[3]["message"], "Caught fatal signal 11");
    assert_eq!(shown[7]["exit_code"], 3);
    assert_eq!(shown[7]["message"], "Exited with error status 3");
    assert!(
        shown[8]["message"]
            .as_str()
            .unwrap()
            .starts_with("Memory limit exceeded"),
        "{}",
        shown[8]
    );
    assert!(
        shown[9]["message"]
            .as_str()
            .unwrap()
            .starts_with("Output limit exceeded"),
        "{}",
        shown[9]
    );
    service.stop().await;
}

#[tokio::test]
async fn judge0s_ids_name_our_languages_and_its_options_reach_the_program() {
    let service = TestService::start().await;
    // The core eight, by the ids Judge0's clients hard-code.
    let hello = [
        (71, "print('hello')"),
        (
            50,
            "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }",
        ),
        (
            54,
            "#include <iostream>\nint main() { std::cout << \"hello\" << std::endl; }",
        ),
        (63, "console.log('hello')"),
        (46, "echo hello"),
        (
            60,
            "package main\nimport \"fmt\"\nfunc main() { fmt.Println(\"hello\") }",
        ),
        (73, "fn main() { println!(\"hello\"); }"),
        (
            62,
            "public class Main { public static void main(String[] a) { System.out.println(\"hello\"); } }",
        ),
    ];
    let bodies: Vec<Value> = hello
        .iter()
        .map(|(id, code)| json!({"source_code": code, "language_id": id, "expected_output": "hello"}))
        .collect();
    let (status, tokens) = call(
        &service,
        Method::POST,
        "/submissions/batch",
        Some(json!({"submissions": bodies})),
    )
    .await;
    assert_eq!(status, 201, "{tokens}");
    for (token, (id, _)) in tokens.as_array().unwrap().iter().zip(hello) {
        let submission = finished(&service, token["token"].as_str().unwrap(), "").await;
        assert_eq!(submission["status"]["id"], 3, "language {id}: {submission}");
    }
    // Compiler options, arguments, stderr into stdout, several runs.
    let done = |body: Value| {
        let service = &service;
        async move {
            let (status, done) = call(
                service,
                Method::POST,
                "/submissions?wait=true&fields=*",
                Some(body),
            )
            .await;
            assert_eq!(status, 201, "{done}");
            done
        }
    };
    let options = done(json!({
        "source_code": "#include <stdio.h>\nint main(int argc, char **argv) { printf(\"%s %d\", GREETING, argc); for (int i = 1; i < argc; i++) printf(\" [%s]\", argv[i]); return 0; }",
        "language_id": 54,
        "compiler_options": "-DGREETING='\"hi there\"'",
        "command_line_arguments": "one 'two three'"
    }))
    .await;
    assert_eq!(
        options["stdout"], "hi there 3 [one] [two three]",
        "{options}"
    );
    assert_eq!(options["compiler_options"], "-DGREETING='\"hi there\"'");
    let merged = done(json!({
        "source_code": "import sys\nprint('out', flush=True)\nprint('err', file=sys.stderr, flush=True)\nprint('out2')",
        "language_id": 71,
        "redirect_stderr_to_stdout": true
    }))
    .await;
    assert_eq!(merged["stdout"], "out\nerr\nout2\n", "{merged}");
    assert_eq!(merged["stderr"], Value::Null);
    let runs = done(json!({"source_code": "print(input())", "language_id": 71, "stdin": "again", "number_of_runs": 3})).await;
    assert_eq!(
        (
            runs["status"]["id"].as_u64(),
            runs["number_of_runs"].as_u64()
        ),
        (Some(3), Some(3)),
        "{runs}"
    );
    let (_, job) = call(
        &service,
        Method::GET,
        &format!("/v1/jobs/{}", runs["token"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(job["result"]["test_cases"].as_array().unwrap().len(), 3);
    let stack =
        done(json!({"source_code": "ulimit -s", "language_id": 46, "stack_limit": 32000})).await;
    assert_eq!(stack["stdout"], "32000\n", "{stack}");

    // The languages and statuses as Judge0 lists them.
    let (_, languages) = call(&service, Method::GET, "/languages", None).await;
    let python = languages
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == 71)
        .expect("71 listed");
    assert!(
        python["name"].as_str().unwrap().starts_with("Python (3.11"),
        "{python}"
    );
    assert_eq!(python.as_object().unwrap().len(), 2);
    let (status, one) = call(&service, Method::GET, "/languages/54", None).await;
    assert_eq!(status, 200);
    assert_eq!(one["source_file"], "main.cpp");
    assert!(
        one["compile_cmd"].as_str().unwrap().starts_with("g++"),
        "{one}"
    );
    assert_eq!(one["is_archived"], false);
    assert_eq!(
        call(&service, Method::GET, "/languages/70", None).await.0,
        404
    );
    let (_, all) = call(&service, Method::GET, "/languages/all", None).await;
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .all(|l| l["is_archived"] == false)
    );
    let (_, statuses) = call(&service, Method::GET, "/statuses", None).await;
    assert_eq!(statuses.as_array().unwrap().len(), 14);
    assert_eq!(
        statuses[13],
        json!({"id": 14, "description": "Exec Format Error"})
    );
    let (_, about) = call(&service, Method::GET, "/about", None).await;
    assert_eq!(about["version"], "1.13.1");
    let (_, config) = call(&service, Method::GET, "/config_info", None).await;
    assert_eq!(
        config["cpu_time_limit"].as_f64().unwrap(),
        service.config.cpu_time_limit_ms as f64 / 1000.0
    );
    assert_eq!(
        config["max_memory_limit"].as_u64().unwrap(),
        service.config.max_memory_limit_mb * 1024
    );
    assert_eq!(config["enable_network"], false);
    let (_, workers) = call(&service, Method::GET, "/workers", None).await;
    assert_eq!(
        workers[0]["available"].as_u64().unwrap(),
        u64::from(service.config.concurrency),
        "{workers}"
    );
    let (_, system) = call(&service, Method::GET, "/system_info", None).await;
    assert!(system["CPU(s)"].is_string(), "{system}");
    service.stop().await;
}
