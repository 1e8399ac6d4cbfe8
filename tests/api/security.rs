//! An API that keeps strangers out: keys, ownership, rate limits, queue
//! depth, the admin listener, refusals at start, and secrets never shown.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use code_runner::app::Role;
use code_runner::http::auth::new_key;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestService, free_port, unique_queue, wait_ready};

pub(crate) fn two_keys() -> ((String, String), (String, String)) {
    (new_key("alice"), new_key("bob"))
}

#[tokio::test]
async fn jobs_need_a_key_and_belong_to_it() {
    let ((alice, alice_entry), (bob, bob_entry)) = two_keys();
    let mut service =
        TestService::start_with(|c| c.api_keys = Some(format!("{alice_entry},{bob_entry}"))).await;

    // No key, a wrong key: 401 with a JSON body.
    let (status, body) = service
        .send(
            Method::POST,
            "/v1/jobs",
            Some(json!({ "language": "python", "code": "print(1)" })),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].is_string());
    let (status, _) = service
        .get(&format!("/status/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(status, 401);
    service.bearer = Some("crk_not_a_key".into());
    let (status, _) = service
        .get(&format!("/v1/jobs/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(status, 401);

    // Public: languages, health, the API description.
    service.bearer = None;
    for path in ["/v1/languages", "/healthz", "/openapi.json"] {
        assert_eq!(service.get(path).await.0, 200, "{path}");
    }

    // Alice's jobs are Alice's.
    service.bearer = Some(alice.clone());
    let v1 = service
        .run_v1(
            json!({ "language": "python", "code": "print('alice')", "idempotency_key": "same" }),
        )
        .await;
    let v1_id = v1["id"].as_str().unwrap().to_string();
    let poc_id = service.submit("print('alice again')").await;
    assert_eq!(
        service.wait_done(&poc_id, Duration::from_secs(30)).await["state"],
        "completed"
    );
    assert_eq!(service.get(&format!("/v1/jobs/{v1_id}")).await.0, 200);

    // Bob cannot see, cancel or replay them.
    service.bearer = Some(bob.clone());
    for path in [
        format!("/v1/jobs/{v1_id}"),
        format!("/status/{poc_id}"),
        format!("/v1/jobs/{poc_id}"),
    ] {
        let (status, body) = service.get(&path).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, _) = service
        .send(Method::DELETE, &format!("/v1/jobs/{v1_id}"), None)
        .await;
    assert_eq!(status, 404);
    let bobs = service
        .submit_v1(
            json!({ "language": "python", "code": "print('bob')", "idempotency_key": "same" }),
        )
        .await;
    assert_ne!(bobs, v1_id, "an idempotency key is per API key");
    service.stop().await;
}

/// The `Retry-After` of a 429, checked to be a sensible number of seconds.
pub(crate) fn retry_after(response: &reqwest::Response) -> u64 {
    let seconds: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&seconds), "Retry-After: {seconds}");
    seconds
}

#[tokio::test]
async fn each_key_has_a_request_budget_answered_with_retry_after() {
    let ((alice, alice_entry), (bob, bob_entry)) = two_keys();
    let service = TestService::start_role(Role::Api, |c| {
        c.api_keys = Some(format!("{alice_entry},{bob_entry}"));
        // 60 a minute: a burst of 10, then one a second.
        c.request_rate_limit_per_minute = Some(60);
    })
    .await;
    let client = reqwest::Client::new();
    let probe = format!("{}/v1/jobs/{}", service.url, uuid::Uuid::new_v4());
    for _ in 0..10 {
        let response = client.get(&probe).bearer_auth(&alice).send().await.unwrap();
        assert_eq!(response.status(), 404);
    }
    let refused = client.get(&probe).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    retry_after(&refused);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("requests a minute")
    );
    // Bob's budget is his own.
    let response = client.get(&probe).bearer_auth(&bob).send().await.unwrap();
    assert_eq!(response.status(), 404);
    service.stop().await;
}

