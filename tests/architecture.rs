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
//!   nor among the files of one module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// One file of the library: its module path (`["queue", "worker"]`) and
/// its syntax tree.
struct SourceFile {
    path: PathBuf,
    module: Vec<String>,
    syntax: syn::File,
}

fn source_files() -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&root).unwrap();
            // The binary is a crate of its own, a client of the library.
            if relative == Path::new("main.rs") {
                continue;
            }
            let mut module: Vec<String> = relative
                .with_extension("")
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let syntax =
                syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            files.push(SourceFile {
                path: relative.to_path_buf(),
                module,
                syntax,
            });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    assert!(files.len() > 20, "src/ not found");
    files
}

/// `#[cfg(test)]` (unit tests may name anything).
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

/// What one file refers to and makes, outside its unit tests.
#[derive(Default)]
struct Findings {
    /// Every path written (in `use` trees expanded), with its line.
    paths: Vec<(Vec<String>, usize)>,
    /// The paths of `use` items (a one-segment path elsewhere is a local
    /// name, not a crate).
    imports: Vec<(Vec<String>, usize)>,
    /// String literals, with their lines.
    strings: Vec<(String, usize)>,
    /// `Verdict::<Variant>` used as a value (not compared, not matched).
    verdicts: Vec<(String, usize)>,
}

struct Collector {
    found: Findings,
}

fn segments(path: &syn::Path) -> Vec<String> {
    path.segments.iter().map(|s| s.ident.to_string()).collect()
}

fn line(span: proc_macro2::Span) -> usize {
    span.start().line
}

fn is_verdict(path: &syn::Path) -> bool {
    let names = segments(path);
    names.len() >= 2 && names[names.len() - 2] == "Verdict"
}

impl Collector {
    fn import(&mut self, path: Vec<String>, line: usize) {
        self.found.imports.push((path.clone(), line));
        self.found.paths.push((path, line));
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree, line: usize) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree, line);
                prefix.pop();
            }
            syn::UseTree::Name(syn::UseName { ident })
            | syn::UseTree::Rename(syn::UseRename { ident, .. }) => {
                let mut path = prefix.clone();
                if ident != "self" {
                    path.push(ident.to_string());
                }
                self.import(path, line);
            }
            syn::UseTree::Glob(_) => self.import(prefix.clone(), line),
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.use_tree(prefix, tree, line);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Collector {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_item_mod(self, item);
        }
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_item_fn(self, item);
        }
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_item_impl(self, item);
        }
    }

    // Doc comments and attributes name what they like.
    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {}

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        if is_test_only(&item.attrs) {
            return;
        }
        let line = line(item.use_token.span);
        let mut prefix = Vec::new();
        if item.leading_colon.is_some() {
            prefix.push(String::new());
        }
        self.use_tree(&mut prefix, &item.tree, line);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let mut names = segments(path);
        if path.leading_colon.is_some() {
            names.insert(0, String::new());
        }
        let line = path.segments.first().map_or(0, |s| line(s.ident.span()));
        self.found.paths.push((names, line));
        syn::visit::visit_path(self, path);
    }

    fn visit_lit_str(&mut self, lit: &'ast syn::LitStr) {
        self.found.strings.push((lit.value(), line(lit.span())));
    }

    fn visit_expr(&mut self, expr: &'ast syn::Expr) {
        match expr {
            syn::Expr::Path(p) if is_verdict(&p.path) => {
                self.found.verdicts.push((
                    segments(&p.path).join("::"),
                    line(p.path.segments[0].ident.span()),
                ));
                syn::visit::visit_expr(self, expr);
            }
            // Comparing with a verdict makes none.
            syn::Expr::Binary(b) if matches!(b.op, syn::BinOp::Eq(_) | syn::BinOp::Ne(_)) => {
                for side in [&*b.left, &*b.right] {
                    match side {
                        syn::Expr::Path(p) if is_verdict(&p.path) => self.visit_path(&p.path),
                        other => self.visit_expr(other),
                    }
                }
            }
            _ => syn::visit::visit_expr(self, expr),
        }
    }

    // Macro arguments are code too: where they parse as expressions
    // (`format!`, `vec!`, `assert!`, ...) they are visited as such, and any
    // other body (`json!`'s object syntax, `select!`'s branches) is read
    // token by token: its string literals, its paths, and a verdict written
    // as a value in it. `matches!` holds patterns.
    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.visit_path(&mac.path);
        if mac.path.is_ident("matches") {
            return;
        }
        let parser = syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
        match mac.parse_body_with(parser) {
            Ok(args) => {
                for arg in &args {
                    self.visit_expr(arg);
                }
            }
            Err(_) => self.tokens(mac.tokens.clone()),
        }
    }
}

