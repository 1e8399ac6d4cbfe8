//! A Node BullMQ producer and code-runner share one queue, both ways: a job
//! added from Node runs here and Node reads its result as an object; a job
//! added through code-runner's API is read from Node. (`make test` installs
//! Node BullMQ in tests/interop.)

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{TEST_PREFIX, TestService, redis_url};

#[tokio::test]
async fn node_bullmq_and_code_runner_share_the_queue() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    assert!(
        dir.join("node_modules/bullmq").is_dir(),
        "Node BullMQ is not installed: run `make test` (or `npm ci` in {})",
        dir.display()
    );
    let service = TestService::start().await;
    let rust_job = service.submit("print('from rust')").await;
    service.wait_done(&rust_job, Duration::from_secs(30)).await;

    let run = tokio::process::Command::new("node")
        .arg("interop.mjs")
        .arg(redis_url())
        .arg(TEST_PREFIX)
        .arg(&service.config.queue_name)
        .arg(&rust_job)
        .current_dir(&dir)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("node finished in time")
        .expect("node runs");
    assert!(
        output.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).expect("one JSON line");

    // Added from Node, run here, read back from Node as an object.
    let node_job = &seen["nodeJob"];
    assert_eq!(node_job["returnvalueType"], "object", "{seen}");
    assert_eq!(node_job["returnvalue"]["status"], "success", "{seen}");
    assert_eq!(node_job["returnvalue"]["stdout"], "from node\n", "{seen}");
    let id = node_job["id"].as_str().unwrap();
    let body = service.status(id).await;
    assert_eq!(body["result"]["stdout"], "from node");

    // Added through the API, read from Node.
    let rust = &seen["rustJob"];
    assert_eq!(rust["state"], "completed", "{seen}");
    assert_eq!(rust["data"]["language"], "python", "{seen}");
    assert_eq!(rust["returnvalueType"], "object", "{seen}");
    assert_eq!(rust["returnvalue"]["stdout"], "from rust\n", "{seen}");
    service.stop().await;
}

/// Runs a client program from tests/interop against the service; its one
/// JSON line.
async fn client_output(program: &str, args: &[&str]) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    let run = tokio::process::Command::new(program)
        .args(args)
        .current_dir(&dir)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the client finished in time")
        .unwrap_or_else(|e| panic!("{program} runs (is `make test`'s set-up done?): {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON line")
}

/// Judge0's official Python SDK (PyPI `judge0`, installed by `make test` in
/// target/interop-venv) pointed at the service, as its README uses it: one
/// submission, a batch in three languages, test cases.
#[tokio::test]
async fn judge0s_official_python_sdk_works_against_the_service() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/interop-venv/bin/python");
    let service = TestService::start().await;
    let seen = client_output(python.to_str().unwrap(), &["judge0_sdk.py", &service.url]).await;
    assert_eq!(seen["version"], "1.13.1");
    assert_eq!(seen["one"]["stdout"], "hello\n", "{seen}");
    assert_eq!(seen["one"]["status"], 3);
    assert!(seen["one"]["memory"].as_f64().unwrap() > 0.0, "{seen}");
    let (_, job) = service
        .get(&format!(
            "/v1/jobs/{}",
            seen["one"]["token"].as_str().unwrap()
        ))
        .await;
    assert_eq!(job["result"]["verdict"], "accepted");
    let many = seen["many"].as_array().unwrap();
    assert_eq!(many[0]["stdout"], "bash\n");
    assert_eq!(many[0]["status"], 3);
    assert_eq!(
        (many[1]["status"].as_u64(), many[1]["exit_code"].as_i64()),
        (Some(11), Some(3))
    );
    assert_eq!(many[1]["stdout"], "c\n");
    // Python's syntax error is a run-time error (NZEC), as in Judge0.
    assert_eq!(many[2]["status"], 11);
    assert_eq!(seen["cases"], serde_json::json!([3, 4]));
    service.stop().await;
}

/// Piston's npm client (`piston-client`, as Discord bots use it) pointed at
/// the service.
#[tokio::test]
async fn pistons_npm_client_works_against_the_service() {
    let service = TestService::start().await;
    let seen = client_output("node", &["piston_client.mjs", &service.url]).await;
    let table = code_runner::language::LanguageTable::built_in();
    assert_eq!(
        seen["runtimes"].as_u64().unwrap() as usize,
        table.all().len()
    );
    let python = &seen["python"];
    assert_eq!(python["language"], "python", "{seen}");
    assert!(python["version"].as_str().unwrap().starts_with("3.11"));
    // The client sends args 1 2 3 unless told otherwise.
    assert_eq!(
        python["run"]["stdout"], "from piston ['1', '2', '3']\n",
        "{seen}"
    );
    let cpp = &seen["cpp"];
    assert_eq!(cpp["compile"]["code"], 0, "{seen}");
    assert_eq!(cpp["run"]["stdout"], "compiled\n");
    assert_eq!(
        (cpp["run"]["code"].as_i64(), cpp["run"]["status"].as_str()),
        (Some(2), Some("RE"))
    );
    service.stop().await;
}
