//! The shape ARCHITECTURE.md promises, checked on the source itself:
//!
//! - crates depend on each other only in the documented direction (the gateway on the store,
//!   never on the API; the console never on the store; `domain` on nothing that does IO);
//! - within a crate, the files' `use` lines and paths form no circle (A uses B uses … A);
//! - no non-test source file is over 700 lines.
//!
//! Paths are resolved from the parsed source (`syn`), so a circle through a re-export, a
//! grouped `use` or a fully qualified path in an expression counts the same as a plain `use`.
//! Code under `#[cfg(test)]` is left out: a module's unit tests may use anything.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every crate of the workspace: its directory and the workspace crates it may use.
const CRATES: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("protocol", &[]),
    // Remote desktop protocol work (IronRDP): no Sekisho crate, usable by the recorder for
    // replay and by the gateway for the relay.
    ("rdp", &[]),
    ("config", &["sekisho-domain"]),
    // Operational metrics: a registry every layer below the binary may count into.
    ("metrics", &[]),
    (
        "store",
        &["sekisho-domain", "sekisho-config", "sekisho-metrics"],
    ),
    (
        "recorder",
        &[
            "sekisho-domain",
            "sekisho-config",
            "sekisho-rdp",
            "sekisho-metrics",
        ],
    ),
    // Notifications: from the audit log and the outbox in the store, out by mail and
    // webhooks; no HTTP API, no gateway.
    (
        "notify",
        &["sekisho-domain", "sekisho-config", "sekisho-store"],
    ),
    (
        "approval-api",
        &[
            "sekisho-domain",
            "sekisho-config",
            "sekisho-store",
            "sekisho-recorder",
        ],
    ),
    // The console reads through the API router; it cannot reach the database.
    (
        "console",
        &["sekisho-domain", "sekisho-recorder", "sekisho-approval-api"],
    ),
    // The gateway reaches the database through the store, never through the API.
    (
        "gateway",
        &[
            "sekisho-domain",
            "sekisho-config",
            "sekisho-store",
            "sekisho-recorder",
            "sekisho-protocol",
            "sekisho-rdp",
            "sekisho-metrics",
        ],
    ),
    ("client", &["sekisho-protocol"]),
    (
        "testkit",
        &[
            "sekisho-domain",
            "sekisho-store",
            "sekisho-recorder",
            "sekisho-approval-api",
        ],
    ),
    (
        ".",
        &[
            "sekisho-domain",
            "sekisho-config",
            "sekisho-store",
            "sekisho-recorder",
            "sekisho-approval-api",
            "sekisho-console",
            "sekisho-gateway",
            "sekisho-notify",
            "sekisho-metrics",
        ],
    ),
];

/// Crates that do IO, which `domain` must not use (its rules are pure functions).
const IO_CRATES: &[&str] = &[
    "tokio", "sqlx", "reqwest", "axum", "hyper", "russh", "quinn", "rustls", "tracing",
];

