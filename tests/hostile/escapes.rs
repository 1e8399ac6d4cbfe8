//! Symlink escapes (Judge0's) and compile-time attacks.

use super::*;

#[tokio::test]
async fn symlinks_planted_in_the_work_dir_lead_nowhere_on_the_host() {
    let view = contained(
        "bash",
        &format!(
            "cd /tmp/box\nln -s /etc/shadow shadow\nln -s {SENTINEL} sentinel\nln -s /var/run/docker.sock docker.sock\nln -s / root\nln -s /proc/1/fd/1 monitor-stdout\necho overwritten > sentinel 2>/dev/null\necho forged > monitor-stdout 2>/dev/null\ncat shadow 2>/dev/null || echo no-shadow"
        ),
        json!({}),
    )
    .await;
    // The host sentinel is untouched (checked in `contained`). Under runc
    // the write to the monitor's stdout is refused; under gVisor it lands
    // in the stream, where it cannot carry the task's nonce: the service
    // sees the tampering and the job ends as a runtime error.
    assert_ends_as(&view, &[ACCEPTED], &[ACCEPTED, SandboxStopped]);
    if verdict(&view) == "accepted" {
        assert_eq!(stdout(&view), "no-shadow\n", "{view}");
    }
}

#[tokio::test]
async fn symlinks_left_by_a_compilation_are_not_carried_into_the_run() {
    // A language whose "compiler" is a shell script the job controls: the
    // files it leaves are what the monitor sends back for the runs.
    let table = std::env::temp_dir().join(format!("hostile-languages-{}.toml", std::process::id()));
    std::fs::write(
        &table,
        format!(
            "{}\n[[language]]\nid = \"bash-build\"\nname = \"Bash, compiled\"\nversion = \"5\"\nimage = \"bash\"\nsource_file = \"build.sh\"\nextensions = [\"sh\"]\ncompile = [\"bash\", \"build.sh\"]\nrun = [\"bash\", \"run.sh\"]\n",
            include_str!("../../docker/languages.toml")
        ),
    )
    .unwrap();
    let service = TestService::start_with(|c| c.languages_file = Some(table.clone())).await;
    let view = service
        .run_v1(json!({
            "language": "bash-build",
            "files": [
                { "name": "build.sh", "content": format!("ln -s /etc/shadow shadow\nln -s {SENTINEL} sentinel\nln -s / root\necho built > artifact") },
                { "name": "run.sh", "content": "cd /tmp/box\necho *\nfind . -type l | wc -l" },
            ],
        }))
        .await;
    assert_eq!(view["result"]["verdict"], "accepted", "{view}");
    assert_eq!(
        view["result"]["stdout"], "artifact build.sh run.sh\n0\n",
        "{view}"
    );
    service.stop().await;
    let _ = std::fs::remove_file(table);
}

#[tokio::test]
async fn including_etc_shadow_is_a_compilation_error_that_leaks_nothing() {
    let view = contained(
        "c",
        "#include \"/etc/shadow\"\nint main(void) { return 0; }",
        json!({}),
    )
    .await;
    assert_eq!(verdict(&view), "compilation_error", "{view}");
    let output = view["result"]["compile_output"].as_str().unwrap();
    assert!(!output.contains("root:"), "{output}");
}

#[tokio::test]
async fn including_dev_urandom_ends_as_a_compilation_error() {
    let view = contained(
        "c",
        "#include </dev/urandom>\nint main(void) { return 0; }",
        json!({ "limits": { "compile_wall_time_ms": 3000 } }),
    )
    .await;
    assert_eq!(verdict(&view), "compilation_error", "{view}");
}

#[tokio::test]
async fn a_compilation_that_never_ends_is_stopped() {
    let bomb = "#define A x x x x x x x x x x\n#define B A A A A A A A A A A\n#define C B B B B B B B B B B\n#define D C C C C C C C C C C\n#define E D D D D D D D D D D\n#define F E E E E E E E E E E\n#define G F F F F F F F F F F\n#define H G G G G G G G G G G\nint main(void) { H H H H H H H H H H; return 0; }";
    let started = std::time::Instant::now();
    let view = contained(
        "c",
        bomb,
        json!({ "limits": { "compile_wall_time_ms": 3000 } }),
    )
    .await;
    assert_eq!(verdict(&view), "compilation_error", "{view}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[tokio::test]
async fn a_job_outliving_a_killed_service_has_its_container_reaped_on_restart() {
    let queue = helpers::unique_queue();
    let client = reqwest::Client::new();
    let port = helpers::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let env = [("CODE_RUNNER_LOCK_DURATION_MS", "3000".to_string())];
    let mut first = helpers::start_service(&queue, port, &env);
    helpers::wait_ready(&client, &url).await;
    let id = helpers::submit_to(
        &client,
        &url,
        json!({ "language": "python", "code": "import time\ntime.sleep(4)\nprint('ran to the end')" }),
    )
    .await;
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
    let job_containers = || async {
        sandbox
            .list_managed(None)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.job_id == id)
            .count()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while job_containers().await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGKILL: the service gets no chance to clean up.
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(
        job_containers().await,
        1,
        "the job's container outlived the service"
    );

    let second = helpers::start_service(&queue, port, &env);
    helpers::wait_ready(&client, &url).await;
    // The restarted worker (same data directory, same id) removed it at start.
    assert_eq!(
        job_containers().await,
        0,
        "the orphan was not reaped on restart"
    );
    // The job itself is taken over once its lock expires, and completes.
    let view = helpers::wait_done(&client, &url, &id, Duration::from_secs(90)).await;
    assert_eq!(view["state"], "completed", "{view}");
    assert_eq!(view["result"]["stdout"], "ran to the end");
    let status = helpers::terminate(second);
    assert!(status.success());
}
