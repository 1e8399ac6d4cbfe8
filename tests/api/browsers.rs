//! Browsers: no web page of another site can use the job API (HTTP or
//! WebSocket), and listed origins get CORS while others get none.

use std::time::Duration;

use code_runner::app::Role;
use code_runner::http::auth::new_key;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestService;

/// What a browser sends for a page of another site: its `Origin`.
const EVIL: &str = "http://evil.example";

/// A WebSocket handshake to `path` with these extra headers: the status
/// the service answered (101: upgraded).
async fn ws_status(service: &TestService, path: &str, headers: &[(&str, &str)]) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}{path}", service.url.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("handshake with {path}: {e}"),
    }
}

/// No web page can use the job API through the operator's browser: every
/// route family refuses a request from a foreign `Origin` (403, in its own
/// API's error shape) before it runs anything, WebSocket upgrades
/// included, and with no keys a foreign `Host` (DNS rebinding) too. The
/// service's own pages, and clients that are not browsers (no `Origin`),
/// are unaffected.
#[tokio::test]
async fn no_web_page_of_another_site_can_use_the_job_api() {
    let service = TestService::start().await;
    let client = reqwest::Client::new();
    let url = &service.url;
    let job = service
        .submit_v1(json!({ "language": "python", "code": "print('mine')" }))
        .await;
    let (_, counts_before) = service.admin_get("/admin/api/overview").await;

    // "Simple" cross-site requests: no preflight, so only the Origin check
    // stops them.
    let simple: Vec<(Method, String, &str, String)> = vec![
        (
            Method::POST,
            format!("{url}/api/v2/execute"),
            "text/plain",
            r#"{"language":"python","version":"*","files":[{"content":"print(42)"}]}"#.into(),
        ),
        (
            Method::POST,
            format!("{url}/submissions?wait=true"),
            "multipart/form-data; boundary=x",
            r#"{"source_code":"print(42)","language_id":71}"#.into(),
        ),
        (
            Method::POST,
            format!("{url}/submissions"),
            "application/x-www-form-urlencoded",
            "source_code=print(42)&language_id=71".into(),
        ),
        (
            Method::POST,
            format!("{url}/run"),
            "text/plain",
            r#"{"language":"python","code":"print(42)"}"#.into(),
        ),
        (
            Method::POST,
            format!("{url}/v1/jobs"),
            "application/json",
            r#"{"language":"python","code":"print(42)"}"#.into(),
        ),
        (
            Method::POST,
            format!("{url}/v1/jobs/{job}/input"),
            "text/plain",
            "42".into(),
        ),
        (
            Method::DELETE,
            format!("{url}/v1/jobs/{job}"),
            "text/plain",
            String::new(),
        ),
        (
            Method::GET,
            format!("{url}/v1/jobs/{job}"),
            "text/plain",
            String::new(),
        ),
        (
            Method::GET,
            format!("{url}/submissions/{job}"),
            "text/plain",
            String::new(),
        ),
    ];
    for (method, target, content_type, body) in simple {
        let answer = client
            .request(method.clone(), &target)
            .header("Origin", EVIL)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 403, "{method} {target}");
        let shape: Value = answer.json().await.unwrap();
        if target.contains("/api/v2/") {
            assert!(shape["message"].is_string(), "Piston's shape: {shape}");
        } else if target.contains("/submissions") {
            assert!(
                shape["error"].is_string() && shape.get("field").is_none(),
                "Judge0's: {shape}"
            );
        } else {
            assert_eq!(shape["field"], "Origin", "ours: {shape}");
        }
    }
    // WebSockets have no CORS at all: the upgrade itself is refused.
    for path in [
        "/v1/stream".to_string(),
        format!("/v1/jobs/{job}/stream"),
        "/api/v2/connect".into(),
    ] {
        assert_eq!(
            ws_status(&service, &path, &[("Origin", EVIL)]).await,
            403,
            "{path}"
        );
        assert_eq!(
            ws_status(&service, &path, &[("Origin", "null")]).await,
            403,
            "{path}"
        );
    }
    // Nothing ran, nothing was cancelled.
    let (_, counts_after) = service.admin_get("/admin/api/overview").await;
    let total = |overview: &Value| -> u64 {
        overview["counts"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(Value::as_u64)
            .sum()
    };
    assert_eq!(
        total(&counts_before),
        total(&counts_after),
        "a job was queued: {counts_after}"
    );
    let done = service.wait_done(&job, Duration::from_secs(60)).await;
    assert_eq!(done["result"]["stdout"], "mine", "{done}");

    // DNS rebinding: a page of another domain resolving to 127.0.0.1.
    for path in [
        "/v1/languages",
        "/languages",
        "/api/v2/runtimes",
        "/",
        "/v1/jobs",
    ] {
        let answer = client
            .get(format!("{url}{path}"))
            .header("Host", "rebind.attacker.example:3000")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 403, "{path}");
    }
    assert_eq!(
        ws_status(
            &service,
            "/v1/stream",
            &[("Host", "rebind.attacker.example")]
        )
        .await,
        403
    );

    // The playground's own page (its origin is the service's), and a
    // client that is not a browser, run code.
    for origin in [Some(url.as_str()), None] {
        let mut request = client
            .post(format!("{url}/v1/jobs?wait=true"))
            .json(&json!({ "language": "python", "code": "print('own page')" }));
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 200, "{origin:?}");
        let view: Value = answer.json().await.unwrap();
        assert_eq!(view["result"]["stdout"], "own page\n", "{view}");
    }
    assert_eq!(
        ws_status(&service, "/v1/stream", &[("Origin", url)]).await,
        101
    );
    service.stop().await;
}

