//! Every way a run can end: timeout, output limit, memory limit, error, and
//! the container gone afterwards each time.

use std::time::{Duration, Instant};

use crate::helpers::TestService;

#[tokio::test]
async fn an_endless_loop_ends_as_timeout_and_its_container_is_gone() {
    let service = TestService::start().await;
    let started = Instant::now();
    let id = service.submit("while True: pass").await;
    let body = service.wait_done(&id, Duration::from_secs(60)).await;
    assert_eq!(body["state"], "completed");
    assert_eq!(body["result"]["status"], "timeout", "{body}");
    assert!(body["result"]["exitCode"].is_null());
    // The wall-clock limit is 3 s here; allow for a loaded machine.
    assert!(started.elapsed() < Duration::from_secs(30));
    service.assert_containers_gone(None).await;
    service.stop().await;
}

#[tokio::test]
async fn ten_megabytes_of_stdout_end_as_output_limit_with_output_truncated() {
    let service = TestService::start().await;
    let id = service
        .submit("import sys\nsys.stdout.write('x' * 10_000_000)\nsys.stdout.flush()")
        .await;
    let body = service.wait_done(&id, Duration::from_secs(60)).await;
    let result = &body["result"];
    assert_eq!(
        result["status"],
        "output_limit",
        "{}",
        &body.to_string()[..300]
    );
    assert_eq!(result["stdoutTruncated"], true);
    let cap = service.config.output_limit_bytes as usize;
    assert_eq!(result["stdout"].as_str().unwrap().len(), cap);
    service.assert_containers_gone(None).await;
    service.stop().await;
}

#[tokio::test]
async fn a_stderr_flood_is_capped_too() {
    let service = TestService::start().await;
    let id = service
        .submit("import sys\nwhile True: sys.stderr.write('e' * 4096)")
        .await;
    let body = service.wait_done(&id, Duration::from_secs(60)).await;
    assert_eq!(body["result"]["status"], "output_limit");
    assert_eq!(body["result"]["stderrTruncated"], true);
    service.stop().await;
}

#[tokio::test]
async fn two_gigabytes_end_as_memory_limit() {
    let service = TestService::start().await;
    let id = service
        .submit("x = bytearray(2 * 10**9)\nprint('allocated')")
        .await;
    let body = service.wait_done(&id, Duration::from_secs(60)).await;
    assert_eq!(body["result"]["status"], "memory_limit", "{body}");
    assert_eq!(body["result"]["stdout"], "");
    service.assert_containers_gone(None).await;
    service.stop().await;
}

#[tokio::test]
async fn a_non_zero_exit_is_error_with_its_code_and_stderr() {
    let service = TestService::start().await;
    let id = service
        .submit("import sys\nprint('partial')\nprint('it broke', file=sys.stderr)\nsys.exit(3)")
        .await;
    let body = service.wait_done(&id, Duration::from_secs(30)).await;
    let result = &body["result"];
    assert_eq!(body["state"], "completed");
    assert_eq!(result["status"], "error");
    assert_eq!(result["exitCode"], 3);
    assert_eq!(result["stdout"], "partial");
    assert_eq!(result["stderr"], "it broke");

    let id = service.submit("raise ValueError('bad value')").await;
    let body = service.wait_done(&id, Duration::from_secs(30)).await;
    assert_eq!(body["result"]["status"], "error");
    assert_eq!(body["result"]["exitCode"], 1);
    assert!(
        body["result"]["stderr"]
            .as_str()
            .unwrap()
            .contains("ValueError: bad value")
    );
    service.stop().await;
}

#[tokio::test]
async fn a_program_that_closes_its_output_and_sleeps_still_times_out() {
    let service = TestService::start().await;
    let id = service
        .submit("import os, time\nos.close(1)\nos.close(2)\ntime.sleep(600)")
        .await;
    let body = service.wait_done(&id, Duration::from_secs(60)).await;
    assert_eq!(body["result"]["status"], "timeout", "{body}");
    service.assert_containers_gone(None).await;
    service.stop().await;
}

/// Sixteen cases each printing a whole mebibyte on stdout and on stderr
/// (32 MiB in all) keep 4 MiB between them, shared fairly, each cut case
/// saying so; what is stored, read back and answered stays bounded.
#[tokio::test]
async fn a_jobs_whole_result_is_capped_across_its_cases() {
    let service = TestService::start_with(|c| c.max_result_bytes = 4 << 20).await;
    let cases: Vec<serde_json::Value> = (0..16)
        .map(|_| serde_json::json!({ "stdin": "" }))
        .collect();
    let view = service
        .run_v1(serde_json::json!({
            "language": "python",
            "code": "import sys\nsys.stdout.write('x' * (1 << 20))\nsys.stderr.write('y' * (1 << 20))",
            "limits": { "output_bytes": 1 << 20 },
            "test_cases": cases,
        }))
        .await;
    let result = &view["result"];
    assert_eq!(result["verdict"], "accepted", "the whole output was judged");
    let cases = result["test_cases"].as_array().unwrap();
    assert_eq!(cases.len(), 16);
    let mut kept = 0;
    for case in cases {
        for stream in ["stdout", "stderr"] {
            let text = case[stream].as_str().unwrap();
            kept += text.len();
            assert_eq!(case[format!("{stream}_truncated")], true);
            // A fair share each: 4 MiB over 32 streams.
            assert_eq!(text.len(), (4 << 20) / 32, "{stream}");
        }
    }
    assert!(kept <= 4 << 20, "{kept}");
    // The whole answer: the cases plus the headline's copy, not 32 MiB.
    let (_, again) = service
        .get(&format!("/v1/jobs/{}", view["id"].as_str().unwrap()))
        .await;
    assert!(
        again.to_string().len() < 5 << 20,
        "{}",
        again.to_string().len()
    );
    service.stop().await;
}
