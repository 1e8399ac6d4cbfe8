//! Judge0 CE's API as clients send it: bad submissions answered in Judge0's
//! error shapes, the `X-Auth-Token` header as an API key, callbacks PUT as
//! Judge0 sends them, and `additional_files` with multi-file programs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method};
use serde_json::{Value, json};

use crate::helpers::TestService;
use crate::judge0::{b64, call, finished, submit};

#[tokio::test]
async fn bad_submissions_get_judge0s_errors() {
    let service = TestService::start().await;
    let post = |path: &'static str, body: Value| {
        let service = &service;
        async move { call(service, Method::POST, path, Some(body)).await }
    };
    assert_eq!(
        post("/submissions", json!({"source_code": "x"})).await,
        (422, json!({"language_id": ["can't be blank"]}))
    );
    assert_eq!(
        post(
            "/submissions",
            json!({"source_code": "x", "language_id": 150000})
        )
        .await,
        (
            422,
            json!({"language_id": ["language with id 150000 doesn't exist"]})
        )
    );
    let (status, errors) = post(
        "/submissions",
        json!({"language_id": 71, "cpu_time_limit": 1000, "wall_time_limit": 0.5, "memory_limit": 100, "enable_network": true}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(errors["source_code"], json!(["can't be blank"]));
    assert!(
        errors["cpu_time_limit"][0]
            .as_str()
            .unwrap()
            .starts_with("must be less than or equal to"),
        "{errors}"
    );
    assert_eq!(
        errors["wall_time_limit"],
        json!(["must be greater than or equal to 1"])
    );
    assert!(
        errors["memory_limit"][0]
            .as_str()
            .unwrap()
            .starts_with("must be greater than or equal to"),
        "{errors}"
    );
    assert_eq!(
        errors["enable_network"],
        json!(["enabling network is not allowed"])
    );
    let (status, errors) = post(
        "/submissions",
        json!({"source_code": "print(1)", "language_id": 71, "compiler_options": "-O2"}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        errors["compiler_options"],
        json!(["setting compiler options is only allowed for compiled languages"])
    );
    let (status, errors) = post(
        "/submissions",
        json!({"source_code": "x", "language_id": 71, "callback_url": "http://127.0.0.1:1/hook"}),
    )
    .await;
    assert_eq!(status, 422);
    assert!(errors["callback_url"].is_array(), "{errors}");
    let (status, malformed) = call(&service, Method::POST, "/submissions", None).await;
    assert_eq!(status, 422, "an empty body: {malformed}");
    // Batches: each on its own; none valid is 422; sizes are checked.
    let (status, mixed) = post(
        "/submissions/batch",
        json!({"submissions": [{"source_code": "print(1)", "language_id": 71}, {"source_code": "x"}]}),
    )
    .await;
    assert_eq!(status, 201);
    assert!(mixed[0]["token"].is_string());
    assert_eq!(mixed[1], json!({"language_id": ["can't be blank"]}));
    let (status, none) = post(
        "/submissions/batch",
        json!({"submissions": [{"source_code": "x"}]}),
    )
    .await;
    assert_eq!(
        (status, none),
        (422, json!([{"language_id": ["can't be blank"]}]))
    );
    assert_eq!(
        post("/submissions/batch", json!({"submissions": []})).await,
        (
            400,
            json!({"error": "there should be at least one submission in a batch"})
        )
    );
    let many: Vec<Value> = (0..21)
        .map(|_| json!({"source_code": "x", "language_id": 71}))
        .collect();
    let (status, too_many) = post("/submissions/batch", json!({"submissions": many})).await;
    assert_eq!(status, 400, "{too_many}");
    assert_eq!(
        call(&service, Method::GET, "/submissions/batch", None)
            .await
            .0,
        400
    );
    // A submission still in the queue cannot be deleted.
    let sleeper = submit(
        &service,
        "",
        json!({"source_code": "sleep 2", "language_id": 46}),
    )
    .await;
    let (status, refused) = call(
        &service,
        Method::DELETE,
        &format!("/submissions/{sleeper}"),
        None,
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .starts_with("submission cannot be deleted because its status is")
    );
    finished(&service, &sleeper, "").await;
    service.stop().await;
}

#[tokio::test]
async fn judge0s_token_header_is_an_api_key_and_its_callbacks_are_put() {
    let (key, entry) = code_runner::http::auth::new_key("judge0-client");
    let mut service = TestService::start_with(|c| {
        c.api_keys = Some(entry.clone());
        c.callback_allow = "127.0.0.0/8".into();
    })
    .await;
    let received: Arc<Mutex<Vec<(Method, HeaderMap, Bytes)>>> = Arc::default();
    let app = {
        let received = received.clone();
        axum::Router::new().route(
            "/hook",
            axum::routing::any(move |method: Method, headers: HeaderMap, body: Bytes| {
                let received = received.clone();
                async move {
                    received.lock().unwrap().push((method, headers, body));
                    "ok"
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let body =
        json!({"source_code": "print('called back')", "language_id": 71, "callback_url": hook});
    let post = |token: Option<&str>| {
        let mut request = service
            .client
            .post(format!("{}/submissions", service.url))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = token {
            request = request.header("X-Auth-Token", token);
        }
        request.send()
    };
    assert_eq!(post(None).await.unwrap().status().as_u16(), 401);
    assert_eq!(post(Some("wrong")).await.unwrap().status().as_u16(), 401);
    let created: Value = post(Some(&key)).await.unwrap().json().await.unwrap();
    let token = created["token"].as_str().expect("token").to_string();
    service.bearer = Some(key.clone());
    finished(&service, &token, "").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (method, _, body) = loop {
        if let Some(call) = received.lock().unwrap().first().cloned() {
            break call;
        }
        assert!(Instant::now() < deadline, "no callback");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(method, Method::PUT);
    let sent: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(sent["token"], token.as_str());
    assert_eq!(
        sent["stdout"],
        b64("called back\n"),
        "base64, as Judge0 sends it: {sent}"
    );
    assert_eq!(sent["status"], json!({"id": 3, "description": "Accepted"}));
    service.stop().await;
}

/// A zip archive of `files`, base64, as Judge0's `additional_files`.
fn zip_of(files: &[(&str, &str)]) -> String {
    use std::io::Write;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in files {
        if name.ends_with('/') {
            writer.add_directory(*name, options).unwrap();
        } else {
            writer.start_file(*name, options).unwrap();
            writer.write_all(content.as_bytes()).unwrap();
        }
    }
    b64(writer.finish().unwrap().into_inner())
}

#[tokio::test]
async fn additional_files_and_multi_file_programs_run_as_in_judge0() {
    let service = TestService::start().await;
    let run = |body: Value| {
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
    // Files beside the program; the source wins over a file of its name.
    let beside = run(json!({
        "source_code": "import helper\nprint(helper.double(int(input())), open('data.txt').read())",
        "language_id": 71,
        "stdin": "21",
        "additional_files": zip_of(&[
            ("helper.py", "def double(x):\n    return 2 * x\n"),
            ("data.txt", "from the zip"),
            ("main.py", "print('the zip lost')"),
            ("empty-folder/", ""),
        ]),
    }))
    .await;
    assert_eq!(beside["stdout"], "42 from the zip\n", "{beside}");
    // A multi-file program: its compile and run scripts, no source of its own.
    let project = run(json!({
        "language_id": 89,
        "additional_files": zip_of(&[
            ("compile", "gcc -O2 -o main main.c twice.c\n"),
            ("run", "./main \"$@\"\n"),
            ("main.c", "#include <stdio.h>\nint twice(int);\nint main(int argc, char **argv) { printf(\"%d %s\\n\", twice(21), argv[1]); return 0; }\n"),
            ("twice.c", "int twice(int x) { return 2 * x; }\n"),
        ]),
        "command_line_arguments": "arg",
    }))
    .await;
    assert_eq!(project["status"]["id"], 3, "{project}");
    assert_eq!(project["stdout"], "42 arg\n");
    assert_eq!(project["source_code"], Value::Null);
    let failing = run(json!({
        "language_id": 89,
        "additional_files": zip_of(&[("compile", "gcc -o main main.c\n"), ("main.c", "int main( {"), ("run", "./main\n")]),
    }))
    .await;
    assert_eq!(failing["status"]["id"], 6, "{failing}");
    assert!(
        failing["compile_output"]
            .as_str()
            .unwrap()
            .contains("error"),
        "{failing}"
    );

    let refused = |body: Value| {
        let service = &service;
        async move {
            let (status, errors) = call(service, Method::POST, "/submissions", Some(body)).await;
            assert_eq!(status, 422, "{errors}");
            errors
        }
    };
    assert_eq!(
        refused(json!({"language_id": 89, "source_code": "x", "additional_files": zip_of(&[("run", "true")])})).await,
        json!({"source_code": ["must be blank"]})
    );
    assert_eq!(
        refused(json!({"language_id": 89})).await,
        json!({"additional_files": ["can't be blank"]})
    );
    let nested = refused(json!({"language_id": 71, "source_code": "1", "additional_files": zip_of(&[("src/a.py", "1")])})).await;
    assert!(
        nested["additional_files"][0]
            .as_str()
            .unwrap()
            .contains("folder"),
        "{nested}"
    );
    let not_zip = refused(
        json!({"language_id": 71, "source_code": "1", "additional_files": b64("not a zip")}),
    )
    .await;
    assert!(
        not_zip["additional_files"][0]
            .as_str()
            .unwrap()
            .contains("zip"),
        "{not_zip}"
    );
    let (_, config) = call(&service, Method::GET, "/config_info", None).await;
    assert_eq!(config["enable_additional_files"], true);
    service.stop().await;
}
