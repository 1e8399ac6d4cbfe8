//! Every language of the table, proven on the real images: a program that
//! reads a number and prints its double is accepted, a program that does
//! not compile is a `compilation_error` with the compiler's message (for the
//! compiled languages), and one that fails while running is a
//! `runtime_error`. The programs are data (`programs.toml`); a language of
//! the table without its programs there fails the test.

use code_runner_testkit as helpers;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use code_runner::language::LanguageTable;
use helpers::TestService;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Programs {
    reads: String,
    compile_error: Option<String>,
    /// A compile error as files instead (a project's `compile` script).
    compile_error_files: Option<BTreeMap<String, String>>,
    runtime_error: Option<String>,
    /// Why the language has no failing run (exactly one of the two).
    no_runtime_error: Option<String>,
}

/// What a job must end as.
enum Expect {
    Accepted,
    CompilationError,
    RuntimeError,
}

#[tokio::test]
async fn every_language_runs_input_and_reports_its_errors() {
    let programs: BTreeMap<String, Programs> =
        toml::from_str(include_str!("programs.toml")).expect("programs.toml");
    let table = LanguageTable::built_in();
    let service = TestService::start().await;

    // Every language is ready (its image built) and says its version.
    let (status, listed) = service.get("/v1/languages").await;
    assert_eq!(status, 200, "{listed}");
    let listed: HashMap<String, Value> = listed["languages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["id"].as_str().unwrap().to_string(), l.clone()))
        .collect();
    let mut failures = Vec::new();
    for language in table.all() {
        let seen = &listed[&language.id];
        if seen["ready"] != true || seen["versions"].as_array().is_none_or(|v| v.is_empty()) {
            failures.push(format!("{}: not ready, or no version: {seen}", language.id));
        }
    }

    let mut jobs = Vec::new();
    for language in table.all() {
        let Some(program) = programs.get(&language.id) else {
            failures.push(format!("{}: no programs in programs.toml", language.id));
            continue;
        };
        let compile_error = match (&program.compile_error, &program.compile_error_files) {
            (Some(code), None) => Some(json!({ "code": code })),
            (None, Some(files)) => Some(json!({
                "files": files
                    .iter()
                    .map(|(name, content)| json!({ "name": name, "content": content }))
                    .collect::<Vec<_>>()
            })),
            _ => None,
        };
        if compile_error.is_some() != language.compile.is_some() {
            failures.push(format!(
                "{}: a compile_error program is for compiled languages only, and each needs one",
                language.id
            ));
        }
        let limits = json!({ "wall_time_ms": 20_000, "cpu_time_ms": 10_000 });
        let mut cases = vec![(
            Expect::Accepted,
            json!({ "language": language.id, "code": program.reads, "stdin": "21\n",
                    "expected_output": "42\n", "limits": limits }),
        )];
        if let Some(mut body) = compile_error {
            body["language"] = json!(language.id);
            body["limits"] = limits.clone();
            cases.push((Expect::CompilationError, body));
        }
        match (&program.runtime_error, &program.no_runtime_error) {
            (Some(code), None) => cases.push((
                Expect::RuntimeError,
                json!({ "language": language.id, "code": code, "limits": limits }),
            )),
            (None, Some(_)) => {}
            _ => failures.push(format!(
                "{}: give runtime_error or no_runtime_error (why it cannot fail)",
                language.id
            )),
        }
        for (expect, body) in cases {
            let id = service.submit_v1(body).await;
            jobs.push((language.id.clone(), expect, id));
        }
    }

    for (language, expect, id) in &jobs {
        let view = service
            .wait_v1(id, &["completed", "failed"], Duration::from_secs(900))
            .await;
        let result = &view["result"];
        let verdict = result["verdict"].as_str().unwrap_or("(none)");
        let compiled = table.find(language).unwrap().compile.is_some();
        let problem = match expect {
            Expect::Accepted if verdict != "accepted" => {
                Some(format!("reading a number: {verdict}, expected accepted"))
            }
            Expect::Accepted if result["compile"].is_object() != compiled => {
                Some("compiled, or not, unlike the table says".to_string())
            }
            Expect::Accepted if result["memory_peak_bytes"].as_u64().unwrap_or(0) == 0 => {
                Some("no memory figure".to_string())
            }
            Expect::Accepted => None,
            Expect::CompilationError => {
                let message = result["compile_output"].as_str().unwrap_or_default();
                if verdict != "compilation_error" {
                    Some(format!(
                        "not compiling: {verdict}, expected compilation_error"
                    ))
                } else if message.trim().is_empty() {
                    Some("compilation_error without the compiler's message".to_string())
                } else {
                    None
                }
            }
            Expect::RuntimeError => (verdict != "runtime_error")
                .then(|| format!("failing: {verdict}, expected runtime_error")),
        };
        if let Some(problem) = problem {
            failures.push(format!("{language}: {problem}: {view}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} languages' checks failed:\n{}",
        failures.len(),
        table.all().len(),
        failures.join("\n\n")
    );
    service.stop().await;
}

/// The README's language table lists every language of the table, with its
/// Judge0 ids and its compile and run commands as the table has them.
#[test]
fn the_readme_lists_every_language() {
    let readme = include_str!("../../README.md");
    let table = LanguageTable::built_in();
    let mut missing = Vec::new();
    for language in table.all() {
        let files = [language.source_file.clone()];
        // A table cell escapes the pipes of its code.
        let command = |c: &[String]| {
            format!(
                "`{}`",
                language.expand(c, &files).join(" ").replace('|', "\\|")
            )
        };
        let prefix = format!("| {} | `{}`", language.name, language.id);
        let row = readme.lines().find(|line| line.starts_with(&prefix));
        let compile = language.compile.as_deref().map_or("—".to_string(), command);
        let run = command(&language.run);
        let ids = language
            .judge0
            .iter()
            .flat_map(|j| &j.ids)
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let cells = format!("| {ids} | {compile} | {run} |");
        match row {
            Some(row) if row.contains(&cells) => {}
            Some(row) => missing.push(format!("{}: {row}\n  wants {cells}", language.id)),
            None => missing.push(format!("{}: no row starting {prefix:?}", language.id)),
        }
    }
    assert!(
        missing.is_empty(),
        "README.md's language table is not the language table:\n{}",
        missing.join("\n")
    );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Hostile {
    fork_bomb: String,
    memory_bomb: String,
    network: String,
    root: String,
}

/// The hostile suite's core cases in one compiled and one interpreted
/// language of each runtime family (`hostile.toml`): a fork (or thread)
/// bomb and a memory bomb are stopped by the sandbox or their runtime,
/// never accepted; the loopback is the only network interface; the root
/// file system is read-only. Nothing outlives the jobs.
#[tokio::test]
async fn hostile_programs_are_contained_in_every_runtime_family() {
    let programs: BTreeMap<String, Hostile> =
        toml::from_str(include_str!("hostile.toml")).expect("hostile.toml");
    let service = TestService::start().await;
    let limits = json!({ "wall_time_ms": 15_000, "cpu_time_ms": 8_000 });
    let mut jobs = Vec::new();
    for (language, program) in &programs {
        for (case, code) in [
            ("fork_bomb", &program.fork_bomb),
            ("memory_bomb", &program.memory_bomb),
            ("network", &program.network),
            ("root", &program.root),
        ] {
            let id = service
                .submit_v1(json!({ "language": language, "code": code, "limits": limits }))
                .await;
            jobs.push((language, case, id));
        }
    }
    let mut failures = Vec::new();
    for (language, case, id) in &jobs {
        let view = service
            .wait_v1(id, &["completed", "failed"], Duration::from_secs(900))
            .await;
        let result = &view["result"];
        let verdict = result["verdict"].as_str().unwrap_or("(none)");
        let stdout = result["stdout"].as_str().unwrap_or_default();
        let contained = match *case {
            "fork_bomb" => [
                "time_limit_exceeded",
                "memory_limit_exceeded",
                "runtime_error",
            ]
            .contains(&verdict),
            "memory_bomb" => ["memory_limit_exceeded", "runtime_error"].contains(&verdict),
            "network" => {
                let interfaces: Vec<&str> = stdout
                    .lines()
                    .skip(2)
                    .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim()))
                    .collect();
                verdict == "accepted" && interfaces == ["lo"]
            }
            _ => verdict == "accepted" && stdout == "refused\n",
        };
        if !contained {
            failures.push(format!("{language} {case}: {view}"));
        }
    }
    assert!(
        failures.is_empty(),
        "not contained:\n{}",
        failures.join("\n\n")
    );
    service.assert_containers_gone(None).await;
    service.stop().await;
}

/// Python ships the libraries data-science exercises import.
#[tokio::test]
async fn python_imports_numpy_scipy_pandas_sympy_and_networkx() {
    let service = TestService::start().await;
    let code = "import numpy as np, scipy.linalg, pandas as pd, sympy, networkx as nx\n\
                a = np.array([[2.0, 0.0], [0.0, 4.0]])\n\
                print(round(np.linalg.det(a)), round(scipy.linalg.det(a)))\n\
                print(pd.DataFrame({'x': [1, 2, 3]})['x'].sum())\n\
                print(sympy.factor(sympy.Symbol('x') ** 2 - 1))\n\
                print(nx.shortest_path_length(nx.path_graph(5), 0, 4))\n";
    let view = service
        .run_v1(json!({ "language": "python", "code": code,
                        "limits": { "wall_time_ms": 20_000, "cpu_time_ms": 10_000 } }))
        .await;
    assert_eq!(view["result"]["verdict"], "accepted", "{view}");
    assert_eq!(
        view["result"]["stdout"], "8 8\n6\n(x - 1)*(x + 1)\n4\n",
        "{view}"
    );
    service.stop().await;
}

/// An assembly program may reach the kernel through `int 0x80` (the 32-bit
/// table, which assembly tutorials use and the engine's profile allows):
/// the monitor's own seccomp filter refuses io_uring, not another
/// architecture's calls (a filter that killed those would kill this).
#[tokio::test]
async fn assembly_reaches_the_kernel_through_int_0x80() {
    let service = TestService::start().await;
    let code = "section .data\n\
                msg db \"int 0x80\", 10\n\
                section .text\n\
                global _start\n\
                _start:\n\
                \x20   mov eax, 4      ; write (32-bit table)\n\
                \x20   mov ebx, 1\n\
                \x20   mov ecx, msg\n\
                \x20   mov edx, 9\n\
                \x20   int 0x80\n\
                \x20   mov eax, 1      ; exit\n\
                \x20   xor ebx, ebx\n\
                \x20   int 0x80\n";
    let view = service
        .run_v1(json!({ "language": "assembly", "code": code }))
        .await;
    assert_eq!(view["result"]["verdict"], "accepted", "{view}");
    assert_eq!(view["result"]["stdout"], "int 0x80\n", "{view}");
    service.stop().await;
}
