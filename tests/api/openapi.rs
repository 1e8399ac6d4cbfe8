//! The OpenAPI document covers every route the service answers, and its
//! request schema is the one the server enforces.

use serde_json::Value;

use crate::helpers::TestService;

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let service = TestService::start().await;
    let (status, doc) = service.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        ("/run", "post"),
        ("/status/{jobId}", "get"),
        ("/v1/jobs", "post"),
        ("/v1/jobs/batch", "post"),
        ("/v1/jobs/{id}", "get"),
        ("/v1/jobs/{id}", "delete"),
        ("/v1/languages", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/openapi.json", "get"),
        ("/submissions", "post"),
        ("/submissions/{token}", "get"),
        ("/submissions/{token}", "delete"),
        ("/submissions/batch", "get"),
        ("/submissions/batch", "post"),
        ("/languages", "get"),
        ("/languages/all", "get"),
        ("/languages/{id}", "get"),
        ("/statuses", "get"),
        ("/about", "get"),
        ("/config_info", "get"),
        ("/workers", "get"),
        ("/system_info", "get"),
        ("/api/v2/runtimes", "get"),
        ("/api/v2/execute", "post"),
        ("/api/v2/packages", "get"),
    ];
    for (path, method) in expected {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} undocumented"
        );
    }
    // Every documented path answers (not 404/405).
    for (path, method) in expected {
        // (A batch read needs its tokens: 400 without.)
        if method != "get" || path.contains('{') || path == "/submissions/batch" {
            continue;
        }
        let (status, _) = service.get(path).await;
        assert_eq!(status, 200, "GET {path}");
    }
    let schemas = &doc["components"]["schemas"];
    let request: Vec<&str> = schemas["JobRequest"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for field in [
        "language",
        "version",
        "code",
        "files",
        "stdin",
        "args",
        "limits",
        "expected_output",
        "test_cases",
        "base64",
        "callback_url",
        "priority",
        "idempotency_key",
        "checker",
        "interactor",
        "stop_on_first_failure",
    ] {
        assert!(request.contains(&field), "JobRequest lacks {field}");
    }
    let verdicts: Vec<&Value> = schemas["Verdict"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(verdicts.len(), 11, "{verdicts:?}");
    for schema in ["ProgramRequest", "GroupResult"] {
        assert!(schemas.get(schema).is_some(), "no {schema} schema");
    }
    service.stop().await;
}
