//! `GET /metrics` after a known set of jobs: the counters and histogram
//! counts move by exactly those jobs, and the output is valid Prometheus
//! text. Its own test binary: the recorder is process-wide, so no other
//! test may run jobs meanwhile.

use code_runner_testkit as helpers;

use std::collections::HashMap;

use code_runner::actors::dispatcher::PANIC_RUNNER_MARKER;
use serde_json::json;

use helpers::TestService;

/// Every sample of a scrape, by name and sorted labels.
type Samples = HashMap<String, f64>;

async fn scrape(service: &TestService) -> (Samples, String) {
    let response = service
        .client
        .get(format!("{}/metrics", service.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("the output parses as Prometheus text");
    let mut samples = HashMap::new();
    for sample in scrape.samples {
        let mut labels: Vec<String> = sample
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        labels.sort();
        let value = match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(buckets) => {
                // The +Inf bucket is the count.
                buckets.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            prometheus_parse::Value::Summary(_) => continue,
        };
        samples.insert(format!("{}{{{}}}", sample.metric, labels.join(",")), value);
    }
    (samples, text)
}

fn delta(before: &Samples, after: &Samples, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn counters_and_histograms_move_by_exactly_the_jobs_run() {
    let service = TestService::start_with(|c| {
        c.attempts = 1;
        c.concurrency = 1;
    })
    .await;
    let (before, _) = scrape(&service).await;

    for i in 0..3 {
        let view = service
            .run_v1(json!({ "language": "python", "code": format!("print({i})") }))
            .await;
        assert_eq!(view["result"]["verdict"], "accepted", "{view}");
    }
    let timeout = service
        .run_v1(json!({
            "language": "python",
            "code": "while True:\n    pass",
            "limits": { "wall_time_ms": 1000, "cpu_time_ms": 500 },
        }))
        .await;
    assert_eq!(
        timeout["result"]["verdict"], "time_limit_exceeded",
        "{timeout}"
    );
    let oom = service
        .run_v1(json!({
            "language": "python",
            "code": "chunks = []\nwhile True:\n    chunks.append(bytearray(10 * 1024 * 1024))",
            "limits": { "memory_mb": 64 },
        }))
        .await;
    assert_eq!(oom["result"]["verdict"], "memory_limit_exceeded", "{oom}");
    let panicked = service
        .run_v1(json!({
            "language": "python",
            "code": format!("# {PANIC_RUNNER_MARKER}\nimport time\ntime.sleep(30)"),
        }))
        .await;
    assert_eq!(panicked["state"], "failed", "{panicked}");
    // Cancelled while it waited (the one slot held by a sleeper): counted
    // as every other end of a job is.
    let sleeper = service
        .submit_v1(
            json!({ "language": "python", "code": "import time\ntime.sleep(2)\nprint('slept')" }),
        )
        .await;
    service
        .wait_v1(&sleeper, &["active"], std::time::Duration::from_secs(60))
        .await;
    let waiting = service
        .submit_v1(json!({ "language": "python", "code": "print('never')" }))
        .await;
    let (status, body) = service
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/jobs/{waiting}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["attempts_made"], 0, "cancelled before it ran: {body}");
    let slept = service
        .wait_v1(&sleeper, &["completed"], std::time::Duration::from_secs(60))
        .await;
    assert_eq!(slept["result"]["verdict"], "accepted", "{slept}");

    let (after, text) = scrape(&service).await;
    let moved = |key: &str| delta(&before, &after, key);
    let finished = "code_runner_jobs_finished_total";
    assert_eq!(
        moved(&format!("{finished}{{language=python,verdict=accepted}}")),
        4.0,
        "{text}"
    );
    assert_eq!(
        moved(&format!(
            "{finished}{{language=python,verdict=time_limit_exceeded}}"
        )),
        1.0
    );
    assert_eq!(
        moved(&format!(
            "{finished}{{language=python,verdict=memory_limit_exceeded}}"
        )),
        1.0
    );
    assert_eq!(
        moved(&format!("{finished}{{language=python,verdict=failed}}")),
        1.0
    );
    assert_eq!(
        moved(&format!("{finished}{{language=python,verdict=cancelled}}")),
        1.0,
        "{text}"
    );
    assert_eq!(moved("code_runner_runner_panics_total{}"), 1.0, "{text}");
    assert_eq!(moved("code_runner_timeouts_total{}"), 1.0, "{text}");
    assert_eq!(moved("code_runner_oom_kills_total{}"), 1.0, "{text}");
    // Seven jobs claimed once each (the one cancelled while it waited
    // never was), eight ended.
    assert_eq!(
        moved("code_runner_queue_wait_seconds_count{}"),
        7.0,
        "{text}"
    );
    assert_eq!(
        moved("code_runner_job_duration_seconds_count{}"),
        8.0,
        "{text}"
    );
    // Six programs ran to their report; the panicked runner's never did.
    assert_eq!(
        moved("code_runner_container_phase_seconds_count{phase=run}"),
        6.0,
        "{text}"
    );
    // Six jobs through POST /v1/jobs?wait=true, all answered 200; the first
    // scrape is counted once it was answered.
    assert_eq!(
        moved("code_runner_http_requests_total{method=POST,route=/v1/jobs,status=200}"),
        6.0,
        "{text}"
    );
    assert_eq!(
        moved("code_runner_http_requests_total{method=GET,route=/metrics,status=200}"),
        1.0,
        "{text}"
    );
    // Gauges read at scrape time.
    assert!(
        after.contains_key("code_runner_jobs{state=completed}"),
        "{text}"
    );
    assert_eq!(after["code_runner_workers_live{}"], 1.0, "{text}");
    // Labels never carry a job id.
    for id in [&timeout["id"], &oom["id"], &panicked["id"]] {
        assert!(
            !text.contains(id.as_str().unwrap()),
            "a job id in the metrics"
        );
    }
    service.stop().await;
}

/// One role of the service as a process logging JSON lines to a file.
fn spawn_logging(
    role: &str,
    queue: &str,
    log: &std::path::Path,
    levels: &str,
) -> (std::process::Child, String) {
    let port = helpers::free_port();
    let child = helpers::service_command(role, queue, port)
        .env("CODE_RUNNER_LOG_FORMAT", "json")
        .env("RUST_LOG", levels)
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start code-runner");
    (child, format!("http://127.0.0.1:{port}"))
}

/// Every JSON line of a log that mentions `needle` anywhere (message,
/// fields or span fields).
fn lines_with(log: &std::path::Path, needle: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .filter(|v: &serde_json::Value| v.to_string().contains(needle))
        .collect()
}

/// The value of `field` in a line's event fields or any of its spans.
fn field<'a>(line: &'a serde_json::Value, field: &str) -> Option<&'a str> {
    let spans = line["spans"].as_array().into_iter().flatten();
    std::iter::once(&line["fields"])
        .chain(std::iter::once(&line["span"]))
        .chain(spans)
        .find_map(|s| s[field].as_str())
}

