//! Verdicts and figures: compilation errors, signals, exceptions, expected
//! outputs, test cases against one compilation, time (CPU vs wall), memory,
//! output, and exact bytes through base64.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use base64::Engine;
use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::helpers::TestService;

#[tokio::test]
async fn a_c_compile_error_is_compilation_error_with_gccs_message() {
    let service = TestService::start().await;
    let view = service
        .run_v1(json!({
            "language": "c",
            "code": "int main(void) { return undefined_name; }",
        }))
        .await;
    let result = &view["result"];
    assert_eq!(view["state"], "completed");
    assert_eq!(result["verdict"], "compilation_error", "{view}");
    let output = result["compile_output"].as_str().unwrap();
    assert!(output.contains("undefined_name"), "{output}");
    assert!(output.contains("error"), "{output}");
    assert_ne!(result["compile"]["exit_code"], 0);
    // Nothing ran.
    assert!(result["exit_code"].is_null());
    service.stop().await;
}

/// A compilation that succeeds but makes nothing runnable is the user's
/// mistake: `compilation_error`, never the service's `internal_error`.
#[tokio::test]
async fn a_compilation_that_makes_no_program_is_compilation_error() {
    let service = TestService::start_with(|c| c.wall_time_limit_ms = 10_000).await;
    for (language, code) in [
        (
            "go",
            "package notmain\n\nfunc Hello() string { return \"hi\" }\n",
        ),
        (
            "rust",
            "#![crate_type = \"lib\"]\npub fn hello() -> u32 { 1 }\n",
        ),
    ] {
        let view = service
            .run_v1(json!({ "language": language, "code": code }))
            .await;
        let result = &view["result"];
        assert_eq!(result["verdict"], "compilation_error", "{language}: {view}");
        assert!(
            result["message"]
                .as_str()
                .is_some_and(|m| m.contains("no runnable program") || m.contains("compiler")),
            "{language}: {view}"
        );
    }
    service.stop().await;
}

#[tokio::test]
async fn signals_are_runtime_errors_with_their_names() {
    let service = TestService::start().await;
    let programs = [
        (
            "SIGSEGV",
            "#include <stdio.h>\nint main(void) { volatile int *p = 0; printf(\"%d\", *p); return 0; }",
        ),
        (
            "SIGFPE",
            "#include <stdio.h>\nint main(void) { int zero; scanf(\"%d\", &zero); printf(\"%d\", 100 / zero); return 0; }",
        ),
        (
            "SIGABRT",
            "#include <stdlib.h>\nint main(void) { abort(); }",
        ),
    ];
    for (signal, code) in programs {
        let view = service
            .run_v1(json!({ "language": "c", "code": code, "stdin": "0" }))
            .await;
        let result = &view["result"];
        assert_eq!(result["verdict"], "runtime_error", "{signal}: {view}");
        assert_eq!(result["signal"], signal, "{view}");
        assert!(result["exit_code"].is_null());
        assert!(result["message"].as_str().unwrap().contains(signal));
    }
    service.stop().await;
}

#[tokio::test]
async fn a_python_exception_is_runtime_error_with_its_traceback() {
    let service = TestService::start().await;
    let view = service
        .run_v1(json!({
            "language": "python",
            "code": "def f():\n    raise KeyError('missing')\nf()",
        }))
        .await;
    let result = &view["result"];
    assert_eq!(result["verdict"], "runtime_error", "{view}");
    assert_eq!(result["exit_code"], 1);
    assert!(result["signal"].is_null());
    let stderr = result["stderr"].as_str().unwrap();
    assert!(
        stderr.contains("Traceback (most recent call last)"),
        "{stderr}"
    );
    assert!(stderr.contains("KeyError: 'missing'"), "{stderr}");
    // The proof of concept's view says the same in its words.
    let (_, poc) = service
        .get(&format!("/status/{}", view["id"].as_str().unwrap()))
        .await;
    assert_eq!(poc["result"]["status"], "error");
    assert_eq!(poc["result"]["exitCode"], 1);
    service.stop().await;
}

