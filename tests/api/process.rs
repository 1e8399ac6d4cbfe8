//! The service as a process: stopped and started again it loses nothing;
//! started without its dependencies it says what is missing.

use std::process::Command;
use std::time::{Duration, Instant};

use code_runner::job::JobSpec;
use code_runner::queue::{EnqueueOptions, JobQueue, QueueSettings};
use code_runner::sandbox::{Sandbox, SandboxSettings};

use crate::helpers::{
    TEST_PREFIX, free_port, redis_url, start_service, terminate, unique_queue, wait_done,
    wait_ready,
};

#[tokio::test]
async fn an_unreachable_engine_or_redis_stops_start_up_with_a_clear_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_code-runner"))
        .arg("worker")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("CODE_RUNNER_REDIS_URL", redis_url())
        .env("CODE_RUNNER_REDIS_PREFIX", TEST_PREFIX)
        .env("CODE_RUNNER_QUEUE", unique_queue())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Docker engine unreachable"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_code-runner"))
        .arg("api")
        .env("CODE_RUNNER_REDIS_URL", "redis://127.0.0.1:1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot reach Redis at redis://127.0.0.1:1"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn jobs_survive_a_restart_of_the_service_process() {
    let queue_name = unique_queue();
    let client = reqwest::Client::new();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");

    let first = start_service(&queue_name, port, &[]);
    wait_ready(&client, &url).await;
    let running: serde_json::Value = client
        .post(format!("{url}/run"))
        .json(&serde_json::json!({
            "language": "python",
            "code": "import time\ntime.sleep(2)\nprint('survived')",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let running = running["jobId"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body: serde_json::Value = client
            .get(format!("{url}/status/{running}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body["phase"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "the job never ran: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Stopped mid-run: exits cleanly, its container is gone.
    let status = terminate(first);
    assert!(status.success(), "exit status {status}");
    let sandbox = Sandbox::connect(SandboxSettings {
        image_prefix: "code-runner".into(),
        runtime: None,
        worker_id: "test-observer".into(),
        queue: "none".into(),
        deployment: "none".into(),
        overrides: serde_json::Map::new(),
    })
    .await
    .unwrap();
    let left: Vec<_> = sandbox
        .list_managed(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.job_id == running)
        .collect();
    assert!(left.is_empty(), "containers left: {left:?}");

    // A job enqueued while no service runs (as another API process would).
    let queue = JobQueue::connect(QueueSettings {
        redis_url: redis_url(),
        tls: None,
        wait_replicas: 0,
        cluster_nodes: Vec::new(),
        prefix: TEST_PREFIX.into(),
        queue_name: queue_name.clone(),
        cancelled_retention_secs: 60,
        callback_attempts: 1,
    })
    .await
    .unwrap();
    let spec: JobSpec =
        serde_json::from_str(r#"{"language":"python","code":"print('queued while down')"}"#)
            .unwrap();
    let queued = queue
        .enqueue(&spec, &EnqueueOptions { attempts: 3 })
        .await
        .unwrap()
        .to_string();

    // Started again: both jobs complete, and their status is readable.
    let second = start_service(&queue_name, port, &[]);
    wait_ready(&client, &url).await;
    let body = wait_done(&client, &url, &running, Duration::from_secs(60)).await;
    assert_eq!(body["state"], "completed", "{body}");
    assert_eq!(body["result"]["stdout"], "survived");
    let body = wait_done(&client, &url, &queued, Duration::from_secs(60)).await;
    assert_eq!(body["result"]["stdout"], "queued while down");

    let status = terminate(second);
    assert!(status.success(), "exit status {status}");
}
