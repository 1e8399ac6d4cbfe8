//! An API that keeps strangers out: keys, ownership, rate limits, queue
//! depth, the admin listener, refusals at start, and secrets never shown.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use code_runner::app::Role;
use code_runner::http::auth::new_key;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestService, free_port, unique_queue, wait_ready};

fn two_keys() -> ((String, String), (String, String)) {
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
fn retry_after(response: &reqwest::Response) -> u64 {
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

/// Slowloris against both listeners: clients that send half a request line
/// (or half a body) and wait are cut off after the header (body) timeout,
/// one client address cannot hold more than its share of connections, and
/// another client is served meanwhile. Bounded: 120 sockets, loopback only.
#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_cannot_hold_the_listeners() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let service = TestService::start_with(|c| {
        c.header_read_timeout_ms = 1_000;
        c.body_read_timeout_ms = 1_000;
        c.max_connections_per_client = 40;
    })
    .await;
    let other = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    for base in [&service.url, &service.admin_url] {
        let addr = base.trim_start_matches("http://").to_string();
        let mut held = Vec::new();
        for _ in 0..120 {
            let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let _ = socket.write_all(b"GET /heal").await;
            held.push(socket);
        }
        // Another client is served while they wait.
        let answer = other.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{base}");
        // Every slow socket is closed: those past the share at once, the
        // others when their header timeout passes.
        let started = Instant::now();
        for mut socket in held {
            let mut buf = [0u8; 256];
            let read = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await;
            assert!(
                matches!(read, Ok(Ok(0)) | Ok(Err(_)))
                    || matches!(read, Ok(Ok(n)) if buf[..n].starts_with(b"HTTP/1.1 408")),
                "{base}: a slow socket was kept open: {read:?}"
            );
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        // The slow client's address is served again afterwards.
        let answer = reqwest::get(format!("{base}/healthz")).await.unwrap();
        assert_eq!(answer.status(), 200);
    }
    // Half a body: 408 once the body timeout passes.
    let addr = service.url.trim_start_matches("http://").to_string();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    socket
        .write_all(b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"language\"")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    service.stop().await;
}

