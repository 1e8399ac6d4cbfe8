//! Workers that die, stall or are stopped: their jobs are taken over, their
//! webhooks delivered once, their containers reaped, and a thousand jobs
//! survive a worker killed in the middle.

use super::*;

#[tokio::test]
async fn a_worker_killed_mid_job_has_its_jobs_taken_over_and_its_containers_reaped() {
    let _one = ONE_AT_A_TIME.lock().await;
    let queue = unique_queue();
    let tally = EventTally::follow(&redis_url(), &queue);
    let base = base_env(&redis_url(), &queue);
    // Containers recycled between jobs: a dead worker's recycled ones are
    // reaped as its others are.
    let fast_locks = [
        ("CODE_RUNNER_LOCK_DURATION_MS", "3000"),
        ("CODE_RUNNER_CONCURRENCY", "2"),
        ("CODE_RUNNER_RECYCLE", "all"),
    ];
    let api = Process::spawn("api", base.clone());
    let mut doomed = Process::spawn("worker", worker_env(&base, "doomed", &fast_locks));
    api.ready().await;
    let client = reqwest::Client::new();
    // A job first, whose container the worker keeps for the next.
    let warm = helpers::submit_to(
        &client,
        &api.url,
        json!({ "language": "bash", "code": "echo warm" }),
    )
    .await;
    let view = wait_state(
        &client,
        &api.url,
        &warm,
        &["completed", "failed"],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(view["result"]["stdout"], "warm\n", "{view}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let workers: Value = client
            .get(format!("{}/v1/workers", api.admin_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let recycled: u64 = workers["workers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|w| w["pool"]["recycled"].as_object().into_iter().flatten())
            .map(|(_, n)| n.as_u64().unwrap_or(0))
            .sum();
        if recycled > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker kept no recycled container: {workers}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut ids = Vec::new();
    for i in 0..2 {
        ids.push(
            helpers::submit_to(
                &client,
                &api.url,
                json!({ "language": "python", "code": format!("import time\ntime.sleep(3)\nprint('job {i}')") }),
            )
            .await,
        );
    }
    for id in &ids {
        wait_state(&client, &api.url, id, &["active"], Duration::from_secs(60)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while job_containers(&queue).await.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the jobs' containers never appeared"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its jobs' containers and those waiting in its warm pool.
    let before: Vec<String> = queue_containers(&queue)
        .await
        .into_iter()
        .map(|c| c.id)
        .collect();
    doomed.kill9();
    // Its containers outlive it...
    let alive = |ids: Vec<code_runner::sandbox::sweep::ManagedContainer>| {
        ids.into_iter().filter(|c| before.contains(&c.id)).count()
    };
    assert_eq!(alive(queue_containers(&queue).await), before.len());
    assert_eq!(job_containers(&queue).await.len(), 2);
    // ...until it starts again (same data directory: same id), when it
    // removes them before claiming anything.
    let mut survivor = Process::spawn("worker", worker_env(&base, "survivor", &fast_locks));
    doomed.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(queue_containers(&queue).await) > 0 {
        assert!(
            Instant::now() < deadline,
            "the dead worker's containers were not reaped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Taken over after the lock expired: each completes, once.
    for (i, id) in ids.iter().enumerate() {
        let view = wait_state(
            &client,
            &api.url,
            id,
            &["completed", "failed"],
            Duration::from_secs(90),
        )
        .await;
        assert_eq!(view["state"], "completed", "{view}");
        assert_eq!(view["result"]["stdout"], format!("job {i}\n"));
    }
    let events = tally.finish().await;
    for id in &ids {
        assert_eq!(events.get(id).copied(), Some((1, 0)), "{id}: {events:?}");
    }
    assert!(survivor.terminate().success());
    assert!(doomed.terminate().success());
    assert!(queue_containers(&queue).await.is_empty(), "containers left");
}

/// A webhook receiver whose first call is held until `release` fires and
/// then answered 500; later calls get 200. `arrivals` hears of each call.
#[allow(clippy::type_complexity)]
async fn holding_receiver() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, axum::body::Bytes)>>>,
    tokio::sync::mpsc::UnboundedReceiver<usize>,
    std::sync::Arc<tokio::sync::Notify>,
) {
    use std::sync::Arc;
    let calls: Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, axum::body::Bytes)>>> =
        Arc::default();
    let release = Arc::new(tokio::sync::Notify::new());
    let (arrived, arrivals) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let (calls, release) = (calls.clone(), release.clone());
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (calls, release, arrived) = (calls.clone(), release.clone(), arrived.clone());
                async move {
                    let n = {
                        let mut calls = calls.lock().unwrap();
                        calls.push((headers, body));
                        calls.len()
                    };
                    let _ = arrived.send(n);
                    if n == 1 {
                        release.notified().await;
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls, arrivals, release)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_owed_by_a_killed_worker_is_delivered_by_another_exactly_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let queue = unique_queue();
    let mut base = base_env(&redis_url(), &queue);
    base.push(("CODE_RUNNER_CALLBACK_ALLOW".into(), "127.0.0.0/8".into()));
    // Shares are kept when callers have a cap (on loopback without keys
    // they have none by default).
    base.push(("CODE_RUNNER_MAX_JOBS_PER_CALLER".into(), "10".into()));
    base.push((
        "CODE_RUNNER_CALLBACK_SECRET".into(),
        "durable-webhook-secret".into(),
    ));
    let worker_settings = [
        ("CODE_RUNNER_LOCK_DURATION_MS", "2000"),
        ("CODE_RUNNER_POOL_SIZE", "0"),
    ];
    let (hook, calls, mut arrivals, release) = holding_receiver().await;
    let api = Process::spawn("api", base.clone());
    let mut doomed = Process::spawn("worker", worker_env(&base, "doomed", &worker_settings));
    api.ready().await;
    let client = reqwest::Client::new();
    let id = helpers::submit_to(
        &client,
        &api.url,
        json!({ "language": "bash", "code": "echo owed", "callback_url": hook }),
    )
    .await;
    // The first attempt reaches the receiver; the worker dies while it
    // waits for the answer, which then fails.
    let first = tokio::time::timeout(Duration::from_secs(60), arrivals.recv()).await;
    assert_eq!(
        first.ok().flatten(),
        Some(1),
        "the first attempt never came"
    );
    doomed.kill9();
    release.notify_one();
    let view = wait_state(
        &client,
        &api.url,
        &id,
        &["completed"],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(view["result"]["stdout"], "owed\n");
    // Another worker takes the delivery over once the dead one's lock
    // expires, and delivers it.
    let mut survivor = Process::spawn("worker", worker_env(&base, "survivor", &worker_settings));
    let second = tokio::time::timeout(Duration::from_secs(60), arrivals.recv()).await;
    assert_eq!(
        second.ok().flatten(),
        Some(2),
        "no other worker delivered it"
    );
    // Exactly once more: nothing after the delivery that succeeded.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "{} calls", calls.len());
    for (headers, body) in &calls {
        let signature = headers["x-code-runner-signature"].to_str().unwrap();
        let t: u64 = signature
            .strip_prefix("t=")
            .and_then(|s| s.split(',').next())
            .and_then(|t| t.parse().ok())
            .unwrap();
        assert_eq!(
            signature,
            code_runner::callback::CallbackSender::sign(b"durable-webhook-secret", t, body)
        );
        let sent: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(sent["id"], id.as_str());
        assert_eq!(sent["result"]["stdout"], "owed\n");
    }
    // Nothing left: a container the dead worker was still removing in the
    // background when it was killed, or had recycled and kept for its next
    // job, is swept by the survivor once the dead worker's heartbeat has
    // expired.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !queue_containers(&queue).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "containers left: {:?}",
            queue_containers(&queue).await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(survivor.terminate().success());
}

/// A webhook receiver on loopback: each body it gets, in order.
async fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = {
        let got = got.clone();
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::body::Bytes| {
                let got = got.clone();
                async move {
                    got.lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    "ok"
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

/// The ids in every caller's share of the queue (its unfinished jobs).
async fn shares(queue: &str) -> Vec<String> {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{TEST_PREFIX}:{queue}:cr:share:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for key in keys {
        let some: Vec<String> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        ids.extend(some);
    }
    ids
}

/// The kind of the last entry of job `id`'s live stream, and how long the
/// stream is kept (ms).
async fn live_stream_end(queue: &str, id: &str) -> (Option<String>, i64) {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{TEST_PREFIX}:{queue}:cr:live:{id}");
    let last: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(&key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let kind = last
        .ids
        .first()
        .and_then(|entry| entry.get::<String>("kind"));
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    (kind, ttl)
}

/// A job whose workers die holding it once too often is failed by the queue
/// itself, no processor seeing that attempt; its end is still paid: the
/// webhook (failed, with the reason) sent once, the caller's share given
/// back, the live stream closed.
#[tokio::test]
async fn a_job_stalled_too_often_fails_with_a_clear_reason() {
    let _one = ONE_AT_A_TIME.lock().await;
    let queue = unique_queue();
    let mut base = base_env(&redis_url(), &queue);
    base.push(("CODE_RUNNER_CALLBACK_ALLOW".into(), "127.0.0.0/8".into()));
    // Shares are kept when callers have a cap (on loopback without keys
    // they have none by default).
    base.push(("CODE_RUNNER_MAX_JOBS_PER_CALLER".into(), "10".into()));
    let env = [
        ("CODE_RUNNER_LOCK_DURATION_MS", "2000"),
        ("CODE_RUNNER_MAX_STALLS", "0"),
    ];
    let (hook, received) = receiver().await;
    let api = Process::spawn("api", base.clone());
    let mut first = Process::spawn("worker", worker_env(&base, "first", &env));
    api.ready().await;
    let client = reqwest::Client::new();
    let id = helpers::submit_to(
        &client,
        &api.url,
        json!({ "language": "python", "code": "import time\nprint('started', flush=True)\ntime.sleep(5)", "callback_url": hook }),
    )
    .await;
    wait_state(&client, &api.url, &id, &["active"], Duration::from_secs(60)).await;
    assert_eq!(
        shares(&queue).await,
        vec![id.clone()],
        "the job holds its share"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.kill9();
    let mut second = Process::spawn("worker", worker_env(&base, "second", &env));
    let view = wait_state(
        &client,
        &api.url,
        &id,
        &["completed", "failed"],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(view["state"], "failed", "{view}");
    assert!(
        view["error"].as_str().unwrap().contains("stalled"),
        "{view}"
    );
    // Its end was paid: the webhook, the share, the live stream.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let held = shares(&queue).await;
        let calls = received.lock().unwrap().clone();
        if !calls.is_empty() && held.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "webhooks {calls:?}, shares {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The stream the dead worker fed ends, and goes with ended jobs' streams.
    let (last, ttl_ms) = loop {
        let (last, ttl_ms) = live_stream_end(&queue, &id).await;
        if last.as_deref() == Some("end") || Instant::now() > deadline {
            break (last, ttl_ms);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(last.as_deref(), Some("end"));
    assert!(
        (1..=300_000).contains(&ttl_ms),
        "kept {ttl_ms} ms, as a running job's"
    );
    assert!(second.terminate().success());
    first.start();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(first.terminate().success());
    // Once, whatever else ran meanwhile.
    let calls = received.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["id"], id.as_str(), "{calls:?}");
    assert_eq!(calls[0]["state"], "failed", "{calls:?}");
    assert!(
        calls[0]["error"].as_str().unwrap().contains("stalled"),
        "{calls:?}"
    );
    assert!(queue_containers(&queue).await.is_empty(), "containers left");
}

#[tokio::test]
async fn sigterm_lets_short_runs_finish_and_requeues_the_rest() {
    let _one = ONE_AT_A_TIME.lock().await;
    let queue = unique_queue();
    let base = base_env(&redis_url(), &queue);
    let env = [
        ("CODE_RUNNER_SHUTDOWN_GRACE_MS", "3000"),
        ("CODE_RUNNER_CONCURRENCY", "2"),
    ];
    let api = Process::spawn("api", base.clone());
    let mut worker = Process::spawn("worker", worker_env(&base, "w", &env));
    api.ready().await;
    let client = reqwest::Client::new();
    let short = helpers::submit_to(
        &client,
        &api.url,
        json!({ "language": "python", "code": "import time\ntime.sleep(1)\nprint('short')" }),
    )
    .await;
    let long = helpers::submit_to(
        &client,
        &api.url,
        json!({ "language": "python", "code": "import time\ntime.sleep(8)\nprint('long')" }),
    )
    .await;
    for id in [&short, &long] {
        wait_state(&client, &api.url, id, &["active"], Duration::from_secs(60)).await;
    }
    let started = Instant::now();
    let status = worker.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(started.elapsed() < Duration::from_secs(20));
    // The short run finished within the grace; the long one went back.
    let view = wait_state(
        &client,
        &api.url,
        &short,
        &["completed"],
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(view["result"]["stdout"], "short\n");
    // `self::`: the local `view` above shadows the function.
    let view = self::view(&client, &api.url, &long).await;
    assert_eq!(
        view["state"], "waiting",
        "no job is left active with no owner: {view}"
    );
    assert!(queue_containers(&queue).await.is_empty(), "containers left");
    // Another worker runs it.
    let mut next = Process::spawn("worker", worker_env(&base, "next", &[]));
    let view = wait_state(
        &client,
        &api.url,
        &long,
        &["completed"],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(view["result"]["stdout"], "long\n");
    assert!(next.terminate().success());
}

#[tokio::test]
async fn a_thousand_jobs_survive_a_worker_killed_in_the_middle() {
    let _one = ONE_AT_A_TIME.lock().await;
    let queue = unique_queue();
    let tally = EventTally::follow(&redis_url(), &queue);
    let base = base_env(&redis_url(), &queue);
    let env = [
        ("CODE_RUNNER_LOCK_DURATION_MS", "5000"),
        ("CODE_RUNNER_CONCURRENCY", "3"),
    ];
    let apis = [
        Process::spawn("api", base.clone()),
        Process::spawn("api", base.clone()),
    ];
    let mut workers: Vec<Process> = (0..3)
        .map(|i| Process::spawn("worker", worker_env(&base, &format!("w{i}"), &env)))
        .collect();
    for api in &apis {
        api.ready().await;
    }
    let client = reqwest::Client::new();
    const JOBS: usize = 1000;
    use futures_util::StreamExt;
    let ids: Vec<(usize, String)> = futures_util::stream::iter(0..JOBS)
        .map(|i| {
            let client = &client;
            let url = &apis[i % 2].url;
            async move {
                (
                    i,
                    helpers::submit_to(
                        client,
                        url,
                        json!({ "language": "bash", "code": format!("echo job-{i}") }),
                    )
                    .await,
                )
            }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    // Kill one worker once a good part of the burst is done.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let counts: Value = client
            .get(format!("{}/v1/stats", apis[0].admin_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if counts["queue"]["completed"].as_u64().unwrap_or(0) >= (JOBS / 3) as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the burst does not progress: {counts}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    workers[1].kill9();
    workers[1].start();

    for (i, id) in &ids {
        let view = wait_state(
            &client,
            &apis[i % 2].url,
            id,
            &["completed", "failed"],
            Duration::from_secs(600),
        )
        .await;
        assert_eq!(view["state"], "completed", "{view}");
        assert_eq!(view["result"]["stdout"], format!("job-{i}\n"), "{view}");
    }
    let events = tally.finish().await;
    for (_, id) in &ids {
        assert_eq!(
            events.get(id).copied(),
            Some((1, 0)),
            "{id} did not end exactly once"
        );
    }
    for worker in &mut workers {
        assert!(worker.terminate().success());
    }
    assert!(queue_containers(&queue).await.is_empty(), "containers left");
}
