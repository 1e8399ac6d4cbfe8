//! TLS: mutual TLS with a client certificate, settings that cannot work, and
//! `rediss://` trusting the platform's roots.

use super::*;

#[tokio::test]
async fn the_service_runs_jobs_over_mutual_tls() {
    let pki = Pki::make(&scratch("pki"));
    let redis = RedisServer::start(&scratch("tls"), Some(&pki));
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let service = TestService::start_with(|c| {
        c.redis_url = Some(url.clone());
        c.redis_ca_file = Some(pki.path("ca.pem"));
        c.redis_client_cert = Some(pki.path("client.pem"));
        c.redis_client_key = Some(pki.path("client.key"));
        c.wall_time_limit_ms = 30_000;
    })
    .await;
    let done = service
        .run_v1(json!({ "language": "python", "code": "print(input() * 2)", "stdin": "tls" }))
        .await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["result"]["stdout"], "tlstls\n", "{done}");
    // A cancellation travels on the Redis channel the workers subscribe to
    // (a connection of the service's own, with the same certificates).
    cancel_a_running_job(&service).await;
    let (status, ready) = service.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    service.stop().await;
}

/// Starting against `redis` with these settings fails, and the error says
/// why.
async fn refused(adjust: impl FnOnce(&mut code_runner::config::Config)) -> String {
    let mut config = helpers::test_config();
    adjust(&mut config);
    match App::start(Role::Api, config).await {
        Ok(_) => panic!("the service started"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn tls_settings_that_cannot_work_stop_the_service_with_the_reason() {
    let pki = Pki::make(&scratch("pki"));
    let redis = RedisServer::start(&scratch("tls"), Some(&pki));
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    // The server asks for a client certificate; none is given.
    let err = refused(|c| {
        c.redis_url = Some(url.clone());
        c.redis_ca_file = Some(pki.path("ca.pem"));
    })
    .await;
    assert!(err.contains("cannot reach Redis"), "{err}");
    // The server's certificate is signed by an authority not trusted.
    let err = refused(|c| {
        c.redis_url = Some(url.clone());
        c.redis_ca_file = Some(pki.path("other-ca.pem"));
        c.redis_client_cert = Some(pki.path("client.pem"));
        c.redis_client_key = Some(pki.path("client.key"));
    })
    .await;
    assert!(err.contains("cannot reach Redis"), "{err}");
    // Certificates for a plain redis:// URL are a mistake, not ignored.
    let err = refused(|c| {
        c.redis_url = Some(format!("redis://127.0.0.1:{}", redis.port));
        c.redis_ca_file = Some(pki.path("ca.pem"));
    })
    .await;
    assert!(
        err.contains("CODE_RUNNER_REDIS_CA_FILE set, but CODE_RUNNER_REDIS_URL is not a rediss://"),
        "{err}"
    );
    // Schemes not supported are named, not tried.
    let err = refused(|c| c.redis_url = Some("rediss+sentinel://127.0.0.1:26379/m".into())).await;
    assert!(
        err.contains("\"rediss+sentinel://\" is not supported"),
        "{err}"
    );
    let err = refused(|c| {
        c.redis_url = Some("redis+cluster://127.0.0.1:7000".into());
        c.redis_wait_replicas = 1;
    })
    .await;
    assert!(err.contains("CODE_RUNNER_REDIS_WAIT_REPLICAS"), "{err}");
    // A key file that holds no key is named.
    let err = refused(|c| {
        c.redis_url = Some(url.clone());
        c.redis_client_cert = Some(pki.path("client.pem"));
        c.redis_client_key = Some(pki.path("client.pem"));
    })
    .await;
    assert!(err.contains("CODE_RUNNER_REDIS_CLIENT_KEY"), "{err}");
}

/// `rediss://` with no CA file trusts the platform's roots: the service
/// process, told (as OpenSSL is, by `SSL_CERT_FILE`) that the platform
/// trusts the test's CA, reaches a TLS Redis; with the system's own bundle
/// only, it does not, and says so.
#[tokio::test]
async fn rediss_trusts_the_platforms_roots() {
    let pki = Pki::make(&scratch("pki"));
    let dir = scratch("tls-roots");
    let port = free_port();
    let args = server_args(port, &dir, Some((&pki, false)));
    let _redis = RedisServer::with_args(&dir, port, &args);
    let url = format!("rediss://127.0.0.1:{port}");
    let queue = helpers::unique_queue();

    // The system's bundle, which does not hold the test's CA: refused.
    let refused = helpers::service_command("api", &queue, free_port())
        .env("CODE_RUNNER_REDIS_URL", &url)
        .env("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")
        .env_remove("SSL_CERT_DIR")
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("cannot reach Redis"), "{said}");

    // The platform trusts the test's CA: it connects, no CA file given.
    let api_port = free_port();
    let mut api = helpers::service_command("api", &queue, api_port)
        .env("CODE_RUNNER_REDIS_URL", &url)
        .env("SSL_CERT_FILE", pki.path("ca.pem"))
        .env_remove("SSL_CERT_DIR")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = client
            .get(format!("http://127.0.0.1:{api_port}/readyz"))
            .send()
            .await;
        if let Ok(response) = ready
            && response.status().as_u16() == 200
        {
            break;
        }
        assert!(api.try_wait().unwrap().is_none(), "the API process exited");
        assert!(Instant::now() < deadline, "the API never became ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    api.kill().unwrap();
    api.wait().unwrap();
}
