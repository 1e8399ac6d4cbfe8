//! Failures inside the actor tree: a runner that panics, a dispatcher or a
//! registry that fails. The service keeps running and loses no job.

use std::time::{Duration, Instant};

use code_runner::actors::dispatcher::{DispatcherMsg, PANIC_RUNNER_MARKER};
use code_runner::actors::registry::RegistryMsg;
use serde_json::Value;

use crate::helpers::TestService;

/// Polls `/v1/stats` until `restarts.<child>.count` reaches `count`.
async fn wait_restarts(service: &TestService, child: &str, count: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, stats) = service.admin_get("/v1/stats").await;
        if stats["restarts"][child]["count"].as_u64() == Some(count) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "no {child} restart counted: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_runner_that_panics_fails_its_job_its_container_is_removed_and_work_goes_on() {
    let service = TestService::start().await;
    let id = service
        .submit(&format!(
            "# {PANIC_RUNNER_MARKER}\nimport time\ntime.sleep(60)"
        ))
        .await;
    let body = service.wait_done(&id, Duration::from_secs(60)).await;
    assert_eq!(body["state"], "failed", "{body}");
    assert_eq!(body["result"]["status"], "internal_error");
    assert!(
        body["result"]["error"].as_str().unwrap().contains("runner"),
        "{body}"
    );
    // The panicked runner's container is removed too.
    service.assert_containers_gone(Some(&id)).await;
    // Not retried: the job itself may be what broke the runner.
    assert_eq!(body["attemptsMade"], 1, "{body}");

    let next = service.submit("print('next job')").await;
    let body = service.wait_done(&next, Duration::from_secs(30)).await;
    assert_eq!(body["result"]["stdout"], "next job");
    service.stop().await;
}

#[tokio::test]
async fn a_failed_dispatcher_is_restarted_and_counted_and_its_job_completes() {
    let service = TestService::start().await;
    let id = service
        .submit("import time\ntime.sleep(1.5)\nprint('finished after all')")
        .await;
    // Wait until the program runs inside its container.
    let deadline = Instant::now() + Duration::from_secs(30);
    while service.status(&id).await["phase"] != "running" {
        assert!(Instant::now() < deadline, "the job never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = service.app().dispatcher().await.expect("a dispatcher");
    before.cast(DispatcherMsg::InjectFault).unwrap();

    let stats = wait_restarts(&service, "dispatcher", 1).await;
    assert!(
        stats["restarts"]["dispatcher"]["lastReason"]
            .as_str()
            .unwrap()
            .contains("fault injected"),
        "{stats}"
    );
    // The restart follows a short backoff.
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        if let Some(after) = service.app().dispatcher().await {
            break after;
        }
        assert!(
            Instant::now() < deadline,
            "the dispatcher was not restarted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_ne!(before.get_id(), after.get_id());

    // The job it held comes back from Redis and completes.
    let body = service.wait_done(&id, Duration::from_secs(60)).await;
    assert_eq!(body["state"], "completed", "{body}");
    assert_eq!(body["result"]["stdout"], "finished after all");
    assert_eq!(body["attemptsMade"], 2, "{body}");

    let next = service.submit("print('after the restart')").await;
    let body = service.wait_done(&next, Duration::from_secs(30)).await;
    assert_eq!(body["result"]["stdout"], "after the restart");
    service.stop().await;
}

#[tokio::test]
async fn a_failed_registry_is_restarted_and_counted_and_status_still_answers() {
    let service = TestService::start().await;
    let registry = service.app().registry().get().expect("a registry");
    registry.cast(RegistryMsg::InjectFault).unwrap();
    wait_restarts(&service, "registry", 1).await;
    // The restart follows a short backoff.
    let deadline = Instant::now() + Duration::from_secs(20);
    let fresh = loop {
        if let Some(fresh) = service.app().registry().get() {
            break fresh;
        }
        assert!(Instant::now() < deadline, "the registry was not restarted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_ne!(registry.get_id(), fresh.get_id());

    let id = service.submit("print('registry back')").await;
    let body = service.wait_done(&id, Duration::from_secs(30)).await;
    assert_eq!(body["result"]["stdout"], "registry back");
    let (_, stats) = service.admin_get("/v1/stats").await;
    assert_eq!(
        stats["registry"]["restarts"]["registry"]["count"], 1,
        "{stats}"
    );
    service.stop().await;
}
