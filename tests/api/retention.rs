//! Finished jobs are kept for a configured age and count, then removed.

use std::time::Duration;

use crate::helpers::TestService;

#[tokio::test]
async fn completed_jobs_beyond_the_retention_count_are_removed() {
    let service = TestService::start_with(|c| c.keep_completed_count = 2).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let id = service.submit(&format!("print({i})")).await;
        service.wait_done(&id, Duration::from_secs(30)).await;
        ids.push(id);
    }
    for old in &ids[..2] {
        let (status, body) = service.get(&format!("/status/{old}")).await;
        assert_eq!(status, 404, "{body}");
    }
    for kept in &ids[2..] {
        assert_eq!(service.status(kept).await["state"], "completed");
    }
    service.stop().await;
}

#[tokio::test]
async fn completed_jobs_older_than_the_retention_age_are_removed() {
    let service = TestService::start_with(|c| c.keep_completed_secs = 1).await;
    let first = service.submit("print('old')").await;
    service.wait_done(&first, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    // BullMQ trims by age when a job finishes.
    let second = service.submit("print('new')").await;
    service.wait_done(&second, Duration::from_secs(30)).await;
    let (status, body) = service.get(&format!("/status/{first}")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(service.status(&second).await["state"], "completed");
    service.stop().await;
}

/// Bytes Redis holds for `key` (`MEMORY USAGE`, every value sampled).
async fn redis_bytes(key: &str) -> u64 {
    let client = redis::Client::open(crate::helpers::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query_async::<Option<u64>>(&mut conn)
        .await
        .unwrap()
        .unwrap_or(0)
}

/// A large job's content is stored once in its result (and once more, for
/// a few minutes, in its live stream): the compiler's output not twice, a
/// job with test cases not its headline case's output again. Redis's bytes
/// for the job, against the bytes of its request and its output.
#[tokio::test]
async fn a_large_jobs_content_is_stored_once_in_its_result() {
    let service = TestService::start_with(|c| c.wall_time_limit_ms = 20_000).await;
    let output_cap = 1 << 20;
    // A C program whose compilation warns at length (about 600 KB) and
    // whose four cases print about 900 KB each (stdout and stderr).
    let warnings: String = (0..3000)
        .map(|i| format!("#warning \"warning number {i} of a compilation that says a lot\"\n"))
        .collect();
    let code = format!(
        "{warnings}#include <stdio.h>\nint main(void) {{ for (int i = 0; i < 15000; i++) {{ printf(\"%060d\\n\", i); fprintf(stderr, \"%060d\\n\", i); }} return 0; }}\n"
    );
    let cases: Vec<serde_json::Value> = (0..4)
        .map(|i| serde_json::json!({ "stdin": format!("{i}") }))
        .collect();
    let request = serde_json::json!({
        "language": "c",
        "code": code,
        "test_cases": cases,
        "limits": { "output_bytes": output_cap },
    });
    let view = service.run_v1(request.clone()).await;
    let result = &view["result"];
    assert_eq!(
        result["verdict"],
        "accepted",
        "{}",
        &view.to_string()[..2000]
    );
    let id = view["id"].as_str().unwrap();
    // What the job is: its request, and its output as the result shows it.
    let compile_output = result["compile_output"].as_str().unwrap().len() as u64;
    assert!(compile_output > 300_000, "{compile_output}");
    let mut output = compile_output;
    for case in result["test_cases"].as_array().unwrap() {
        output += (case["stdout"].as_str().unwrap().len() + case["stderr"].as_str().unwrap().len())
            as u64;
    }
    // The job's own figures are its headline case's, shown whole.
    assert_eq!(result["stdout"], result["test_cases"][3]["stdout"]);
    let content = request.to_string().len() as u64 + output;
    let prefix = format!(
        "{}:{}",
        crate::helpers::TEST_PREFIX,
        service.config.queue_name
    );
    let hash = redis_bytes(&format!("{prefix}:{id}")).await;
    let live = redis_bytes(&format!("{prefix}:cr:live:{id}")).await;
    println!(
        "content {} KiB (request {} KiB, output {} KiB); Redis: job {} KiB, live stream {} KiB",
        content >> 10,
        request.to_string().len() >> 10,
        output >> 10,
        hash >> 10,
        live >> 10
    );
    let client = redis::Client::open(crate::helpers::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let fields: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(format!("{prefix}:{id}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let stored: u64 = fields.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
    println!("the job's fields hold {} KiB", stored >> 10);
    // One copy in the job: its request (`data`) and its result
    // (`returnvalue`), each output once. (Redis's allocator rounds a large
    // value up to its size class, up to a quarter more.)
    assert!(
        stored < content + content / 10 + (64 << 10),
        "the job's fields hold {stored} bytes for {content}"
    );
    assert!(
        hash < content + content * 2 / 5 + (64 << 10),
        "the job holds {hash} bytes for {content}"
    );
    // One more in the live stream, for a few minutes: every byte the runs
    // printed (before the result's own cap cut them).
    let printed = 4 * 2 * 15_000 * 61 + compile_output;
    assert!(
        live < printed + printed * 2 / 5 + (64 << 10),
        "the stream holds {live} bytes for {printed}"
    );
    service.stop().await;
}
