//! The short load test `make test` (and so CI) runs: 50 jobs, hello worlds
//! in two languages with hostile neighbours mixed in, against a real
//! service; it fails on any lost or wrong job, never on speed. And proof
//! that the load test does fail when outputs are wrong.

use code_runner_testkit as helpers;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;

use serde_json::Value;

/// One load test at a time: two at once on a 2-core machine would judge
/// each other's jobs (wall-clock limits) rather than the service.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn loadtest(url: &str, args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["--url", url, "--json"])
        .args(args)
        .output()
        .expect("run loadtest");
    let summary = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "loadtest printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), summary)
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_jobs_with_hostile_neighbours_none_lost_or_wrong() {
    let _one = ONE_AT_A_TIME.lock().await;
    let service = helpers::TestService::start_with(|c| c.concurrency = 4).await;
    let url = service.url.clone();
    let (code, summary) = tokio::task::spawn_blocking(move || {
        loadtest(
            &url,
            &[
                "--jobs",
                "50",
                "--concurrency",
                "8",
                "--mix",
                "c=20%,hostile=10%",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(summary["jobs"], 50, "{summary}");
    assert_eq!(summary["correct"], 50, "{summary}");
    assert_eq!(summary["wrong"], 0, "{summary}");
    assert_eq!(summary["lost"], 0, "{summary}");
    assert_eq!(code, 0, "{summary}");
    // Each kind ran: 35 Python, 10 C, 5 hostile (stopped by their limits).
    let kinds = &summary["end_to_end_by_kind"];
    assert_eq!(kinds["python"]["count"], 35, "{summary}");
    assert_eq!(kinds["c"]["count"], 10, "{summary}");
    assert_eq!(kinds["hostile"]["count"], 5, "{summary}");
    assert_eq!(summary["verdicts"]["accepted"], 45, "{summary}");
    service.stop().await;
}

/// The proof of concept's own client (100 Python jobs, 16 submitted at once
/// with `POST /run`, each polled with `GET /status` every 200 ms) against
/// a service with the default configuration, and again with an API key
/// (where the default rate limits are on): no request is ever answered 429
/// and every job is seen finished with its own output.
#[tokio::test(flavor = "multi_thread")]
async fn the_proof_of_concepts_polling_client_is_never_throttled_by_default() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (key, entry) = code_runner::http::auth::new_key("poc");
    for api_key in [None, Some(key)] {
        let service = helpers::TestService::start_with(|c| {
            if api_key.is_some() {
                c.api_keys = Some(entry.clone());
            }
        })
        .await;
        // Nothing here touches the limits: they are the defaults.
        if api_key.is_some() {
            assert_eq!(
                service.config.submit_rate_per_minute(),
                code_runner::config::DEFAULT_SUBMIT_RATE_PER_MINUTE
            );
            assert_eq!(
                service.config.request_rate_per_minute(),
                code_runner::config::DEFAULT_REQUEST_RATE_PER_MINUTE
            );
        }
        let url = service.url.clone();
        let key = api_key.clone();
        let (code, summary) = tokio::task::spawn_blocking(move || {
            let mut args = vec!["--jobs", "100", "--concurrency", "16", "--poll-ms", "200"];
            if let Some(key) = &key {
                args.extend(["--api-key", key.as_str()]);
            }
            loadtest(&url, &args)
        })
        .await
        .unwrap();
        assert_eq!(summary["correct"], 100, "{summary}");
        assert_eq!(summary["lost"], 0, "{summary}");
        assert_eq!(summary["throttled"], 0, "a submission got 429: {summary}");
        assert_eq!(summary["throttled_polls"], 0, "a poll got 429: {summary}");
        assert!(summary["polls"].as_u64().unwrap() >= 100, "{summary}");
        assert_eq!(code, 0, "{summary}");
        service.stop().await;
    }
}

/// A server that answers every job with another job's output.
fn wrong_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let answer = r#"{"id":"00000000-0000-4000-8000-000000000000","state":"completed","result":{"verdict":"accepted","stdout":"someone else's output\n"}}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    url
}

#[test]
fn wrong_outputs_make_the_load_test_fail() {
    let url = wrong_server();
    let (code, summary) = loadtest(&url, &["--jobs", "5", "--concurrency", "2"]);
    assert_eq!(code, 1, "{summary}");
    assert_eq!(summary["wrong"], 5, "{summary}");
    assert_eq!(summary["correct"], 0, "{summary}");
}