#[tokio::test]
async fn submissions_have_their_own_budget_counted_in_jobs() {
    let ((alice, alice_entry), (bob, bob_entry)) = two_keys();
    let service = TestService::start_role(Role::Api, |c| {
        c.api_keys = Some(format!("{alice_entry},{bob_entry}"));
        c.submit_rate_limit_per_minute = Some(4);
    })
    .await;
    let client = reqwest::Client::new();
    let job = json!({ "language": "python", "code": "print(1)" });
    let submit = |key: &str, path: &str, body: &Value| {
        client
            .post(format!("{}{path}", service.url))
            .bearer_auth(key)
            .json(body)
            .send()
    };
    // A batch larger than a minute's budget can never pass: 400, not 429.
    let five = json!({ "jobs": vec![job.clone(); 5] });
    let response = submit(&alice, "/v1/jobs/batch", &five).await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["field"], "jobs", "{body}");
    // A batch counts as its jobs: three, then one, then the budget is spent
    // (should the minute turn in between, the next four cross it again).
    let three = json!({ "jobs": vec![job.clone(); 3] });
    let mut accepted = Vec::new();
    let response = submit(&alice, "/v1/jobs/batch", &three).await.unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    accepted.extend(
        body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].clone()),
    );
    let mut refused = None;
    for _ in 0..5 {
        let response = submit(&alice, "/v1/jobs", &job).await.unwrap();
        if response.status() == 429 {
            refused = Some(response);
            break;
        }
        assert_eq!(response.status(), 201);
        accepted.push(response.json::<Value>().await.unwrap()["id"].clone());
    }
    let refused = refused.expect("no 429 past 4 jobs a minute");
    retry_after(&refused);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("jobs a minute"),
        "{body}"
    );
    // The proof of concept's route spends the same budget.
    let response = submit(&alice, "/run", &job).await.unwrap();
    assert_eq!(response.status(), 429);
    // Reads are budgeted apart: Alice still reads her jobs.
    for id in &accepted {
        let response = client
            .get(format!("{}/v1/jobs/{}", service.url, id.as_str().unwrap()))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // Bob's budget is his own.
    let response = submit(&bob, "/v1/jobs", &job).await.unwrap();
    assert_eq!(response.status(), 201);
    service.stop().await;
}

