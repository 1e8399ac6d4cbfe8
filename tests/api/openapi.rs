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

/// Whether `body` is an error in the wire format of the API `path` belongs
/// to: Piston's `{"message"}`, Judge0's `{"error"}` (or its 422 of
/// attributes), or ours `{"error", "field"?}`.
fn in_its_apis_shape(path: &str, status: u16, body: &Value) -> bool {
    let text = |key: &str| body[key].is_string();
    if path.starts_with("/api/v2/") {
        text("message") && body.get("error").is_none()
    } else if [
        "/submissions",
        "/languages",
        "/statuses",
        "/about",
        "/version",
        "/config_info",
        "/workers",
        "/system_info",
    ]
    .iter()
    .any(|p| path.starts_with(p))
    {
        (text("error") && body.get("field").is_none())
            || (status == 422
                && body
                    .as_object()
                    .is_some_and(|o| o.values().all(Value::is_array)))
    } else {
        text("error") && body.get("message").is_none()
    }
}

/// Every route of both listeners, with path parameters that are not UTF-8,
/// broken JSON bodies and query strings that are not UTF-8: each refusal
/// is a 4xx JSON body in its own API's shape (never axum's plain text,
/// never ours on Judge0's or Piston's routes).
#[tokio::test]
async fn every_route_answers_bad_input_in_its_own_apis_shape() {
    let service = TestService::start().await;
    let client = reqwest::Client::new();
    let mut routes: Vec<(String, String, String)> = Vec::new();
    for (base, document) in [
        (service.url.clone(), "/openapi.json"),
        (service.admin_url.clone(), "/admin/openapi.json"),
    ] {
        let doc: Value = client
            .get(format!("{base}{document}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for (path, operations) in doc["paths"].as_object().unwrap() {
            for method in operations.as_object().unwrap().keys() {
                routes.push((base.clone(), path.clone(), method.to_ascii_uppercase()));
            }
        }
    }
    assert!(routes.len() > 40, "{routes:?}");
    let mut checked = 0;
    for (base, path, method) in &routes {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut attempts: Vec<(String, Option<&str>)> = Vec::new();
        if path.contains('{') {
            attempts.push((with_params(path, "%ff"), None));
        }
        let real = with_params(path, &uuid::Uuid::new_v4().to_string());
        if method != reqwest::Method::GET {
            attempts.push((real.clone(), Some(r#"{"language": "python", "code":"#)));
        }
        attempts.push((
            format!(
                "{real}?wait=%ff&base64_encoded=%ff&fields=%ff&tokens=%ff&page=%ff&state=%ff&%zz"
            ),
            None,
        ));
        for (target, body) in attempts {
            let mut request = client.request(method.clone(), format!("{base}{target}"));
            if let Some(body) = body {
                request = request
                    .header("Content-Type", "application/json")
                    .body(body);
            }
            let answer = tokio::time::timeout(std::time::Duration::from_secs(30), request.send())
                .await
                .unwrap_or_else(|_| panic!("{method} {target} did not answer"))
                .unwrap();
            let status = answer.status().as_u16();
            if status < 400 {
                // Accepted as it is (a query parameter a route ignores).
                continue;
            }
            assert!(status < 500, "{method} {target}: {status}");
            let content_type = answer.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_string();
            let text = answer.text().await.unwrap();
            assert!(
                content_type.starts_with("application/json"),
                "{method} {target}: {status} {content_type} {text}"
            );
            let json: Value = serde_json::from_str(&text).unwrap();
            assert!(
                in_its_apis_shape(path, status, &json),
                "{method} {target}: {status} {text}"
            );
            checked += 1;
        }
    }
    assert!(checked > 40, "{checked} refusals checked");
    service.stop().await;
}

/// `path` with each `{parameter}` replaced by `value`.
fn with_params(path: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        out.push_str(value);
        rest = rest[open..].split_once('}').map_or("", |(_, after)| after);
    }
    out.push_str(rest);
    out
}

/// The document says what the checks accept, from the service's own
/// settings: its languages, each limit's range, Judge0's ids and numbers,
/// which fields go together. A value at a documented bound is taken, one
/// past it refused.
#[tokio::test]
async fn the_documents_schemas_hold_the_services_rules() {
    let service = TestService::start().await;
    let (_, doc) = service.get("/openapi.json").await;
    // Nothing the writing added stands where the specification wants
    // something else (`"parameters": null` broke the fuzzer).
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let parameters = &operation["parameters"];
            assert!(
                parameters.is_array() || operation.get("parameters").is_none(),
                "{method} {path}: parameters {parameters}"
            );
        }
    }
    let schemas = &doc["components"]["schemas"];
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("an enum: {v}"))
            .iter()
            .map(|n| n.to_string().trim_matches('"').to_string())
            .collect()
    };
    // Every schema written into existed (none made up by the writing).
    for (schema, property) in [
        ("JobRequest", "language"),
        ("ProgramRequest", "language"),
        ("LimitsRequest", "wall_time_ms"),
        ("TestCaseRequest", "points"),
        ("FileRequest", "name"),
        ("SubmissionParams", "language_id"),
        ("ExecuteParams", "language"),
        ("ExecuteParams", "run_memory_limit"),
        ("FileParams", "content"),
        ("BatchParams", "submissions"),
    ] {
        assert!(
            schemas[schema]["properties"][property].is_object(),
            "{schema}.{property}"
        );
        assert!(schemas[schema]["type"].is_string() || schemas[schema]["properties"].is_object());
    }
    assert!(
        names(&schemas["JobRequest"]["properties"]["language"]["enum"]).contains(&"python".into())
    );
    assert!(
        names(&schemas["SubmissionParams"]["properties"]["language_id"]["enum"])
            .contains(&"71".into())
    );
    assert!(
        names(&schemas["ExecuteParams"]["properties"]["language"]["enum"]).contains(&"c++".into())
    );
    assert_eq!(
        schemas["JobRequest"]["oneOf"],
        serde_json::json!([{ "required": ["code"] }, { "required": ["files"] }])
    );
    let most = schemas["LimitsRequest"]["properties"]["wall_time_ms"]["maximum"]
        .as_u64()
        .unwrap();
    assert_eq!(most, service.config.max_wall_time_limit_ms);
    let job = |wall: u64| {
        serde_json::json!({ "language": "python", "code": "print(1)",
            "limits": { "wall_time_ms": wall } })
    };
    let (status, answer) = service
        .send(reqwest::Method::POST, "/v1/jobs", Some(job(most)))
        .await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = service
        .send(reqwest::Method::POST, "/v1/jobs", Some(job(most + 1)))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["field"], "limits.wall_time_ms");
    // Each link names an operation of the document and its parameter.
    let mut links = 0;
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                let Some(found) = response["links"].as_object() else {
                    continue;
                };
                for (name, link) in found {
                    links += 1;
                    let target = link["operationRef"].as_str().unwrap();
                    let pointer = target.strip_prefix('#').unwrap();
                    let operation = doc
                        .pointer(pointer)
                        .unwrap_or_else(|| panic!("{method} {path} {status} {name}: no {target}"));
                    for parameter in link["parameters"].as_object().unwrap().keys() {
                        assert!(
                            operation["parameters"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .any(|p| p["name"] == parameter.as_str()),
                            "{method} {path} {status} {name}: {target} has no {parameter}"
                        );
                    }
                }
            }
        }
    }
    assert!(links >= 5, "{links} links");
    service.stop().await;
}
