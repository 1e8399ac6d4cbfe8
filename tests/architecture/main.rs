//! The invariants ARCHITECTURE.md states, checked on the source, as
//! rust-analyzer's `tidy` does: each rule reads `src/` (parsed with `syn`,
//! so comments, strings and tests do not count) and names every place that
//! breaks it. To change a rule, change it here and in ARCHITECTURE.md
//! together.
//!
//! - Only `sandbox` names `bollard`; only `queue` names `redis` or `bullmq`.
//! - Only `config` reads the environment (`std::env`, `EnvFilter`'s
//!   default environment).
//! - No language is named in a string of the service's code.
//! - A `Verdict` is made only in `execute/verdict.rs` (elsewhere it is
//!   compared or matched, never constructed).
//! - No source file (of the service, the monitor, the load test or the
//!   tests) holds more than 800 lines before its unit tests.
//! - No cycle among the crate's modules: among `src/`'s top-level modules,
//!   nor among the files of one module; each module uses only the layers
//!   before its own.
//! - `http` uses no `sandbox` (it reads what a worker publishes); `queue`
//!   uses neither `execute` nor `compat`.
//! - Only `ending` pays for a job's end (the share given back, the webhook
//!   owed, the job counted).
//! - The monitor calls from `libc` only what no crate offers
//!   ([`MONITOR_LIBC_CALLS`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

mod reading;

use reading::{SourceFile, find_cycle, findings, resolve, sources};

fn starts_with(module: &[String], prefix: &str) -> bool {
    module.first().is_some_and(|m| m == prefix)
}

fn report(rule: &str, violations: &[String]) {
    assert!(
        violations.is_empty(),
        "{rule} (see ARCHITECTURE.md):\n  {}",
        violations.join("\n  ")
    );
}

#[test]
fn only_sandbox_talks_to_docker_and_only_queue_to_redis() {
    let owners = [
        ("bollard", "sandbox"),
        ("redis", "queue"),
        ("bullmq", "queue"),
    ];
    let mut violations = Vec::new();
    for (file, found) in sources() {
        let crate_paths = found
            .paths
            .iter()
            .filter(|(path, _)| path.iter().filter(|s| !s.is_empty()).count() >= 2)
            .chain(&found.imports);
        for (path, line) in crate_paths {
            let first = path.iter().find(|s| !s.is_empty());
            for (krate, owner) in owners {
                if first.is_some_and(|f| f == krate) && !starts_with(&file.module, owner) {
                    violations.push(format!(
                        "src/{}:{line}: {} (only {owner} may use {krate})",
                        file.path.display(),
                        path.join("::")
                    ));
                }
            }
        }
    }
    report("Docker, Redis and BullMQ each have one module", &violations);
}

#[test]
fn only_config_reads_the_environment() {
    let mut violations = Vec::new();
    for (file, found) in sources() {
        if file.module == ["config"] {
            continue;
        }
        for (path, line) in &found.paths {
            let names: Vec<&str> = path
                .iter()
                .map(String::as_str)
                .filter(|s| !s.is_empty())
                .collect();
            let reads = names.starts_with(&["std", "env"])
                || names.ends_with(&["from_default_env"])
                || names.ends_with(&["try_from_default_env"]);
            if reads {
                violations.push(format!(
                    "src/{}:{line}: {}",
                    file.path.display(),
                    names.join("::")
                ));
            }
        }
    }
    report("only src/config.rs reads the environment", &violations);
}

#[test]
fn no_language_is_named_in_the_services_code() {
    let table = code_runner::language::LanguageTable::built_in();
    let mut names: BTreeSet<String> = BTreeSet::new();
    for language in table.all() {
        names.insert(language.id.to_lowercase());
        names.extend(language.aliases.iter().map(|a| a.to_lowercase()));
    }
    let mut violations = Vec::new();
    for (file, found) in sources() {
        for (text, line) in &found.strings {
            let lower = text.to_lowercase();
            // A whole string naming one, or a word of a longer one (short
            // names like `c` or `go` only as a whole string; `text/javascript`
            // is one word, a media type).
            let named = names.iter().find(|name| {
                lower == **name
                    || (name.len() >= 4
                        && lower
                            .split(|c: char| !c.is_ascii_alphanumeric() && !"+#/-_.".contains(c))
                            .any(|word| word == *name))
            });
            if let Some(name) = named {
                violations.push(format!(
                    "src/{}:{line}: {text:?} names {name}",
                    file.path.display()
                ));
            }
        }
    }
    report(
        "languages are data (docker/languages.toml), never named in src/",
        &violations,
    );
}

