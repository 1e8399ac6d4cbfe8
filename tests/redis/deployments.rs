//! Deployments sharing one engine leave each other's containers alone.

use super::*;

/// Two deployments on one engine: the same queue name and prefix on two
/// Redis servers. Each one's sweeps (the one at a worker's start among
/// them) leave the other's warm pool and running job alone; so does the
/// test suite's own clean-up script, run as `make test` runs it beside a
/// live service (with a prefix of this test's own standing in for the
/// suite's, so that other tests running meanwhile keep theirs).
#[tokio::test]
async fn deployments_sharing_an_engine_leave_each_others_containers_alone() {
    let queue = helpers::unique_queue();
    let live_prefix = format!(
        "{{live-{}}}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let live = TestService::start_with(|c| {
        c.queue_name = queue.clone();
        c.redis_prefix = live_prefix.clone();
        c.wall_time_limit_ms = 60_000;
    })
    .await;
    let warm = live
        .run_v1(json!({ "language": "python", "code": "print('warm')" }))
        .await;
    assert_eq!(warm["result"]["verdict"], "accepted", "{warm}");
    live.wait_pool_warm("python").await;
    let running = live
        .submit_v1(json!({ "language": "python", "code": "import time\ntime.sleep(35)\nprint('survived')" }))
        .await;
    live.wait_v1(&running, &["active"], Duration::from_secs(60))
        .await;
    let ids = |containers: Vec<code_runner::sandbox::sweep::ManagedContainer>| {
        let mut ids: Vec<String> = containers
            .into_iter()
            .map(|c| format!("{} {}", c.id, c.job_id))
            .collect();
        ids.sort();
        ids
    };
    // Warm again (the job took the warm container).
    live.wait_pool_warm("python").await;
    // The running job's container and the warm ones (the warm-up job's
    // own may still be on its way out).
    let before: Vec<String> = ids(live.containers().await)
        .into_iter()
        .filter(|c| c.ends_with(&running) || c.ends_with(" pool"))
        .collect();
    assert!(
        before.iter().any(|c| c.ends_with(&running)) && before.iter().any(|c| c.ends_with(" pool")),
        "a warm container and the job's: {before:?}"
    );

    // Another deployment: the same prefix and queue name on another Redis.
    let redis = RedisServer::start(&scratch("deployment"), None);
    let other = TestService::start_with(|c| {
        c.queue_name = queue.clone();
        c.redis_prefix = live_prefix.clone();
        c.redis_url = Some(format!("redis://127.0.0.1:{}", redis.port));
    })
    .await;
    let done = other
        .run_v1(json!({ "language": "python", "code": "print('other')" }))
        .await;
    assert_eq!(done["result"]["stdout"], "other\n", "{done}");
    // Its start-up sweep has run, and a periodic one.
    tokio::time::sleep(code_runner::actors::sweeper::SWEEP_INTERVAL + Duration::from_secs(2)).await;
    let after: Vec<String> = ids(live.containers().await);
    for id in &before {
        assert!(
            after.contains(id),
            "the other deployment removed {id}: {after:?}"
        );
    }

    // The suite's clean-up script, as `make test` runs it before and after
    // the suite: it removes only the suite's containers.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check-no-containers.sh");
    let doomed_prefix = format!(
        "{{doomed-{}}}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let doomed = TestService::start_with(|c| {
        c.redis_prefix = doomed_prefix.clone();
        c.wall_time_limit_ms = 60_000;
    })
    .await;
    let parked = doomed
        .submit_v1(json!({ "language": "python", "code": "import time\ntime.sleep(30)" }))
        .await;
    doomed
        .wait_v1(&parked, &["active"], Duration::from_secs(60))
        .await;
    let run_script = |args: &[&str]| {
        Command::new("bash")
            .arg(&script)
            .args(args)
            .env("CODE_RUNNER_TEST_PREFIX", &doomed_prefix)
            .output()
            .expect("bash runs the script")
    };
    // Its job is active once claimed, its container a moment later.
    let deadline = Instant::now() + Duration::from_secs(30);
    let doomed_before = loop {
        let now = ids(doomed.containers().await);
        if now.iter().any(|c| c.ends_with(&parked)) {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "no container for {parked}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let check = run_script(&[]);
    assert!(
        !check.status.success(),
        "the doomed job's container was not seen"
    );
    let removed = run_script(&["--remove-stale"]);
    assert!(removed.status.success(), "{removed:?}");
    // (Its warm pool may have made new ones since: those are not asked about.)
    let doomed_after = ids(doomed.containers().await);
    for id in &doomed_before {
        assert!(
            !doomed_after.contains(id),
            "the script left the suite's {id}"
        );
    }
    let after: Vec<String> = ids(live.containers().await);
    for id in &before {
        assert!(
            after.contains(id),
            "the script removed the live service's {id}: {after:?}"
        );
    }
    let done = live
        .wait_v1(&running, &["completed"], Duration::from_secs(60))
        .await;
    assert_eq!(done["result"]["stdout"], "survived\n", "{done}");
    doomed.stop().await;
    other.stop().await;
    live.stop().await;
}
