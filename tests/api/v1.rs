//! The versioned API: wait, batch, cancel, idempotency, priority, and a
//! 400 naming the field for every bad value.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestService;

#[tokio::test]
async fn wait_answers_the_finished_job_or_202_after_the_bounded_wait() {
    let service = TestService::start_with(|c| {
        c.max_wait_ms = 2_000;
        c.wall_time_limit_ms = 10_000;
    })
    .await;
    let view = service
        .run_v1(json!({ "language": "python", "code": "print('waited')" }))
        .await;
    assert_eq!(view["state"], "completed");
    assert_eq!(view["result"]["stdout"], "waited\n");

    let started = Instant::now();
    let (status, body) = service
        .send(
            Method::POST,
            "/v1/jobs?wait=true",
            Some(json!({ "language": "python", "code": "import time\ntime.sleep(5)\nprint('late')" })),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    // Running by the end of the wait (a warm container starts it in well
    // under 2 s), and the answer says so rather than `waiting`.
    assert_eq!(body["state"], "active", "{body}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let id = body["id"].as_str().unwrap();
    // GET ?wait=true long-polls: each answer comes at the finish or after
    // the bounded wait (2 s here), so a few calls see the 5 s job done.
    let mut calls = 0;
    let view = loop {
        calls += 1;
        assert!(calls <= 20, "GET ?wait=true never saw the job finish");
        let (status, view) = service.get(&format!("/v1/jobs/{id}?wait=true")).await;
        assert_eq!(status, 200, "{view}");
        if view["state"] == "completed" {
            break view;
        }
        assert!(
            view["state"] == "active" || view["state"] == "waiting",
            "{view}"
        );
    };
    assert!(
        calls >= 2,
        "the first long-poll cannot have seen a 5 s job finish"
    );
    assert_eq!(view["result"]["stdout"], "late\n");
    assert!(view["started_at_ms"].as_u64().unwrap() <= view["finished_at_ms"].as_u64().unwrap());
    let (status, body) = service.get(&format!("/v1/jobs/{id}?wait=maybe")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "wait", "{body}");
    service.stop().await;
}

#[tokio::test]
async fn a_batch_is_accepted_whole_or_refused_whole() {
    let service = TestService::start_with(|c| c.max_batch = 5).await;
    let jobs: Vec<Value> = (0..5)
        .map(|i| json!({ "language": "python", "code": format!("print({i} * {i})") }))
        .collect();
    let (status, body) = service
        .send(
            Method::POST,
            "/v1/jobs/batch",
            Some(json!({ "jobs": jobs })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let created = body["jobs"].as_array().unwrap();
    assert_eq!(created.len(), 5);
    for (i, job) in created.iter().enumerate() {
        let view = service
            .wait_v1(
                job["id"].as_str().unwrap(),
                &["completed"],
                Duration::from_secs(60),
            )
            .await;
        assert_eq!(view["result"]["stdout"], format!("{}\n", i * i));
    }

    let (status, body) = service
        .send(
            Method::POST,
            "/v1/jobs/batch",
            Some(json!({ "jobs": [
                { "language": "python", "code": "print(1)" },
                { "language": "klingon", "code": "print(2)" },
            ] })),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["field"], "jobs[1].language", "{body}");

    let six: Vec<Value> = (0..6)
        .map(|_| json!({ "language": "python", "code": "print(1)" }))
        .collect();
    let (status, body) = service
        .send(Method::POST, "/v1/jobs/batch", Some(json!({ "jobs": six })))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["field"], "jobs");
    service.stop().await;
}

#[tokio::test]
async fn cancelling_a_waiting_job_means_it_never_runs_and_a_running_one_is_killed() {
    let service = TestService::start_with(|c| {
        c.concurrency = 1;
        c.wall_time_limit_ms = 30_000;
    })
    .await;
    let running = service
        .submit_v1(json!({ "language": "python", "code": "import time\ntime.sleep(25)\nprint('not cancelled')" }))
        .await;
    service
        .wait_v1(&running, &["active"], Duration::from_secs(30))
        .await;
    let waiting = service
        .submit_v1(json!({ "language": "python", "code": "print('should never run')" }))
        .await;
    let (status, view) = service.get(&format!("/v1/jobs/{waiting}")).await;
    assert_eq!(
        (status, view["state"].as_str()),
        (200, Some("waiting")),
        "{view}"
    );

    let (status, view) = service
        .send(Method::DELETE, &format!("/v1/jobs/{waiting}"), None)
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"], "cancelled", "{view}");
    assert!(view["result"].is_null(), "it never ran: {view}");

    // The running one: its container is killed, its state says cancelled.
    let started = Instant::now();
    let (status, view) = service
        .send(Method::DELETE, &format!("/v1/jobs/{running}"), None)
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"], "cancelled", "{view}");
    assert_eq!(view["result"]["verdict"], "cancelled", "{view}");
    assert!(started.elapsed() < Duration::from_secs(15));
    // The cancelled job's container goes too.
    service.assert_containers_gone(Some(&running)).await;

    // Cancelled stays cancelled; the waiting job never ran.
    let (status, body) = service
        .send(Method::DELETE, &format!("/v1/jobs/{running}"), None)
        .await;
    assert_eq!(status, 409, "{body}");
    let next = service
        .run_v1(json!({ "language": "python", "code": "print('after')" }))
        .await;
    assert_eq!(next["result"]["stdout"], "after\n");
    let (_, view) = service.get(&format!("/v1/jobs/{waiting}")).await;
    assert_eq!(view["state"], "cancelled", "{view}");
    let (_, poc) = service.get(&format!("/status/{waiting}")).await;
    assert_eq!(poc["state"], "cancelled", "{poc}");
    service.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_names_one_job() {
    let service = TestService::start().await;
    let key = format!("order-{}", uuid::Uuid::new_v4());
    let body = json!({ "language": "python", "code": "print('once')", "idempotency_key": key });
    let first = service.submit_v1(body.clone()).await;
    let (status, again) = service.send(Method::POST, "/v1/jobs", Some(body)).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], first.as_str());

    // The key reused for another request: 422, naming the field.
    let other = json!({ "language": "python", "code": "print('twice')", "idempotency_key": key });
    let (status, refused) = service.send(Method::POST, "/v1/jobs", Some(other)).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["field"], "idempotency_key", "{refused}");

    // Twenty clients with one new key at once, fifteen times: each gets the
    // one job, and every id they get reads back (never a 404 for a job not
    // written yet).
    for trial in 0..15 {
        let key = format!("race-{trial}-{}", uuid::Uuid::new_v4());
        let body =
            json!({ "language": "python", "code": "print('raced')", "idempotency_key": key });
        let answers = futures_util::future::join_all(
            (0..20).map(|_| service.send(Method::POST, "/v1/jobs", Some(body.clone()))),
        )
        .await;
        let created = answers.iter().filter(|(status, _)| *status == 201).count();
        assert_eq!(created, 1, "trial {trial}: {answers:?}");
        let ids: std::collections::HashSet<&str> = answers
            .iter()
            .map(|(status, view)| {
                assert!([200, 201].contains(status), "trial {trial}: {view}");
                view["id"].as_str().unwrap()
            })
            .collect();
        assert_eq!(ids.len(), 1, "trial {trial}: {answers:?}");
        let id = ids.into_iter().next().unwrap();
        let (status, view) = service.get(&format!("/v1/jobs/{id}")).await;
        assert_eq!(status, 200, "trial {trial}: {view}");
    }

    // A first request that fails (its language has no ready worker: 400
    // for an unknown language is refused before the key is claimed, so a
    // queue at its depth cap stands in) frees the key for the next.
    service.stop().await;
    let service = TestService::start_with(|c| {
        c.max_queue_depth = 1;
        c.concurrency = 1;
    })
    .await;
    let blocker = service
        .submit_v1(json!({ "language": "python", "code": "import time\ntime.sleep(5)" }))
        .await;
    service
        .wait_v1(&blocker, &["active"], Duration::from_secs(30))
        .await;
    let _queued = service
        .submit_v1(json!({ "language": "python", "code": "print('fills the queue')" }))
        .await;
    let key = format!("after-failure-{}", uuid::Uuid::new_v4());
    let body = json!({ "language": "python", "code": "print('later')", "idempotency_key": key });
    let (status, full) = service
        .send(Method::POST, "/v1/jobs", Some(body.clone()))
        .await;
    assert_eq!(status, 429, "{full}");
    let id = loop {
        let (status, view) = service
            .send(Method::POST, "/v1/jobs", Some(body.clone()))
            .await;
        if status == 201 {
            break view["id"].as_str().unwrap().to_string();
        }
        assert_eq!(
            status, 429,
            "the key was not left claimed by the refused request: {view}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let done = service
        .wait_v1(&id, &["completed"], Duration::from_secs(60))
        .await;
    assert_eq!(done["result"]["stdout"], "later\n", "{done}");
    service.stop().await;
}

#[tokio::test]
async fn jobs_without_priority_run_before_deprioritized_ones() {
    let service = TestService::start_with(|c| c.concurrency = 1).await;
    let blocker = service
        .submit_v1(json!({ "language": "python", "code": "import time\ntime.sleep(2)" }))
        .await;
    service
        .wait_v1(&blocker, &["active"], Duration::from_secs(30))
        .await;
    let later = service
        .submit_v1(json!({ "language": "python", "code": "print('later')", "priority": 100 }))
        .await;
    let first = service
        .submit_v1(json!({ "language": "python", "code": "print('first')" }))
        .await;
    let later = service
        .wait_v1(&later, &["completed"], Duration::from_secs(60))
        .await;
    let first = service
        .wait_v1(&first, &["completed"], Duration::from_secs(60))
        .await;
    // Both must carry the time (comparing Options, a missing one would pass).
    let started = |view: &serde_json::Value| {
        view["started_at_ms"]
            .as_u64()
            .unwrap_or_else(|| panic!("no started_at_ms: {view}"))
    };
    assert!(
        started(&first) < started(&later),
        "first {first}\nlater {later}"
    );
    service.stop().await;
}

#[tokio::test]
async fn every_bad_field_value_gets_a_400_naming_it() {
    let service = TestService::start_with(|c| {
        c.max_code_bytes = 10_000;
        c.max_test_cases = 3;
    })
    .await;
    let ok = || json!({ "language": "python", "code": "print(1)" });
    let with = |key: &str, value: Value| {
        let mut body = ok();
        body[key] = value;
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "code": "print(1)" }), "language"),
        (with("language", json!(5)), "language"),
        (with("language", json!("klingon")), "language"),
        (with("version", json!("0.1")), "version"),
        (with("version", json!(3)), "version"),
        (json!({ "language": "python" }), "code"),
        (with("code", json!(42)), "code"),
        (
            with("files", json!([{ "name": "a.py", "content": "" }])),
            "files",
        ),
        (json!({ "language": "python", "files": [] }), "files"),
        (
            json!({ "language": "python", "files": [{ "name": "../x.py", "content": "" }] }),
            "files[0].name",
        ),
        (
            json!({ "language": "python", "files": [{ "name": "a.py", "content": "" }, { "name": "a.py", "content": "" }] }),
            "files[1].name",
        ),
        (
            json!({ "language": "python", "files": [{ "name": "a.py", "content": 1 }] }),
            "files[0].content",
        ),
        // Names a compiler would read as an option or a response file.
        (
            json!({ "language": "c", "files": [{ "name": "main.c", "content": "" }, { "name": "-v.c", "content": "" }] }),
            "files[1].name",
        ),
        (
            json!({ "language": "c", "files": [{ "name": "main.c", "content": "" }, { "name": "@r.c", "content": "" }] }),
            "files[1].name",
        ),
        (
            json!({ "language": "go", "files": [{ "name": "-toolexec=sh", "content": "" }] }),
            "files[0].name",
        ),
        (
            json!({ "language": "python", "files": [{ "name": "a\nb.py", "content": "" }] }),
            "files[0].name",
        ),
        (
            json!({ "language": "python", "files": [{ "name": "a.py" }] }),
            "files[0].content",
        ),
        (with("stdin", json!(["x"])), "stdin"),
        (with("args", json!("a b")), "args"),
        (with("args", json!(["ok", "nul\u{0}"])), "args[1]"),
        (
            with("limits", json!({ "wall_time_ms": 0 })),
            "limits.wall_time_ms",
        ),
        (
            with("limits", json!({ "wall_time_ms": 10_000_000 })),
            "limits.wall_time_ms",
        ),
        (
            with("limits", json!({ "wall_time_ms": "10" })),
            "limits.wall_time_ms",
        ),
        (
            with("limits", json!({ "cpu_time_ms": 999_999_999 })),
            "limits.cpu_time_ms",
        ),
        (
            with("limits", json!({ "memory_mb": 1 << 20 })),
            "limits.memory_mb",
        ),
        (
            with("limits", json!({ "memory_mb": 1 })),
            "limits.memory_mb",
        ),
        (
            with("limits", json!({ "processes": 0 })),
            "limits.processes",
        ),
        (
            with("limits", json!({ "output_bytes": -5 })),
            "limits.output_bytes",
        ),
        (
            with("limits", json!({ "compile_wall_time_ms": 0 })),
            "limits.compile_wall_time_ms",
        ),
        (with("limits", json!({ "disk_mb": 5 })), "limits.disk_mb"),
        (with("limits", json!(7)), "limits"),
        (with("expected_output", json!(1)), "expected_output"),
        (with("test_cases", json!("x")), "test_cases"),
        (with("test_cases", json!([{}, {}, {}, {}])), "test_cases"),
        (
            with("test_cases", json!([{ "stdin": 1 }])),
            "test_cases[0].stdin",
        ),
        (
            with("test_cases", json!([{ "input": "1" }])),
            "test_cases[0].input",
        ),
        (
            json!({ "language": "python", "code": "print(1)", "stdin": "x", "test_cases": [{}] }),
            "stdin",
        ),
        (with("base64", json!("yes")), "base64"),
        (
            json!({ "language": "python", "code": "not base64!", "base64": true }),
            "code",
        ),
        (
            with("callback_url", json!("ftp://example.test/hook")),
            "callback_url",
        ),
        (with("callback_url", json!("not a url")), "callback_url"),
        (with("priority", json!(-1)), "priority"),
        (with("priority", json!(5000)), "priority"),
        (with("priority", json!("high")), "priority"),
        (with("idempotency_key", json!("")), "idempotency_key"),
        (with("colour", json!("blue")), "colour"),
    ];
    for (body, field) in cases {
        let (status, answer) = service
            .send(Method::POST, "/v1/jobs", Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{field}: {body} → {answer}");
        assert_eq!(answer["field"], field, "{body} → {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()));
    }

    let big = "#".repeat(10_001);
    let (status, answer) = service
        .send(Method::POST, "/v1/jobs", Some(with("code", json!(big))))
        .await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["field"], "code");

    let (status, answer) = service
        .send(Method::POST, "/v1/jobs?wait=maybe", Some(ok()))
        .await;
    assert_eq!(status, 400);
    assert_eq!(answer["field"], "wait");
    let (status, answer) = service.get("/v1/jobs/not-a-uuid").await;
    assert_eq!(status, 400);
    assert_eq!(answer["field"], "id");
    let (status, answer) = service
        .get(&format!("/v1/jobs/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(status, 404);
    assert_eq!(answer["field"], "id");
    let (status, _) = service
        .send(
            Method::DELETE,
            &format!("/v1/jobs/{}", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(status, 404);

    // Still serving.
    let view = service.run_v1(ok()).await;
    assert_eq!(view["result"]["stdout"], "1\n");
    service.stop().await;
}

/// An `api` process (the multi-machine layout) runs no job itself: the
/// phase of a running job comes from the heartbeat of the worker that runs
/// it, on both APIs.
#[tokio::test]
async fn an_api_process_shows_the_phase_of_a_job_another_process_runs() {
    let api = TestService::start_role(code_runner::app::Role::Api, |_| {}).await;
    let mut worker_config = api.config.clone();
    worker_config.data_dir =
        std::env::temp_dir().join(format!("code-runner-{}-worker", worker_config.queue_name));
    let worker = code_runner::app::App::start(code_runner::app::Role::Worker, worker_config)
        .await
        .expect("worker starts");
    let id = api
        .submit_v1(
            json!({ "language": "python", "code": "import time\ntime.sleep(2)\nprint('slept')" }),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, view) = api.get(&format!("/v1/jobs/{id}")).await;
        let status = api.status(&id).await;
        if view["phase"] == "running" && status["phase"] == "running" {
            assert_eq!(view["state"], "active");
            break;
        }
        assert!(
            view["state"] != "completed" && Instant::now() < deadline,
            "never seen running from the api process: {view} {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let view = api
        .wait_v1(&id, &["completed"], Duration::from_secs(30))
        .await;
    assert_eq!(view["result"]["stdout"], "slept\n");
    assert!(view.get("phase").is_none(), "{view}");
    worker.shutdown().await;
    api.stop().await;
}
