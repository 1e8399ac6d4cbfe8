//! Webhooks: the finished job is POSTed to `callback_url`, signed with an
//! HMAC over the body; a receiver that is down never touches the job.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::helpers::TestService;

const SECRET: &str = "test-webhook-secret";

type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A receiver on 127.0.0.1 that records what it gets.
async fn receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let received = received.clone();
            move |headers: HeaderMap, body: Bytes| async move {
                received.lock().unwrap().push((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

#[tokio::test]
async fn a_finished_job_is_posted_to_its_callback_signed() {
    let service = TestService::start_with(|c| c.callback_secret = Some(SECRET.into())).await;
    let (url, received) = receiver().await;
    let id = service
        .submit_v1(json!({ "language": "python", "code": "print('hooked')", "callback_url": url }))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (headers, body) = loop {
        if let Some(call) = received.lock().unwrap().first().cloned() {
            break call;
        }
        assert!(tokio::time::Instant::now() < deadline, "no webhook arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let signature = headers["x-code-runner-signature"].to_str().unwrap();
    assert_eq!(
        signature,
        code_runner::callback::CallbackSender::sign(SECRET.as_bytes(), &body)
    );
    assert_ne!(
        signature,
        code_runner::callback::CallbackSender::sign(b"another secret", &body)
    );
    assert_eq!(headers["x-code-runner-job"].to_str().unwrap(), id);
    let view: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(view["id"], id.as_str());
    assert_eq!(view["state"], "completed");
    assert_eq!(view["result"]["stdout"], "hooked\n");
    assert_eq!(view["result"]["verdict"], "accepted");
    service.stop().await;
}

#[tokio::test]
async fn a_callback_that_is_down_does_not_change_the_job() {
    let service = TestService::start_with(|c| c.callback_attempts = 2).await;
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let view = service
        .run_v1(json!({
            "language": "python",
            "code": "print('done anyway')",
            "callback_url": format!("http://127.0.0.1:{port}/hook"),
        }))
        .await;
    assert_eq!(view["state"], "completed");
    assert_eq!(view["result"]["stdout"], "done anyway\n");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, again) = service
        .get(&format!("/v1/jobs/{}", view["id"].as_str().unwrap()))
        .await;
    assert_eq!(again["state"], "completed", "{again}");
    service.stop().await;
}
