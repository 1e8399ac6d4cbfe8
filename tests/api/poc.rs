//! The proof of concept's API, kept valid, and every bad input answered
//! with a 4xx JSON body.

use std::time::Duration;

use serde_json::json;

use crate::helpers::TestService;

#[tokio::test]
async fn hello_world_answers_exactly_the_proof_of_concepts_shape() {
    let service = TestService::start().await;
    let (code, accepted) = service
        .post_raw(
            "application/json",
            r#"{"language":"python","code":"print('Hello world')"}"#,
        )
        .await;
    assert_eq!(code, 200);
    let keys: Vec<_> = accepted.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["jobId"], "POST /run answers only the job id");
    let id = accepted["jobId"].as_str().unwrap();
    uuid::Uuid::parse_str(id).expect("the job id is a UUID");

    let body = service.wait_done(id, Duration::from_secs(30)).await;
    assert_eq!(body["jobId"], id);
    assert_eq!(body["state"], "completed");
    assert_eq!(body["result"]["stdout"], "Hello world");
    assert_eq!(body["result"]["status"], "success");
    assert_eq!(body["result"]["exitCode"], 0);
    assert_eq!(body["result"]["stderr"], "");
    service.stop().await;
}

#[tokio::test]
async fn stdin_reaches_the_program_and_the_language_alias_works() {
    let service = TestService::start().await;
    let id = service
        .submit_body(json!({
            "language": "python3",
            "code": "import sys\nprint(sys.stdin.read().upper())",
            "stdin": "from stdin",
        }))
        .await;
    let body = service.wait_done(&id, Duration::from_secs(30)).await;
    assert_eq!(body["result"]["stdout"], "FROM STDIN", "{body}");
    service.stop().await;
}

#[tokio::test]
async fn a_megabyte_of_code_runs_without_touching_a_command_line() {
    let service = TestService::start().await;
    // ~1 MiB of source: a long comment, then the program.
    let mut code = String::from("# ");
    code.push_str(&"x".repeat(1_000_000));
    code.push_str("\nprint(len(open(__file__).read()))\n");
    let expected = code.len().to_string();
    let id = service.submit(&code).await;
    let body = service.wait_done(&id, Duration::from_secs(30)).await;
    assert_eq!(body["result"]["stdout"], expected.as_str(), "{body}");
    service.stop().await;
}

#[tokio::test]
async fn every_bad_input_gets_a_4xx_json_error_naming_the_field() {
    let service = TestService::start_with(|c| c.max_code_bytes = 1000).await;
    let cases: Vec<(&str, String, u16, Option<&str>)> = vec![
        ("malformed JSON", "{\"language\": ".into(), 400, None),
        ("not an object", "[1,2]".into(), 400, None),
        ("empty body", "".into(), 400, None),
        (
            "missing language",
            json!({"code": "print(1)"}).to_string(),
            400,
            Some("language"),
        ),
        (
            "missing code",
            json!({"language": "python"}).to_string(),
            400,
            Some("code"),
        ),
        (
            "language of the wrong type",
            json!({"language": 5, "code": "print(1)"}).to_string(),
            400,
            Some("language"),
        ),
        (
            "code of the wrong type",
            json!({"language": "python", "code": ["print(1)"]}).to_string(),
            400,
            Some("code"),
        ),
        (
            "stdin of the wrong type",
            json!({"language": "python", "code": "print(1)", "stdin": 7}).to_string(),
            400,
            Some("stdin"),
        ),
        (
            "unknown language",
            json!({"language": "intercal", "code": "DISPLAY 1"}).to_string(),
            400,
            Some("language"),
        ),
        (
            "code over the size limit",
            json!({"language": "python", "code": "#".repeat(1001)}).to_string(),
            413,
            Some("code"),
        ),
        (
            "a body far over any limit",
            json!({"language": "python", "code": "#".repeat(100_000)}).to_string(),
            413,
            None,
        ),
    ];
    for (what, body, want_status, want_field) in cases {
        let (status, answer) = service.post_raw("application/json", body).await;
        assert_eq!(status, want_status, "{what}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: no error message in {answer}"
        );
        if let Some(field) = want_field {
            assert_eq!(answer["field"], field, "{what}: {answer}");
        }
    }

    let (status, answer) = service
        .post_raw("text/plain", r#"{"language":"python","code":"print(1)"}"#)
        .await;
    assert_eq!(status, 415, "{answer}");
    assert!(answer["error"].is_string());

    let (status, answer) = service.get("/status/not-a-uuid").await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["field"], "jobId");

    let (status, answer) = service
        .get(&format!("/status/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["field"], "jobId");

    let (status, answer) = service.get("/no/such/path").await;
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"].is_string());

    let (status, answer) = service.get("/run").await;
    assert_eq!(status, 405, "{answer}");
    assert!(answer["error"].is_string());

    // The service still serves.
    let (status, _) = service.get("/healthz").await;
    assert_eq!(status, 200);
    let id = service.submit("print('still here')").await;
    let body = service.wait_done(&id, Duration::from_secs(30)).await;
    assert_eq!(body["result"]["stdout"], "still here");
    service.stop().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let service = TestService::start().await;
    let (status, body) = service.get("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    let (status, body) = service.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["redis"]["ok"], true);
    assert_eq!(body["docker"]["ok"], true);
    service.stop().await;
}