#[test]
fn verdicts_are_made_only_in_execute_verdict() {
    let mut violations = Vec::new();
    for (file, found) in sources() {
        if file.module == ["execute", "verdict"] {
            continue;
        }
        for (verdict, line) in &found.verdicts {
            violations.push(format!("src/{}:{line}: {verdict}", file.path.display()));
        }
    }
    report(
        "a Verdict is decided in src/execute/verdict.rs only",
        &violations,
    );
}

/// Most lines a source file holds before its unit tests: a file past it
/// holds more than one concern.
const MAX_FILE_LINES: usize = 800;

#[test]
fn no_source_file_is_a_warehouse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut violations = Vec::new();
    let mut dirs: Vec<PathBuf> = ["src", "monitor/src", "loadtest/src", "tests"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if !path.ends_with("node_modules") {
                    dirs.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let lines = text
                .lines()
                .take_while(|line| !line.starts_with("#[cfg(test)]"))
                .count();
            if lines > MAX_FILE_LINES {
                violations.push(format!(
                    "{}: {lines} lines before its unit tests",
                    path.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    violations.sort();
    report(
        &format!("no source file over {MAX_FILE_LINES} lines before its unit tests"),
        &violations,
    );
}

#[test]
fn the_modules_depend_on_each_other_without_a_cycle() {
    let sources = sources();
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|(f, _)| f.module.clone()).collect();
    // Two graphs: src/'s top-level modules, and the files of each module
    // (references to and from the module's own `mod.rs` are its wiring).
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut evidence: BTreeMap<(String, String), String> = BTreeMap::new();
    for (file, found) in &sources {
        if file.module.is_empty() {
            continue;
        }
        for (path, line) in &found.paths {
            let Some(target) = resolve(&file.module, path, &modules) else {
                continue;
            };
            if target.is_empty() {
                continue;
            }
            let (from, to) = if file.module[0] != target[0] {
                (file.module[0].clone(), target[0].clone())
            } else if file.module.len() >= 2 && target.len() >= 2 && file.module[1] != target[1] {
                (file.module[..2].join("::"), target[..2].join("::"))
            } else {
                continue;
            };
            edges.entry(to.clone()).or_default();
            edges.entry(from.clone()).or_default().insert(to.clone());
            evidence.entry((from, to)).or_insert_with(|| {
                format!("src/{}:{line}: {}", file.path.display(), path.join("::"))
            });
        }
    }
    // Every edge on a cycle, each with one place that makes it.
    let mut steps = Vec::new();
    while let Some(cycle) = find_cycle(&edges) {
        for pair in cycle.windows(2) {
            let (from, to) = (pair[0].clone(), pair[1].clone());
            steps.push(format!(
                "{from} → {to} ({})",
                evidence[&(from.clone(), to.clone())]
            ));
        }
        // Cut the cycle's last edge and look for another.
        let last = &cycle[cycle.len() - 2..];
        edges.get_mut(&last[0]).unwrap().remove(&last[1]);
        steps.push(String::new());
    }
    report("the modules form no cycle", &steps);
}

#[test]
fn foreign_apis_are_translations_of_the_job_model() {
    let sources = sources();
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|(f, _)| f.module.clone()).collect();
    let allowed = ["compat", "job", "language", "limits"];
    let mut violations = Vec::new();
    for (file, found) in &sources {
        if file.module.first().map(String::as_str) != Some("compat") {
            continue;
        }
        for (path, line) in &found.paths {
            let Some(target) = resolve(&file.module, path, &modules) else {
                continue;
            };
            if target
                .first()
                .is_some_and(|m| !allowed.contains(&m.as_str()))
            {
                violations.push(format!(
                    "src/{}:{line}: {}",
                    file.path.display(),
                    path.join("::")
                ));
            }
        }
    }
    report(
        "compat depends only on job, language and limits",
        &violations,
    );
}

/// The layers of `src/`'s top-level modules, lowest first: a module uses
/// only modules of the layers before its own (ARCHITECTURE.md, rule 6).
const LAYERS: &[&[&str]] = &[
    &["backoff", "compare", "limits"],
    &["language"],
    &["job"],
    &["status", "metrics"],
    &["sandbox"],
    &["config"],
    &["queue"],
    &["compat", "telemetry", "execute"],
    &["ending", "callback"],
    &["actors"],
    &["http"],
    &["app"],
];

/// Pairs a layer above may still not use: the API reaches the engine only
/// through what a worker publishes (`status::EngineView`), and the queue
/// is an adapter that knows neither execution nor the foreign APIs.
const APART: [(&str, &str); 3] = [
    ("http", "sandbox"),
    ("queue", "execute"),
    ("queue", "compat"),
];

#[test]
fn the_api_and_the_queue_keep_apart_from_what_is_not_theirs() {
    let violations: Vec<String> = module_uses()
        .into_iter()
        .filter(|u| APART.contains(&(u.from.as_str(), u.to.as_str())))
        .map(|u| u.place)
        .collect();
    report(
        "http reaches no sandbox, the queue no execution or foreign API",
        &violations,
    );
}

/// What a job's end owes, each paid only by `ending` (ARCHITECTURE.md,
/// rule 8): the share given back, the webhook owed, the job counted.
const END_PAYMENTS: [&str; 3] = ["release_share", "owe_delivery", "job_finished"];

#[test]
fn only_ending_pays_for_a_jobs_end() {
    let mut violations = Vec::new();
    for (file, found) in sources() {
        // The queue stores what it is handed; metrics defines the counter.
        if starts_with(&file.module, "ending") {
            continue;
        }
        let called = found.methods.iter().cloned().chain(
            found
                .paths
                .iter()
                .filter_map(|(path, line)| path.last().map(|name| (name.clone(), *line))),
        );
        for (name, line) in called {
            if END_PAYMENTS.contains(&name.as_str()) {
                violations.push(format!("src/{}:{line}: {name}", file.path.display()));
            }
        }
    }
    report("only ending pays for a job's end", &violations);
}

#[test]
fn each_module_uses_only_the_layers_before_it() {
    let layer = |module: &str| LAYERS.iter().position(|l| l.contains(&module));
    let mut violations: Vec<String> = sources()
        .iter()
        .filter_map(|(file, _)| file.module.first())
        .filter(|own| layer(own).is_none())
        .map(|own| format!("{own} is in no layer"))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    violations.extend(
        module_uses()
            .into_iter()
            .filter(|u| layer(&u.to).is_none_or(|to| layer(&u.from).is_some_and(|from| to >= from)))
            .map(|u| u.place),
    );
    report(
        "each module uses only the layers before its own",
        &violations,
    );
}

/// One top-level module of `src/` using another, and where.
struct ModuleUse {
    from: String,
    to: String,
    /// `src/<file>:<line>: <from> uses <path>`.
    place: String,
}

/// Every use of one top-level module by another (a module's own paths
/// aside), for the rules on which may use which.
fn module_uses() -> Vec<ModuleUse> {
    let sources = sources();
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|(f, _)| f.module.clone()).collect();
    let mut uses = Vec::new();
    for (file, found) in &sources {
        let Some(from) = file.module.first() else {
            continue;
        };
        for (path, line) in &found.paths {
            let Some(to) = resolve(&file.module, path, &modules).and_then(|t| t.first().cloned())
            else {
                continue;
            };
            if &to != from {
                uses.push(ModuleUse {
                    place: format!(
                        "src/{}:{line}: {from} uses {}",
                        file.path.display(),
                        path.join("::")
                    ),
                    from: from.clone(),
                    to,
                });
            }
        }
    }
    uses
}

/// The rules above are only as good as their reading of the source: make
/// sure each one sees what it looks for.
#[test]
fn the_rules_see_what_they_look_for() {
    let file = |module: &[&str], text: &str| SourceFile {
        path: PathBuf::from("example.rs"),
        module: module.iter().map(|s| s.to_string()).collect(),
        syntax: syn::parse_file(text).unwrap(),
    };
    let found = findings(&file(
        &["http", "x"],
        r#"
        use bollard::{Docker, container::{self as c}, image::Build as B};
        use super::super::queue::JobQueue;
        fn f(v: Verdict) -> bool {
            let made = crate::job::Verdict::Cancelled;
            let text = format!("{}", std::env::var("A").unwrap());
            match v { Verdict::Accepted => v == Verdict::Cancelled, _ => matches!(v, Verdict::RuntimeError) }
        }
        async fn h(v: Verdict) {
            let _ = json!({ "made": crate::job::Verdict::Skipped, "same": v == Verdict::Accepted, "s": "in-json" });
            tokio::select! { _ = bollard::ping() => {}, else => {} }
            let _ = format!("{:?}", state.queue.release_share("b", &[]).await);
        }
        #[cfg(test)]
        mod tests { fn g() { let _ = Verdict::Accepted; let _ = "python"; } }
        "#,
    ));
    let paths: Vec<String> = found.paths.iter().map(|(p, _)| p.join("::")).collect();
    for expected in [
        "bollard::Docker",
        "bollard::container",
        "bollard::image::Build",
        "super::super::queue::JobQueue",
        "std::env::var",
    ] {
        assert!(
            paths.contains(&expected.to_string()),
            "{expected} in {paths:?}"
        );
    }
    // Macro bodies that are not expressions are read too.
    for expected in ["bollard::ping", "tokio::select"] {
        assert!(
            paths.contains(&expected.to_string()),
            "{expected} in {paths:?}"
        );
    }
    assert!(found.strings.iter().any(|(s, _)| s == "in-json"));
    // Methods called, in macro arguments too.
    assert!(found.methods.iter().any(|(m, _)| m == "release_share"));
    let verdicts: Vec<&str> = found.verdicts.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(
        verdicts,
        [
            "crate::job::Verdict::Cancelled",
            "crate::job::Verdict::Skipped"
        ]
    );
    assert!(!found.strings.iter().any(|(s, _)| s == "python"));
    let modules: BTreeSet<Vec<String>> =
        [vec!["http".to_string(), "x".into()], vec!["queue".into()]]
            .into_iter()
            .collect();
    let from = ["http".to_string(), "x".into()];
    let path: Vec<String> = ["super", "super", "queue", "JobQueue"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(resolve(&from, &path, &modules), Some(vec!["queue".into()]));
    let edges: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), ["b".to_string()].into()),
        ("b".to_string(), ["a".to_string()].into()),
    ]
    .into();
    assert_eq!(
        find_cycle(&edges),
        Some(vec!["a".into(), "b".into(), "a".into()])
    );
}

