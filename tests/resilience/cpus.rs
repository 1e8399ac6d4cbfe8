//! Workers sharing one Docker engine pin their jobs to CPUs no other worker
//! holds, found through Redis with no CPU numbers set by hand; a stopped or
//! dead worker's CPUs go to the next.

use super::*;

use code_runner::app::{App, Role};
use helpers::TestService;

/// A worker of `api`'s queue with `slots` slots and a data directory (so an
/// id) of its own.
async fn worker(api: &TestService, name: &str, slots: u32) -> App {
    let mut config = api.config.clone();
    config.concurrency = slots;
    config.cpus = 1.0;
    config.data_dir =
        std::env::temp_dir().join(format!("code-runner-{}-{name}", config.queue_name));
    App::start(Role::Worker, config)
        .await
        .expect("worker starts")
}

async fn held(api: &TestService, worker: &App) -> Vec<u32> {
    api.app()
        .queue()
        .held_cpus(worker.worker_id().unwrap())
        .await
        .unwrap()
        .into_iter()
        .map(|(_, cpu)| cpu)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_sharing_an_engine_pin_their_jobs_to_cpus_no_other_worker_holds() {
    let _one = ONE_AT_A_TIME.lock().await;
    let api = TestService::start_role(Role::Api, |_| {}).await;
    // The first worker takes all the engine's CPUs but one (one when it
    // has a single CPU), the second the last, the third none: it runs its
    // jobs unpinned rather than on a CPU another worker's jobs hold.
    let probe = worker(&api, "probe", 1).await;
    let cpus = probe
        .sandbox()
        .unwrap()
        .engine_machine()
        .await
        .unwrap()
        .cpus;
    probe.shutdown().await;
    assert!(cpus >= 1);
    let first = worker(&api, "first", (cpus - 1).max(1)).await;
    let second = worker(&api, "second", 1).await;
    let third = worker(&api, "third", 1).await;
    let (a, b, c) = (
        held(&api, &first).await,
        held(&api, &second).await,
        held(&api, &third).await,
    );
    if cpus >= 2 {
        assert_eq!(a, (0..cpus - 1).collect::<Vec<_>>());
        assert_eq!(b, vec![cpus - 1]);
        assert!(c.is_empty(), "a third worker got CPUs: {c:?}");
    } else {
        assert_eq!(a, vec![0]);
        assert!(b.is_empty() && c.is_empty(), "{b:?} {c:?}");
    }

    // Every job runs on its worker's CPU (pinned) or on every CPU (the
    // unpinned worker), whichever worker took it.
    let by_worker: HashMap<String, Vec<u32>> = [
        (first.worker_id().unwrap().to_string(), a.clone()),
        (second.worker_id().unwrap().to_string(), b.clone()),
        (third.worker_id().unwrap().to_string(), c.clone()),
    ]
    .into();
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(
            api.submit_v1(json!({
                "language": "python",
                "code": "import os\nprint(' '.join(map(str, sorted(os.sched_getaffinity(0)))))",
            }))
            .await,
        );
    }
    for id in ids {
        let view = api
            .wait_v1(&id, &["completed", "failed"], Duration::from_secs(60))
            .await;
        let worker = view["result"]["worker_id"].as_str().unwrap_or_default();
        let held = &by_worker[worker];
        let affinity: Vec<u32> = view["result"]["stdout"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .map(|cpu| cpu.parse().unwrap())
            .collect();
        if held.is_empty() {
            assert_eq!(affinity.len() as u32, cpus, "{view}");
        } else {
            assert_eq!(affinity.len(), 1, "{view}");
            assert!(held.contains(&affinity[0]), "{view}");
        }
    }

    // A stopped worker's CPUs are given back and go to the next one.
    let second_id = second.worker_id().unwrap().to_string();
    second.shutdown().await;
    assert!(
        api.app()
            .queue()
            .held_cpus(&second_id)
            .await
            .unwrap()
            .is_empty()
    );
    let fourth = worker(&api, "fourth", 1).await;
    assert_eq!(held(&api, &fourth).await, b);
    for app in [first, third, fourth] {
        app.shutdown().await;
    }

    // A dead worker's claim (its heartbeat expired) is void: a claim by
    // "ghost", which never beats, counts for its first heartbeat's
    // lifetime only.
    let queue = api.app().queue();
    let now = code_runner::job::now_ms();
    assert_eq!(
        queue
            .claim_cpus("engine-x", "ghost", 2, 2, now)
            .await
            .unwrap(),
        vec![0, 1]
    );
    assert!(
        queue
            .claim_cpus("engine-x", "living", 1, 2, now + 1_000)
            .await
            .unwrap()
            .is_empty()
    );
    // Another engine's CPUs are its own.
    assert_eq!(
        queue
            .claim_cpus("engine-y", "living", 1, 2, now)
            .await
            .unwrap(),
        vec![0]
    );
    let later = now + 60_000;
    assert_eq!(
        queue
            .claim_cpus("engine-x", "living", 2, 2, later)
            .await
            .unwrap(),
        vec![0, 1]
    );
    assert_eq!(
        queue.held_cpus("living").await.unwrap(),
        vec![
            ("engine-x".to_string(), 0),
            ("engine-x".to_string(), 1),
            ("engine-y".to_string(), 0)
        ]
    );
    api.stop().await;
}