fn dependencies(dir: &str, table: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join(dir).join("Cargo.toml")).unwrap();
    let doc: toml_edit::DocumentMut = text.parse().unwrap();
    doc.get(table)
        .and_then(|t| t.as_table_like())
        .map(|t| t.iter().map(|(k, _)| k.to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn crates_depend_on_each_other_only_downwards() {
    let mut wrong = vec![];
    for (dir, allowed) in CRATES {
        for dep in dependencies(dir, "dependencies") {
            if dep.starts_with("sekisho-") && !allowed.contains(&dep.as_str()) {
                wrong.push(format!("{dir} depends on {dep}"));
            }
        }
    }
    for dep in dependencies("domain", "dependencies") {
        if IO_CRATES.contains(&dep.as_str()) {
            wrong.push(format!("domain depends on {dep}, which does IO"));
        }
    }
    // Every crate of the workspace is listed above, so a new one must state its place.
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let doc: toml_edit::DocumentMut = text.parse().unwrap();
    let members: BTreeSet<String> = doc["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.as_str().map(str::to_owned))
        .collect();
    let listed: BTreeSet<String> = CRATES
        .iter()
        .filter(|(d, _)| *d != ".")
        .map(|(d, _)| (*d).to_owned())
        .collect();
    assert_eq!(members, listed, "workspace members and CRATES differ");
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// The source files of one crate root (`lib.rs` or `main.rs`) and their module paths.
fn modules(src: &Path, root_file: &str) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    out.insert(vec![], src.join(root_file));
    let mut stack = vec![(src.to_path_buf(), vec![])];
    while let Some((dir, prefix)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if prefix.is_empty() && name == "bin" {
                    continue; // binaries are crate roots of their own
                }
                let mut p: Vec<String> = prefix.clone();
                p.push(name);
                stack.push((path, p));
            } else if let Some(stem) = name.strip_suffix(".rs") {
                let mut p: Vec<String> = prefix.clone();
                match stem {
                    "mod" => {}
                    "lib" | "main" if prefix.is_empty() => continue,
                    _ => p.push(stem.to_owned()),
                }
                out.insert(p, path);
            }
        }
    }
    out
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

/// Collects the paths a file refers to, resolved to absolute module paths of its crate.
struct Refs<'a> {
    /// The module the visitor is in (the file's, or an inline module within it).
    module: Vec<String>,
    /// Every module of the crate that is a file.
    files: &'a BTreeMap<Vec<String>, PathBuf>,
    /// What the file refers to, as absolute paths.
    found: BTreeSet<Vec<String>>,
    /// Names brought in by the file's `use` lines (`use crate::ssh;` then `ssh::conn::Conn`).
    aliases: BTreeMap<String, Vec<String>>,
}

impl Refs<'_> {
    /// The absolute path `segments` names from the current module, if it is in this crate.
    fn absolute(&self, segments: &[String]) -> Option<Vec<String>> {
        let first = segments.first()?;
        let mut path = match first.as_str() {
            "crate" => vec![],
            "self" => self.module.clone(),
            "super" => {
                let mut m = self.module.clone();
                let mut rest = segments;
                while rest.first().is_some_and(|s| s == "super") {
                    m.pop();
                    rest = &rest[1..];
                }
                m.extend(rest.iter().cloned());
                return Some(m);
            }
            name => {
                if let Some(target) = self.aliases.get(name) {
                    target.clone()
                } else {
                    // A child module named without `self::` (2018 paths).
                    let mut child = self.module.clone();
                    child.push(name.to_owned());
                    if !self.files.contains_key(&child) {
                        return None;
                    }
                    child
                }
            }
        };
        path.extend(segments[1..].iter().cloned());
        Some(path)
    }

    fn resolve(&mut self, segments: &[String]) {
        if let Some(path) = self.absolute(segments) {
            self.found.insert(path);
        }
    }

    /// A `use` line: a name for later paths; a use of what it names unless that is only a
    /// module (then what the file takes from the module is counted where it is used).
    fn use_path(&mut self, segments: &[String], alias: Option<String>) {
        let Some(path) = self.absolute(segments) else {
            return;
        };
        if let Some(name) = alias {
            self.aliases.insert(name, path.clone());
        }
        if !self.files.contains_key(&path) || segments.last().is_some_and(|s| s == "*") {
            self.found.insert(path);
        }
    }
}

/// The paths of a `use` tree, each with the name it brings in (none for a glob).
type UsePath = (Vec<String>, Option<String>);

fn flatten(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<UsePath>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let mut p = prefix.clone();
            if n.ident != "self" {
                p.push(n.ident.to_string());
            }
            let name = p.last().cloned();
            out.push((p, name));
        }
        syn::UseTree::Rename(r) => {
            let mut p = prefix.clone();
            p.push(r.ident.to_string());
            out.push((p, Some(r.rename.to_string())));
        }
        syn::UseTree::Glob(_) => {
            let mut p = prefix.clone();
            p.push("*".into());
            out.push((p, None));
        }
        syn::UseTree::Group(g) => {
            for t in &g.items {
                flatten(t, prefix, out);
            }
        }
    }
}

impl<'ast> Visit<'ast> for Refs<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
            syn::Item::Struct(s) => &s.attrs,
            syn::Item::Enum(e) => &e.attrs,
            syn::Item::Const(c) => &c.attrs,
            syn::Item::Static(s) => &s.attrs,
            syn::Item::Trait(t) => &t.attrs,
            syn::Item::Type(t) => &t.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if is_test_only(attrs) {
            return;
        }
        match item {
            syn::Item::Mod(m) if m.content.is_some() => {
                self.module.push(m.ident.to_string());
                syn::visit::visit_item_mod(self, m);
                self.module.pop();
            }
            syn::Item::Use(u) => {
                let mut paths = vec![];
                flatten(&u.tree, &mut vec![], &mut paths);
                for (p, alias) in paths {
                    self.use_path(&p, alias);
                }
            }
            _ => syn::visit::visit_item(self, item),
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_test_only(&f.attrs) {
            syn::visit::visit_impl_item_fn(self, f);
        }
    }

    /// Paths inside macro calls (`routes!(requests::file)`, `html! { (Frame::new()) }`)
    /// count too: syn leaves them as tokens, so they are read from the tokens.
    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        syn::visit::visit_macro(self, m);
        let mut paths = vec![];
        token_paths(m.tokens.clone(), &mut paths);
        for p in paths {
            if p.len() > 1 || p.first().is_some_and(|f| self.aliases.contains_key(f)) {
                self.resolve(&p);
            }
        }
    }

    /// `pub(super)`, `pub(crate)`: a visibility, not a use.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.resolve(&segments);
        syn::visit::visit_path(self, path);
    }
}