#[tokio::test]
async fn without_keys_each_client_address_has_its_own_budget() {
    let service = TestService::start_role(Role::Api, |c| {
        c.request_rate_limit_per_minute = Some(60);
    })
    .await;
    // Two clients on two loopback addresses: two callers.
    let from = |address: &str| {
        reqwest::Client::builder()
            .local_address(address.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let (first, second) = (from("127.0.0.1"), from("127.0.0.2"));
    let probe = format!("{}/v1/jobs/{}", service.url, uuid::Uuid::new_v4());
    for _ in 0..10 {
        assert_eq!(first.get(&probe).send().await.unwrap().status(), 404);
    }
    let refused = first.get(&probe).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    retry_after(&refused);
    assert_eq!(second.get(&probe).send().await.unwrap().status(), 404);
    service.stop().await;
}

#[tokio::test]
async fn a_full_queue_answers_429_and_enqueues_nothing() {
    // An API process alone: nothing takes the jobs off the queue.
    let service = TestService::start_role(Role::Api, |c| c.max_queue_depth = 2).await;
    for _ in 0..2 {
        service
            .submit_v1(json!({ "language": "python", "code": "print(1)" }))
            .await;
    }
    let (status, body) = service
        .send(
            Method::POST,
            "/v1/jobs",
            Some(json!({ "language": "python", "code": "print(1)" })),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert!(body["error"].as_str().unwrap().contains("queue is full"));
    let (status, _) = service
        .post_raw(
            "application/json",
            r#"{"language":"python","code":"print(1)"}"#,
        )
        .await;
    assert_eq!(status, 429);
    let (status, _) = service
        .send(
            Method::POST,
            "/v1/jobs/batch",
            Some(json!({ "jobs": [{ "language": "python", "code": "print(1)" }] })),
        )
        .await;
    assert_eq!(status, 429);
    let counts = service.app().queue().counts().await.unwrap();
    assert_eq!(counts["waiting"], 2, "{counts:?}");
    service.stop().await;
}

#[tokio::test]
async fn stats_live_on_the_admin_listener_behind_its_token() {
    let service = TestService::start().await;
    assert_eq!(service.admin_get("/v1/stats").await.0, 200);
    assert_eq!(
        service.get("/v1/stats").await.0,
        404,
        "stats are not public"
    );
    service.stop().await;

    let service = TestService::start_with(|c| c.admin_token = Some("admin-secret".into())).await;
    assert_eq!(service.admin_get("/v1/stats").await.0, 401);
    let response = reqwest::Client::new()
        .get(format!("{}/v1/stats", service.admin_url))
        .bearer_auth("admin-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Or in the query (the event stream's), percent-encoded; a query that
    // is not one (a broken escape before a multi-byte character) is no
    // token, never a crash.
    let client = reqwest::Client::new();
    let query = |q: &str| {
        client
            .get(format!("{}/v1/stats?{q}", service.admin_url))
            .send()
    };
    assert_eq!(query("token=admin%2Dsecret").await.unwrap().status(), 200);
    for bad in ["token=%é", "token=admin-secre%", "token=%%", "token"] {
        assert_eq!(query(bad).await.unwrap().status(), 401, "{bad}");
    }
    assert_eq!(service.admin_get("/v1/stats").await.0, 401, "still serving");
    service.stop().await;
}

#[test]
fn listening_beyond_loopback_needs_keys_and_an_admin_token() {
    for (env, words) in [
        (
            vec![("CODE_RUNNER_LISTEN", "0.0.0.0:0")],
            "without API keys",
        ),
        (
            vec![("CODE_RUNNER_ADMIN_LISTEN", "0.0.0.0:0")],
            "without CODE_RUNNER_ADMIN_TOKEN",
        ),
        // deploy/systemd/env.example's placeholder is no secret.
        (
            vec![("CODE_RUNNER_CALLBACK_SECRET", "replace-me")],
            "not the example's",
        ),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_code-runner"));
        command
            .arg("api")
            .env("CODE_RUNNER_QUEUE", unique_queue())
            .env("CODE_RUNNER_LISTEN", "127.0.0.1:0")
            .env("CODE_RUNNER_ADMIN_LISTEN", "127.0.0.1:0");
        for (name, value) in env {
            command.env(name, value);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(words), "{stderr}");
    }
}

#[tokio::test]
async fn no_secret_is_ever_logged_or_returned() {
    let (key, entry) = new_key("carol");
    let callback_secret = format!("hook-{}", uuid::Uuid::new_v4().simple());
    let admin_token = format!("admin-{}", uuid::Uuid::new_v4().simple());
    let queue = unique_queue();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_code-runner"))
        .arg("serve")
        .env("CODE_RUNNER_LISTEN", format!("127.0.0.1:{port}"))
        .env("CODE_RUNNER_ADMIN_LISTEN", "127.0.0.1:0")
        .env("CODE_RUNNER_REDIS_URL", crate::helpers::redis_url())
        .env("CODE_RUNNER_REDIS_PREFIX", crate::helpers::TEST_PREFIX)
        .env("CODE_RUNNER_QUEUE", &queue)
        .env(
            "CODE_RUNNER_DATA_DIR",
            std::env::temp_dir().join(format!("code-runner-{queue}")),
        )
        .env("CODE_RUNNER_API_KEYS", &entry)
        .env("CODE_RUNNER_CALLBACK_SECRET", &callback_secret)
        .env("CODE_RUNNER_CALLBACK_ALLOW", "127.0.0.1")
        .env("CODE_RUNNER_ADMIN_TOKEN", &admin_token)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain the logs as they come (a full pipe would stall the service).
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut logs = String::new();
        let _ = stderr.read_to_string(&mut logs);
        logs
    });
    let client = reqwest::Client::new();
    wait_ready(&client, &url).await;
    let view: Value = client
        .post(format!("{url}/v1/jobs?wait=true"))
        .bearer_auth(&key)
        .json(&json!({
            "language": "python",
            "code": "import os\nprint(sorted(os.environ))",
            "callback_url": format!("http://127.0.0.1:{}/hook", free_port()),
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["state"], "completed", "{view}");
    let answered = view.to_string();
    // Let a webhook attempt happen and be logged.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let logs = reader.join().unwrap();
    assert!(
        logs.contains("job accepted"),
        "the logs were not captured: {logs}"
    );
    for secret in [&key, &callback_secret, &admin_token] {
        assert!(!logs.contains(secret.as_str()), "a secret is in the logs");
        assert!(!answered.contains(secret.as_str()), "a secret was returned");
    }
    assert!(
        !logs.contains(entry.rsplit(':').next().unwrap()),
        "a key hash is in the logs"
    );
}

#[tokio::test]
async fn the_admin_listener_refuses_other_hosts_and_cross_site_changes() {
    let service = TestService::start_role(Role::Api, |c| {
        c.admin_hosts = vec!["dashboard.internal".into()];
    })
    .await;
    let client = reqwest::Client::new();
    let admin = &service.admin_url;
    let overview = format!("{admin}/admin/api/overview");
    let pause = format!("{admin}/admin/api/queue/pause");
    // DNS rebinding: a page of another domain that resolves to loopback.
    let answer = client
        .get(&overview)
        .header("Host", "rebind.example:3001")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["field"], "Host", "{body}");
    // A configured name is answered.
    let answer = client
        .get(&overview)
        .header("Host", "dashboard.internal")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // CSRF: another site's page posting to the admin listener.
    for origin in ["http://evil.example", "null", "http://localhost:1"] {
        let answer = client
            .post(&pause)
            .header("Origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 403, "{origin}");
    }
    let (_, now) = service.admin_get("/admin/api/overview").await;
    assert_eq!(now["paused"], false, "{now}");
    // The dashboard's own page, and scripts (no Origin), may act.
    let answer = client
        .post(&pause)
        .header("Origin", admin)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer = client
        .post(format!("{admin}/admin/api/queue/resume"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    service.stop().await;
}

#[tokio::test]
async fn a_full_redis_answers_507_and_queues_nothing() {
    // A Redis of its own at its memory limit, never evicting.
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("code-runner-full-{}", unique_queue()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut redis = Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--maxmemory", "8mb"])
        .args(["--maxmemory-policy", "noeviction"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("redis://127.0.0.1:{port}");
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = loop {
        if let Ok(conn) = client.get_multiplexed_async_connection().await {
            break conn;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let service = TestService::start_role(Role::Api, |c| c.redis_url = Some(url.clone())).await;
    let filler = "x".repeat(64 << 10);
    for i in 0.. {
        let set: redis::RedisResult<()> = redis::cmd("SET")
            .arg(format!("filler:{i}"))
            .arg(&filler)
            .query_async(&mut conn)
            .await;
        if set.is_err() {
            break;
        }
        assert!(i < 10_000, "Redis never filled up");
    }
    let (status, body) = service
        .send(
            Method::POST,
            "/v1/jobs",
            Some(json!({ "language": "python", "code": "print(1)" })),
        )
        .await;
    assert_eq!(status, 507, "{body}");
    assert!(body["error"].as_str().unwrap().contains("full"), "{body}");
    let (status, _) = service
        .post_raw(
            "application/json",
            json!({ "language": "python", "code": "print(1)" }).to_string(),
        )
        .await;
    assert_eq!(status, 507);
    service.stop().await;
    redis.kill().unwrap();
    redis.wait().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
