//! Faults injected for real into real processes: a worker SIGKILLed mid-job,
//! SIGTERM during runs, Redis stopped and started, the Docker engine made
//! unreachable and reachable again, infrastructure failures retried, and
//! 1,000 jobs held across 3 workers and 2 API processes while one worker is
//! killed. Each test asserts the final state of every job, that no container
//! is left, and that the service serves afterwards.
//!
//! The tests here start several processes each; they run one at a time.

use code_runner_testkit as helpers;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Mutex;

use helpers::{TEST_PREFIX, free_port, redis_url, unique_queue};

mod cpus;
mod outages;
mod workers;

/// One test at a time: each starts several processes.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// A `code-runner` process of the test.
struct Process {
    child: Option<Child>,
    role: &'static str,
    env: Vec<(String, String)>,
    /// `http://127.0.0.1:<port>` of its API (api and serve).
    url: String,
    admin_url: String,
}

impl Process {
    fn spawn(role: &'static str, env: Vec<(String, String)>) -> Process {
        let port = free_port();
        let admin = free_port();
        let mut process = Process {
            child: None,
            role,
            env,
            url: format!("http://127.0.0.1:{port}"),
            admin_url: format!("http://127.0.0.1:{admin}"),
        };
        process
            .env
            .push(("CODE_RUNNER_LISTEN".into(), format!("127.0.0.1:{port}")));
        process.env.push((
            "CODE_RUNNER_ADMIN_LISTEN".into(),
            format!("127.0.0.1:{admin}"),
        ));
        process.start();
        process
    }

    fn start(&mut self) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_code-runner"));
        command
            .arg(self.role)
            .env(
                "RUST_LOG",
                std::env::var("CHILD_LOG").unwrap_or("warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        for (name, value) in &self.env {
            command.env(name, value);
        }
        self.child = Some(command.spawn().expect("start code-runner"));
    }

    fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM; the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        helpers::terminate(self.child.take().expect("running"))
    }

    async fn ready(&self) {
        helpers::wait_ready(&reqwest::Client::new(), &self.url).await;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Environment shared by every process of one test: one Redis, one queue.
fn base_env(redis: &str, queue: &str) -> Vec<(String, String)> {
    vec![
        ("CODE_RUNNER_REDIS_URL".into(), redis.into()),
        ("CODE_RUNNER_REDIS_PREFIX".into(), TEST_PREFIX.into()),
        ("CODE_RUNNER_QUEUE".into(), queue.into()),
        (
            "CODE_RUNNER_SUBMIT_RATE_LIMIT_PER_MINUTE".into(),
            "0".into(),
        ),
        (
            "CODE_RUNNER_REQUEST_RATE_LIMIT_PER_MINUTE".into(),
            "0".into(),
        ),
    ]
}

/// A worker's environment: its own data directory (so its own id).
fn worker_env(
    base: &[(String, String)],
    name: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut env = base.to_vec();
    let queue = &base
        .iter()
        .find(|(k, _)| k == "CODE_RUNNER_QUEUE")
        .unwrap()
        .1;
    env.push((
        "CODE_RUNNER_DATA_DIR".into(),
        std::env::temp_dir()
            .join(format!("code-runner-{queue}-{name}"))
            .display()
            .to_string(),
    ));
    for (k, v) in extra {
        env.push((k.to_string(), v.to_string()));
    }
    env
}

async fn view(client: &reqwest::Client, url: &str, id: &str) -> Value {
    client
        .get(format!("{url}/v1/jobs/{id}"))
        .send()
        .await
        .expect("GET /v1/jobs")
        .json()
        .await
        .unwrap()
}

/// Polls until the job is in one of `states` (through Redis's or the
/// engine's outages).
async fn wait_state(
    client: &reqwest::Client,
    url: &str,
    id: &str,
    states: &[&str],
    timeout: Duration,
) -> Value {
    helpers::poll_state(
        client,
        &format!("{url}/v1/jobs/{id}"),
        None,
        states,
        timeout,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Containers of the test's queue on the engine (any deployment's).
async fn queue_containers(queue: &str) -> Vec<code_runner::sandbox::sweep::ManagedContainer> {
    let sandbox = code_runner::sandbox::Sandbox::connect(code_runner::sandbox::SandboxSettings {
        image_prefix: "code-runner".into(),
        runtime: None,
        worker_id: "observer".into(),
        queue: "none".into(),
        deployment: "none".into(),
        overrides: serde_json::Map::new(),
    })
    .await
    .unwrap();
    let mut containers = sandbox.list_managed(None).await.unwrap();
    containers.retain(|c| c.queue == format!("{TEST_PREFIX}:{queue}"));
    containers
}

/// Containers of the test's queue that run (or ran) a job: not those
/// waiting in a worker's warm pool.
async fn job_containers(queue: &str) -> Vec<code_runner::sandbox::sweep::ManagedContainer> {
    let mut containers = queue_containers(queue).await;
    containers.retain(|c| c.job_id != code_runner::sandbox::pool::POOL_JOB);
    containers
}

/// Each job's `completed` and final `failed` events in the queue's
/// BullMQ event stream, read as the stream grows from the start: the
/// service keeps only its last entries (`queue::memory::EVENTS_KEPT`), so a
/// run of more jobs than that is only seen whole by a reader that follows
/// it. `finish` stops following and answers the counts.
struct EventTally {
    stop: tokio::sync::watch::Sender<bool>,
    reader: tokio::task::JoinHandle<HashMap<String, (u32, u32)>>,
}

impl EventTally {
    fn follow(redis: &str, queue: &str) -> EventTally {
        let client = redis::Client::open(redis).unwrap();
        let key = format!("{TEST_PREFIX}:{queue}:events");
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let reader = tokio::spawn(async move {
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let mut out: HashMap<String, (u32, u32)> = HashMap::new();
            let mut last = "0-0".to_string();
            loop {
                let done = *stopped.borrow_and_update();
                let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(1000)
                    .arg("BLOCK")
                    .arg(100)
                    .arg("STREAMS")
                    .arg(&key)
                    .arg(&last)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                let entries: Vec<_> = reply
                    .into_iter()
                    .flat_map(|r| r.keys)
                    .flat_map(|k| k.ids)
                    .collect();
                if entries.is_empty() && done {
                    return out;
                }
                for entry in entries {
                    last = entry.id.clone();
                    let field = |name: &str| -> Option<String> {
                        entry
                            .map
                            .get(name)
                            .and_then(|v| redis::from_redis_value(v.clone()).ok())
                    };
                    let (Some(event), Some(job)) = (field("event"), field("jobId")) else {
                        continue;
                    };
                    let counts = out.entry(job).or_default();
                    match event.as_str() {
                        "completed" => counts.0 += 1,
                        // A failed event with attempts left is a retry, not an end.
                        "failed" if field("prev").as_deref() != Some("waiting") => counts.1 += 1,
                        _ => {}
                    }
                }
            }
        });
        EventTally { stop, reader }
    }

    async fn finish(self) -> HashMap<String, (u32, u32)> {
        let _ = self.stop.send(true);
        self.reader.await.unwrap()
    }
}
