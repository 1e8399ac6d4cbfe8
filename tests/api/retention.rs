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
