//! The dashboard in a real browser: headless Chromium driven over WebDriver
//! (Debian's chromium and chromium-driver; `make test` installs them). It
//! loads /admin/queues, sees counts and a running actor change as jobs are
//! submitted through the API (no reload), opens a job's detail, retries a
//! failed job and cancels a running one from the page, and takes a
//! screenshot (`make screenshot` keeps it as docs/dashboard.png); and the
//! playground at `/`, driven as a person would (docs/playground.png).

use code_runner_testkit as helpers;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use code_runner::actors::dispatcher::PANIC_RUNNER_MARKER;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use helpers::{TestService, free_port};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn browser() -> (Driver, Client) {
    let port = free_port();
    let driver = Driver(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (make test installs chromium-driver)"),
    );
    let profile = std::env::temp_dir().join(format!("code-runner-chromium-{port}"));
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--window-size=1300,1800",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => return (driver, client),
            Err(e) => {
                assert!(Instant::now() < deadline, "no WebDriver session: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Waits until the element's text satisfies `ok`; returns the text.
async fn wait_text(client: &Client, css: &str, ok: impl Fn(&str) -> bool, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
            && ok(&text)
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} ({css})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn click(client: &Client, css: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await
            && element.click().await.is_ok()
        {
            return;
        }
        assert!(Instant::now() < deadline, "nothing to click at {css}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn api_view(service: &TestService, id: &str) -> Value {
    service.get(&format!("/v1/jobs/{id}")).await.1
}

#[tokio::test]
async fn the_dashboard_shows_live_state_and_acts_on_jobs() {
    let service = TestService::start_with(|c| c.wall_time_limit_ms = 60_000).await;
    let (_driver, client) = browser().await;
    client
        .goto(&format!("{}/admin/queues", service.admin_url))
        .await
        .unwrap();
    wait_text(&client, "#live", |t| t == "live", "the event stream").await;
    let count = |state: &'static str| format!("#count-{state} b");
    wait_text(&client, &count("active"), |t| t == "0", "an idle queue").await;

    // Jobs submitted through the API appear without a reload.
    let running = service
        .submit_v1(
            json!({ "language": "python", "code": "import time\ntime.sleep(50)\nprint('never')" }),
        )
        .await;
    let failing = service
        .submit_v1(json!({ "language": "python", "code": format!("# {PANIC_RUNNER_MARKER}\nimport time\ntime.sleep(30)") }))
        .await;
    wait_text(&client, &count("failed"), |t| t == "1", "the failed count").await;
    wait_text(&client, &count("active"), |t| t == "1", "the active count").await;
    let runner = format!("li[data-kind='ContainerRunner'][data-job='{running}']");
    wait_text(
        &client,
        &runner,
        |t| t.contains("running"),
        "the running job's runner",
    )
    .await;

    // The failed job's detail, and a retry from the page.
    click(&client, "#count-failed").await;
    click(&client, &format!("tr[data-id='{failing}']")).await;
    wait_text(
        &client,
        "#detail-state",
        |t| t.starts_with("failed"),
        "the failed job's detail",
    )
    .await;
    wait_text(
        &client,
        "#detail dd.bad",
        |t| t.contains("runner"),
        "why it failed",
    )
    .await;
    click(&client, "#detail-retry").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while api_view(&service, &failing).await["attempts_made"] != 2 {
        assert!(
            Instant::now() < deadline,
            "the retry from the page did not run the job again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The running job, cancelled from the page.
    click(&client, "#count-active").await;
    click(&client, &format!("tr[data-id='{running}']")).await;
    wait_text(
        &client,
        "#detail-state",
        |t| t.starts_with("active"),
        "the running job's detail",
    )
    .await;
    click(&client, "#detail-cancel").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while api_view(&service, &running).await["state"] != "cancelled" {
        assert!(
            Instant::now() < deadline,
            "the cancel from the page did not stop the job"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_text(
        &client,
        &count("cancelled"),
        |t| t == "1",
        "the cancelled count",
    )
    .await;
    // The detail follows: cancelled, with the phases it went through.
    wait_text(
        &client,
        "#detail-state",
        |t| t.starts_with("cancelled"),
        "the detail updated",
    )
    .await;
    wait_text(
        &client,
        "#detail-timeline",
        |t| t.contains("running"),
        "its timeline",
    )
    .await;
    wait_text(
        &client,
        &count("active"),
        |t| t == "0",
        "no job active any more",
    )
    .await;

    // A picture of it.
    let png = client.screenshot().await.unwrap();
    let path = std::env::var("CODE_RUNNER_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png")
        });
    std::fs::write(&path, &png).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    client.close().await.unwrap();
    service.stop().await;
}

/// Sets the playground's editor to `code` (its text is what runs).
async fn set_code(client: &Client, code: &str) {
    client
        .execute(
            "window.playground.setCode(arguments[0]);",
            vec![json!(code)],
        )
        .await
        .unwrap();
}

async fn choose_language(client: &Client, id: &str) {
    click(client, &format!("#language option[value='{id}']")).await;
    client
        .execute(
            "const s = document.getElementById('language'); s.value = arguments[0]; \
             s.dispatchEvent(new Event('change'));",
            vec![json!(id)],
        )
        .await
        .unwrap();
}

async fn is_checked(client: &Client, css: &str) -> bool {
    let element = client.find(Locator::Css(css)).await.unwrap();
    element.prop("checked").await.unwrap().as_deref() == Some("true")
}

/// The playground, driven as a person would: an interactive Python
/// program that asks a name and greets it, typed into the page; a C program
/// that does not compile shows the compiler's message; with API keys, the
/// page asks for one and keeps it.
#[tokio::test]
async fn the_playground_runs_programs_interactively_in_the_browser() {
    let (key, entry) = code_runner::http::auth::new_key("playground");
    let service = TestService::start_with(|c| c.api_keys = Some(entry)).await;
    let (_driver, client) = browser().await;
    client.set_window_size(1300, 760).await.unwrap();
    client.goto(&format!("{}/", service.url)).await.unwrap();
    choose_language(&client, "python").await;
    set_code(
        &client,
        "name = input('What is your name? ')\nprint(f'Hello, {name}!')\n",
    )
    .await;
    if !is_checked(&client, "#interactive").await {
        click(&client, "#interactive").await;
    }
    // No key yet: the page asks for one, and keeps it.
    click(&client, "#run").await;
    wait_text(
        &client,
        "#notice",
        |t| t.contains("API key"),
        "the key request",
    )
    .await;
    client
        .find(Locator::Css("#key"))
        .await
        .unwrap()
        .send_keys(&key)
        .await
        .unwrap();
    click(&client, "#save-key").await;
    click(&client, "#run").await;
    wait_text(
        &client,
        "#terminal",
        |t| t.contains("What is your name? "),
        "the prompt",
    )
    .await;
    let line = client.find(Locator::Css("#line")).await.unwrap();
    line.send_keys("Ada\n").await.unwrap();
    let terminal = wait_text(
        &client,
        "#terminal",
        |t| t.contains("Hello, Ada!"),
        "the greeting",
    )
    .await;
    assert!(terminal.contains("Ada\nHello, Ada!"), "{terminal}");
    let typing = client.find(Locator::Css("#stdin-box")).await.unwrap();
    assert!(
        !typing.is_displayed().await.unwrap(),
        "stdin box shown in interactive mode"
    );
    wait_text(&client, "#verdict-name", |t| t == "accepted", "the verdict").await;
    let verdict = wait_text(
        &client,
        "#verdict",
        |t| t.contains("exit code 0"),
        "the figures",
    )
    .await;
    assert!(
        verdict.contains("ms wall") && verdict.contains("MiB"),
        "{verdict}"
    );
    let link = client
        .find(Locator::Css("#verdict a"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(link.starts_with("/v1/jobs/"), "{link}");
    let stored: Option<String> = client
        .execute("return localStorage.getItem('code-runner-key');", vec![])
        .await
        .unwrap()
        .as_str()
        .map(str::to_string);
    assert_eq!(stored.as_deref(), Some(key.as_str()));
    let png = client.screenshot().await.unwrap();
    if let Ok(path) = std::env::var("CODE_RUNNER_PLAYGROUND_SCREENSHOT") {
        std::fs::write(path, &png).unwrap();
    }

    // A C program with a compile error: the compiler's message.
    choose_language(&client, "c").await;
    click(&client, "#interactive").await;
    assert!(!is_checked(&client, "#interactive").await);
    set_code(&client, "int main(void) { return 0 }\n").await;
    click(&client, "#run").await;
    wait_text(
        &client,
        "#verdict-name",
        |t| t == "compilation_error",
        "the compilation error",
    )
    .await;
    let terminal = wait_text(
        &client,
        "#terminal",
        |t| t.contains("error"),
        "gcc's message",
    )
    .await;
    assert!(terminal.contains("error: expected"), "{terminal}");
    client.close().await.unwrap();
    service.stop().await;
}

/// A page of another site, served on another loopback port: what it does
/// to the API at `api` (a cross-site "simple" POST per foreign API with no
/// CORS needed to send it, and a WebSocket that submits code), written as
/// JSON into `#out` when done.
const CROSS_SITE_PAGE: &str = r#"<!doctype html><html><body><pre id="out"></pre><script>
const api = "API";
const seen = {};
const simple = (path, type, body) =>
  fetch(api + path, { method: "POST", mode: "no-cors", headers: { "Content-Type": type }, body })
    .then(() => "sent", e => "error " + e);
(async () => {
  seen.piston = await simple("/api/v2/execute", "text/plain",
    JSON.stringify({ language: "python", version: "*", files: [{ content: "print('cross-site')" }] }));
  seen.judge0 = await simple("/submissions?wait=true", "multipart/form-data; boundary=x",
    JSON.stringify({ source_code: "print('cross-site')", language_id: 71 }));
  seen.run = await simple("/run", "text/plain", JSON.stringify({ language: "python", code: "print('cross-site')" }));
  seen.ws = await new Promise(done => {
    const messages = [];
    const socket = new WebSocket(api.replace("http", "ws") + "/v1/stream");
    socket.onopen = () => socket.send(JSON.stringify({ language: "python", code: "print('cross-site')" }));
    socket.onmessage = m => messages.push(String(m.data));
    socket.onerror = () => messages.push("error");
    socket.onclose = () => done(messages);
    setTimeout(() => done(messages.concat(["timeout"])), 20000);
  });
  document.getElementById("out").textContent = JSON.stringify(seen);
})();
</script></body></html>"#;

/// A front end the operator listed in CODE_RUNNER_CORS_ORIGINS: calls the
/// API with its key (a preflighted JSON POST) and reads the answer.
const FRONT_END_PAGE: &str = r#"<!doctype html><html><body><pre id="out"></pre><script>
fetch("API/v1/jobs?wait=true", {
  method: "POST",
  headers: { "Content-Type": "application/json", "Authorization": "Bearer KEY" },
  body: JSON.stringify({ language: "python", code: "print('from the front end')" }),
}).then(r => r.json()).then(
  view => { document.getElementById("out").textContent = view.result.stdout; },
  e => { document.getElementById("out").textContent = "error " + e; });
</script></body></html>"#;

/// Serves `html` at `/` on a loopback port of its own: another site, as
/// far as the browser can tell. Its origin.
async fn serve_page(html: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move { axum::response::Html(html) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    origin
}

/// In a real browser: a page of another site can neither run code through
/// the job API (cross-site POSTs to each API, a WebSocket) nor read it;
/// a front end on a listed origin can, with its key.
#[tokio::test]
async fn a_page_of_another_site_cannot_use_the_api_and_a_listed_front_end_can() {
    let service = TestService::start().await;
    let (_, before) = service.admin_get("/admin/api/overview").await;
    let page = serve_page(CROSS_SITE_PAGE.replace("API", &service.url)).await;
    let (_driver, client) = browser().await;
    client.goto(&format!("{page}/")).await.unwrap();
    let seen = wait_text(&client, "#out", |t| !t.is_empty(), "the page's attempts").await;
    let seen: Value = serde_json::from_str(&seen).unwrap();
    // The WebSocket never opened: no message, an error.
    let messages = seen["ws"].as_array().unwrap();
    assert!(
        !messages
            .iter()
            .any(|m| m.as_str().unwrap().contains("accepted")
                || m.as_str().unwrap().contains("cross-site")),
        "{seen}"
    );
    assert!(messages.iter().any(|m| m == "error"), "{seen}");
    // Nothing was queued from the page (the POSTs were sent, and refused).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, after) = service.admin_get("/admin/api/overview").await;
    let total = |overview: &Value| -> u64 {
        overview["counts"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(Value::as_u64)
            .sum()
    };
    assert_eq!(
        total(&before),
        total(&after),
        "a job was queued: {after} {seen}"
    );
    service.stop().await;

    // A front end on a listed origin, with a key.
    let (key, entry) = code_runner::http::auth::new_key("frontend");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let service = TestService::start_with(|c| {
        c.api_keys = Some(entry);
        c.cors_origins = vec![origin.clone()];
    })
    .await;
    let html = FRONT_END_PAGE
        .replace("API", &service.url)
        .replace("KEY", &key);
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move { axum::response::Html(html) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    client.goto(&format!("{origin}/")).await.unwrap();
    let out = wait_text(&client, "#out", |t| !t.is_empty(), "the front end's answer").await;
    assert_eq!(out.trim(), "from the front end");
    client.close().await.unwrap();
    service.stop().await;
}
