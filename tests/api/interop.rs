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
