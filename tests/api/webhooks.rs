//! Webhooks: the finished job is POSTed to `callback_url`, signed with an
//! HMAC over the body, over http or https; a receiver that is down never
//! touches the job; a callback may never reach the service's own inside or
//! a private network unless the operator allows it, checked at submission
//! and again when it is sent.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use code_runner::job::JobSpec;
use code_runner::queue::EnqueueOptions;
use serde_json::{Value, json};

use crate::helpers::TestService;

const SECRET: &str = "test-webhook-secret";
/// What the tests' receivers need: loopback is refused by default.
const ALLOW_LOOPBACK: &str = "127.0.0.0/8";

type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A receiver's routes: records each call, answers `answers` in turn and
/// 200 once they are used up.
fn receiver_app(received: Received, answers: Vec<u16>) -> axum::Router {
    let answers = Arc::new(Mutex::new(answers.into_iter()));
    axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (received, answers) = (received.clone(), answers.clone());
            async move {
                received.lock().unwrap().push((headers, body));
                let status = answers.lock().unwrap().next().unwrap_or(200);
                (StatusCode::from_u16(status).unwrap(), "ok")
            }
        }),
    )
}

/// A receiver on 127.0.0.1 that records what it gets.
async fn receiver(answers: Vec<u16>) -> (String, Received) {
    let received: Received = Arc::default();
    let app = receiver_app(received.clone(), answers);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// Waits until `received` holds at least `count` calls.
async fn wait_calls(
    received: &Received,
    count: usize,
    timeout: Duration,
) -> Vec<(HeaderMap, Bytes)> {
    let deadline = Instant::now() + timeout;
    loop {
        let calls = received.lock().unwrap().clone();
        if calls.len() >= count {
            return calls;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} webhook calls arrived",
            calls.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the job's delivery is `state` (BullMQ's: completed, failed).
async fn wait_delivery(service: &TestService, id: &str, state: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = service.app().queue().delivery_state(id).await.unwrap();
        if let Some((s, attempts)) = &now
            && s == state
        {
            return *attempts;
        }
        assert!(
            Instant::now() < deadline,
            "delivery of {id} is {now:?}, not {state}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks the signature as a receiver does (`t=…,v1=…` over `t.body`, a
/// recent `t`) with `secret`; the job's view.
fn check_signed_with(call: &(HeaderMap, Bytes), id: &str, secret: &[u8]) -> Value {
    use code_runner::callback::CallbackSender;
    let (headers, body) = call;
    let signature = headers["x-code-runner-signature"].to_str().unwrap();
    let t: u64 = signature
        .strip_prefix("t=")
        .and_then(|s| s.split(',').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no timestamp in {signature}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(t) < 300, "a stale timestamp: {t}");
    assert_eq!(signature, CallbackSender::sign(secret, t, body));
    assert_ne!(signature, CallbackSender::sign(b"another secret", t, body));
    // Replayed later, the same body and signature fail the timestamp check
    // of the receiver, whose own HMAC over another t differs.
    assert_ne!(signature, CallbackSender::sign(secret, t + 600, body));
    assert_eq!(headers["x-code-runner-job"].to_str().unwrap(), id);
    let view: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(view["id"], id);
    view
}

fn check_signed(call: &(HeaderMap, Bytes), id: &str) -> Value {
    check_signed_with(call, id, SECRET.as_bytes())
}

#[tokio::test]
async fn each_api_keys_webhooks_are_signed_with_that_keys_own_secret() {
    let (key, entry) = code_runner::http::auth::new_key("tenant-a");
    let mut service = TestService::start_with(|c| {
        c.callback_secret = Some(SECRET.into());
        c.callback_allow = ALLOW_LOOPBACK.into();
        c.api_keys = Some(entry.clone());
    })
    .await;
    service.bearer = Some(key);
    let (url, received) = receiver(vec![]).await;
    let id = service
        .submit_v1(json!({ "language": "bash", "code": "echo tenant", "callback_url": url }))
        .await;
    let calls = wait_calls(&received, 1, Duration::from_secs(60)).await;
    let tenant_secret =
        code_runner::callback::CallbackSender::key_secret(SECRET.as_bytes(), "tenant-a");
    check_signed_with(&calls[0], &id, tenant_secret.as_bytes());
    // Not with the service's own secret, nor another key's.
    let signature = calls[0].0["x-code-runner-signature"].to_str().unwrap();
    let t: u64 = signature[2..signature.find(',').unwrap()].parse().unwrap();
    for other in [
        SECRET.to_string(),
        code_runner::callback::CallbackSender::key_secret(SECRET.as_bytes(), "tenant-b"),
    ] {
        assert_ne!(
            signature,
            code_runner::callback::CallbackSender::sign(other.as_bytes(), t, &calls[0].1)
        );
    }
    // The command that hands the key's owner their secret prints the same.
    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_code-runner"))
        .args(["callback-secret", "tenant-a"])
        .env("CODE_RUNNER_CALLBACK_SECRET", SECRET)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout).trim(),
        tenant_secret
    );
    service.stop().await;
}

#[tokio::test]
async fn a_finished_job_is_posted_to_its_callback_signed() {
    let service = TestService::start_with(|c| {
        c.callback_secret = Some(SECRET.into());
        c.callback_allow = ALLOW_LOOPBACK.into();
    })
    .await;
    let (url, received) = receiver(vec![]).await;
    let id = service
        .submit_v1(json!({ "language": "python", "code": "print('hooked')", "callback_url": url }))
        .await;
    let calls = wait_calls(&received, 1, Duration::from_secs(60)).await;
    let view = check_signed(&calls[0], &id);
    assert_eq!(view["state"], "completed");
    assert_eq!(view["result"]["stdout"], "hooked\n");
    assert_eq!(view["result"]["verdict"], "accepted");
    // Sent once the job is recorded: a receiver reading it back finds it done.
    let (_, now) = service.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(now["state"], "completed");
    service.stop().await;
}

/// Every end of a job owes its webhook: one cancelled while it waited
/// (never claimed) too, as `GET /v1/jobs/{id}` shows it.
#[tokio::test]
async fn a_job_cancelled_while_it_waits_is_posted_to_its_callback() {
    let service = TestService::start_with(|c| {
        c.callback_secret = Some(SECRET.into());
        c.callback_allow = ALLOW_LOOPBACK.into();
        c.concurrency = 1;
    })
    .await;
    let blocker = service
        .submit_v1(json!({ "language": "bash", "code": "sleep 30" }))
        .await;
    service
        .wait_v1(&blocker, &["active"], Duration::from_secs(60))
        .await;
    let (url, received) = receiver(vec![]).await;
    let id = service
        .submit_v1(json!({ "language": "python", "code": "print('never')", "callback_url": url }))
        .await;
    let (status, cancelled) = service
        .send(reqwest::Method::DELETE, &format!("/v1/jobs/{id}"), None)
        .await;
    assert_eq!(status, 200, "{cancelled}");
    let calls = wait_calls(&received, 1, Duration::from_secs(60)).await;
    let view = check_signed(&calls[0], &id);
    assert_eq!(view["state"], "cancelled", "{view}");
    assert_eq!(view["attempts_made"], 0, "{view}");
    let (_, now) = service.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(now["state"], "cancelled", "{now}");
    let _ = service
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/jobs/{blocker}"),
            None,
        )
        .await;
    service.stop().await;
}

#[tokio::test]
async fn a_failed_attempt_is_retried_and_delivered_once() {
    let service = TestService::start_with(|c| {
        c.callback_secret = Some(SECRET.into());
        c.callback_allow = ALLOW_LOOPBACK.into();
        c.callback_attempts = 3;
    })
    .await;
    let (url, received) = receiver(vec![503]).await;
    let id = service
        .submit_v1(json!({ "language": "bash", "code": "echo again", "callback_url": url }))
        .await;
    let calls = wait_calls(&received, 2, Duration::from_secs(60)).await;
    assert_eq!(calls[0].1, calls[1].1, "the same body each attempt");
    check_signed(&calls[1], &id);
    assert_eq!(
        wait_delivery(&service, &id, "completed").await,
        2,
        "two attempts"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        received.lock().unwrap().len(),
        2,
        "delivered once, not again"
    );
    service.stop().await;
}

#[tokio::test]
async fn a_callback_that_is_down_does_not_change_the_job() {
    let service = TestService::start_with(|c| {
        c.callback_attempts = 2;
        c.callback_allow = ALLOW_LOOPBACK.into();
    })
    .await;
    // A port that was just free: nothing listens there.
    let port = crate::helpers::free_port();
    let view = service
        .run_v1(json!({
            "language": "python",
            "code": "print('done anyway')",
            "callback_url": format!("http://127.0.0.1:{port}/hook"),
        }))
        .await;
    assert_eq!(view["state"], "completed");
    assert_eq!(view["result"]["stdout"], "done anyway\n");
    let id = view["id"].as_str().unwrap();
    // Both attempts made (1 s apart), then given up.
    assert_eq!(wait_delivery(&service, id, "failed").await, 2);
    let (_, again) = service.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(again["state"], "completed", "{again}");
    service.stop().await;
}

/// What a callback into the service itself, its machine or a private
/// network looks like. None of these is ever connected to.
fn inside_urls(service: &TestService) -> Vec<String> {
    let admin = service.admin_url.trim_start_matches("http://").to_string();
    let admin_port = admin.rsplit(':').next().unwrap().to_string();
    let api_port = service.url.rsplit(':').next().unwrap().to_string();
    vec![
        format!("http://{admin}/admin/api/queue/pause"),
        format!("http://localhost:{admin_port}/admin/api/queue/pause"),
        format!("http://127.0.0.1:{api_port}/v1/jobs"),
        "http://127.0.0.1/hook".into(),
        "http://[::1]/hook".into(),
        "http://0.0.0.0/hook".into(),
        "http://169.254.169.254/latest/meta-data/".into(),
        "http://10.0.0.1/hook".into(),
        "http://[::ffff:127.0.0.1]/hook".into(),
        "http://2130706433/hook".into(),
        "http://localhost/hook".into(),
    ]
}

async fn assert_still_running(service: &TestService) {
    let (status, overview) = service.admin_get("/admin/api/overview").await;
    assert_eq!(status, 200);
    assert_eq!(
        overview["paused"], false,
        "the queue was paused: {overview}"
    );
    let view = service
        .run_v1(json!({ "language": "bash", "code": "echo still here" }))
        .await;
    assert_eq!(view["result"]["stdout"], "still here\n", "{view}");
}

#[tokio::test]
async fn callbacks_into_the_service_or_private_networks_are_refused_at_submission() {
    let service = TestService::start().await;
    for url in inside_urls(&service) {
        let body = json!({ "language": "bash", "code": "echo x", "callback_url": url });
        let (status, answer) = service
            .send(reqwest::Method::POST, "/v1/jobs", Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{url}: {answer}");
        assert_eq!(answer["field"], "callback_url", "{url}: {answer}");
        let (status, answer) = service
            .send(
                reqwest::Method::POST,
                "/v1/jobs/batch",
                Some(json!({ "jobs": [{ "language": "bash", "code": "echo y" }, body] })),
            )
            .await;
        assert_eq!(status, 400, "{url}: {answer}");
        assert_eq!(answer["field"], "jobs[1].callback_url", "{url}: {answer}");
    }
    let (_, overview) = service.admin_get("/admin/api/overview").await;
    assert_eq!(
        overview["counts"]["waiting"], 0,
        "nothing was queued: {overview}"
    );
    assert_still_running(&service).await;
    service.stop().await;

    // Allowing loopback opens it to receivers, never to the service's own
    // listeners.
    let service = TestService::start_with(|c| c.callback_allow = ALLOW_LOOPBACK.into()).await;
    for url in &inside_urls(&service)[..3] {
        let body = json!({ "language": "bash", "code": "echo x", "callback_url": url });
        let (status, answer) = service
            .send(reqwest::Method::POST, "/v1/jobs", Some(body))
            .await;
        assert_eq!(status, 400, "{url}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("own"),
            "{answer}"
        );
    }
    let (url, _) = receiver(vec![]).await;
    service
        .submit_v1(json!({ "language": "bash", "code": "echo x", "callback_url": url }))
        .await;
    assert_still_running(&service).await;
    service.stop().await;
}

#[tokio::test]
async fn a_callback_refused_when_it_is_sent_is_never_sent() {
    // Jobs that skipped the API's check (a Node BullMQ producer, or a name
    // that resolved elsewhere when it was submitted) are checked again.
    let service = TestService::start_with(|c| c.callback_allow = ALLOW_LOOPBACK.into()).await;
    let (receiver_url, received) = receiver(vec![]).await;
    let mut urls = inside_urls(&service);
    urls.truncate(3);
    let strict = TestService::start().await;
    for (target, url) in urls
        .iter()
        .map(|u| (&service, u.clone()))
        .chain([(&strict, receiver_url.clone())])
    {
        let spec = JobSpec {
            language: "bash".into(),
            code: Some("echo sent".into()),
            callback_url: Some(url.clone()),
            submitted_at_ms: code_runner::job::now_ms(),
            ..JobSpec::default()
        };
        let id = target
            .app()
            .queue()
            .enqueue(&spec, &EnqueueOptions { attempts: 1 })
            .await
            .unwrap()
            .to_string();
        let view = target
            .wait_v1(&id, &["completed"], Duration::from_secs(60))
            .await;
        assert_eq!(view["result"]["stdout"], "sent\n");
        // Given up at the first attempt: refused, not retried.
        assert_eq!(wait_delivery(target, &id, "failed").await, 1, "{url}");
    }
    assert!(
        received.lock().unwrap().is_empty(),
        "a refused callback was sent"
    );
    assert_still_running(&service).await;
    strict.stop().await;
    service.stop().await;
}

/// A certificate authority and a certificate for 127.0.0.1 signed by it.
fn test_pki() -> (String, tokio_rustls::rustls::ServerConfig) {
    use tokio_rustls::rustls;
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "code-runner test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (ca.pem(), config)
}

/// A receiver on https://127.0.0.1 with the test CA's certificate.
async fn https_receiver(config: tokio_rustls::rustls::ServerConfig) -> (String, Received) {
    let received: Received = Arc::default();
    let app = receiver_app(received.clone(), vec![]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/hook", listener.local_addr().unwrap());
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                // A client that does not trust the CA ends the handshake.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (url, received)
}

#[tokio::test]
async fn webhooks_go_over_https_verified_against_the_configured_ca() {
    let (ca_pem, server_config) = test_pki();
    let ca_file = std::env::temp_dir().join(format!("code-runner-ca-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&ca_file, ca_pem).unwrap();
    let (url, received) = https_receiver(server_config).await;

    let service = TestService::start_with(|c| {
        c.callback_secret = Some(SECRET.into());
        c.callback_allow = ALLOW_LOOPBACK.into();
        c.callback_ca_file = Some(ca_file.clone());
    })
    .await;
    let id = service
        .submit_v1(
            json!({ "language": "python", "code": "print('over tls')", "callback_url": url }),
        )
        .await;
    let calls = wait_calls(&received, 1, Duration::from_secs(60)).await;
    let view = check_signed(&calls[0], &id);
    assert_eq!(view["result"]["stdout"], "over tls\n");
    service.stop().await;

    // Without the CA the certificate is not trusted: nothing is posted.
    let service = TestService::start_with(|c| {
        c.callback_allow = ALLOW_LOOPBACK.into();
        c.callback_attempts = 1;
    })
    .await;
    let id = service
        .submit_v1(json!({ "language": "python", "code": "print(1)", "callback_url": url }))
        .await;
    service
        .wait_v1(&id, &["completed"], Duration::from_secs(60))
        .await;
    wait_delivery(&service, &id, "failed").await;
    assert_eq!(
        received.lock().unwrap().len(),
        1,
        "posted to an untrusted server"
    );
    service.stop().await;
    let _ = std::fs::remove_file(ca_file);
}