/// Origins an operator lists get real CORS: preflights answered, the
/// origin allowed on answers (never with credentials), so a web front end
/// elsewhere calls the API with its key. `*` needs keys; a bad origin
/// stops the service naming the setting.
#[tokio::test]
async fn listed_origins_get_cors_and_others_none() {
    let (key, entry) = new_key("frontend");
    let front = "https://app.example.com";
    let mut service = TestService::start_with(|c| {
        c.api_keys = Some(entry.clone());
        c.cors_origins = vec![front.into()];
    })
    .await;
    service.bearer = Some(key.clone());
    let client = reqwest::Client::new();
    let url = &service.url;
    // With keys, any Host is answered (the API may be published by name).
    let answer = client
        .get(format!("{url}/v1/languages"))
        .header("Host", "api.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // The preflight of a JSON POST with a key.
    let preflight = client
        .request(Method::OPTIONS, format!("{url}/v1/jobs"))
        .header("Origin", front)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], front);
    let allowed = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    assert!(headers.get("access-control-allow-credentials").is_none());
    // The request itself.
    let answer = client
        .post(format!("{url}/v1/jobs?wait=true"))
        .header("Origin", front)
        .bearer_auth(&key)
        .json(&json!({ "language": "python", "code": "print('from the front end')" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["access-control-allow-origin"], front);
    assert!(
        answer.headers()["vary"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("origin")
    );
    let view: Value = answer.json().await.unwrap();
    assert_eq!(view["result"]["stdout"], "from the front end\n", "{view}");
    // Another origin: refused, and no CORS header to read it with.
    let answer = client
        .request(Method::OPTIONS, format!("{url}/v1/jobs"))
        .header("Origin", EVIL)
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    assert!(
        answer
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    service.stop().await;

    // `*` without keys, and an origin that is not one, stop the service.
    for (origins, keys) in [
        (vec!["*"], None),
        (vec!["app.example.com"], Some(entry.clone())),
    ] {
        let mut config = crate::helpers::test_config();
        config.cors_origins = origins.iter().map(|o| o.to_string()).collect();
        config.api_keys = keys;
        let refused = code_runner::app::App::start(Role::Api, config).await;
        let error = format!("{:#}", refused.err().expect("refused to start"));
        assert!(error.contains("CODE_RUNNER_CORS_ORIGINS"), "{error}");
    }
    // `*` with keys: any origin may call, with its key.
    let mut service = TestService::start_with(|c| {
        c.api_keys = Some(entry.clone());
        c.cors_origins = vec!["*".into()];
    })
    .await;
    service.bearer = Some(key.clone());
    let answer = client
        .get(format!("{}/v1/languages", service.url))
        .header("Origin", "https://anywhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["access-control-allow-origin"], "*");
    service.stop().await;
}
