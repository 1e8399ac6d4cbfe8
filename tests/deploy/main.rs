//! The deployments of `deploy/`: the service's image
//! (`docker/service/build.sh`, around the binary these tests run) brought up
//! with `deploy/compose.yaml` (Redis, an API, two workers), jobs run through
//! it, then brought down with nothing left behind.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use code_runner_testkit as helpers;
use helpers::{free_port, unique_queue};
use serde_json::{Value, json};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(command: &mut Command) -> Output {
    let output = command.output().expect("the command runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `docker-compose` for one project, with the settings compose.yaml needs.
struct Compose {
    project: String,
    env: Vec<(String, String)>,
}

impl Compose {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("docker-compose");
        command
            .arg("-p")
            .arg(&self.project)
            .arg("-f")
            .arg(repo().join("deploy/compose.yaml"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
    }

    fn logs(&self) -> String {
        let output = self
            .command(&["logs", "--no-color", "--tail", "40"])
            .output();
        output
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        // However the test ended: nothing of the project stays.
        let _ = self.command(&["down", "-v", "--timeout", "40"]).output();
    }
}

fn docker_lines(args: &[&str]) -> Vec<String> {
    let output = run(Command::new("docker").args(args));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// A GET with a bearer token, answered with JSON.
async fn get_json(client: &reqwest::Client, url: String, token: &str) -> Value {
    let response = client.get(url).bearer_auth(token).send().await.unwrap();
    response.json().await.unwrap()
}

#[tokio::test]
async fn compose_brings_up_an_api_and_two_workers_that_run_jobs_and_leave_nothing() {
    // The image, around the binary cargo built for these tests.
    let image = format!("code-runner/service:test-{}", &unique_queue()[5..]);
    run(Command::new(repo().join("docker/service/build.sh"))
        .arg(helpers::service_binary())
        .env("SERVICE_IMAGE", &image));
    // The image runs as a user of its own, never root.
    let user = docker_lines(&["image", "inspect", "-f", "{{.Config.User}}", &image]);
    assert_eq!(user, ["10001:10001"]);

    let key_output = run(Command::new(helpers::service_binary()).args(["new-key", "compose"]));
    let text = String::from_utf8_lossy(&key_output.stdout).into_owned();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap()
    };
    let (key, entry) = (field("key:"), field("entry:"));
    let socket_gid = std::fs::metadata("/var/run/docker.sock")
        .map(|m| std::os::unix::fs::MetadataExt::gid(&m))
        .expect("the Docker socket");
    let (port, admin_port) = (free_port(), free_port());
    let queue = unique_queue();
    let admin_token = uuid::Uuid::new_v4().simple().to_string();
    let compose = Compose {
        project: format!("cr{}", &queue[5..]),
        env: vec![
            ("CODE_RUNNER_IMAGE".into(), image.clone()),
            (
                "CODE_RUNNER_REDIS_PASSWORD".into(),
                uuid::Uuid::new_v4().simple().to_string(),
            ),
            ("CODE_RUNNER_API_KEYS".into(), entry),
            ("CODE_RUNNER_ADMIN_TOKEN".into(), admin_token.clone()),
            ("DOCKER_GID".into(), socket_gid.to_string()),
            ("CODE_RUNNER_PORT".into(), port.to_string()),
            ("CODE_RUNNER_ADMIN_PORT".into(), admin_port.to_string()),
            ("CODE_RUNNER_QUEUE".into(), queue.clone()),
        ],
    };
    run(&mut compose.command(&["up", "-d"]));

    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}");
    let admin_url = format!("http://127.0.0.1:{admin_port}");
    // Ready once it reaches Redis and a worker has said it is alive.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let workers = client
            .get(format!("{admin_url}/v1/workers"))
            .bearer_auth(&admin_token)
            .send()
            .await;
        if let Ok(response) = workers
            && let Ok(body) = response.json::<Value>().await
            && body["workers"].as_array().is_some_and(|w| w.len() == 2)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "two workers never appeared:\n{}",
            compose.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // No key, no job: the API listens beyond loopback in its container.
    let refused = client
        .post(format!("{url}/v1/jobs"))
        .json(&json!({ "language": "python", "code": "print(1)" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    // Jobs through the API, run by both workers.
    let mut ids = Vec::new();
    for i in 0..6 {
        let response = client
            .post(format!("{url}/v1/jobs"))
            .bearer_auth(&key)
            .json(&json!({ "language": "python", "code": format!("import time\ntime.sleep(0.5)\nprint({i} * 7)") }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201);
        let body: Value = response.json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    let mut workers_seen = std::collections::BTreeSet::new();
    for (i, id) in ids.iter().enumerate() {
        let view = helpers::poll_state(
            &client,
            &format!("{url}/v1/jobs/{id}"),
            Some(&key),
            helpers::ENDED,
            Duration::from_secs(120),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", compose.logs()));
        assert_eq!(view["state"], "completed", "{view}");
        assert_eq!(view["result"]["stdout"], format!("{}\n", i * 7), "{view}");
        let detail: Value = get_json(
            &client,
            format!("{admin_url}/admin/api/jobs/{id}"),
            &admin_token,
        )
        .await;
        workers_seen.insert(detail["worker_id"].as_str().unwrap_or_default().to_string());
    }
    // The proof of concept's API, and the dashboard behind its token.
    let body: Value = client
        .post(format!("{url}/run"))
        .bearer_auth(&key)
        .json(&json!({ "language": "python", "code": "print('Hello world')" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job_id = body["jobId"].as_str().expect("a job id").to_string();
    let view = helpers::poll_state(
        &client,
        &format!("{url}/status/{job_id}"),
        Some(&key),
        &["completed"],
        Duration::from_secs(60),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", compose.logs()));
    assert_eq!(view["result"]["stdout"], "Hello world", "{view}");
    let overview = client
        .get(format!("{admin_url}/admin/api/overview"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(overview.status().as_u16(), 200);
    let unauthorised = client
        .get(format!("{admin_url}/admin/api/overview"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status().as_u16(), 401);
    assert_eq!(workers_seen.len(), 2, "the jobs ran on {workers_seen:?}");

    // Down: the workers remove their job containers as they stop, and the
    // project's containers, network and volumes go.
    run(&mut compose.command(&["down", "-v", "--timeout", "40"]));
    let label = format!("label=com.docker.compose.project={}", compose.project);
    assert!(docker_lines(&["ps", "-aq", "--filter", &label]).is_empty());
    assert!(docker_lines(&["volume", "ls", "-q", "--filter", &label]).is_empty());
    assert!(docker_lines(&["network", "ls", "-q", "--filter", &label]).is_empty());
    let jobs = format!("label=code-runner.queue={{code-runner}}:{queue}");
    assert!(
        docker_lines(&["ps", "-aq", "--filter", &jobs]).is_empty(),
        "job containers left behind"
    );
    drop(compose);
    run(Command::new("docker").args(["image", "rm", &image]));
}

#[test]
fn the_kubernetes_manifests_pass_the_schema_validator() {
    // make test installs kubernetes-validate into this venv.
    let validator = repo().join("target/interop-venv/bin/kubernetes-validate");
    let manifests: Vec<_> = std::fs::read_dir(repo().join("deploy/kubernetes"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(manifests.len() >= 3, "{manifests:?}");
    let output = run(Command::new(&validator)
        .args(["--strict", "--no-warn"])
        .args(&manifests));
    let report = String::from_utf8_lossy(&output.stdout);
    // Every resource of every file passed (API Deployment and Services,
    // worker DaemonSet, the settings' Secret).
    for resource in [
        "deployment/code-runner-api",
        "service/code-runner-api",
        "service/code-runner-admin",
        "daemonset/code-runner-worker",
        "secret/code-runner",
    ] {
        assert!(
            report.contains(&format!("passed for resource {resource}")),
            "{resource}: {report}"
        );
    }
}