#[tokio::test]
async fn expected_output_is_compared_after_trailing_white_space() {
    let service = TestService::start().await;
    let code = "print('1 2  ')\nprint('3')\nprint()";
    let view = service
        .run_v1(json!({ "language": "python", "code": code, "expected_output": "1 2\n3" }))
        .await;
    assert_eq!(view["result"]["verdict"], "accepted", "{view}");
    let view = service
        .run_v1(json!({ "language": "python", "code": code, "expected_output": "1 2\n4\n" }))
        .await;
    assert_eq!(view["result"]["verdict"], "wrong_answer", "{view}");
    assert_eq!(view["result"]["exit_code"], 0);
    assert_eq!(view["result"]["status"], "success");
    service.stop().await;
}

/// Containers the engine created for this queue while `run` ran (its own
/// event stream), by id: the job's and the warm pool's.
async fn containers_created<F>(queue_label: &str, run: F) -> (Value, HashSet<String>)
where
    F: std::future::Future<Output = Value>,
{
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    let filters = HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        ("event".to_string(), vec!["create".to_string()]),
        (
            "label".to_string(),
            vec![format!("code-runner.queue={queue_label}")],
        ),
    ]);
    // The stream sends its request when first polled: poll it from now on.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let collector = tokio::spawn(async move {
        let mut events = docker.events(Some(EventsOptionsBuilder::new().filters(&filters).build()));
        while let Some(Ok(event)) = events.next().await {
            if let Some(id) = event.actor.and_then(|a| a.id) {
                let _ = tx.send(id);
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let view = run.await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    collector.abort();
    let mut created = HashSet::new();
    while let Ok(id) = rx.try_recv() {
        created.insert(id);
    }
    (view, created)
}

/// The containers of each phase of a job, from its timeline.
fn containers_of(view: &Value, phase: &str) -> Vec<String> {
    view["result"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|mark| mark["phase"] == phase)
        .map(|mark| mark["container_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn three_test_cases_run_against_one_compilation() {
    let service = TestService::start().await;
    let code = "#include <stdio.h>\nint main(void) { int a, b; scanf(\"%d %d\", &a, &b); printf(\"%d\\n\", a + b); return 0; }";
    let body = json!({
        "language": "c",
        "code": code,
        "test_cases": [
            { "stdin": "1 2", "expected_output": "3" },
            { "stdin": "10 20", "expected_output": "30" },
            { "stdin": "2 2", "expected_output": "5" },
        ],
    });
    let (view, created) = containers_created(&service.queue_label(), service.run_v1(body)).await;
    let result = &view["result"];
    let cases = result["test_cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3, "{view}");
    assert_eq!(cases[0]["verdict"], "accepted");
    assert_eq!(cases[0]["stdout"], "3\n");
    assert_eq!(cases[1]["verdict"], "accepted");
    assert_eq!(cases[1]["stdout"], "30\n");
    assert_eq!(cases[2]["verdict"], "wrong_answer");
    assert_eq!(cases[2]["stdout"], "4\n");
    for case in cases {
        assert!(case["wall_time_ms"].is_u64() && case["memory_peak_bytes"].as_u64().unwrap() > 0);
    }
    // The job's verdict is its first case that did not pass.
    assert_eq!(result["verdict"], "wrong_answer");
    // The compiler ran once; the three cases ran one after another in the
    // same container (cleared after the compilation, restored between
    // cases), created for this job (fresh, or warm in the pool meanwhile):
    // one container lifecycle, not four.
    let compiled = containers_of(&view, "compiling");
    let ran = containers_of(&view, "running");
    assert_eq!(compiled.len(), 1, "{view}");
    assert_eq!(ran.len(), 3, "{view}");
    assert!(
        ran.iter().all(|id| *id == compiled[0]),
        "the cases did not all run in the compiler's container: {view}"
    );
    let distinct: HashSet<&String> = compiled.iter().chain(&ran).collect();
    for id in distinct {
        assert!(created.contains(id), "{id} was not created during the job");
    }
    service.stop().await;
}

#[tokio::test]
async fn cpu_time_and_wall_time_limits_each_give_their_verdict() {
    let service = TestService::start().await;
    let view = service
        .run_v1(json!({
            "language": "python",
            "code": "while True: pass",
            "limits": { "cpu_time_ms": 500, "wall_time_ms": 5000 },
        }))
        .await;
    let result = &view["result"];
    assert_eq!(result["verdict"], "time_limit_exceeded", "{view}");
    assert_eq!(result["time_limit"], "cpu", "{view}");
    assert!(result["cpu_time_ms"].as_u64().unwrap() >= 500, "{view}");
    assert!(result["wall_time_ms"].as_u64().unwrap() < 5000, "{view}");

    let view = service
        .run_v1(json!({
            "language": "python",
            "code": "import time\ntime.sleep(30)",
            "limits": { "cpu_time_ms": 5000, "wall_time_ms": 1000 },
        }))
        .await;
    let result = &view["result"];
    assert_eq!(result["verdict"], "time_limit_exceeded", "{view}");
    assert_eq!(result["time_limit"], "wall", "{view}");
    assert!(result["wall_time_ms"].as_u64().unwrap() >= 1000, "{view}");
    assert!(result["cpu_time_ms"].as_u64().unwrap() < 1000, "{view}");
    service.stop().await;
}

/// Hello worlds that print their own peak resident set (`VmHWM`) at the
/// end, by language.
const OWN_PEAK: &[(&str, &str)] = &[
    (
        "c",
        "#include <stdio.h>\n#include <string.h>\nint main(void) { char line[256]; FILE *f = fopen(\"/proc/self/status\", \"r\"); puts(\"hello\"); while (fgets(line, sizeof line, f)) if (!strncmp(line, \"VmHWM:\", 6)) fputs(line, stdout); return 0; }",
    ),
    (
        "cpp",
        "#include <cstdio>\n#include <cstring>\n#include <iostream>\nint main() { std::cout << \"hello\" << std::endl; char line[256]; FILE *f = fopen(\"/proc/self/status\", \"r\"); while (fgets(line, sizeof line, f)) if (!strncmp(line, \"VmHWM:\", 6)) fputs(line, stdout); }",
    ),
    (
        "rust",
        "fn main() { println!(\"hello\"); for l in std::fs::read_to_string(\"/proc/self/status\").unwrap().lines() { if l.starts_with(\"VmHWM:\") { println!(\"{l}\"); } } }",
    ),
    (
        "go",
        "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n\t\"strings\"\n)\n\nfunc main() {\n\tfmt.Println(\"hello\")\n\tb, _ := os.ReadFile(\"/proc/self/status\")\n\tfor _, l := range strings.Split(string(b), \"\\n\") {\n\t\tif strings.HasPrefix(l, \"VmHWM:\") {\n\t\t\tfmt.Println(l)\n\t\t}\n\t}\n}\n",
    ),
    (
        "java",
        "public class Main { public static void main(String[] args) throws Exception { System.out.println(\"hello\"); for (String l : java.nio.file.Files.readAllLines(java.nio.file.Path.of(\"/proc/self/status\"))) if (l.startsWith(\"VmHWM:\")) System.out.println(l); } }",
    ),
    (
        "python",
        "print('hello')\nprint(next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).strip())",
    ),
];

/// The `VmHWM` a program printed, in bytes.
fn printed_peak(stdout: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or_else(|| panic!("no VmHWM in {stdout:?}"))
}

/// A program's memory figure is its own: its processes' peak, never page
/// cache it (or its compilation, in the same container) merely read. On a
/// cold cache and a warm one alike, each case of a hello world in six
/// languages reports within 2 MiB of the program's own peak resident set,
/// and a program that touches 150 MB reports that.
#[tokio::test]
async fn a_programs_memory_figure_is_its_own_peak_whatever_the_cache_holds() {
    let service = TestService::start_with(|c| c.wall_time_limit_ms = 20_000).await;
    let drop_caches = || {
        // Root only (CI and make test run as root); a warm run otherwise.
        let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
    };
    for cache in ["cold", "warm"] {
        for (language, code) in OWN_PEAK {
            if cache == "cold" {
                drop_caches();
            }
            let view = service
                .run_v1(json!({
                    "language": language,
                    "code": code,
                    "test_cases": [{ "stdin": "" }, { "stdin": "" }],
                }))
                .await;
            let cases = view["result"]["test_cases"]
                .as_array()
                .unwrap_or_else(|| panic!("{language}: {view}"));
            for (i, case) in cases.iter().enumerate() {
                assert_eq!(case["verdict"], "accepted", "{language} {cache}: {view}");
                let own = printed_peak(case["stdout"].as_str().unwrap());
                let reported = case["memory_peak_bytes"].as_u64().unwrap();
                println!("{language} {cache} case {i}: reported {reported}, own {own}");
                assert!(
                    reported.abs_diff(own) <= 2 << 20,
                    "{language} ({cache} cache, case {i}): reported {} KiB, its own peak {} KiB",
                    reported >> 10,
                    own >> 10
                );
            }
        }
    }
    drop_caches();
    let view = service
        .run_v1(json!({
            "language": "c",
            "code": "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\nint main(void) { size_t n = 150u << 20; char *p = malloc(n); memset(p, 1, n); char line[256]; FILE *f = fopen(\"/proc/self/status\", \"r\"); while (fgets(line, sizeof line, f)) if (!strncmp(line, \"VmHWM:\", 6)) fputs(line, stdout); return p[n - 1] - 1; }",
        }))
        .await;
    let result = &view["result"];
    assert_eq!(result["verdict"], "accepted", "{view}");
    let own = printed_peak(result["stdout"].as_str().unwrap());
    let reported = result["memory_peak_bytes"].as_u64().unwrap();
    assert!(reported >= 150 << 20, "{view}");
    assert!(
        reported.abs_diff(own) <= 2 << 20,
        "{reported} vs its own {own}: {view}"
    );
    service.stop().await;
}

#[tokio::test]
async fn the_memory_limit_gives_memory_limit_exceeded() {
    let service = TestService::start().await;
    let view = service
        .run_v1(json!({
            "language": "python",
            "code": "chunks = []\nwhile True:\n    chunks.append(bytearray(10 * 1024 * 1024))",
            "limits": { "memory_mb": 64 },
        }))
        .await;
    let result = &view["result"];
    assert_eq!(result["verdict"], "memory_limit_exceeded", "{view}");
    assert!(
        result["memory_peak_bytes"].as_u64().unwrap() >= 60 << 20,
        "{view}"
    );
    assert_eq!(result["status"], "memory_limit");
    let view = service
        .run_v1(json!({
            "language": "c",
            "code": "#include <stdlib.h>\n#include <string.h>\nint main(void) { for (;;) { char *p = malloc(1 << 20); memset(p, 1, 1 << 20); } }",
            "limits": { "memory_mb": 32 },
        }))
        .await;
    assert_eq!(view["result"]["verdict"], "memory_limit_exceeded", "{view}");
    service.stop().await;
}

#[tokio::test]
async fn output_over_its_cap_is_output_limit_exceeded() {
    let service = TestService::start().await;
    let view = service
        .run_v1(json!({
            "language": "bash",
            "code": "yes hello",
            "limits": { "output_bytes": 1000 },
        }))
        .await;
    let result = &view["result"];
    assert_eq!(result["verdict"], "output_limit_exceeded", "{view}");
    assert_eq!(result["stdout"].as_str().unwrap().len(), 1000);
    assert_eq!(result["stdout_truncated"], true);
    service.stop().await;
}

/// Output that is not UTF-8 is compared byte for byte in every mode: the
/// expected `80 80 0a` is not the printed `ff fe 0a`, though both read as
/// two replacement characters (which every mode but `exact` compared).
#[tokio::test]
async fn output_that_is_not_utf8_is_compared_as_bytes_in_every_mode() {
    let service = TestService::start().await;
    let b64 = base64::engine::general_purpose::STANDARD;
    let code = "import sys\nsys.stdout.buffer.write(bytes([0xff, 0xfe, 0x0a]))";
    let modes = ["exact", "lines", "tokens", "float"];
    let mut cases: Vec<Value> = modes
        .iter()
        .map(|mode| json!({ "expected_output": b64.encode([0x80, 0x80, 0x0a]), "compare": mode }))
        .collect();
    // The default comparison, and the right bytes under each mode.
    cases.push(json!({ "expected_output": b64.encode([0x80, 0x80, 0x0a]) }));
    cases.extend(
        modes.iter().map(
            |mode| json!({ "expected_output": b64.encode([0xff, 0xfe, 0x0a]), "compare": mode }),
        ),
    );
    let view = service
        .run_v1(json!({
            "language": "python",
            "code": b64.encode(code),
            "base64": true,
            "test_cases": cases,
        }))
        .await;
    let cases = view["result"]["test_cases"]
        .as_array()
        .unwrap_or_else(|| panic!("{view}"));
    for (i, case) in cases.iter().enumerate().take(5) {
        assert_eq!(case["verdict"], "wrong_answer", "case {i}: {view}");
        let message = case["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(r#"\x80\x80"#) && message.contains(r#"\xff\xfe"#),
            "case {i} shows the bytes escaped: {message}"
        );
    }
    for (i, case) in cases.iter().enumerate().skip(5) {
        assert_eq!(case["verdict"], "accepted", "case {i}: {view}");
    }
    assert_eq!(view["result"]["verdict"], "wrong_answer", "{view}");

    // Judge0's comparison, with base64_encoded=true.
    let client = reqwest::Client::new();
    let judged: Value = client
        .post(format!(
            "{}/submissions?base64_encoded=true&wait=true",
            service.url
        ))
        .json(&json!({
            "source_code": b64.encode(code),
            "language_id": 71,
            "expected_output": b64.encode([0x80, 0x80, 0x0a]),
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(judged["status"]["id"], 4, "Wrong Answer: {judged}");
    service.stop().await;
}

#[tokio::test]
async fn base64_carries_exact_bytes_both_ways() {
    let service = TestService::start().await;
    let b64 = base64::engine::general_purpose::STANDARD;
    let code = "import sys\ndata = sys.stdin.buffer.read()\nsys.stdout.buffer.write(bytes([0xff, 0xfe, 0x00]) + data)\nsys.stderr.buffer.write(b'\\x80err')";
    let view = service
        .run_v1(json!({
            "language": "python",
            "code": b64.encode(code),
            "stdin": b64.encode([0xc3, 0x28, b'A']),
            "base64": true,
        }))
        .await;
    let result = &view["result"];
    assert_eq!(result["encoding"], "base64", "{view}");
    let stdout = b64.decode(result["stdout"].as_str().unwrap()).unwrap();
    assert_eq!(stdout, [0xff, 0xfe, 0x00, 0xc3, 0x28, b'A']);
    let stderr = b64.decode(result["stderr"].as_str().unwrap()).unwrap();
    assert_eq!(stderr, b"\x80err");
    // Without base64, invalid bytes arrive replaced, not as an error.
    let view = service
        .run_v1(json!({
            "language": "python",
            "code": "import sys\nsys.stdout.buffer.write(b'a\\xffb')",
        }))
        .await;
    assert_eq!(view["result"]["stdout"], "a\u{fffd}b");
    service.stop().await;
}