/// The worst shapes a body can take (millions of empty arrays in an unknown
/// field or where a string belongs, millions of list items, deep nesting,
/// a batch just under its cap) cost the API process little memory: bodies
/// are parsed into their typed requests, lists stop at their caps. Its peak
/// resident memory (VmHWM) is watched around them.
#[tokio::test(flavor = "multi_thread")]
async fn the_worst_request_bodies_cost_little_memory() {
    let queue = unique_queue();
    let port = crate::helpers::free_port();
    let child = crate::helpers::service_command("api", &queue, port)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_ready(&client, &url).await;
    let peak_kb = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    // Warm up the allocator with an ordinary submission.
    let answer = client
        .post(format!("{url}/v1/jobs"))
        .json(&json!({ "language": "python", "code": "print(1)" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    let before = peak_kb();
    let n = 3_900_000; // about 11.7 MB: under the 12 MiB body limit
    let bodies = [
        (
            "/v1/jobs",
            format!(
                r#"{{"language":"python","code":"x","colour":[{}[]]}}"#,
                "[],".repeat(n)
            ),
        ),
        (
            "/v1/jobs",
            format!(r#"{{"language":"python","code":[{}[]]}}"#, "[],".repeat(n)),
        ),
        (
            "/v1/jobs",
            format!(
                r#"{{"language":"python","code":"x","test_cases":[{}{{}}]}}"#,
                "{},".repeat(n)
            ),
        ),
        (
            "/v1/jobs",
            format!(
                r#"{{"language":"python","code":"x","args":[{}""]}}"#,
                "\"\",".repeat(n)
            ),
        ),
        ("/v1/jobs", "[".repeat(3 * n)),
        (
            "/run",
            format!(
                r#"{{"language":"python","code":"x","other":[{}[]]}}"#,
                "[],".repeat(n)
            ),
        ),
        (
            "/v1/jobs/batch",
            format!(r#"{{"jobs":[{}{{}}]}}"#, "{},".repeat(5_000_000)),
        ),
    ];
    for (path, body) in &bodies {
        let answer = client
            .post(format!("{url}{path}"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        // The proof of concept's route skips fields it does not know
        // (without storing them), as the proof of concept did.
        let expected: &[u16] = if *path == "/run" { &[200] } else { &[400, 413] };
        assert!(
            expected.contains(&answer.status().as_u16()),
            "{path}: {}",
            answer.status()
        );
    }
    let grown_mb = (peak_kb() - before) / 1024;
    // Each body is read whole (about 12 MB) before it is parsed; nothing
    // many times its size is ever built from it.
    assert!(
        grown_mb < 64,
        "the API process's peak memory grew by {grown_mb} MB"
    );
    assert!(crate::helpers::terminate(child).success());
}

/// Issue 13 (6): a key that floods the queue has a cap on its unfinished
/// jobs, and its flood pushes back only its own jobs: another key's single
/// job runs next, not after the flood.
#[tokio::test]
async fn a_key_that_floods_the_queue_is_capped_and_delays_only_itself() {
    let ((alice, alice_entry), (bob, bob_entry)) = two_keys();
    let mut service = TestService::start_with(|c| {
        // Alice's entry caps her at five; Bob gets the service's cap.
        c.api_keys = Some(format!("{alice_entry}:max_jobs=5,{bob_entry}"));
        c.max_jobs_per_caller = Some(100);
        c.concurrency = 1;
        c.wall_time_limit_ms = 10_000;
    })
    .await;
    // Each job prints when it started (jobs run one at a time here).
    let job = json!({
        "language": "python",
        "code": "import time\nprint(time.time())\ntime.sleep(0.5)",
    });
    service.bearer = Some(alice.clone());
    let (status, body) = service
        .send(
            Method::POST,
            "/v1/jobs/batch",
            Some(json!({ "jobs": vec![job.clone(); 5] })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let alices: Vec<String> = body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    // A sixth is over her cap, on every route: 429 naming it, with Retry-After.
    for path in ["/v1/jobs", "/run", "/v1/jobs/batch"] {
        let body = if path.ends_with("batch") {
            json!({ "jobs": [job.clone()] })
        } else {
            job.clone()
        };
        let response = service
            .client
            .post(format!("{}{path}", service.url))
            .bearer_auth(&alice)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 429, "{path}");
        retry_after(&response);
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("5 jobs"),
            "{path}: {body}"
        );
    }
    // A waiting job she cancels gives its place back at once.
    service.bearer = Some(alice.clone());
    let mut alices = alices;
    let cancelled = alices.pop().unwrap();
    let (status, view) = service
        .send(Method::DELETE, &format!("/v1/jobs/{cancelled}"), None)
        .await;
    assert_eq!(
        (status, &view["state"]),
        (200, &json!("cancelled")),
        "{view}"
    );
    alices.push(service.submit_v1(job.clone()).await);
    let (status, _) = service
        .send(Method::POST, "/v1/jobs", Some(job.clone()))
        .await;
    assert_eq!(status, 429, "the cap holds again");
    // Bob's one job goes ahead of Alice's waiting ones.
    service.bearer = Some(bob.clone());
    let bobs = service.submit_v1(job.clone()).await;
    let started = |view: &Value| -> f64 {
        assert_eq!(view["result"]["verdict"], "accepted", "{view}");
        view["result"]["stdout"]
            .as_str()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let bob_started = started(
        &service
            .wait_v1(&bobs, &["completed"], Duration::from_secs(60))
            .await,
    );
    service.bearer = Some(alice.clone());
    let mut alice_started = Vec::new();
    for id in &alices {
        let view = service
            .wait_v1(id, &["completed"], Duration::from_secs(60))
            .await;
        alice_started.push(started(&view));
    }
    // At most the job running when Bob came (and one taken just then) ran
    // before his: the rest of Alice's flood waited behind it.
    let before_bob = alice_started.iter().filter(|t| **t < bob_started).count();
    assert!(
        before_bob <= 2,
        "{before_bob} of Alice's 5 jobs started before Bob's one: {alice_started:?} vs {bob_started}"
    );
    // Her jobs done, her share is hers again.
    let again = service.submit_v1(job.clone()).await;
    service
        .wait_v1(&again, &["completed"], Duration::from_secs(60))
        .await;
    service.stop().await;
}

/// What a browser sends for a page of another site: its `Origin`.
const EVIL: &str = "http://evil.example";

/// A WebSocket handshake to `path` with these extra headers: the status
/// the service answered (101: upgraded).
async fn ws_status(service: &TestService, path: &str, headers: &[(&str, &str)]) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}{path}", service.url.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("handshake with {path}: {e}"),
    }
}

/// No web page can use the job API through the operator's browser: every
/// route family refuses a request from a foreign `Origin` (403, in its own
/// API's error shape) before it runs anything, WebSocket upgrades
/// included, and with no keys a foreign `Host` (DNS rebinding) too. The
/// service's own pages, and clients that are not browsers (no `Origin`),
/// are unaffected.
#[tokio::test]
async fn no_web_page_of_another_site_can_use_the_job_api() {
    let service = TestService::start().await;
    let client = reqwest::Client::new();
    let url = &service.url;
    let job = service
        .submit_v1(json!({ "language": "python", "code": "print('mine')" }))
        .await;
    let (_, counts_before) = service.admin_get("/admin/api/overview").await;

    // "Simple" cross-site requests: no preflight, so only the Origin check
    // stops them.
    let simple: Vec<(Method, String, &str, String)> = vec![
        (
            Method::POST,
            format!("{url}/api/v2/execute"),
            "text/plain",
            r#"{"language":"python","version":"*","files":[{"content":"print(42)"}]}"#.into(),
        ),
        (
            Method::POST,
            format!("{url}/submissions?wait=true"),
            "multipart/form-data; boundary=x",
            r#"{"source_code":"print(42)","language_id":71}"#.into(),
        ),
        (
            Method::POST,
            format!("{url}/submissions"),
            "application/x-www-form-urlencoded",
            "source_code=print(42)&language_id=71".into(),
        ),
        (
            Method::POST,
            format!("{url}/run"),
            "text/plain",
            r#"{"language":"python","code":"print(42)"}"#.into(),
        ),
        (
            Method::POST,
            format!("{url}/v1/jobs"),
            "application/json",
            r#"{"language":"python","code":"print(42)"}"#.into(),
        ),
        (
            Method::POST,
            format!("{url}/v1/jobs/{job}/input"),
            "text/plain",
            "42".into(),
        ),
        (
            Method::DELETE,
            format!("{url}/v1/jobs/{job}"),
            "text/plain",
            String::new(),
        ),
        (
            Method::GET,
            format!("{url}/v1/jobs/{job}"),
            "text/plain",
            String::new(),
        ),
        (
            Method::GET,
            format!("{url}/submissions/{job}"),
            "text/plain",
            String::new(),
        ),
    ];
    for (method, target, content_type, body) in simple {
        let answer = client
            .request(method.clone(), &target)
            .header("Origin", EVIL)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 403, "{method} {target}");
        let shape: Value = answer.json().await.unwrap();
        if target.contains("/api/v2/") {
            assert!(shape["message"].is_string(), "Piston's shape: {shape}");
        } else if target.contains("/submissions") {
            assert!(
                shape["error"].is_string() && shape.get("field").is_none(),
                "Judge0's: {shape}"
            );
        } else {
            assert_eq!(shape["field"], "Origin", "ours: {shape}");
        }
    }
    // WebSockets have no CORS at all: the upgrade itself is refused.
    for path in [
        "/v1/stream".to_string(),
        format!("/v1/jobs/{job}/stream"),
        "/api/v2/connect".into(),
    ] {
        assert_eq!(
            ws_status(&service, &path, &[("Origin", EVIL)]).await,
            403,
            "{path}"
        );
        assert_eq!(
            ws_status(&service, &path, &[("Origin", "null")]).await,
            403,
            "{path}"
        );
    }
    // Nothing ran, nothing was cancelled.
    let (_, counts_after) = service.admin_get("/admin/api/overview").await;
    let total = |overview: &Value| -> u64 {
        overview["counts"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(Value::as_u64)
            .sum()
    };
    assert_eq!(
        total(&counts_before),
        total(&counts_after),
        "a job was queued: {counts_after}"
    );
    let done = service.wait_done(&job, Duration::from_secs(60)).await;
    assert_eq!(done["result"]["stdout"], "mine", "{done}");

    // DNS rebinding: a page of another domain resolving to 127.0.0.1.
    for path in [
        "/v1/languages",
        "/languages",
        "/api/v2/runtimes",
        "/",
        "/v1/jobs",
    ] {
        let answer = client
            .get(format!("{url}{path}"))
            .header("Host", "rebind.attacker.example:3000")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 403, "{path}");
    }
    assert_eq!(
        ws_status(
            &service,
            "/v1/stream",
            &[("Host", "rebind.attacker.example")]
        )
        .await,
        403
    );

    // The playground's own page (its origin is the service's), and a
    // client that is not a browser, run code.
    for origin in [Some(url.as_str()), None] {
        let mut request = client
            .post(format!("{url}/v1/jobs?wait=true"))
            .json(&json!({ "language": "python", "code": "print('own page')" }));
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 200, "{origin:?}");
        let view: Value = answer.json().await.unwrap();
        assert_eq!(view["result"]["stdout"], "own page\n", "{view}");
    }
    assert_eq!(
        ws_status(&service, "/v1/stream", &[("Origin", url)]).await,
        101
    );
    service.stop().await;
}

/// Origins an operator lists get real CORS: preflights answered, the
/// origin allowed on answers (never with credentials), so a web front end
/// elsewhere calls the API with its key. `*` needs keys; a bad origin
/// stops the service naming the setting.
#[tokio::test]
async fn listed_origins_get_cors_and_others_none() {
    let (key, entry) = new_key("frontend");
    let front = "https://app.example.com";
    let mut service = TestService::start_with(|c| {
        c.api_keys = Some(entry.clone());
        c.cors_origins = vec![front.into()];
    })
    .await;
    service.bearer = Some(key.clone());
    let client = reqwest::Client::new();
    let url = &service.url;
    // With keys, any Host is answered (the API may be published by name).
    let answer = client
        .get(format!("{url}/v1/languages"))
        .header("Host", "api.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // The preflight of a JSON POST with a key.
    let preflight = client
        .request(Method::OPTIONS, format!("{url}/v1/jobs"))
        .header("Origin", front)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], front);
    let allowed = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    assert!(headers.get("access-control-allow-credentials").is_none());
    // The request itself.
    let answer = client
        .post(format!("{url}/v1/jobs?wait=true"))
        .header("Origin", front)
        .bearer_auth(&key)
        .json(&json!({ "language": "python", "code": "print('from the front end')" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["access-control-allow-origin"], front);
    assert!(
        answer.headers()["vary"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("origin")
    );
    let view: Value = answer.json().await.unwrap();
    assert_eq!(view["result"]["stdout"], "from the front end\n", "{view}");
    // Another origin: refused, and no CORS header to read it with.
    let answer = client
        .request(Method::OPTIONS, format!("{url}/v1/jobs"))
        .header("Origin", EVIL)
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    assert!(
        answer
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    service.stop().await;

    // `*` without keys, and an origin that is not one, stop the service.
    for (origins, keys) in [
        (vec!["*"], None),
        (vec!["app.example.com"], Some(entry.clone())),
    ] {
        let mut config = crate::helpers::test_config();
        config.cors_origins = origins.iter().map(|o| o.to_string()).collect();
        config.api_keys = keys;
        let refused = code_runner::app::App::start(Role::Api, config).await;
        let error = format!("{:#}", refused.err().expect("refused to start"));
        assert!(error.contains("CODE_RUNNER_CORS_ORIGINS"), "{error}");
    }
    // `*` with keys: any origin may call, with its key.
    let mut service = TestService::start_with(|c| {
        c.api_keys = Some(entry.clone());
        c.cors_origins = vec!["*".into()];
    })
    .await;
    service.bearer = Some(key.clone());
    let answer = client
        .get(format!("{}/v1/languages", service.url))
        .header("Origin", "https://anywhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["access-control-allow-origin"], "*");
    service.stop().await;
}

/// VmHWM and VmRSS of a process, in KiB.
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Many large bodies at once cannot take the API process's memory: the
/// bytes being read share one budget (64 MiB), a body that does not fit is
/// refused at once with 503 and `Retry-After`, and the memory is given back
/// afterwards. 32 batch bodies of nearly 16 MB each at once (refused with
/// 400 once parsed: an unknown language) used to raise the process's RSS
/// by about 15.5 MB each and keep it.
#[tokio::test(flavor = "multi_thread")]
async fn many_large_bodies_at_once_are_bounded_by_the_read_budget() {
    let queue = unique_queue();
    let port = crate::helpers::free_port();
    let child = crate::helpers::service_command("api", &queue, port)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_ready(&client, &url).await;
    let answer = client
        .post(format!("{url}/v1/jobs"))
        .json(&json!({ "language": "python", "code": "print(1)" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    let (_, rss_before) = memory_kb(child.id());
    // 15 sources of 1 MB each: just under the 16 MiB batch cap.
    let source = "x".repeat(1 << 20);
    let jobs: Vec<Value> = (0..15)
        .map(|_| json!({ "language": "no-such-language", "code": source }))
        .collect();
    let body = axum::body::Bytes::from(json!({ "jobs": jobs }).to_string());
    assert!(body.len() < 16 << 20 && body.len() > 15 << 20);
    let sends = (0..32).map(|_| {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        async move {
            let answer = client
                .post(format!("{url}/v1/jobs/batch"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            let retry_after = answer.headers().get("retry-after").is_some();
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            (status, retry_after, body)
        }
    });
    let answers = futures_util::future::join_all(sends).await;
    let (peak, _) = memory_kb(child.id());
    let refused = answers.iter().filter(|(s, _, _)| *s == 503).count();
    for (status, retry_after, body) in &answers {
        assert!([400, 503].contains(status), "{status} {body}");
        if *status == 503 {
            assert!(retry_after, "{body}");
            assert!(
                body["error"]
                    .as_str()
                    .unwrap()
                    .contains("CODE_RUNNER_MAX_BODY_BYTES_IN_FLIGHT_MB")
            );
        }
    }
    // Given back (the trim runs once no large body is held).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, rss_after) = memory_kb(child.id());
    println!(
        "32 bodies of {} MB at once: {refused} refused (503); RSS {} MiB before, peak {} MiB, \
         {} MiB after",
        body.len() >> 20,
        rss_before >> 10,
        peak >> 10,
        rss_after >> 10
    );
    assert!(refused > 0, "the budget never refused a body");
    // The budget (64 MiB) and a parsed copy of what it holds, with room:
    // far below 32 bodies' 500 MB.
    assert!(
        peak.saturating_sub(rss_before) < 250 << 10,
        "peak grew by {} MiB",
        (peak - rss_before) >> 10
    );
    assert!(
        rss_after.saturating_sub(rss_before) < 64 << 10,
        "{} MiB kept after the bodies were dropped",
        (rss_after - rss_before) >> 10
    );
    assert!(crate::helpers::terminate(child).success());
}
