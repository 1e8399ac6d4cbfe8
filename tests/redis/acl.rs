//! An ACL user holding only the documented rule runs everything.

use super::*;

/// The documented ACL rule, for a user `name` with `password`, its key and
/// channel patterns under the test's prefix.
fn documented_rule(password: &str) -> Vec<String> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/redis/code-runner.acl");
    let text = std::fs::read_to_string(&file).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("user "))
        .expect("a user line");
    line.split_whitespace()
        .skip(2)
        .map(|token| {
            if token.starts_with('>') {
                format!(">{password}")
            } else {
                token.replace("{code-runner}", TEST_PREFIX)
            }
        })
        .collect()
}

/// Waits for a job to have failed after `attempts` attempts.
async fn failed_after(service: &TestService, id: &str, attempts: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, view) = service.get(&format!("/v1/jobs/{id}")).await;
        if view["state"] == "failed" && view["attempts_made"] == attempts {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not failed after {attempts}: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_user_with_only_the_documented_acl_runs_everything() {
    let redis = RedisServer::start(&scratch("acl"), None);
    let root = redis::Client::open(format!("redis://127.0.0.1:{}", redis.port)).unwrap();
    let mut root = root.get_multiplexed_async_connection().await.unwrap();
    let mut setuser = redis::cmd("ACL");
    setuser
        .arg("SETUSER")
        .arg("runner")
        .arg(documented_rule("s3cret"));
    let () = setuser.query_async(&mut root).await.unwrap();

    // The rule is a real limit: outside the prefix, and beyond the listed
    // commands, the user is refused.
    let user =
        redis::Client::open(format!("redis://runner:s3cret@127.0.0.1:{}", redis.port)).unwrap();
    let mut user = user.get_multiplexed_async_connection().await.unwrap();
    let outside: redis::RedisResult<Option<String>> = redis::cmd("GET")
        .arg("elsewhere")
        .query_async(&mut user)
        .await;
    assert!(outside.is_err(), "a key outside the prefix was read");
    let flush: redis::RedisResult<()> = redis::cmd("FLUSHALL").query_async(&mut user).await;
    assert!(flush.is_err(), "FLUSHALL was allowed");
    let () = redis::cmd("ACL")
        .arg("LOG")
        .arg("RESET")
        .query_async(&mut root)
        .await
        .unwrap();

    let url = format!("redis://runner:s3cret@127.0.0.1:{}", redis.port);
    let service = TestService::start_with(|c| {
        c.redis_url = Some(url.clone());
        c.wall_time_limit_ms = 30_000;
    })
    .await;

    // The proof of concept's API.
    let (status, body) = service
        .send(
            Method::POST,
            "/run",
            Some(json!({ "language": "python", "code": "print('Hello world')" })),
        )
        .await;
    assert!(status < 300, "{status} {body}");
    let id = body["jobId"].as_str().unwrap().to_string();
    let view = service.wait_done(&id, Duration::from_secs(120)).await;
    assert_eq!(view["result"]["stdout"], "Hello world", "{view}");
    // /v1, a batch, Judge0's and Piston's APIs.
    let done = service
        .run_v1(json!({ "language": "python", "code": "print(6 * 7)" }))
        .await;
    assert_eq!(done["result"]["stdout"], "42\n", "{done}");
    let done_id = done["id"].as_str().unwrap().to_string();
    let (status, body) = service
        .send(
            Method::POST,
            "/v1/jobs/batch",
            Some(json!({ "jobs": [
                { "language": "python", "code": "print(1)" },
                { "language": "python", "code": "print(2)" }
            ] })),
        )
        .await;
    assert!(status < 300, "{status} {body}");
    let (status, body) = service
        .send(
            Method::POST,
            "/submissions?wait=true",
            Some(json!({ "source_code": "print(3)", "language_id": 71 })),
        )
        .await;
    assert!(status < 300, "{status} {body}");
    assert_eq!(body["stdout"], "3\n", "{body}");
    let (status, body) = service
        .send(
            Method::POST,
            "/api/v2/execute",
            Some(json!({ "language": "python", "version": "*", "files": [{ "content": "print(4)" }] })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["run"]["stdout"], "4\n", "{body}");
    // A job's live events after the fact.
    let events = service
        .client
        .get(format!("{}/v1/jobs/{done_id}/events", service.url))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status().as_u16(), 200);
    let text = events.text().await.unwrap();
    assert!(text.contains("result"), "{text}");
    // A job cancelled while it runs, one that fails and is retried.
    cancel_a_running_job(&service).await;
    let failed = service
        .run_v1(
            json!({ "language": "python", "code": format!("# {PANIC_RUNNER_MARKER}\nprint(1)") }),
        )
        .await;
    assert_eq!(failed["state"], "failed", "{failed}");
    let failed_id = failed["id"].as_str().unwrap().to_string();

    // The dashboard: every view and action.
    for path in [
        "/admin/api/overview",
        "/admin/api/jobs?state=completed",
        &format!("/admin/api/jobs/{done_id}"),
        "/admin/api/actors",
        "/admin/api/system",
    ] {
        let (status, body) = service.admin(Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    // The dashboard's live feed pushes an overview within seconds.
    let mut feed = service
        .client
        .get(format!("{}/admin/api/events", service.admin_url))
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !text.contains("event: overview") {
        assert!(Instant::now() < deadline, "no overview pushed: {text}");
        if let Ok(Ok(Some(chunk))) =
            tokio::time::timeout(Duration::from_secs(5), feed.chunk()).await
        {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    drop(feed);
    // A retry runs the failed job again (it fails again: the same fault).
    let (status, answer) = service
        .admin(
            Method::POST,
            &format!("/admin/api/jobs/{failed_id}/retry"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    failed_after(&service, &failed_id, 2).await;
    let (status, answer) = service
        .admin(Method::POST, "/admin/api/jobs/retry-failed", None)
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["count"], 1, "{answer}");
    failed_after(&service, &failed_id, 3).await;
    for path in ["/admin/api/queue/pause", "/admin/api/queue/resume"] {
        let (status, answer) = service.admin(Method::POST, path, None).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }
    let (status, answer) = service
        .admin(
            Method::DELETE,
            &format!("/admin/api/jobs/{failed_id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = service
        .admin(
            Method::POST,
            "/admin/api/clean",
            Some(json!({ "state": "completed", "older_than_secs": 0 })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    for path in ["/readyz", "/v1/languages", "/workers", "/system_info"] {
        let (status, body) = service.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    service.stop().await;

    // Nothing the service did was refused, not even what it shrugs off.
    let log: Vec<redis::Value> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(&mut root)
        .await
        .unwrap();
    let refusals: Vec<String> = log.iter().map(|entry| format!("{entry:?}")).collect();
    assert!(
        refusals.is_empty(),
        "the documented ACL refused the service: {refusals:#?}"
    );
}
