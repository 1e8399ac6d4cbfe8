//! A Redis without maxmemory is kept within the service's memory budget.

use super::*;

/// Redis's `used_memory`.
async fn used_memory(port: u16) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut connection(port).await)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// A Redis with no `maxmemory` of its own (an external one) is kept within
/// the service's budget: ended jobs' live streams, then finished jobs, go
/// oldest first once it holds 60% of it, so a steady stream of large results never fills it; and
/// with nothing it may remove (jobs still waiting), submissions are refused
/// with 507 at the budget, before Redis is full.
#[tokio::test]
async fn a_redis_without_maxmemory_is_kept_within_the_budget() {
    let redis = RedisServer::start(&scratch("budget"), None);
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let budget_mb = 24;
    let service = TestService::start_with(|c| {
        c.redis_url = Some(url.clone());
        c.redis_memory_budget_mb = Some(budget_mb);
        c.keep_completed_count = 100_000;
    })
    .await;
    let baseline = used_memory(redis.port).await;
    let mut ids = Vec::new();
    let mut highest = 0;
    for i in 0..60 {
        // About 500 KB of output each: 30 MB in all.
        let view = service
            .run_v1(json!({
                "language": "python",
                "code": format!("# job {i}\nprint('x' * 500_000)"),
                "limits": { "output_bytes": 1_048_576 },
            }))
            .await;
        assert_eq!(view["result"]["verdict"], "accepted", "job {i}");
        ids.push(view["id"].as_str().unwrap().to_string());
        highest = highest.max(used_memory(redis.port).await);
    }
    println!(
        "60 jobs of 500 KB on a {budget_mb} MiB budget: Redis used {} MiB at first, {} MiB at most",
        baseline >> 20,
        highest >> 20
    );
    assert!(highest < budget_mb << 20, "Redis held {highest} bytes");
    let (status, _) = service.get(&format!("/v1/jobs/{}", ids[0])).await;
    assert_eq!(status, 404, "the oldest job went first");
    let (status, _) = service.get(&format!("/v1/jobs/{}", ids[59])).await;
    assert_eq!(status, 200, "the newest job stays");
    service.stop().await;

    // No worker: every job waits, and retention may remove none of them.
    let redis = RedisServer::start(&scratch("budget-full"), None);
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let api = TestService::start_role(Role::Api, |c| {
        c.redis_url = Some(url.clone());
        c.redis_memory_budget_mb = Some(8);
    })
    .await;
    let code = format!("# {}\nprint(1)", "x".repeat(500_000));
    let mut accepted = 0;
    let refusal = loop {
        let (status, body) = api
            .send(
                Method::POST,
                "/v1/jobs",
                Some(json!({ "language": "python", "code": code })),
            )
            .await;
        if status != 201 {
            break (status, body);
        }
        accepted += 1;
        assert!(accepted < 100, "never refused");
        // The admission reads Redis's use at most once a second.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let used = used_memory(redis.port).await;
    println!(
        "{accepted} jobs of 500 KB queued on an 8 MiB budget; Redis used {} MiB",
        used >> 20
    );
    assert_eq!(refusal.0, 507, "{refusal:?}");
    assert!(
        refusal.1["error"]
            .as_str()
            .unwrap()
            .contains("CODE_RUNNER_REDIS_MEMORY_BUDGET_MB"),
        "{refusal:?}"
    );
    // At the budget, give or take the jobs of the last second.
    assert!(used < (8 << 20) + 12 * 600_000, "Redis holds {used} bytes");
    api.stop().await;
}