impl Collector {
    /// What a macro body that is not a list of expressions holds: string
    /// literals, paths (`a::b::c`, leading `::` kept as an empty first
    /// segment) and the verdicts among them (a `Verdict::X` after `==` or
    /// `!=` compares, any other makes one), through nested groups.
    fn tokens(&mut self, stream: proc_macro2::TokenStream) {
        use proc_macro2::TokenTree;
        let trees: Vec<TokenTree> = stream.into_iter().collect();
        let mut i = 0;
        while i < trees.len() {
            match &trees[i] {
                TokenTree::Group(group) => self.tokens(group.stream()),
                TokenTree::Literal(literal) => {
                    if let Ok(text) = syn::parse_str::<syn::LitStr>(&literal.to_string()) {
                        self.found
                            .strings
                            .push((text.value(), line(literal.span())));
                    }
                }
                TokenTree::Ident(first) => {
                    // `a :: b :: c`: an ident, then pairs of `::` and an ident.
                    let mut names = vec![first.to_string()];
                    let mut end = i + 1;
                    while let (
                        Some(TokenTree::Punct(c1)),
                        Some(TokenTree::Punct(c2)),
                        Some(TokenTree::Ident(next)),
                    ) = (trees.get(end), trees.get(end + 1), trees.get(end + 2))
                    {
                        if c1.as_char() != ':' || c2.as_char() != ':' {
                            break;
                        }
                        names.push(next.to_string());
                        end += 3;
                    }
                    let at = line(first.span());
                    let compared = i >= 2
                        && matches!((&trees[i - 2], &trees[i - 1]),
                            (TokenTree::Punct(a), TokenTree::Punct(b))
                                if (a.as_char() == '=' || a.as_char() == '!') && b.as_char() == '=');
                    if names.len() >= 2 && names[names.len() - 2] == "Verdict" && !compared {
                        self.found.verdicts.push((names.join("::"), at));
                    }
                    self.found.paths.push((names, at));
                    i = end;
                    continue;
                }
                TokenTree::Punct(_) => {}
            }
            i += 1;
        }
    }
}

fn findings(file: &SourceFile) -> Findings {
    let mut collector = Collector {
        found: Findings::default(),
    };
    collector.visit_file(&file.syntax);
    collector.found
}

/// All files with what they contain, parsed once.
fn sources() -> Vec<(SourceFile, Findings)> {
    source_files()
        .into_iter()
        .map(|f| {
            let found = findings(&f);
            (f, found)
        })
        .collect()
}

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

/// The module a path written in `from` refers to, if it is one of ours.
fn resolve(
    from: &[String],
    path: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let mut absolute: Vec<String> = match path.first().map(String::as_str) {
        Some("crate") => path[1..].to_vec(),
        Some("self") => from.iter().chain(&path[1..]).cloned().collect(),
        Some("super") => {
            let mut base = from.to_vec();
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
            base.into_iter().chain(rest.iter().cloned()).collect()
        }
        Some(first) => {
            let mut child = from.to_vec();
            child.push(first.to_string());
            if !modules.contains(&child) {
                return None;
            }
            from.iter().chain(path).cloned().collect()
        }
        None => return None,
    };
    while !absolute.is_empty() {
        if modules.contains(&absolute) {
            return Some(absolute);
        }
        absolute.pop();
    }
    None
}

/// A cycle in `edges`, as the nodes along it, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, edges, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
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
