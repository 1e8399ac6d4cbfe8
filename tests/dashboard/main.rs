//! The dashboard in a real browser: headless Chromium driven over WebDriver
//! (Debian's chromium and chromium-driver; `make test` installs them). It
//! loads /admin/queues, sees counts and a running actor change as jobs are
//! submitted through the API (no reload), opens a job's detail, retries a
//! failed job and cancels a running one from the page, and takes a
//! screenshot (`make screenshot` keeps it as docs/dashboard.png).

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