#[tokio::test]
async fn one_jobs_logs_join_up_across_the_api_and_the_worker_by_job_and_trace_id() {
    let queue = helpers::unique_queue();
    let dir = std::env::temp_dir().join(format!("code-runner-logs-{queue}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (api_log, worker_log) = (dir.join("api.log"), dir.join("worker.log"));
    let (api, url) = spawn_logging("api", &queue, &api_log, "info");
    // The sandbox's debug lines too: the container's creation and removal.
    let (worker, _) = spawn_logging("worker", &queue, &worker_log, "info,code_runner=debug");
    let client = reqwest::Client::new();
    helpers::wait_ready(&client, &url).await;
    let secret = "a-secret-the-logs-must-not-hold";
    let id = helpers::submit_to(
        &client,
        &url,
        json!({ "language": "python", "code": format!("print('{secret}')") }),
    )
    .await;
    let view = helpers::wait_done(&client, &url, &id, std::time::Duration::from_secs(60)).await;
    assert_eq!(view["result"]["stdout"], secret, "{view}");
    assert!(helpers::terminate(worker).success());
    assert!(helpers::terminate(api).success());

    // The API accepted it inside a request span with a trace id.
    let accepted = lines_with(&api_log, &id);
    let trace_id = accepted
        .iter()
        .find_map(|l| field(l, "trace_id"))
        .unwrap_or_else(|| panic!("no trace id with job {id} in the API's log: {accepted:?}"))
        .to_string();
    assert_eq!(trace_id.len(), 32, "{trace_id}");
    // The worker's lines about the job carry the same job id and trace id.
    let worked = lines_with(&worker_log, &id);
    assert!(
        worked.iter().any(
            |l| field(l, "job") == Some(id.as_str()) && field(l, "trace_id") == Some(&trace_id)
        ),
        "no worker line with job {id} and trace {trace_id}: {worked:?}"
    );
    // Its story ends with its container's removal, or its return to the
    // pool restored (containers recycled, the default), after the answer,
    // still in the job's span.
    let end = if helpers::recycling() {
        "container recycled"
    } else {
        "container removed"
    };
    assert!(
        worked
            .iter()
            .any(|l| l["fields"]["message"] == end && field(l, "trace_id") == Some(&trace_id)),
        "no `{end}` in the job's span: {worked:?}"
    );
    // No user code or output in either log (the worker's even at debug).
    for log in [&api_log, &worker_log] {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(
            !text.contains(secret),
            "user code or output in {}",
            log.display()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The number of series `/metrics` holds, from its text.
fn series(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

/// Labels are bounded whatever clients send: after one request of each
/// kind, 1,000 more with distinct methods, paths and language names (our
/// API's, Judge0's ids, Piston's names) add no series. (A process of its
/// own: the recorder is process-wide.)
#[tokio::test]
async fn distinct_methods_paths_and_languages_add_no_series() {
    let queue = helpers::unique_queue();
    let (port, admin_port) = (helpers::free_port(), helpers::free_port());
    let api = helpers::service_command("api", &queue, port)
        .env(
            "CODE_RUNNER_ADMIN_LISTEN",
            format!("127.0.0.1:{admin_port}"),
        )
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start code-runner api");
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    helpers::wait_ready(&client, &url).await;
    let scrape_text = || async {
        client
            .get(format!("http://127.0.0.1:{admin_port}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let round = |i: usize| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let method =
                reqwest::Method::from_bytes(format!("M{i}{}", "X".repeat(200)).as_bytes()).unwrap();
            let statuses = [
                client
                    .request(method, format!("{url}/no/such/path/{i}"))
                    .send()
                    .await,
                client.get(format!("{url}/no/such/path/{i}")).send().await,
                client
                    .post(format!("{url}/v1/jobs"))
                    .json(&json!({ "language": format!("lang{i}"), "code": "x" }))
                    .send()
                    .await,
                client
                    .post(format!("{url}/submissions"))
                    .json(&json!({ "language_id": 100_000 + i, "source_code": "x" }))
                    .send()
                    .await,
                client
                    .post(format!("{url}/api/v2/execute"))
                    .json(&json!({ "language": format!("piston{i}"), "version": "*",
                        "files": [{ "content": "x" }] }))
                    .send()
                    .await,
            ];
            statuses
                .into_iter()
                .map(|r| r.expect("an answer").status().as_u16())
                .collect::<Vec<u16>>()
        }
    };
    let first = round(0).await;
    assert!(
        first.iter().all(|s| (400..500).contains(s)),
        "every request is refused: {first:?}"
    );
    // Scraped once first, so that the scrape's own series exist.
    scrape_text().await;
    let before = series(&scrape_text().await);
    let rounds: Vec<_> = (1..=200).map(round).collect();
    for statuses in futures_util::future::join_all(rounds).await {
        assert_eq!(statuses, first, "the same answers");
    }
    let text = scrape_text().await;
    assert_eq!(series(&text), before, "{text}");
    assert!(!text.contains("lang1\""), "{text}");
    assert!(!text.contains("M1XX"), "{text}");
    assert!(helpers::terminate(api).success());
}
