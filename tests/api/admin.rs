//! The dashboard's JSON API on the admin listener: every endpoint, and its
//! bad inputs.

use std::time::{Duration, Instant};

use code_runner::actors::dispatcher::PANIC_RUNNER_MARKER;
use code_runner::app::Role;
use code_runner::job::JobSpec;
use code_runner::queue::EnqueueOptions;
use reqwest::Method;
use serde_json::json;

use crate::helpers::TestService;

/// The jobs the dashboard's tests look at: one completed, one failed (its
/// runner panics, a fault no retry cures), one running (for 25 s).
struct Jobs {
    done: String,
    failed: String,
    running: String,
}

async fn start_with_jobs() -> (TestService, Jobs) {
    let service = TestService::start_with(|c| c.wall_time_limit_ms = 30_000).await;
    let done = service
        .run_v1(json!({ "language": "python", "code": "print('done')" }))
        .await;
    let failed = service
        .run_v1(json!({ "language": "python", "code": format!("# {PANIC_RUNNER_MARKER}\nimport time\ntime.sleep(30)") }))
        .await;
    assert_eq!(failed["state"], "failed", "{failed}");
    let running = service
        .submit_v1(json!({ "language": "python", "code": "import time\ntime.sleep(25)" }))
        .await;
    service
        .wait_v1(&running, &["active"], Duration::from_secs(30))
        .await;
    let jobs = Jobs {
        done: done["id"].as_str().unwrap().to_string(),
        failed: failed["id"].as_str().unwrap().to_string(),
        running,
    };
    (service, jobs)
}

/// Stops the service once its running job is cancelled (a stop would
/// otherwise wait for it).
async fn stop(service: TestService, jobs: &Jobs) {
    service
        .admin(
            Method::POST,
            &format!("/admin/api/jobs/{}/cancel", jobs.running),
            None,
        )
        .await;
    service.stop().await;
}

#[tokio::test]
async fn the_overview_counts_jobs_by_state_and_by_minute() {
    let (service, jobs) = start_with_jobs().await;
    // Overview.
    let (status, overview) = service
        .admin(Method::GET, "/admin/api/overview", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(overview["counts"]["completed"], 1, "{overview}");
    assert_eq!(overview["counts"]["failed"], 1);
    assert_eq!(overview["counts"]["active"], 1);
    assert_eq!(overview["paused"], false);
    assert_eq!(overview["latency"]["sample"], 1);
    // The minute in progress counts at once (BullMQ writes a minute's
    // figure only when the next one starts); should the minute have just
    // turned, the job is one minute back.
    let recent = |name: &str| {
        let minutes = overview[name].as_array().unwrap();
        assert_eq!(minutes.len(), 15, "{overview}");
        minutes[0].as_u64().unwrap() + minutes[1].as_u64().unwrap()
    };
    assert_eq!(recent("completed_per_minute"), 1, "{overview}");
    assert_eq!(recent("failed_per_minute"), 1, "{overview}");

    stop(service, &jobs).await;
}

#[tokio::test]
async fn job_lists_filter_and_refuse_bad_queries_naming_the_field() {
    let (service, jobs) = start_with_jobs().await;
    let Jobs {
        done: done_id,
        failed: failed_id,
        running,
    } = &jobs;
    // Lists.
    let (status, page) = service
        .admin(Method::GET, "/admin/api/jobs?state=completed", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 1);
    assert_eq!(page["jobs"][0]["id"], done_id.as_str());
    assert_eq!(page["jobs"][0]["verdict"], "accepted");
    assert_eq!(page["jobs"][0]["language"], "python");
    let (_, page) = service
        .admin(Method::GET, "/admin/api/jobs?state=failed", None)
        .await;
    assert_eq!(page["jobs"][0]["id"], failed_id.as_str());
    assert!(
        page["jobs"][0]["failed_reason"]
            .as_str()
            .unwrap()
            .contains("runner")
    );
    let (_, page) = service
        .admin(Method::GET, "/admin/api/jobs?state=active", None)
        .await;
    assert_eq!(page["jobs"][0]["id"], running.as_str());
    let (_, page) = service
        .admin(
            Method::GET,
            "/admin/api/jobs?state=completed&verdict=wrong_answer",
            None,
        )
        .await;
    assert_eq!(page["total"], 0);
    let (_, page) = service
        .admin(
            Method::GET,
            "/admin/api/jobs?state=completed&language=py&verdict=accepted",
            None,
        )
        .await;
    assert_eq!(page["total"], 1, "language aliases filter too: {page}");
    let (_, page) = service
        .admin(
            Method::GET,
            "/admin/api/jobs?state=completed&since_ms=4102444800000",
            None,
        )
        .await;
    assert_eq!(page["total"], 0);
    for (query, field) in [
        ("state=sleeping", "state"),
        ("state=completed&page=0", "page"),
        ("state=completed&page_size=500", "page_size"),
        ("state=completed&language=intercal", "language"),
        ("state=completed&verdict=great", "verdict"),
        ("state=completed&page=x", "page"),
        ("state=completed&colour=blue", "colour"),
    ] {
        let (status, body) = service
            .admin(Method::GET, &format!("/admin/api/jobs?{query}"), None)
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["field"], field, "{query}: {body}");
    }

    stop(service, &jobs).await;
}

