//! Many jobs at once: all complete with their own output, and the service
//! never runs more containers than its cap.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use code_runner::sandbox::pool::POOL_JOB;

use crate::helpers::TestService;

#[tokio::test]
async fn a_hundred_jobs_complete_with_their_own_output_never_above_the_cap() {
    let service = TestService::start_with(|c| c.concurrency = 4).await;
    let cap = service.config.concurrency as usize;

    // Sample the engine: this worker's containers, as `docker ps` by label.
    let sandbox = service.app().sandbox().unwrap().clone();
    let worker = service.worker_id();
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (done, peak, samples) = (done.clone(), peak.clone(), samples.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                if let Ok(containers) = sandbox.list_managed(Some(&worker)).await {
                    // Job containers, running or being removed; those
                    // waiting in the warm pool hold no job.
                    let jobs = containers.iter().filter(|c| c.job_id != POOL_JOB).count();
                    peak.fetch_max(jobs, Ordering::Relaxed);
                    samples.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    let submits = (0..100).map(|i| {
        let service = &service;
        async move {
            let id = service
                .submit(&format!("import time\ntime.sleep(0.05)\nprint('job-{i}')"))
                .await;
            (i, id)
        }
    });
    let jobs = futures_util::future::join_all(submits).await;
    for (i, id) in &jobs {
        let body = service.wait_done(id, Duration::from_secs(300)).await;
        assert_eq!(body["state"], "completed", "{body}");
        assert_eq!(body["result"]["status"], "success", "{body}");
        assert_eq!(body["result"]["stdout"], format!("job-{i}"));
    }
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();

    let peak = peak.load(Ordering::Relaxed);
    assert!(samples.load(Ordering::Relaxed) > 10, "too few samples");
    assert!(peak >= 1, "the sampler never saw a container");
    assert!(peak <= cap, "{peak} containers at once with a cap of {cap}");

    let (_, stats) = service.admin_get("/v1/stats").await;
    let registry_peak = stats["registry"]["peakInFlight"].as_u64().unwrap() as usize;
    assert!(registry_peak <= cap && registry_peak >= 1, "{stats}");
    service.stop().await;
}