/// The `a::b::c` sequences of a token stream, groups included.
fn token_paths(tokens: proc_macro2::TokenStream, out: &mut Vec<Vec<String>>) {
    use proc_macro2::{Spacing, TokenTree};
    let mut current: Vec<String> = vec![];
    // Colons seen since the last identifier: 2 (`::`) continues a path.
    let mut colons = 0;
    let flush = |current: &mut Vec<String>, out: &mut Vec<Vec<String>>| {
        if !current.is_empty() {
            out.push(std::mem::take(current));
        }
    };
    for tt in tokens {
        match tt {
            TokenTree::Ident(i) => {
                if colons != 2 {
                    flush(&mut current, out);
                }
                current.push(i.to_string());
                colons = 0;
            }
            TokenTree::Punct(p) if p.as_char() == ':' => {
                colons += 1;
                if colons == 1 && p.spacing() != Spacing::Joint {
                    colons = 0;
                    flush(&mut current, out);
                }
            }
            TokenTree::Group(g) => {
                flush(&mut current, out);
                colons = 0;
                token_paths(g.stream(), out);
            }
            _ => {
                flush(&mut current, out);
                colons = 0;
            }
        }
    }
    flush(&mut current, out);
}

/// The file a module path lives in: the longest prefix that is a file.
fn file_of<'a>(files: &'a BTreeMap<Vec<String>, PathBuf>, path: &[String]) -> &'a Vec<String> {
    (0..=path.len())
        .rev()
        .find_map(|n| files.get_key_value(&path[..n]).map(|(k, _)| k))
        .unwrap_or_else(|| files.keys().next().unwrap())
}

/// Strongly connected components with more than one file (Tarjan).
fn circles(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<Vec<String>>> {
    struct T<'a> {
        edges: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on: BTreeSet<&'a Vec<String>>,
        out: Vec<Vec<Vec<String>>>,
    }
    fn go<'a>(t: &mut T<'a>, v: &'a Vec<String>) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.edges.get(v).into_iter().flatten() {
            if !t.index.contains_key(w) {
                go(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut component = vec![];
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                t.out.push(component);
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        on: BTreeSet::new(),
        out: vec![],
    };
    for v in edges.keys() {
        if !t.index.contains_key(v) {
            go(&mut t, v);
        }
    }
    t.out
}

/// The crate roots to check: (crate directory, source directory, root file).
fn roots() -> Vec<(String, PathBuf, &'static str)> {
    let mut out = vec![];
    for (dir, _) in CRATES {
        let src = root().join(dir).join("src");
        for file in ["lib.rs", "main.rs"] {
            if src.join(file).exists() {
                out.push(((*dir).to_owned(), src.clone(), file));
            }
        }
    }
    out
}

/// The files of the crate rooted at `src/root_file`: for each, the files it uses, with one
/// example path per pair.
struct Uses {
    files: BTreeMap<Vec<String>, PathBuf>,
    edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    why: BTreeMap<(Vec<String>, Vec<String>), String>,
}

fn uses_of(src: &Path, root_file: &str) -> Uses {
    let files = modules(src, root_file);
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut why: BTreeMap<(Vec<String>, Vec<String>), String> = BTreeMap::new();
    for (module, path) in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let parsed = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if is_test_only(&parsed.attrs) {
            continue;
        }
        let mut refs = Refs {
            module: module.clone(),
            files: &files,
            found: BTreeSet::new(),
            aliases: BTreeMap::new(),
        };
        // `use` lines first, so that paths through their names resolve wherever they are.
        for item in &parsed.items {
            if matches!(item, syn::Item::Use(_)) {
                refs.visit_item(item);
            }
        }
        refs.visit_file(&parsed);
        let mut to = BTreeSet::new();
        for p in &refs.found {
            let file = file_of(&files, p);
            if file != module {
                to.insert(file.clone());
                why.entry((module.clone(), file.clone()))
                    .or_insert_with(|| p.join("::"));
            }
        }
        edges.insert(module.clone(), to);
    }
    Uses { files, edges, why }
}

