//! Abusive clients: slow ones cannot hold the listeners, the worst bodies
//! cost little memory (alone and many at once), and a key that floods the
//! queue is capped and delays only itself.

use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestService, unique_queue, wait_ready};
use crate::security::{retry_after, two_keys};

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
