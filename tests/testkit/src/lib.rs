//! What code-runner's test suites share: starting a service for a test
//! (in-process, or as a process of the built binary), talking to it, and
//! checking it left no container behind. A crate of its own, so that each
//! suite uses what it needs of it without `#[path]` includes.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use code_runner::app::{App, Role};
use code_runner::config::Config;
use serde_json::Value;

/// The Redis the tests use (`make test` starts one there).
pub fn redis_url() -> String {
    std::env::var("CODE_RUNNER_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

/// A fresh queue name, so tests never see each other's jobs.
pub fn unique_queue() -> String {
    format!("test-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// The key prefix of every test queue.
pub const TEST_PREFIX: &str = "{code-runner-test}";

/// Defaults for a test service: its own queue, port 0, a short wall-clock
/// limit, fault hooks on.
pub fn test_config() -> Config {
    let mut config = Config::from_env().expect("config from environment");
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.admin_listen = "127.0.0.1:0".parse().unwrap();
    config.redis_url = Some(redis_url());
    config.redis_prefix = TEST_PREFIX.to_string();
    config.queue_name = unique_queue();
    config.data_dir = std::env::temp_dir().join(format!("code-runner-{}", config.queue_name));
    config.wall_time_limit_ms = 3_000;
    config.fault_injection = true;
    // `make test-gvisor` runs the suites under gVisor.
    config.runtime = runtime();
    config
}

/// The OCI runtime the tests run jobs under (`CODE_RUNNER_TEST_RUNTIME`),
/// or the engine's default.
pub fn runtime() -> Option<String> {
    std::env::var("CODE_RUNNER_TEST_RUNTIME")
        .ok()
        .filter(|r| !r.is_empty() && r != "runc")
}

/// True when the tests' services recycle containers between jobs: unless
/// `CODE_RUNNER_RECYCLE` is `off` in the environment, which every test
/// service's configuration reads (`per-caller` is the default; the tests'
/// jobs all come from one caller).
pub fn recycling() -> bool {
    std::env::var("CODE_RUNNER_RECYCLE").as_deref() != Ok("off")
}

/// The containers a job's steps ran in, in order (from its timeline).
pub fn containers_of(view: &Value) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for event in view["result"]["timeline"].as_array().into_iter().flatten() {
        if let Some(id) = event["container_id"].as_str()
            && ids.last().map(String::as_str) != Some(id)
        {
            ids.push(id.to_string());
        }
    }
    ids
}

/// The containers a job's program ran in (phase `running`), in order.
pub fn run_containers_of(view: &Value) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for event in view["result"]["timeline"].as_array().into_iter().flatten() {
        if event["phase"] == "running"
            && let Some(id) = event["container_id"].as_str()
            && ids.last().map(String::as_str) != Some(id)
        {
            ids.push(id.to_string());
        }
    }
    ids
}

/// True when the tests run jobs under gVisor.
pub fn under_gvisor() -> bool {
    runtime().as_deref() == Some("runsc")
}

pub struct TestService {
    app: Option<App>,
    pub url: String,
    /// The admin listener.
    pub admin_url: String,
    /// Sent as `Authorization: Bearer` with every request, when set.
    pub bearer: Option<String>,
    pub client: reqwest::Client,
    pub config: Config,
}

impl TestService {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::start_role(Role::Serve, adjust).await
    }

    pub async fn start_role(role: Role, adjust: impl FnOnce(&mut Config)) -> Self {
        if std::env::var_os("RUST_LOG").is_some() {
            code_runner::telemetry::init("text");
        }
        let mut config = test_config();
        adjust(&mut config);
        let app = App::start(role, config.clone())
            .await
            .expect("service starts (is `make test`'s set-up done?)");
        let url = format!("http://{}", app.addr().unwrap());
        let admin_url = format!("http://{}", app.admin_addr().unwrap());
        TestService {
            app: Some(app),
            url,
            admin_url,
            bearer: None,
            client: reqwest::Client::new(),
            config,
        }
    }

    pub fn app(&self) -> &App {
        self.app.as_ref().unwrap()
    }

    /// A request to the admin listener (the dashboard's API); answers
    /// status and JSON (`null` for a body that is not JSON).
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.admin_url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub fn worker_id(&self) -> String {
        self.app().worker_id().unwrap().to_string()
    }

    /// `POST /run` with a raw body and content type.
    pub async fn post_raw(
        &self,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let response = self
            .authorized(self.client.post(format!("{}/run", self.url)))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST /run");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// Submits Python code; returns the job id.
    pub async fn submit(&self, code: &str) -> String {
        self.submit_body(serde_json::json!({ "language": "python", "code": code }))
            .await
    }

    pub async fn submit_body(&self, body: Value) -> String {
        let (status, answer) = self.post_raw("application/json", body.to_string()).await;
        assert_eq!(status, 200, "POST /run answered {status}: {answer}");
        answer["jobId"].as_str().expect("jobId").to_string()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .authorized(self.client.get(format!("{}{path}", self.url)))
            .send()
            .await
            .expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn status(&self, id: &str) -> Value {
        let (code, body) = self.get(&format!("/status/{id}")).await;
        assert_eq!(code, 200, "GET /status/{id} answered {code}: {body}");
        body
    }

    /// Polls `GET /status/{id}` until the job is completed or failed.
    pub async fn wait_done(&self, id: &str, timeout: Duration) -> Value {
        let url = format!("{}/status/{id}", self.url);
        poll_state(&self.client, &url, self.bearer.as_deref(), ENDED, timeout)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A GET on the admin listener.
    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.admin_url))
            .send()
            .await
            .expect("admin GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.bearer {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// Containers of this service's worker on the engine now.
    pub async fn containers(&self) -> Vec<code_runner::sandbox::sweep::ManagedContainer> {
        let worker = self.worker_id();
        self.app()
            .sandbox()
            .unwrap()
            .list_managed(Some(&worker))
            .await
            .expect("list containers")
    }

    /// Containers of this worker's jobs (not those waiting in its warm pool).
    pub async fn job_containers(&self) -> Vec<code_runner::sandbox::sweep::ManagedContainer> {
        let mut containers = self.containers().await;
        containers.retain(|c| c.job_id != code_runner::sandbox::pool::POOL_JOB);
        containers
    }

    /// Waits until no container of `job` (of any job when `None`) is left:
    /// a used container is removed in the background after its result (on
    /// an engine loaded by the whole suite, removing one that was just
    /// OOM-killed was once seen to take over 20 s).
    pub async fn assert_containers_gone(&self, job: Option<&str>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left: Vec<_> = self
                .job_containers()
                .await
                .into_iter()
                .filter(|c| job.is_none_or(|j| c.job_id == j))
                .collect();
            if left.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "containers left: {left:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The warm pool's figures from `/v1/stats`.
    pub async fn pool_stats(&self) -> Value {
        let (status, stats) = self.admin_get("/v1/stats").await;
        assert_eq!(status, 200, "{stats}");
        stats["pool"].clone()
    }

    /// Waits until the warm pool holds as many idle containers of `image`
    /// as it wants (at least one).
    pub async fn wait_pool_warm(&self, image: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pool = self.pool_stats().await;
            let idle = pool["idle"][image].as_u64().unwrap_or(0);
            if idle >= 1 && idle >= pool["target"][image].as_u64().unwrap_or(0) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the pool never warmed {image}: {pool}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the pool holds a recycled container of `image` (a job's
    /// container restored for the next).
    pub async fn wait_recycled(&self, image: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pool = self.pool_stats().await;
            if pool["recycled"][image].as_u64().unwrap_or(0) >= 1 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no container of {image} was recycled: {pool}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until container `id` is either back in the pool, recycled
    /// (`true`: named as the pool's again), or gone from the engine
    /// (`false`).
    pub async fn recycled_or_gone(&self, id: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.containers().await.iter().find(|c| c.id == id) {
                None => return false,
                Some(c) if c.job_id == code_runner::sandbox::pool::POOL_JOB => return true,
                Some(_) => {}
            }
            assert!(
                Instant::now() < deadline,
                "container {id} was neither recycled nor removed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the service and checks that it left no container behind.
    pub async fn stop(mut self) {
        let app = self.app.take().unwrap();
        let Some(sandbox) = app.sandbox().cloned() else {
            // A process without workers has no containers.
            app.shutdown().await;
            return;
        };
        let worker = app.worker_id().unwrap().to_string();
        app.shutdown().await;
        let left = sandbox.list_managed(Some(&worker)).await.unwrap();
        assert!(left.is_empty(), "containers left behind: {left:?}");
    }
}

impl Drop for TestService {
    /// A test that failed before [`TestService::stop`] leaves its service
    /// running, and its warm containers on the engine, where the suite's
    /// final check would blame them on the whole run: they are removed
    /// here. The test's runtime runs nothing while this blocks it, and is
    /// dropped right after, so only a container the engine was already
    /// creating can appear meanwhile: hence a second look.
    fn drop(&mut self) {
        let Some(app) = self.app.take() else { return };
        let worker = app.worker_id().map(str::to_string);
        drop(app);
        let Some(worker) = worker else { return };
        for pause in [Duration::ZERO, Duration::from_millis(500)] {
            std::thread::sleep(pause);
            let _ = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "docker ps -aq --filter label=code-runner.worker={worker} | xargs -r docker rm -f"
                ))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Polls `GET /status/{id}` until the job is completed or failed.
pub async fn wait_done(client: &reqwest::Client, url: &str, id: &str, timeout: Duration) -> Value {
    poll_state(client, &format!("{url}/status/{id}"), None, ENDED, timeout)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The states a job ends in, as `/status/{id}` and `/v1/jobs/{id}` say.
pub const ENDED: &[&str] = &["completed", "failed"];

/// The one submit-then-poll loop of the suites: polls `GET url` (a job's
/// `/v1/jobs/{id}` or `/status/{id}`, with `bearer` when given) until its
/// `state` is one of `states`, and answers the job. A 4xx is an error at
/// once; a 5xx (Redis or the engine away, as the outage tests make them)
/// is polled through until `timeout`. `Err` says what was last seen.
pub async fn poll_state(
    client: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    states: &[&str],
    timeout: Duration,
) -> Result<Value, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut request = client.get(url);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let (status, view) = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            }
            Err(e) => (0, Value::String(e.to_string())),
        };
        if (400..500).contains(&status) {
            return Err(format!("GET {url} answered {status}: {view}"));
        }
        if status == 200 && states.iter().any(|s| view["state"] == *s) {
            return Ok(view);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "GET {url} not {states:?} within {timeout:?}: {status} {view}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

impl TestService {
    /// Any request with a JSON body; answers status and JSON.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request =
            self.authorized(self.client.request(method, format!("{}{path}", self.url)));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST /v1/jobs?wait=true`, expecting the finished job. A job not
    /// finished within the server's bounded wait (202, on a loaded machine)
    /// is then awaited with `GET`: how long a job takes is not what the
    /// callers test.
    pub async fn run_v1(&self, body: Value) -> Value {
        let (status, view) = self
            .send(reqwest::Method::POST, "/v1/jobs?wait=true", Some(body))
            .await;
        if status == 202 {
            let id = view["id"].as_str().expect("a 202 names its job");
            return self
                .wait_v1(id, &["completed", "failed"], Duration::from_secs(300))
                .await;
        }
        assert_eq!(
            status, 200,
            "POST /v1/jobs?wait=true answered {status}: {view}"
        );
        view
    }

    /// `POST /v1/jobs`, expecting 201; the job id.
    pub async fn submit_v1(&self, body: Value) -> String {
        let (status, answer) = self
            .send(reqwest::Method::POST, "/v1/jobs", Some(body))
            .await;
        assert_eq!(status, 201, "POST /v1/jobs answered {status}: {answer}");
        answer["id"].as_str().expect("id").to_string()
    }

    /// Polls `GET /v1/jobs/{id}` until its state is one of `states`.
    pub async fn wait_v1(&self, id: &str, states: &[&str], timeout: Duration) -> Value {
        let url = format!("{}/v1/jobs/{id}", self.url);
        poll_state(&self.client, &url, self.bearer.as_deref(), states, timeout)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The label value of this service's queue on its containers.
    pub fn queue_label(&self) -> String {
        format!("{}:{}", self.config.redis_prefix, self.config.queue_name)
    }
}

// Running the service as a process (the real binary).

/// A loopback port free now, and never handed out before in this process:
/// the kernel may give a port just released again at once, and two
/// listeners of one service (or two servers of one test) must not both be
/// told the same port.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// The `code-runner` binary cargo built beside the running test binary
/// (`target/<profile>/deps/<test>` → `target/<profile>/code-runner`); cargo
/// builds it for the service crate's own integration tests.
pub fn service_binary() -> std::path::PathBuf {
    let test = std::env::current_exe().expect("the test binary's path");
    let profile = test
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lies in target/<profile>/deps");
    let binary = profile.join("code-runner");
    assert!(
        binary.exists(),
        "{} is not built: only the service crate's own tests start it as a process",
        binary.display()
    );
    binary
}

/// `code-runner <role>` on `port` for the test queue `queue`, with its own
/// data directory (the same for the same queue and role, so a restarted
/// process keeps its worker id) and a free admin port.
pub fn service_command(role: &str, queue: &str, port: u16) -> Command {
    let binary = service_binary();
    let mut command = Command::new(binary);
    command
        .arg(role)
        .env("CODE_RUNNER_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "CODE_RUNNER_ADMIN_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("CODE_RUNNER_REDIS_URL", redis_url())
        .env("CODE_RUNNER_REDIS_PREFIX", TEST_PREFIX)
        .env("CODE_RUNNER_QUEUE", queue)
        .env(
            "CODE_RUNNER_DATA_DIR",
            std::env::temp_dir().join(format!("code-runner-{queue}-{role}")),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if let Some(runtime) = runtime() {
        command.env("CODE_RUNNER_RUNTIME", runtime);
    }
    command
}

pub fn start_service(queue: &str, port: u16, extra_env: &[(&str, String)]) -> Child {
    let mut command = service_command("serve", queue, port);
    command.env("RUST_LOG", "warn");
    for (name, value) in extra_env {
        command.env(name, value);
    }
    command.spawn().expect("start code-runner serve")
}

/// `POST /v1/jobs` to a service process: the new job's id (201 asserted).
pub async fn submit_to(client: &reqwest::Client, url: &str, body: Value) -> String {
    let response = client
        .post(format!("{url}/v1/jobs"))
        .json(&body)
        .send()
        .await
        .expect("POST /v1/jobs");
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_string()
}

pub async fn wait_ready(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{url}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "service at {url} never got ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM, then the exit status.
pub fn terminate(mut child: Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the service did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}
