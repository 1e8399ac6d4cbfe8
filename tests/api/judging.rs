//! Judging as an online judge does: comparison modes per job and per test
//! case, and where a wrong answer first differs.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::TestService;

/// `POST /v1/jobs` answers `body` with a 400 naming `field`.
async fn assert_refused(service: &TestService, body: Value, field: &str) {
    let (status, answer) = service
        .send(reqwest::Method::POST, "/v1/jobs", Some(body.clone()))
        .await;
    assert_eq!(status, 400, "{body}: {answer}");
    assert_eq!(answer["field"], field, "{body}: {answer}");
}

fn case_verdicts(view: &Value) -> Vec<String> {
    view["result"]["test_cases"]
        .as_array()
        .unwrap_or_else(|| panic!("no test cases: {view}"))
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

/// "Print two positive integers whose sum is n": any valid answer passes.
const ANY_SUM_SOLUTION: &str =
    "n = int(input())\nprint({5: '2 3', 10: '3 3', 7: 'seven'}.get(n, f'1 {n - 1}'))";

const PYTHON_CHECKER: &str = r#"import sys
inp, out, ans = (open(p).read() for p in sys.argv[1:4])
n = int(inp)
try:
    a, b = map(int, out.split())
except ValueError:
    print("expected two integers", file=sys.stderr)
    sys.exit(2)
if a > 0 and b > 0 and a + b == n:
    print(f"ok {a} + {b} = {n}", file=sys.stderr)
    sys.exit(0)
print(f"wrong answer {a} + {b} is not {n}", file=sys.stderr)
sys.exit(1)
"#;

const TESTLIB_CHECKER: &str = r#"#include "testlib.h"

int main(int argc, char* argv[]) {
    registerTestlibCmd(argc, argv);
    long long n = inf.readLong();
    long long a = ouf.readLong(1, n, "a");
    long long b = ouf.readLong(1, n, "b");
    if (a + b != n)
        quitf(_wa, "%lld + %lld is not %lld", a, b, n);
    quitf(_ok, "%lld + %lld = %lld", a, b, n);
}
"#;

fn cases_of(view: &Value) -> &Vec<Value> {
    view["result"]["test_cases"].as_array().unwrap()
}

#[tokio::test]
async fn a_checker_judges_any_valid_answer_in_python_and_in_cpp_with_testlib() {
    let service = TestService::start().await;
    for (language, checker) in [("python", PYTHON_CHECKER), ("cpp", TESTLIB_CHECKER)] {
        let view = service
            .run_v1(json!({ "language": "python", "code": ANY_SUM_SOLUTION,
                "checker": { "language": language, "code": checker },
                "test_cases": [
                    { "stdin": "5", "expected_output": "1 4" },
                    { "stdin": "9" },
                    { "stdin": "10", "expected_output": "1 9" },
                    { "stdin": "7" },
                ] }))
            .await;
        assert_eq!(
            case_verdicts(&view),
            ["accepted", "accepted", "wrong_answer", "presentation_error"],
            "{language}: {view}"
        );
        let cases = cases_of(&view);
        // The checker's words are the case's message; its run is its own.
        let message = cases[2]["message"].as_str().unwrap();
        assert!(message.contains("3 + 3 is not 10"), "{language}: {message}");
        assert_eq!(cases[2]["checker"]["exit_code"], 1, "{language}: {view}");
        assert_eq!(cases[2]["stdout"], "3 3\n", "{language}: {view}");
        assert_eq!(cases[2]["exit_code"], 0, "{language}: {view}");
        assert!(
            cases[0]["message"].as_str().unwrap().contains("2 + 3 = 5"),
            "{language}: {view}"
        );
        assert_eq!(view["result"]["verdict"], "wrong_answer", "{view}");
        assert_eq!(
            (&view["result"]["score"], &view["result"]["max_score"]),
            (&json!(2.0), &json!(4.0)),
            "{view}"
        );
    }

    // Partial points (exit 7): testlib's "points <value>" on stderr, out of
    // the case's points.
    let view = service
        .run_v1(json!({ "language": "python", "code": "print(input())",
            "checker": { "language": "python",
                "code": "import sys\nout = open(sys.argv[2]).read().split()\nprint(f'points {out[0]} partly right', file=sys.stderr)\nsys.exit(7)" },
            "test_cases": [
                { "stdin": "1.5", "points": 2 },
                { "stdin": "3", "points": 2 },
            ] }))
        .await;
    let cases = cases_of(&view);
    assert_eq!(cases[0]["verdict"], "accepted", "{view}");
    assert_eq!(cases[0]["score"], 1.5, "{view}");
    // More than the case is worth: the checker is wrong, not the solution.
    assert_eq!(cases[1]["verdict"], "internal_error", "{view}");
    assert!(
        cases[1]["message"]
            .as_str()
            .unwrap()
            .starts_with("the checker failed: it gave 3 points"),
        "{view}"
    );
    assert_eq!(view["result"]["verdict"], "internal_error", "{view}");
    service.stop().await;
}

#[tokio::test]
async fn test_cases_score_points_by_group_and_stop_on_the_first_failure() {
    let service = TestService::start().await;
    let double = "n = int(input())\nprint(n * 2 if n < 100 else 0)";
    let case = |n: u32, points: u32, group: Option<&str>| {
        let mut case = json!({ "stdin": n.to_string(), "expected_output": (n * 2).to_string(),
                               "points": points });
        if let Some(group) = group {
            case["group"] = json!(group);
        }
        case
    };
    let view = service
        .run_v1(
            json!({ "language": "python", "code": double, "stop_on_first_failure": true,
            "test_cases": [
                case(1, 10, Some("small")), case(100, 20, Some("large")),
                case(2, 10, Some("small")), case(200, 20, Some("large")),
                case(3, 3, None),
            ] }),
        )
        .await;
    assert_eq!(
        case_verdicts(&view),
        [
            "accepted",
            "wrong_answer",
            "accepted",
            "skipped",
            "accepted"
        ],
        "{view}"
    );
    let result = &view["result"];
    assert_eq!(
        (&result["score"], &result["max_score"]),
        (&json!(23.0), &json!(63.0)),
        "{view}"
    );
    assert_eq!(
        result["groups"],
        json!([
            { "group": "small", "passed": true, "score": 20.0, "max_score": 20.0, "cases": [0, 2] },
            { "group": "large", "passed": false, "score": 0.0, "max_score": 40.0, "cases": [1, 3] },
        ]),
        "{view}"
    );
    assert_eq!(
        cases_of(&view)[3]["message"],
        "skipped: test case 1 failed",
        "{view}"
    );
    assert_eq!(result["verdict"], "wrong_answer", "{view}");

    // A failure outside any group stops every case after it.
    let view = service
        .run_v1(
            json!({ "language": "python", "code": double, "stop_on_first_failure": true,
            "test_cases": [case(1, 1, None), case(100, 1, None), case(2, 1, Some("g"))] }),
        )
        .await;
    assert_eq!(
        case_verdicts(&view),
        ["accepted", "wrong_answer", "skipped"],
        "{view}"
    );
    // Without stop_on_first_failure every case runs; points default to 1.
    let view = service
        .run_v1(json!({ "language": "python", "code": double,
            "test_cases": [{ "stdin": "100", "expected_output": "200" },
                           { "stdin": "4", "expected_output": "8" }] }))
        .await;
    assert_eq!(case_verdicts(&view), ["wrong_answer", "accepted"], "{view}");
    assert_eq!(view["result"]["score"], 1.0, "{view}");
    assert!(view["result"].get("groups").is_none(), "{view}");
    service.stop().await;
}

#[tokio::test]
async fn hostile_checkers_fail_the_job_never_the_solution() {
    let service = TestService::start().await;
    let job = |checker: &str, limits: Value| {
        json!({ "language": "python", "code": "print('mine')",
            "checker": { "language": "python", "code": checker, "limits": limits },
            "test_cases": [{ "stdin": "1" }, { "stdin": "2" }] })
    };
    for (name, checker, limits, says) in [
        (
            "loops",
            "while True:\n    pass",
            json!({ "wall_time_ms": 5000, "cpu_time_ms": 300 }),
            "the checker failed: CPU time limit exceeded",
        ),
        (
            "sleeps",
            "import time\ntime.sleep(60)",
            json!({ "wall_time_ms": 1000 }),
            "the checker failed: wall-clock time limit exceeded",
        ),
        (
            "floods",
            "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)",
            json!({ "output_bytes": 4096 }),
            "the checker failed: output passed its cap",
        ),
        (
            "crashes",
            "import os\nos.kill(os.getpid(), 11)",
            json!({}),
            "the checker failed: killed by SIGSEGV",
        ),
        (
            "fails",
            "import sys\nprint('FAIL the answer file is empty', file=sys.stderr)\nsys.exit(3)",
            json!({}),
            "the checker failed: it reported FAIL (exit 3): FAIL the answer file is empty",
        ),
    ] {
        let view = service.run_v1(job(checker, limits)).await;
        let result = &view["result"];
        assert_eq!(result["verdict"], "internal_error", "{name}: {view}");
        assert_eq!(result["message"], says, "{name}: {view}");
        // The solution's own figures stand; the remaining case is not run.
        let cases = cases_of(&view);
        assert_eq!(cases[0]["stdout"], "mine\n", "{name}: {view}");
        assert_eq!(cases[0]["exit_code"], 0, "{name}: {view}");
        assert_eq!(cases[1]["verdict"], "skipped", "{name}: {view}");
    }

    // A checker that does not compile.
    let view = service
        .run_v1(json!({ "language": "python", "code": "print(1)",
            "checker": { "language": "cpp", "code": "int main( {" } }))
        .await;
    assert_eq!(view["result"]["verdict"], "internal_error", "{view}");
    assert!(
        view["result"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the checker did not compile: the compiler exited with status 1"),
        "{view}"
    );
    service.stop().await;
}

/// Python that looks for `secrets` in every file it can read outside the
/// system's folders, and prints where it found one.
const SEARCH: &str = r#"import os, stat, sys
def search(secrets):
    found = []
    for top in ["/"]:
        for root, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if os.path.join(root, d) not in
                       ("/proc", "/sys", "/dev", "/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", "/var/lib")]
            for name in files:
                path = os.path.join(root, name)
                try:
                    if not stat.S_ISREG(os.lstat(path).st_mode):
                        continue
                    with open(path, "rb") as f:
                        data = f.read(1 << 20)
                except OSError:
                    continue
                found += [f"{s} in {path}" for s in secrets if s.encode() in data]
    return found
"#;

#[tokio::test]
async fn neither_a_checker_nor_a_solution_can_read_answers_it_should_not() {
    let service = TestService::start_with(|config| config.concurrency = 2).await;
    let secret_a = format!("answer-of-a-{}", uuid::Uuid::new_v4());
    let secret_b = format!("answer-of-b-{}", uuid::Uuid::new_v4());
    // Job A's checker holds its answer file for a while.
    let a = service
        .submit_v1(json!({ "language": "python", "code": "print('a')",
            "expected_output": secret_a,
            "checker": { "language": "python", "code": "import time\ntime.sleep(8)",
                         "limits": { "wall_time_ms": 10000 } } }))
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, view) = service
            .send(reqwest::Method::GET, &format!("/v1/jobs/{a}"), None)
            .await;
        if view["phase"] == "checking" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job A never reached its checker: {view}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Meanwhile job B's solution looks for its own answer and A's, and B's
    // checker for A's (written backwards in their code, which they can
    // read); the checker finds its own answer, so the search does work.
    let backwards = |s: &str| s.chars().rev().collect::<String>();
    let (a_back, b_back) = (backwards(&secret_a), backwards(&secret_b));
    let solution = format!(
        "{SEARCH}\nfound = search([{a_back:?}[::-1], {b_back:?}[::-1]])\nprint('\\n'.join(found) or 'clean')"
    );
    let checker = format!(
        "{SEARCH}\nfound = search([{a_back:?}[::-1]])\nout = open(sys.argv[2]).read().strip()\n\
         own = search([{b_back:?}[::-1]])\n\
         print('\\n'.join(found + ([] if out == 'clean' else [out]) + own), file=sys.stderr)\n\
         sys.exit(1 if found or out != 'clean' or not own else 0)"
    );
    let view = service
        .run_v1(
            json!({ "language": "python", "code": solution, "expected_output": secret_b,
            "limits": { "wall_time_ms": 10000, "cpu_time_ms": 5000 },
            "checker": { "language": "python", "code": checker,
                         "limits": { "wall_time_ms": 10000, "cpu_time_ms": 5000 } } }),
        )
        .await;
    assert_eq!(view["result"]["verdict"], "accepted", "{view}");
    assert_eq!(view["result"]["stdout"], "clean\n", "{view}");
    assert!(
        view["result"]["message"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{secret_b} in /tmp/box/answer.txt")),
        "{view}"
    );
    let (_, a_view) = service
        .send(reqwest::Method::GET, &format!("/v1/jobs/{a}"), None)
        .await;
    assert_ne!(
        a_view["state"], "completed",
        "A ended before B looked: {a_view}"
    );
    service.stop().await;
}

#[tokio::test]
async fn bad_checkers_and_scores_are_refused_naming_the_field() {
    let service = TestService::start().await;
    let base = json!({ "language": "python", "code": "print(1)" });
    let with = |extra: Value| {
        let mut body = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (body, field) in [
        (
            with(json!({ "checker": { "language": "intercal", "code": "x" } })),
            "checker.language",
        ),
        (
            with(json!({ "checker": { "language": "python" } })),
            "checker.code",
        ),
        (
            with(json!({ "checker": { "language": "python", "code": "" } })),
            "checker.code",
        ),
        (
            with(json!({ "checker": { "language": "python", "code": "x", "args": [] } })),
            "checker.args",
        ),
        (
            with(
                json!({ "checker": { "language": "python", "code": "x", "limits": { "wall_time_ms": 0 } } }),
            ),
            "checker.limits.wall_time_ms",
        ),
        (
            with(json!({ "interactive": true, "checker": { "language": "python", "code": "x" } })),
            "checker",
        ),
        (
            with(json!({ "test_cases": [{ "stdin": "1", "points": -1 }] })),
            "test_cases[0].points",
        ),
        (
            with(json!({ "test_cases": [{ "stdin": "1" }, { "stdin": "1", "group": "" }] })),
            "test_cases[1].group",
        ),
        (
            with(json!({ "stop_on_first_failure": "yes" })),
            "stop_on_first_failure",
        ),
    ] {
        assert_refused(&service, body, field).await;
    }
    service.stop().await;
}

/// Guess the number (1 to 10^6) in at most 20 guesses: the interactor
/// answers each guess with `<`, `>` or `=`.
const GUESS_INTERACTOR: &str = r#"import sys
secret = int(open(sys.argv[1]).read())
for guess_count in range(1, 21):
    line = sys.stdin.readline()
    if not line:
        print("wrong answer: the solution stopped guessing", file=sys.stderr)
        sys.exit(1)
    guess = int(line)
    if guess == secret:
        print("=", flush=True)
        print(f"ok guessed {secret} in {guess_count} guesses", file=sys.stderr)
        sys.exit(0)
    print("<" if secret < guess else ">", flush=True)
print("wrong answer: more than 20 guesses", file=sys.stderr)
sys.exit(1)
"#;

const GUESS_TESTLIB_INTERACTOR: &str = r#"#include "testlib.h"
#include <iostream>

int main(int argc, char* argv[]) {
    registerInteraction(argc, argv);
    int secret = inf.readInt();
    for (int count = 1; count <= 20; count++) {
        int guess = ouf.readInt(1, 1000000, "guess");
        if (guess == secret) {
            std::cout << "=" << std::endl;
            tout << count << std::endl;
            quitf(_ok, "guessed %d in %d guesses", secret, count);
        }
        std::cout << (secret < guess ? "<" : ">") << std::endl;
    }
    quitf(_wa, "more than 20 guesses");
}
"#;

const BINARY_SEARCH: &str = "lo, hi = 1, 10**6\nwhile True:\n    mid = (lo + hi) // 2\n    print(mid, flush=True)\n    reply = input()\n    if reply == '=':\n        break\n    if reply == '<':\n        hi = mid - 1\n    else:\n        lo = mid + 1";

#[tokio::test]
async fn an_interactor_talks_with_the_solution_and_judges_it() {
    let service = TestService::start().await;
    let cases = json!([{ "stdin": "1" }, { "stdin": "424242" }, { "stdin": "1000000" }]);
    for (language, interactor) in [
        ("python", GUESS_INTERACTOR),
        ("cpp", GUESS_TESTLIB_INTERACTOR),
    ] {
        // Twenty round trips through two containers must fit in the wall
        // time even on a loaded machine: what is tested is the verdict.
        let view = service
            .run_v1(json!({ "language": "python", "code": BINARY_SEARCH,
                "limits": { "wall_time_ms": 20000 },
                "interactor": { "language": language, "code": interactor },
                "test_cases": cases }))
            .await;
        assert_eq!(
            case_verdicts(&view),
            ["accepted", "accepted", "accepted"],
            "{language}: {view}"
        );
        let case = &cases_of(&view)[1];
        // Each side's figures are its own: the solution's guesses, the
        // interactor's replies.
        assert!(
            case["message"]
                .as_str()
                .unwrap()
                .contains("guessed 424242 in"),
            "{language}: {view}"
        );
        let guesses = case["stdout"].as_str().unwrap().lines().count();
        let replies = case["interactor"]["stdout"]
            .as_str()
            .unwrap()
            .lines()
            .count();
        assert_eq!(guesses, replies, "{language}: {view}");
        assert!(guesses <= 20, "{language}: {view}");
        assert_eq!(case["interactor"]["exit_code"], 0, "{language}: {view}");
    }

    // Guessing one by one takes too many guesses.
    let linear = "n = 1\nwhile True:\n    print(n, flush=True)\n    if input() == '=':\n        break\n    n += 1";
    let view = service
        .run_v1(json!({ "language": "python", "code": linear,
            "limits": { "wall_time_ms": 20000 },
            "interactor": { "language": "python", "code": GUESS_INTERACTOR },
            "test_cases": [{ "stdin": "3" }, { "stdin": "500" }] }))
        .await;
    assert_eq!(case_verdicts(&view), ["accepted", "wrong_answer"], "{view}");
    assert!(
        view["result"]["message"]
            .as_str()
            .unwrap()
            .contains("more than 20 guesses"),
        "{view}"
    );

    // A solution that never answers, and one that stops reading: each ends
    // at its own wall-clock limit, a clear verdict, not a hang.
    for (name, solution) in [
        ("silent", "import time\ntime.sleep(30)"),
        (
            "deaf",
            "import time\nprint(500000, flush=True)\ntime.sleep(30)",
        ),
    ] {
        let view = service
            .run_v1(json!({ "language": "python", "code": solution,
                "limits": { "wall_time_ms": 1500 },
                "interactor": { "language": "python", "code": GUESS_INTERACTOR },
                "stdin": "42" }))
            .await;
        let result = &view["result"];
        assert_eq!(result["verdict"], "time_limit_exceeded", "{name}: {view}");
        assert_eq!(result["time_limit"], "wall", "{name}: {view}");
    }

    // A solution that crashes mid-exchange is a runtime error.
    let view = service
        .run_v1(json!({ "language": "python", "code": "print(5, flush=True)\ninput()\nraise SystemExit(3)",
            "interactor": { "language": "python", "code": GUESS_INTERACTOR },
            "stdin": "42" }))
        .await;
    assert_eq!(view["result"]["verdict"], "runtime_error", "{view}");
    service.stop().await;
}

#[tokio::test]
async fn interactor_jobs_filling_the_cap_all_finish() {
    // Each interactor job has two containers at once, with the warm pool
    // on (whose slots bound the worker's containers to its cap): every job
    // at the cap gets both and is judged on its exchange. (The interactor
    // takes no slot of its own: two jobs each holding one slot and waiting
    // for a second would otherwise idle until their runs timed out, a race
    // this test does not force.)
    let service = TestService::start_with(|c| {
        c.concurrency = 2;
        c.pool_size = 2;
    })
    .await;
    let ids: Vec<String> = futures_util::future::join_all((0..4).map(|k| {
        service.submit_v1(json!({ "language": "python", "code": BINARY_SEARCH,
            "interactor": { "language": "python", "code": GUESS_INTERACTOR },
            "test_cases": [{ "stdin": format!("{}", 1000 + k) }] }))
    }))
    .await;
    for id in ids {
        let view = service
            .wait_v1(&id, &["completed"], Duration::from_secs(120))
            .await;
        assert_eq!(case_verdicts(&view), ["accepted"], "{view}");
    }
    service.stop().await;
}

/// An interactor that stalls once its solution is done is stopped when
/// the solution's wall-clock limit and the interactor's margin (3 s) have
/// passed, not at a wall-clock limit of its own (10 s by default).
#[tokio::test]
async fn an_interactor_stalling_after_its_solution_is_stopped_at_the_solutions_limit() {
    let service = TestService::start_with(|c| c.wall_time_limit_ms = 10_000).await;
    let view = service
        .run_v1(
            json!({ "language": "python", "code": "print(1, flush=True)",
            "limits": { "wall_time_ms": 1000 },
            "interactor": { "language": "python", "code": "import time\ninput()\ntime.sleep(60)" },
            "test_cases": [{ "stdin": "" }] }),
        )
        .await;
    let result = &view["result"];
    assert_eq!(result["verdict"], "internal_error", "{view}");
    let interactor = &cases_of(&view)[0]["interactor"];
    let wall = interactor["wall_time_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("{view}"));
    assert!(
        wall < 1000 + 3000 + 1500,
        "the interactor ran {wall} ms, past the solution's 1 s and its 3 s margin: {view}"
    );
    service.stop().await;
}

#[tokio::test]
async fn hostile_interactors_fail_the_job_never_the_solution() {
    let service = TestService::start().await;
    for (name, interactor, limits, says) in [
        (
            "floods",
            "import sys\nwhile True:\n    sys.stdout.write('1\\n' * 4096)",
            json!({ "output_bytes": 65536 }),
            "the interactor failed: output passed its cap",
        ),
        (
            "loops",
            "while True:\n    pass",
            json!({ "cpu_time_ms": 300 }),
            "the interactor failed: CPU time limit exceeded",
        ),
        (
            "fails",
            "import sys\nprint('FAIL bad test', file=sys.stderr)\nsys.exit(3)",
            json!({}),
            "the interactor failed: it reported FAIL (exit 3): FAIL bad test",
        ),
    ] {
        let view = service
            .run_v1(json!({ "language": "python", "code": BINARY_SEARCH,
                "limits": { "wall_time_ms": 5000 },
                "interactor": { "language": "python", "code": interactor, "limits": limits },
                "test_cases": [{ "stdin": "42" }, { "stdin": "43" }] }))
            .await;
        let result = &view["result"];
        assert_eq!(result["verdict"], "internal_error", "{name}: {view}");
        assert_eq!(result["message"], says, "{name}: {view}");
        assert_eq!(cases_of(&view)[1]["verdict"], "skipped", "{name}: {view}");
    }
    // Checker and interactor together, or with an interactive job: 400.
    for (body, field) in [
        (
            json!({ "language": "python", "code": "print(1)",
                "checker": { "language": "python", "code": "x" },
                "interactor": { "language": "python", "code": "x" } }),
            "checker",
        ),
        (
            json!({ "language": "python", "code": "print(1)", "interactive": true,
                "interactor": { "language": "python", "code": "x" } }),
            "interactor",
        ),
        (
            json!({ "language": "python", "code": "print(1)",
                "interactor": { "language": "intercal", "code": "x" } }),
            "interactor.language",
        ),
    ] {
        assert_refused(&service, body, field).await;
    }
    service.stop().await;
}