#[tokio::test]
async fn a_jobs_detail_has_its_code_result_and_timeline() {
    let service = TestService::start().await;
    let done = service
        .run_v1(json!({ "language": "python", "code": "print('done')" }))
        .await;
    let done_id = done["id"].as_str().unwrap().to_string();
    // Detail.
    let (status, detail) = service
        .admin(Method::GET, &format!("/admin/api/jobs/{done_id}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(detail["spec"]["code"], "print('done')");
    assert_eq!(detail["result"]["stdout"], "done\n");
    assert!(detail["worker_id"].is_string());
    let timeline = detail["result"]["timeline"].as_array().unwrap();
    let phases: Vec<&str> = timeline
        .iter()
        .map(|m| m["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["claimed", "created", "running", "collecting"],
        "{detail}"
    );
    assert!(timeline[1]["container_id"].as_str().unwrap().len() > 12);
    let (status, _) = service
        .admin(Method::GET, "/admin/api/jobs/nope", None)
        .await;
    assert_eq!(status, 400);
    let (status, _) = service
        .admin(
            Method::GET,
            &format!("/admin/api/jobs/{}", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(status, 404);

    service.stop().await;
}

#[tokio::test]
async fn retry_cancel_remove_and_clean_act_or_answer_404_409_and_400() {
    let (service, jobs) = start_with_jobs().await;
    let Jobs {
        done: done_id,
        failed: failed_id,
        running,
    } = &jobs;
    // Actions.
    let (status, body) = service
        .admin(
            Method::POST,
            &format!("/admin/api/jobs/{done_id}/retry"),
            None,
        )
        .await;
    assert_eq!(status, 409, "only failed jobs are retried: {body}");
    let (status, _) = service
        .admin(Method::DELETE, &format!("/admin/api/jobs/{running}"), None)
        .await;
    assert_eq!(status, 409, "a running job is not removed");
    let (status, _) = service
        .admin(
            Method::POST,
            &format!("/admin/api/jobs/{running}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    service
        .wait_v1(running, &["cancelled"], Duration::from_secs(30))
        .await;
    let (status, _) = service
        .admin(
            Method::POST,
            &format!("/admin/api/jobs/{running}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, 409);
    let (_, page) = service
        .admin(Method::GET, "/admin/api/jobs?state=cancelled", None)
        .await;
    assert_eq!(page["jobs"][0]["id"], running.as_str(), "{page}");
    let (status, body) = service
        .admin(
            Method::POST,
            &format!("/admin/api/jobs/{failed_id}/retry"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // It fails again (the same fault), one attempt later.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, view) = service.get(&format!("/v1/jobs/{failed_id}")).await;
        if view["state"] == "failed" && view["attempts_made"] == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the retried job did not run again: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = service
        .admin(Method::POST, "/admin/api/jobs/retry-failed", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["count"], 1, "{body}");
    service
        .wait_v1(failed_id, &["failed"], Duration::from_secs(60))
        .await;
    let (status, _) = service
        .admin(
            Method::DELETE,
            &format!("/admin/api/jobs/{failed_id}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(service.get(&format!("/v1/jobs/{failed_id}")).await.0, 404);
    for (body, field) in [
        (json!({ "state": "active", "older_than_secs": 0 }), "state"),
        (json!({ "state": "completed" }), "older_than_secs"),
        (
            json!({ "state": "completed", "older_than_secs": -1 }),
            "older_than_secs",
        ),
        (
            json!({ "state": "completed", "older_than_secs": 0, "x": 1 }),
            "x",
        ),
    ] {
        let (status, answer) = service
            .admin(Method::POST, "/admin/api/clean", Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["field"], field, "{body}: {answer}");
    }
    let (status, body) = service
        .admin(
            Method::POST,
            "/admin/api/clean",
            Some(json!({ "state": "completed", "older_than_secs": 0 })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["count"].as_u64().unwrap() >= 1, "{body}");
    assert_eq!(service.get(&format!("/v1/jobs/{done_id}")).await.0, 404);

    service.stop().await;
}

#[tokio::test]
async fn the_queue_pauses_and_resumes() {
    let service = TestService::start().await;
    // Pause and resume.
    assert_eq!(
        service
            .admin(Method::POST, "/admin/api/queue/pause", None)
            .await
            .0,
        200
    );
    assert_eq!(
        service
            .admin(Method::GET, "/admin/api/overview", None)
            .await
            .1["paused"],
        true
    );
    assert_eq!(
        service
            .admin(Method::POST, "/admin/api/queue/resume", None)
            .await
            .0,
        200
    );
    assert_eq!(
        service
            .admin(Method::GET, "/admin/api/overview", None)
            .await
            .1["paused"],
        false
    );

    service.stop().await;
}

#[tokio::test]
async fn actors_system_events_and_the_document_answer() {
    let service = TestService::start().await;
    // Actors, system, the event stream, the document.
    let (status, actors) = service.admin(Method::GET, "/admin/api/actors", None).await;
    assert_eq!(status, 200);
    assert_eq!(actors["tree"]["kind"], "Supervisor");
    let kinds: Vec<&str> = actors["tree"]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["JobRegistry", "Dispatcher"]);
    assert_eq!(actors["workers"][0]["id"], service.worker_id().as_str());
    let (status, system) = service.admin(Method::GET, "/admin/api/system", None).await;
    assert_eq!(status, 200);
    assert_eq!(system["redis"]["ok"], true);
    assert_eq!(system["docker"]["ok"], true);
    assert_eq!(
        system["languages"].as_array().unwrap().len(),
        code_runner::language::LanguageTable::built_in().all().len()
    );
    let mut events = service
        .client
        .get(format!("{}/admin/api/events", service.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text.contains("event: overview") {
        assert!(Instant::now() < deadline, "no overview pushed: {text}");
        if let Ok(Ok(Some(chunk))) =
            tokio::time::timeout(Duration::from_secs(5), events.chunk()).await
        {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    drop(events);
    let (status, doc) = service
        .admin(Method::GET, "/admin/openapi.json", None)
        .await;
    assert_eq!(status, 200);
    for path in [
        "/admin/api/overview",
        "/admin/api/jobs",
        "/admin/api/jobs/{id}",
        "/admin/api/events",
        "/admin/api/actors",
        "/admin/api/system",
        "/admin/api/clean",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} undocumented");
    }
    let (status, _) = service.admin(Method::GET, "/admin/queues", None).await;
    assert_eq!(status, 200);
    service.stop().await;
}

#[tokio::test]
async fn ten_thousand_retained_jobs_list_and_filter() {
    // An API process alone: the jobs stay where they are put.
    let service = TestService::start_role(Role::Api, |c| c.max_queue_depth = 20_000).await;
    let languages = ["python", "c", "bash", "go"];
    let jobs: Vec<(uuid::Uuid, JobSpec, u32)> = (0..10_000)
        .map(|i| {
            let spec = JobSpec {
                language: languages[i % 4].into(),
                code: Some(format!("print({i})")),
                submitted_at_ms: code_runner::job::now_ms(),
                ..JobSpec::default()
            };
            (uuid::Uuid::new_v4(), spec, 0)
        })
        .collect();
    for chunk in jobs.chunks(1000) {
        service
            .app()
            .queue()
            .enqueue_batch(chunk, &EnqueueOptions { attempts: 1 })
            .await
            .unwrap();
    }
    let started = Instant::now();
    let (status, page) = service
        .admin(
            Method::GET,
            "/admin/api/jobs?state=waiting&page=3&page_size=50",
            None,
        )
        .await;
    let plain = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(page["total"], 10_000);
    assert_eq!(page["jobs"].as_array().unwrap().len(), 50);
    let started = Instant::now();
    let (status, page) = service
        .admin(
            Method::GET,
            "/admin/api/jobs?state=waiting&language=go&page_size=100",
            None,
        )
        .await;
    let filtered = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(page["total"], 2_500, "{}", page["total"]);
    assert!(
        page["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["language"] == "go")
    );
    let started = Instant::now();
    let (status, overview) = service
        .admin(Method::GET, "/admin/api/overview", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(overview["counts"]["waiting"], 10_000);
    // Figures, not assertions: the suite never asserts on timings.
    println!(
        "10,000 retained jobs: page {plain:?}, filtered list {filtered:?}, overview {:?}",
        started.elapsed()
    );
    service.app().queue().clean("wait", 0).await.unwrap();
    service.stop().await;
}

#[tokio::test]
async fn the_dashboard_names_images_under_the_configured_prefix() {
    let service = TestService::start_role(Role::Api, |c| {
        c.image_prefix = "registry.test/runners".into()
    })
    .await;
    let (status, system) = service.admin(Method::GET, "/admin/api/system", None).await;
    assert_eq!(status, 200, "{system}");
    let languages = system["languages"].as_array().unwrap();
    assert!(!languages.is_empty());
    for language in languages {
        let id = language["id"].as_str().unwrap();
        let image = language["image"].as_str().unwrap();
        assert!(
            image.starts_with("registry.test/runners/") && image.ends_with(":latest"),
            "{id}: {image}"
        );
    }
    service.stop().await;
}
