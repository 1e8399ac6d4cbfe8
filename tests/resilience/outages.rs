//! Outages of Redis and of the Docker engine, and failures of either kind:
//! nothing is lost, work resumes after.

use super::*;

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
    let running = helpers::submit_to(&client, &serve.url, json!({ "language": "python", "code": "import time\ntime.sleep(6)\nprint('survived the outage')" })).await;
    wait_state(
        &client,
        &serve.url,
        &running,
        &["active"],
        Duration::from_secs(60),
    )
    .await;
    // Its program started (a job still being created when the engine goes
    // away goes back to the queue without spending an attempt).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = view(&client, &serve.url, &running).await;
        if view["phase"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "never running: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