/// What the monitor may still call from `libc`: what neither std, `rustix`
/// nor `seccompiler` offers (fork and exec, `kill(-1)`, the usage of
/// reaped children, the signal reset before exec, System V IPC, the
/// allocator's threshold and the fork mark).
const MONITOR_LIBC_CALLS: [&str; 12] = [
    "fork",
    "execve",
    "_exit",
    "kill",
    "wait4",
    "getrusage",
    "syscall",
    "shmctl",
    "msgctl",
    "semctl",
    "mallopt",
    "madvise",
];

/// The `libc` functions called in a file, outside its unit tests: (line,
/// name).
fn libc_calls(syntax: &syn::File) -> Vec<(usize, String)> {
    #[derive(Default)]
    struct Calls {
        found: Vec<(usize, String)>,
    }
    impl<'a> Visit<'a> for Calls {
        fn visit_item(&mut self, item: &'a syn::Item) {
            let attrs = match item {
                syn::Item::Mod(m) => &m.attrs,
                syn::Item::Fn(f) => &f.attrs,
                _ => return syn::visit::visit_item(self, item),
            };
            if !reading::is_test_only(attrs) {
                syn::visit::visit_item(self, item);
            }
        }
        fn visit_expr_call(&mut self, call: &'a syn::ExprCall) {
            if let syn::Expr::Path(path) = &*call.func
                && path
                    .path
                    .segments
                    .first()
                    .is_some_and(|s| s.ident == "libc")
                && let Some(last) = path.path.segments.last()
            {
                let line = last.ident.span().start().line;
                self.found.push((line, last.ident.to_string()));
            }
            syn::visit::visit_expr_call(self, call);
        }
    }
    let mut calls = Calls::default();
    calls.visit_file(syntax);
    calls.found
}

#[test]
fn the_monitor_calls_libc_only_where_no_crate_has_the_call() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("monitor/src");
    let mut violations = Vec::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let syntax = syn::parse_file(&text).unwrap();
        for (line, name) in libc_calls(&syntax) {
            seen += 1;
            if !MONITOR_LIBC_CALLS.contains(&name.as_str()) {
                violations.push(format!(
                    "{}:{line}: {name} (rustix or std has it: use theirs)",
                    path.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    assert!(seen > 5, "the monitor's unsafe blocks were not found");
    violations.sort();
    report(
        "the monitor calls from libc only what no crate offers",
        &violations,
    );
    // The rule sees what it looks for: a read that rustix offers is caught,
    // one in a unit test is not, nor what is not libc's.
    let example = syn::parse_file(
        "fn f() { unsafe { libc::read(0, p, 1); libc::fork(); std::ptr::null_mut::<u8>(); } }
         #[cfg(test)] mod tests { fn g() { unsafe { libc::write(1, p, 1) }; } }",
    )
    .unwrap();
    let names: Vec<String> = libc_calls(&example).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["read", "fork"]);
}
