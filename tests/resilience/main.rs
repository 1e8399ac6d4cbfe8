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

/// Polls until the job is in one of `states`.
async fn wait_state(
    client: &reqwest::Client,
    url: &str,
    id: &str,
    states: &[&str],
    timeout: Duration,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let view = view(client, url, id).await;
        if states.iter().any(|s| view["state"] == *s) {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "{id} not {states:?} within {timeout:?}: {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

/// Completed and failed events per job id, from the queue's event stream.
async fn final_events(redis: &str, queue: &str) -> HashMap<String, (u32, u32)> {
    let client = redis::Client::open(redis).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{TEST_PREFIX}:{queue}:events");
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut out: HashMap<String, (u32, u32)> = HashMap::new();
    for entry in entries.ids {
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
    out
}

/// A Redis server of the test's own, with an append-only file written on
/// every command, that can be stopped and started again.
struct OwnRedis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl OwnRedis {
    async fn start() -> OwnRedis {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("code-runner-redis-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = OwnRedis {
            port,
            dir,
            child: None,
        };
        redis.up().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn up(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--dir")
            .arg(&self.dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (make test installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !code_runner::queue::embedded::answers(&self.url()).await {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn down(&mut self) {
        let mut child = self.child.take().unwrap();
        // SIGTERM: Redis flushes its append-only file and exits.
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        child.wait().unwrap();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_worker_killed_mid_job_has_its_jobs_taken_over_and_its_containers_reaped() {
    let _one = ONE_AT_A_TIME.lock().await;
    let queue = unique_queue();
    let base = base_env(&redis_url(), &queue);
    let fast_locks = [
        ("CODE_RUNNER_LOCK_DURATION_MS", "3000"),
        ("CODE_RUNNER_CONCURRENCY", "2"),
    ];
    let api = Process::spawn("api", base.clone());
    let mut doomed = Process::spawn("worker", worker_env(&base, "doomed", &fast_locks));
    api.ready().await;
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..2 {
        ids.push(
            helpers::submit_to(
                &client,
                &api.url,
                json!({ "language": "python", "code": format!("import time\ntime.sleep(3)\nprint('job {i}')") }),
            )
            .await,
        );
    }
    for id in &ids {
        wait_state(&client, &api.url, id, &["active"], Duration::from_secs(60)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while job_containers(&queue).await.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the jobs' containers never appeared"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its jobs' containers and those waiting in its warm pool.
    let before: Vec<String> = queue_containers(&queue)
        .await
        .into_iter()
        .map(|c| c.id)
        .collect();
    doomed.kill9();
    // Its containers outlive it...
    let alive = |ids: Vec<code_runner::sandbox::sweep::ManagedContainer>| {
        ids.into_iter().filter(|c| before.contains(&c.id)).count()
    };
    assert_eq!(alive(queue_containers(&queue).await), before.len());
    assert_eq!(job_containers(&queue).await.len(), 2);
    // ...until it starts again (same data directory: same id), when it
    // removes them before claiming anything.
    let mut survivor = Process::spawn("worker", worker_env(&base, "survivor", &fast_locks));
    doomed.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(queue_containers(&queue).await) > 0 {
        assert!(
            Instant::now() < deadline,
            "the dead worker's containers were not reaped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Taken over after the lock expired: each completes, once.
    for (i, id) in ids.iter().enumerate() {
        let view = wait_state(
            &client,
            &api.url,
            id,
            &["completed", "failed"],
            Duration::from_secs(90),
        )
        .await;
        assert_eq!(view["state"], "completed", "{view}");
        assert_eq!(view["result"]["stdout"], format!("job {i}\n"));
    }
    let events = final_events(&redis_url(), &queue).await;
    for id in &ids {
        assert_eq!(events.get(id).copied(), Some((1, 0)), "{id}: {events:?}");
    }
    assert!(survivor.terminate().success());
    assert!(doomed.terminate().success());
    assert!(queue_containers(&queue).await.is_empty(), "containers left");
}

/// A webhook receiver whose first call is held until `release` fires and
/// then answered 500; later calls get 200. `arrivals` hears of each call.
#[allow(clippy::type_complexity)]
async fn holding_receiver() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, axum::body::Bytes)>>>,
    tokio::sync::mpsc::UnboundedReceiver<usize>,
    std::sync::Arc<tokio::sync::Notify>,
) {
    use std::sync::Arc;
    let calls: Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, axum::body::Bytes)>>> =
        Arc::default();
    let release = Arc::new(tokio::sync::Notify::new());
    let (arrived, arrivals) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let (calls, release) = (calls.clone(), release.clone());
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (calls, release, arrived) = (calls.clone(), release.clone(), arrived.clone());
                async move {
                    let n = {
                        let mut calls = calls.lock().unwrap();
                        calls.push((headers, body));
                        calls.len()
                    };
                    let _ = arrived.send(n);
                    if n == 1 {
                        release.notified().await;
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls, arrivals, release)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_owed_by_a_killed_worker_is_delivered_by_another_exactly_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let queue = unique_queue();
    let mut base = base_env(&redis_url(), &queue);
    base.push(("CODE_RUNNER_CALLBACK_ALLOW".into(), "127.0.0.0/8".into()));
    base.push((
        "CODE_RUNNER_CALLBACK_SECRET".into(),
        "durable-webhook-secret".into(),
    ));
    let worker_settings = [
        ("CODE_RUNNER_LOCK_DURATION_MS", "2000"),
        ("CODE_RUNNER_POOL_SIZE", "0"),
    ];
    let (hook, calls, mut arrivals, release) = holding_receiver().await;
    let api = Process::spawn("api", base.clone());
    let mut doomed = Process::spawn("worker", worker_env(&base, "doomed", &worker_settings));
    api.ready().await;
    let client = reqwest::Client::new();
    let id = helpers::submit_to(
        &client,
        &api.url,
        json!({ "language": "bash", "code": "echo owed", "callback_url": hook }),
    )
    .await;
    // The first attempt reaches the receiver; the worker dies while it
    // waits for the answer, which then fails.
    let first = tokio::time::timeout(Duration::from_secs(60), arrivals.recv()).await;
    assert_eq!(
        first.ok().flatten(),
        Some(1),
        "the first attempt never came"
    );
    doomed.kill9();
    release.notify_one();
    let view = wait_state(
        &client,
        &api.url,
        &id,
        &["completed"],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(view["result"]["stdout"], "owed\n");
    // Another worker takes the delivery over once the dead one's lock
    // expires, and delivers it.
    let mut survivor = Process::spawn("worker", worker_env(&base, "survivor", &worker_settings));
    let second = tokio::time::timeout(Duration::from_secs(60), arrivals.recv()).await;
    assert_eq!(
        second.ok().flatten(),
        Some(2),
        "no other worker delivered it"
    );
    // Exactly once more: nothing after the delivery that succeeded.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "{} calls", calls.len());
    for (headers, body) in &calls {
        let signature = headers["x-code-runner-signature"].to_str().unwrap();
        let t: u64 = signature
            .strip_prefix("t=")
            .and_then(|s| s.split(',').next())
            .and_then(|t| t.parse().ok())
            .unwrap();
        assert_eq!(
            signature,
            code_runner::callback::CallbackSender::sign(b"durable-webhook-secret", t, body)
        );
        let sent: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(sent["id"], id.as_str());
        assert_eq!(sent["result"]["stdout"], "owed\n");
    }
    // Nothing left: a container the dead worker was still removing in the
    // background when it was killed is swept by the survivor once the dead
    // worker's heartbeat has expired.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !job_containers(&queue).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "containers left: {:?}",
            job_containers(&queue).await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(survivor.terminate().success());
}

#[tokio::test]
async fn a_job_stalled_too_often_fails_with_a_clear_reason() {
    let _one = ONE_AT_A_TIME.lock().await;
    let queue = unique_queue();
    let base = base_env(&redis_url(), &queue);
    let env = [
        ("CODE_RUNNER_LOCK_DURATION_MS", "2000"),
        ("CODE_RUNNER_MAX_STALLS", "0"),
    ];
    let api = Process::spawn("api", base.clone());
    let mut first = Process::spawn("worker", worker_env(&base, "first", &env));
    api.ready().await;
    let client = reqwest::Client::new();
    let id = helpers::submit_to(
        &client,
        &api.url,
        json!({ "language": "python", "code": "import time\ntime.sleep(5)" }),
    )
    .await;
    wait_state(&client, &api.url, &id, &["active"], Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.kill9();
    let mut second = Process::spawn("worker", worker_env(&base, "second", &env));
    let view = wait_state(
        &client,
        &api.url,
        &id,
        &["completed", "failed"],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(view["state"], "failed", "{view}");
    assert!(
        view["error"].as_str().unwrap().contains("stalled"),
        "{view}"
    );
    assert!(second.terminate().success());
    first.start();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(first.terminate().success());
    assert!(queue_containers(&queue).await.is_empty(), "containers left");
}

#[tokio::test]
async fn sigterm_lets_short_runs_finish_and_requeues_the_rest() {
    let _one = ONE_AT_A_TIME.lock().await;
    let queue = unique_queue();
    let base = base_env(&redis_url(), &queue);
    let env = [
        ("CODE_RUNNER_SHUTDOWN_GRACE_MS", "3000"),
        ("CODE_RUNNER_CONCURRENCY", "2"),
    ];
    let api = Process::spawn("api", base.clone());
    let mut worker = Process::spawn("worker", worker_env(&base, "w", &env));
    api.ready().await;
    let client = reqwest::Client::new();
    let short = helpers::submit_to(
        &client,
        &api.url,
        json!({ "language": "python", "code": "import time\ntime.sleep(1)\nprint('short')" }),
    )
    .await;
    let long = helpers::submit_to(
        &client,
        &api.url,
        json!({ "language": "python", "code": "import time\ntime.sleep(8)\nprint('long')" }),
    )
    .await;
    for id in [&short, &long] {
        wait_state(&client, &api.url, id, &["active"], Duration::from_secs(60)).await;
    }
    let started = Instant::now();
    let status = worker.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(started.elapsed() < Duration::from_secs(20));
    // The short run finished within the grace; the long one went back.
    let view = wait_state(
        &client,
        &api.url,
        &short,
        &["completed"],
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(view["result"]["stdout"], "short\n");
    // `self::`: the local `view` above shadows the function.
    let view = self::view(&client, &api.url, &long).await;
    assert_eq!(
        view["state"], "waiting",
        "no job is left active with no owner: {view}"
    );
    assert!(queue_containers(&queue).await.is_empty(), "containers left");
    // Another worker runs it.
    let mut next = Process::spawn("worker", worker_env(&base, "next", &[]));
    let view = wait_state(
        &client,
        &api.url,
        &long,
        &["completed"],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(view["result"]["stdout"], "long\n");
    assert!(next.terminate().success());
}

#[tokio::test]
async fn a_redis_outage_answers_503_and_loses_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut redis = OwnRedis::start().await;
    let queue = unique_queue();
    let base = base_env(&redis.url(), &queue);
    let serve = Process::spawn("serve", worker_env(&base, "serve", &[]));
    serve.ready().await;
    let client = reqwest::Client::new();
    let mut before = Vec::new();
    for i in 0..6 {
        before.push(
            helpers::submit_to(&client, &serve.url, json!({ "language": "python", "code": format!("import time\ntime.sleep(0.5)\nprint({i})") })).await,
        );
    }
    redis.down();
    // While it is down: 503 with a clear error, within a bounded time.
    for (method, path, body) in [
        (
            reqwest::Method::POST,
            "/v1/jobs".to_string(),
            Some(json!({ "language": "python", "code": "print(1)" })),
        ),
        (
            reqwest::Method::GET,
            format!("/v1/jobs/{}", before[0]),
            None,
        ),
        (reqwest::Method::GET, format!("/status/{}", before[0]), None),
    ] {
        let started = Instant::now();
        let mut request = client.request(method, format!("{}{path}", serve.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 503, "{path}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{path} took {:?}",
            started.elapsed()
        );
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("unavailable"),
            "{body}"
        );
    }
    let ready = client
        .get(format!("{}/readyz", serve.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    tokio::time::sleep(Duration::from_secs(3)).await;
    redis.up().await;

    // Everything enqueued before completes; new work is taken.
    for (i, id) in before.iter().enumerate() {
        let view = wait_state(
            &client,
            &serve.url,
            id,
            &["completed", "failed"],
            Duration::from_secs(120),
        )
        .await;
        assert_eq!(view["state"], "completed", "{view}");
        assert_eq!(view["result"]["stdout"], format!("{i}\n"));
    }
    let after = helpers::submit_to(
        &client,
        &serve.url,
        json!({ "language": "python", "code": "print('after')" }),
    )
    .await;
    let view = wait_state(
        &client,
        &serve.url,
        &after,
        &["completed"],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(view["result"]["stdout"], "after\n");
    // Stopped, it removes its warm pool too.
    let mut serve = serve;
    assert!(serve.terminate().success());
    assert!(queue_containers(&queue).await.is_empty(), "containers left");
}

/// A unix-socket proxy to the Docker engine that a test can cut and restore:
/// a worker pointed at it (`DOCKER_HOST`) sees the engine go away and come
/// back, while the real engine keeps serving everything else.
struct EngineProxy {
    path: PathBuf,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl EngineProxy {
    fn new() -> EngineProxy {
        let path = std::env::temp_dir().join(format!(
            "code-runner-engine-{}.sock",
            uuid::Uuid::new_v4().simple()
        ));
        let mut proxy = EngineProxy { path, task: None };
        proxy.restore();
        proxy
    }

    fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    fn restore(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let listener = tokio::net::UnixListener::bind(&self.path).unwrap();
        self.task = Some(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    break;
                };
                connections.spawn(async move {
                    if let Ok(mut engine) =
                        tokio::net::UnixStream::connect("/var/run/docker.sock").await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut engine).await;
                    }
                });
            }
        }));
    }

    /// Every connection through the proxy dies and none can be made.
    fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

// Multi-threaded: the engine proxy keeps serving while the test thread
// blocks waiting for the service to exit (it drains its pool through it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_outage_pauses_the_worker_and_work_resumes_after() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut proxy = EngineProxy::new();
    let queue = unique_queue();
    let base = base_env(&redis_url(), &queue);
    let host = proxy.docker_host();
    let serve = Process::spawn(
        "serve",
        worker_env(
            &base,
            "serve",
            &[
                ("DOCKER_HOST", host.as_str()),
                ("CODE_RUNNER_CONCURRENCY", "2"),
            ],
        ),
    );
    serve.ready().await;
    let client = reqwest::Client::new();
    let running = helpers::submit_to(&client, &serve.url, json!({ "language": "python", "code": "import time\ntime.sleep(3)\nprint('survived the outage')" })).await;
    wait_state(
        &client,
        &serve.url,
        &running,
        &["active"],
        Duration::from_secs(60),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The running job's container and the warm pool's, before the outage.
    let before_cut: Vec<String> = queue_containers(&queue)
        .await
        .into_iter()
        .map(|c| c.id)
        .collect();

    proxy.cut();
    // Not ready, and the jobs submitted now wait instead of failing in a loop.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ready = client
            .get(format!("{}/readyz", serve.url))
            .send()
            .await
            .unwrap();
        if ready.status() == 503 {
            let body: Value = ready.json().await.unwrap();
            assert_eq!(body["docker"]["ok"], false, "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "/readyz never said not ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut waiting = Vec::new();
    for i in 0..3 {
        waiting.push(
            helpers::submit_to(
                &client,
                &serve.url,
                json!({ "language": "python", "code": format!("print('waited {i}')") }),
            )
            .await,
        );
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    for id in &waiting {
        let view = view(&client, &serve.url, id).await;
        assert_eq!(view["state"], "waiting", "{view}");
        assert_eq!(
            view["attempts_made"], 0,
            "it must not fail in a loop: {view}"
        );
    }

    proxy.restore();
    // The job in flight was retried per policy; everything completes.
    let view = wait_state(
        &client,
        &serve.url,
        &running,
        &["completed", "failed"],
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(view["state"], "completed", "{view}");
    assert_eq!(view["result"]["stdout"], "survived the outage\n");
    assert!(
        view["attempts_made"].as_u64().unwrap() >= 2,
        "it was retried: {view}"
    );
    for (i, id) in waiting.iter().enumerate() {
        let view = wait_state(
            &client,
            &serve.url,
            id,
            &["completed"],
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(view["result"]["stdout"], format!("waited {i}\n"));
    }
    let ready = client
        .get(format!("{}/readyz", serve.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    // The container of the run the outage cut short is gone too, and so is
    // every container the pool held before it (the engine may have lost
    // them; the pool starts afresh).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: Vec<_> = queue_containers(&queue)
            .await
            .into_iter()
            .filter(|c| {
                c.job_id != code_runner::sandbox::pool::POOL_JOB || before_cut.contains(&c.id)
            })
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "containers left after the outage: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut serve = serve;
    assert!(serve.terminate().success());
    assert!(queue_containers(&queue).await.is_empty(), "containers left");
}

#[tokio::test]
async fn infrastructure_failures_are_retried_and_user_failures_are_not() {
    let _one = ONE_AT_A_TIME.lock().await;
    // A language whose containers the engine cannot create (an OCI runtime
    // it does not know): an infrastructure failure. (A missing image is
    // not one any more: such a language is not ready, and refused.)
    let table: PathBuf =
        std::env::temp_dir().join(format!("ghost-languages-{}.toml", std::process::id()));
    std::fs::write(
        &table,
        format!(
            "{}\n[[language]]\nid = \"ghost\"\nname = \"Ghost\"\nversion = \"1\"\nimage = \"bash\"\nruntime = \"no-such-runtime\"\nsource_file = \"main.sh\"\nrun = [\"bash\", \"main.sh\"]\n",
            include_str!("../../docker/languages.toml")
        ),
    )
    .unwrap();
    let table_path = table.clone();
    let service = helpers::TestService::start_with(move |c| {
        c.languages_file = Some(table_path);
        c.attempts = 3;
    })
    .await;
    let view = service
        .run_v1(json!({ "language": "ghost", "code": "echo never" }))
        .await;
    assert_eq!(view["state"], "failed", "{view}");
    assert_eq!(view["attempts_made"], 3, "{view}");
    assert!(
        view["error"].as_str().unwrap().contains("no-such-runtime"),
        "{view}"
    );
    let view = service
        .run_v1(json!({ "language": "python", "code": "import sys\nsys.exit(1)" }))
        .await;
    assert_eq!(view["state"], "completed");
    assert_eq!(view["result"]["verdict"], "runtime_error");
    assert_eq!(
        view["attempts_made"], 1,
        "user code is never retried: {view}"
    );
    service.stop().await;
    let _ = std::fs::remove_file(Path::new(&table));
}

#[tokio::test]
async fn a_thousand_jobs_survive_a_worker_killed_in_the_middle() {
    let _one = ONE_AT_A_TIME.lock().await;
    let queue = unique_queue();
    let base = base_env(&redis_url(), &queue);
    let env = [
        ("CODE_RUNNER_LOCK_DURATION_MS", "5000"),
        ("CODE_RUNNER_CONCURRENCY", "3"),
    ];
    let apis = [
        Process::spawn("api", base.clone()),
        Process::spawn("api", base.clone()),
    ];
    let mut workers: Vec<Process> = (0..3)
        .map(|i| Process::spawn("worker", worker_env(&base, &format!("w{i}"), &env)))
        .collect();
    for api in &apis {
        api.ready().await;
    }
    let client = reqwest::Client::new();
    const JOBS: usize = 1000;
    use futures_util::StreamExt;
    let ids: Vec<(usize, String)> = futures_util::stream::iter(0..JOBS)
        .map(|i| {
            let client = &client;
            let url = &apis[i % 2].url;
            async move {
                (
                    i,
                    helpers::submit_to(
                        client,
                        url,
                        json!({ "language": "bash", "code": format!("echo job-{i}") }),
                    )
                    .await,
                )
            }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    // Kill one worker once a good part of the burst is done.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let counts: Value = client
            .get(format!("{}/v1/stats", apis[0].admin_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if counts["queue"]["completed"].as_u64().unwrap_or(0) >= (JOBS / 3) as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the burst does not progress: {counts}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    workers[1].kill9();
    workers[1].start();

    for (i, id) in &ids {
        let view = wait_state(
            &client,
            &apis[i % 2].url,
            id,
            &["completed", "failed"],
            Duration::from_secs(600),
        )
        .await;
        assert_eq!(view["state"], "completed", "{view}");
        assert_eq!(view["result"]["stdout"], format!("job-{i}\n"), "{view}");
    }
    let events = final_events(&redis_url(), &queue).await;
    for (_, id) in &ids {
        assert_eq!(
            events.get(id).copied(),
            Some((1, 0)),
            "{id} did not end exactly once"
        );
    }
    for worker in &mut workers {
        assert!(worker.terminate().success());
    }
    assert!(queue_containers(&queue).await.is_empty(), "containers left");
}