/// The circles among the files of the crate rooted at `src/root_file`, each with the uses
/// inside it (one example per pair of files), paths shown relative to `base`.
fn circles_of(src: &Path, root_file: &str, base: &Path) -> Vec<String> {
    let Uses { files, edges, why } = uses_of(src, root_file);
    let name = |m: &Vec<String>| files[m].strip_prefix(base).unwrap().display().to_string();
    let mut found = vec![];
    for circle in circles(&edges) {
        let names: Vec<String> = circle.iter().map(name).collect();
        let mut text = names.join(" ↔ ");
        // The uses inside the circle, one example each, to show where to cut it.
        for a in &circle {
            for b in edges[a].iter().filter(|b| circle.contains(b)) {
                text.push_str(&format!(
                    "\n    {} uses {} ({})",
                    name(a),
                    name(b),
                    why[&(a.clone(), b.clone())]
                ));
            }
        }
        found.push(text);
    }
    found
}

/// Layers inside a crate: (crate directory, module, modules it must not use).
const LAYERS: &[(&str, &str, &[&str])] = &[
    // One session layer for every transport: it knows none of them.
    ("gateway", "session", &["ssh", "quic", "https", "serve"]),
    // Pages render views; they never call the API or read the request.
    (
        "console",
        "pages",
        &["handlers", "client", "extract", "context"],
    ),
    // What handlers share does not reach back into them.
    (
        "approval-api",
        "api::state",
        &["api::access", "api::extract"],
    ),
];

#[test]
fn modules_do_not_use_the_layers_above_them() {
    let mut wrong = vec![];
    for (dir, module, forbidden) in LAYERS {
        let src = root().join(dir).join("src");
        let uses = uses_of(&src, "lib.rs");
        let path = |m: &str| -> Vec<String> { m.split("::").map(str::to_owned).collect() };
        let below = path(module);
        for (from, to) in &uses.edges {
            if !from.starts_with(&below) {
                continue;
            }
            for target in to {
                if forbidden.iter().any(|f| target.starts_with(&path(f))) {
                    wrong.push(format!(
                        "{dir}: {} uses {} ({})",
                        uses.files[from].display(),
                        uses.files[target].display(),
                        uses.why[&(from.clone(), target.clone())]
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn the_files_of_a_crate_use_each_other_without_circles() {
    let mut found = vec![];
    for (dir, src, root_file) in roots() {
        for circle in circles_of(&src, root_file, &root()) {
            found.push(format!("{dir}: {circle}"));
        }
    }
    assert!(
        found.is_empty(),
        "files that use each other in a circle:\n{}",
        found.join("\n")
    );
}

/// The checker itself finds circles however they are written: through a re-export, a
/// grouped `use`, a path in an expression, a macro's tokens, an alias; and not through
/// `pub(super)` or test code.
#[test]
fn the_circle_check_sees_every_kind_of_use() {
    let cases: &[(&str, &str, bool)] = &[
        ("use crate::b::B;", "pub fn f() { crate::a::f(); }", true),
        (
            "use super::b::{self, B};",
            "pub fn f() { let _ = super::a::A; }",
            true,
        ),
        (
            "pub fn g() { let _ = crate::b::B; }",
            "use crate::a; pub fn f() { a::g(); }",
            true,
        ),
        (
            "use crate::b::B;",
            "pub fn f() { println!(\"{:?}\", crate::a::A); }",
            true,
        ),
        ("use crate::b::B;", "pub(in crate::a) fn f() {}", false),
        (
            "use crate::b::B;",
            "#[cfg(test)] mod tests { use crate::a::A; }",
            false,
        ),
    ];
    for (a, b, circle) in cases {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").unwrap();
        std::fs::write(src.join("a.rs"), format!("pub struct A;\n{a}\n")).unwrap();
        std::fs::write(src.join("b.rs"), format!("pub struct B;\n{b}\n")).unwrap();
        let found = circles_of(&src, "lib.rs", dir.path());
        assert_eq!(
            !found.is_empty(),
            *circle,
            "a: {a}\nb: {b}\nfound: {found:?}"
        );
    }
}

#[test]
fn no_source_file_is_over_700_lines() {
    let mut long = vec![];
    for (_, src, root_file) in roots() {
        for path in modules(&src, root_file).values() {
            let lines = std::fs::read_to_string(path).unwrap().lines().count();
            if lines > 700 {
                long.push(format!("{}: {lines}", path.display()));
            }
        }
    }
    assert!(long.is_empty(), "{long:#?}");
}
