//! Fair verdicts: a CPU-bound program's verdict does not depend on its
//! neighbours. A test binary of its own, so that no other test's jobs share
//! the machine's CPUs while it runs (test binaries run one at a time).
//!
//! `make test` runs it under runc, `make test-gvisor` under gVisor.

use code_runner_testkit as helpers;

use std::time::Duration;

use serde_json::{Value, json};

use helpers::{TestService, under_gvisor};

/// A C program that needs 1.0 s of CPU under a 2 s wall-clock limit (the
/// default ratio of wall to CPU) is accepted alone; it must be accepted as
/// well beside neighbours that each run four busy processes: the default cap never gives the machine more
/// jobs than CPUs, so no neighbour takes the victim's CPU. Twenty runs (the
/// cases of one job), with a hostile neighbour always running beside.
#[tokio::test]
async fn a_cpu_bound_verdict_does_not_depend_on_hostile_neighbours() {
    let service = TestService::start_with(|c| {
        c.wall_time_limit_ms = 10_000;
        c.cpu_time_limit_ms = 5_000;
    })
    .await;
    let victim = "#include <stdio.h>\n#include <time.h>\nint main(void) {\n  volatile unsigned long n = 0;\n  while (clock() < CLOCKS_PER_SEC) n++;\n  printf(\"done\\n\");\n  return 0;\n}\n";
    let neighbour = "import os\nfor _ in range(3):\n    if os.fork() == 0:\n        break\nwhile True:\n    pass\n";
    // Neighbours keep coming (a lower priority than the victim, so the
    // victim is never stuck behind them in the queue).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeder = {
        let (stop, url, client) = (stop.clone(), service.url.clone(), service.client.clone());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if ids.len() < 200 {
                    let answer: serde_json::Value = client
                        .post(format!("{url}/v1/jobs"))
                        .json(
                            &json!({ "language": "python", "code": neighbour, "priority": 100,
                                        "limits": { "cpu_time_ms": 2000, "wall_time_ms": 4000 } }),
                        )
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    ids.push(answer["id"].as_str().unwrap_or_default().to_string());
                }
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
            ids
        })
    };
    // Let a neighbour start first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let wall = if under_gvisor() { 3_000 } else { 2_000 };
    let cases: Vec<Value> = (0..20).map(|_| json!({ "stdin": "" })).collect();
    let id = service
        .submit_v1(json!({
            "language": "c",
            "code": victim,
            "limits": { "wall_time_ms": wall, "cpu_time_ms": 3000 },
            "test_cases": cases,
        }))
        .await;
    let view = service
        .wait_v1(&id, &["completed", "failed"], Duration::from_secs(300))
        .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let neighbours = feeder.await.unwrap();
    for (i, case) in view["result"]["test_cases"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        assert_eq!(case["verdict"], "accepted", "run {i}: {case}");
        assert!(
            case["cpu_time_ms"].as_u64().unwrap() >= 1000,
            "run {i}: {case}"
        );
    }
    assert_eq!(view["result"]["test_cases"].as_array().unwrap().len(), 20);
    // What contention remains, for the README (printed, not asserted).
    let walls: Vec<u64> = view["result"]["test_cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["wall_time_ms"].as_u64().unwrap())
        .collect();
    eprintln!("victim wall times (ms) for 1000 ms of CPU beside neighbours: {walls:?}");
    // Neighbours really ran beside the victim, stopped by their own limits.
    let (begun, ended) = (
        view["started_at_ms"].as_u64().unwrap(),
        view["finished_at_ms"].as_u64().unwrap(),
    );
    let mut beside = 0;
    for neighbour in &neighbours {
        let (_, seen) = service.get(&format!("/v1/jobs/{neighbour}")).await;
        if let (Some(s), Some(f)) = (
            seen["started_at_ms"].as_u64(),
            seen["finished_at_ms"].as_u64(),
        ) && s < ended
            && f > begun
        {
            assert_eq!(seen["result"]["verdict"], "time_limit_exceeded", "{seen}");
            beside += 1;
        }
    }
    assert!(
        beside >= 3,
        "only {beside} neighbours ran beside the victim"
    );
    for neighbour in &neighbours {
        let _ = service
            .send(
                reqwest::Method::DELETE,
                &format!("/v1/jobs/{neighbour}"),
                None,
            )
            .await;
    }
    service.stop().await;
}
