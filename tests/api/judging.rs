//! Judging as an online judge does: comparison modes per job and per test
//! case, and where a wrong answer first differs.

use serde_json::{Value, json};

use crate::helpers::TestService;

fn case_verdicts(view: &Value) -> Vec<String> {
    view["result"]["test_cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["verdict"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn comparison_modes_judge_as_asked_and_say_where_output_differs() {
    let service = TestService::start().await;

    // A float-tolerance problem: print the circle's area for each radius.
    let area = "import math\nfor r in map(float, input().split()):\n    print(f'{math.pi * r * r:.{int(__import__(\"sys\").argv[1])}f}')";
    let job = |digits: &str, compare: Value| {
        json!({ "language": "python", "code": area, "args": [digits], "stdin": "1 2.5",
                "expected_output": "3.14159265\n19.63495408", "compare": compare })
    };
    let view = service
        .run_v1(job("7", json!({ "mode": "float", "abs_error": 1e-6 })))
        .await;
    assert_eq!(view["result"]["verdict"], "accepted", "{view}");
    let view = service.run_v1(job("2", json!("float"))).await;
    assert_eq!(view["result"]["verdict"], "wrong_answer", "{view}");
    let message = view["result"]["message"].as_str().unwrap();
    assert!(
        message.contains(r#"token 1 (line 1) differs: expected "3.14159265", got "3.14""#),
        "{message}"
    );
    let view = service
        .run_v1(job("2", json!({ "mode": "float", "abs_error": 0.01 })))
        .await;
    assert_eq!(view["result"]["verdict"], "accepted", "{view}");
    // The same output as lines or tokens is wrong: it is not the same text.
    let view = service.run_v1(job("7", json!("tokens"))).await;
    assert_eq!(view["result"]["verdict"], "wrong_answer", "{view}");

    // Per test case: tokens for one, exact for another, case-insensitive
    // lines for a third; the job's mode for the rest.
    let view = service
        .run_v1(json!({ "language": "python", "code": "print(input())",
            "compare": "lines",
            "test_cases": [
                { "stdin": "1   2", "expected_output": "1 2", "compare": "tokens" },
                { "stdin": "1 2", "expected_output": "1 2", "compare": "exact" },
                { "stdin": "YES", "expected_output": "yes",
                  "compare": { "mode": "lines", "case_insensitive": true } },
                { "stdin": "a  ", "expected_output": "a" },
                { "stdin": "x", "expected_output": "y" },
            ] }))
        .await;
    assert_eq!(
        case_verdicts(&view),
        [
            "accepted",
            "wrong_answer",
            "accepted",
            "accepted",
            "wrong_answer"
        ],
        "{view}"
    );
    let message = view["result"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            r#"byte 4 (line 1, column 4) differs: expected the end of the output, got "\n""#
        ),
        "{message}"
    );

    // Missing and extra lines say so.
    let view = service
        .run_v1(json!({ "language": "python", "code": "print(1)",
                        "expected_output": "1\n2\n" }))
        .await;
    let message = view["result"]["message"].as_str().unwrap();
    assert!(
        message.contains(r#"expected 2 lines, got 1: line 2 ("2") is missing"#),
        "{message}"
    );
    service.stop().await;
}

#[tokio::test]
async fn bad_comparisons_are_refused_naming_the_field() {
    let service = TestService::start().await;
    for (compare, field) in [
        (json!("approximately"), "compare"),
        (
            json!({ "mode": "exact", "case_insensitive": true }),
            "compare.case_insensitive",
        ),
        (
            json!({ "mode": "tokens", "abs_error": 0.1 }),
            "compare.abs_error",
        ),
        (
            json!({ "mode": "float", "rel_error": -1 }),
            "compare.rel_error",
        ),
        (json!({ "mode": "float", "tolerance": 1 }), "compare"),
    ] {
        let response = service
            .client
            .post(format!("{}/v1/jobs", service.url))
            .json(&json!({ "language": "python", "code": "print(1)",
                           "expected_output": "1", "compare": compare }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{compare}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["field"], field, "{compare}: {body}");
    }
    let response = service
        .client
        .post(format!("{}/v1/jobs", service.url))
        .json(&json!({ "language": "python", "code": "print(1)",
            "test_cases": [{ "expected_output": "1" },
                           { "expected_output": "1", "compare": { "mode": "exact", "case_insensitive": true } }] }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["field"], "test_cases[1].compare.case_insensitive",
        "{body}"
    );
    service.stop().await;
}
