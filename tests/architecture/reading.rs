//! Reading the source: each file of `src/` parsed with `syn` into what the
//! rules look for (paths, imports, strings, verdicts, methods called), and
//! the module graph's helpers (a path's module, a cycle).

use super::*;

/// One file of the library: its module path (`["queue", "worker"]`) and
/// its syntax tree.
pub(super) struct SourceFile {
    pub(super) path: PathBuf,
    pub(super) module: Vec<String>,
    pub(super) syntax: syn::File,
}

pub(super) fn source_files() -> Vec<SourceFile> {
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
pub(super) fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

/// What one file refers to and makes, outside its unit tests.
#[derive(Default)]
pub(super) struct Findings {
    /// Every path written (in `use` trees expanded), with its line.
    pub(super) paths: Vec<(Vec<String>, usize)>,
    /// The paths of `use` items (a one-segment path elsewhere is a local
    /// name, not a crate).
    pub(super) imports: Vec<(Vec<String>, usize)>,
    /// String literals, with their lines.
    pub(super) strings: Vec<(String, usize)>,
    /// `Verdict::<Variant>` used as a value (not compared, not matched).
    pub(super) verdicts: Vec<(String, usize)>,
    /// Methods called (`x.name(...)`), with their lines.
    pub(super) methods: Vec<(String, usize)>,
}

pub(super) struct Collector {
    pub(super) found: Findings,
}

pub(super) fn segments(path: &syn::Path) -> Vec<String> {
    path.segments.iter().map(|s| s.ident.to_string()).collect()
}

pub(super) fn line(span: proc_macro2::Span) -> usize {
    span.start().line
}

pub(super) fn is_verdict(path: &syn::Path) -> bool {
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
            syn::Expr::MethodCall(call) => {
                self.found
                    .methods
                    .push((call.method.to_string(), line(call.method.span())));
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

pub(super) fn findings(file: &SourceFile) -> Findings {
    let mut collector = Collector {
        found: Findings::default(),
    };
    collector.visit_file(&file.syntax);
    collector.found
}

/// All files with what they contain, parsed once.
pub(super) fn sources() -> Vec<(SourceFile, Findings)> {
    source_files()
        .into_iter()
        .map(|f| {
            let found = findings(&f);
            (f, found)
        })
        .collect()
}

/// The module a path written in `from` refers to, if it is one of ours.
pub(super) fn resolve(
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
pub(super) fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
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
