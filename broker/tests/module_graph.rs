//! The shape of `broker/src`, checked: which module uses which, no import cycle between
//! sibling modules, and protobuf (`midge_proto`) only where the contract lives.
//!
//! The source is parsed with `syn` (test code, `#[cfg(test)]`, left out). A reference from
//! module `a::x` to `a::y::z` is an edge `x → y` among the children of `a`: references between a
//! module and its own ancestors or descendants are not edges. A cycle is a strongly connected
//! set of siblings.
//!
//! See the graph: `cargo test -p midge --test module_graph -- --nocapture`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// A module path below the crate root, e.g. `["plugin", "events"]`.
type ModPath = Vec<String>;

/// Sibling cycles that exist and are to be removed (none left); any other cycle fails the test,
/// and so does one of these once it is gone (so the list only shrinks).
const KNOWN_CYCLES: &[&[&str]] = &[];

/// Modules outside `plugin` and `admin` that still use `midge_proto` (none left; the list
/// may only shrink, as above); every other module must not.
const KNOWN_PROTO_USERS: &[&str] = &[];

/// Where protobuf types may be used: the plugin contract and the admin API.
const PROTO_HOMES: &[&str] = &["plugin", "admin"];

#[derive(Default)]
struct Graph {
    /// Every module, from files and inline `mod` blocks.
    modules: BTreeSet<ModPath>,
    /// Raw references: from module, to path (module path plus item names).
    references: Vec<(ModPath, Vec<String>)>,
    /// Modules that name `midge_proto`.
    proto_users: BTreeSet<ModPath>,
    /// Modules declared `#[cfg(test)]` (their files are skipped).
    test_only: BTreeSet<ModPath>,
}

struct FileVisitor<'g> {
    graph: &'g mut Graph,
    module: ModPath,
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr
                .parse_args::<syn::Meta>()
                .is_ok_and(|meta| meta.path().is_ident("test"))
    })
}

impl FileVisitor<'_> {
    /// The absolute path a path written in this module refers to, if it is in this crate.
    fn resolve(&self, segments: &[String]) -> Option<Vec<String>> {
        let first = segments.first()?;
        match first.as_str() {
            "crate" => Some(segments[1..].to_vec()),
            "self" => Some([self.module.clone(), segments[1..].to_vec()].concat()),
            "super" => {
                let mut base = self.module.clone();
                let mut rest = segments;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
                Some([base, rest.to_vec()].concat())
            }
            _ => None,
        }
    }

    fn reference(&mut self, segments: Vec<String>) {
        if segments.first().is_some_and(|s| s == "midge_proto") {
            self.graph.proto_users.insert(self.module.clone());
        }
        if let Some(target) = self.resolve(&segments) {
            self.graph.references.push((self.module.clone(), target));
        }
    }

    fn use_tree(&mut self, prefix: &[String], tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                let mut next = prefix.to_vec();
                next.push(p.ident.to_string());
                self.use_tree(&next, &p.tree);
            }
            syn::UseTree::Name(n) => {
                let mut path = prefix.to_vec();
                if n.ident != "self" {
                    path.push(n.ident.to_string());
                }
                self.reference(path);
            }
            syn::UseTree::Rename(r) => {
                let mut path = prefix.to_vec();
                path.push(r.ident.to_string());
                self.reference(path);
            }
            syn::UseTree::Glob(_) => self.reference(prefix.to_vec()),
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for FileVisitor<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs: &[syn::Attribute] = match item {
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
            syn::Item::Macro(m) => &m.attrs,
            _ => &[],
        };
        if is_cfg_test(attrs) {
            if let syn::Item::Mod(m) = item {
                let mut child = self.module.clone();
                child.push(m.ident.to_string());
                self.graph.test_only.insert(child);
            }
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        let mut child = self.module.clone();
        child.push(item.ident.to_string());
        self.graph.modules.insert(child.clone());
        if let Some((_, items)) = &item.content {
            let parent = std::mem::replace(&mut self.module, child);
            for item in items {
                self.visit_item(item);
            }
            self.module = parent;
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&[], &item.tree);
    }

    fn visit_attribute(&mut self, attr: &'ast syn::Attribute) {
        // serde names functions in strings (`deserialize_with = "de::plugin_aliases"`): they
        // are references too.
        if attr.path().is_ident("serde") {
            let mut paths = Vec::new();
            let _ = attr.parse_nested_meta(|meta| {
                if let Ok(value) = meta.value()
                    && let Ok(text) = value.parse::<syn::LitStr>()
                {
                    paths.push(text.value());
                }
                Ok(())
            });
            for path in paths {
                let segments: Vec<String> = path.split("::").map(str::to_string).collect();
                if segments.len() > 1 {
                    // Relative to this module, as serde resolves it.
                    let first = segments[0].as_str();
                    let absolute = if matches!(first, "crate" | "self" | "super") {
                        segments
                    } else {
                        [vec!["self".to_string()], segments].concat()
                    };
                    self.reference(absolute);
                }
            }
        }
        syn::visit::visit_attribute(self, attr);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.reference(segments);
        syn::visit::visit_path(self, path);
    }
}

/// The module path of a source file under `src`; `None` for the binary's `main.rs`.
fn module_of(src: &Path, file: &Path) -> Option<ModPath> {
    let relative = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    match last.as_str() {
        "main.rs" if parts.is_empty() => None,
        "lib.rs" if parts.is_empty() => Some(parts),
        "mod.rs" => Some(parts),
        name => {
            parts.push(name.strip_suffix(".rs")?.to_string());
            Some(parts)
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn build() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // Parents before children, so that a `#[cfg(test)] mod x;` is known before x's file.
    let mut files: Vec<(ModPath, PathBuf)> = files
        .into_iter()
        .filter_map(|f| Some((module_of(&src, &f)?, f)))
        .collect();
    files.sort();
    let mut graph = Graph::default();
    for (module, file) in files {
        if graph
            .test_only
            .iter()
            .any(|t| module.starts_with(t.as_slice()))
        {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("a readable source file");
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        graph.modules.insert(module.clone());
        let mut visitor = FileVisitor {
            graph: &mut graph,
            module,
        };
        visitor.visit_file(&ast);
    }
    graph
}

/// Sibling edges: parent module → (from child → to children).
type Edges = BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>>;

fn sibling_edges(graph: &Graph) -> Edges {
    let mut edges = Edges::new();
    for (from, target) in &graph.references {
        if graph
            .test_only
            .iter()
            .any(|t| from.starts_with(t.as_slice()))
        {
            continue;
        }
        // The deepest module the target path names.
        let Some(to) = (0..=target.len())
            .rev()
            .map(|n| target[..n].to_vec())
            .find(|prefix| graph.modules.contains(prefix) || prefix.is_empty())
        else {
            continue;
        };
        let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
        if common < from.len() && common < to.len() {
            edges
                .entry(from[..common].to_vec())
                .or_default()
                .entry(from[common].clone())
                .or_default()
                .insert(to[common].clone());
        }
    }
    edges
}

/// Strongly connected sets of more than one node (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Tarjan<'e> {
        edges: &'e BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'e str, usize>,
        low: BTreeMap<&'e str, usize>,
        stack: Vec<&'e str>,
        on_stack: BTreeSet<&'e str>,
        out: Vec<Vec<String>>,
    }
    impl<'e> Tarjan<'e> {
        fn visit(&mut self, node: &'e str) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            self.on_stack.insert(node);
            for next in self.edges.get(node).into_iter().flatten() {
                let next = next.as_str();
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut set = Vec::new();
                while let Some(member) = self.stack.pop() {
                    self.on_stack.remove(member);
                    set.push(member.to_string());
                    if member == node {
                        break;
                    }
                }
                if set.len() > 1 {
                    set.sort();
                    self.out.push(set);
                }
            }
        }
    }
    let mut tarjan = Tarjan {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for node in edges.keys() {
        if !tarjan.index.contains_key(node.as_str()) {
            tarjan.visit(node);
        }
    }
    tarjan.out
}

fn name(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_string()
    } else {
        module.join("::")
    }
}

#[test]
fn sibling_modules_form_no_import_cycle() {
    let graph = build();
    let edges = sibling_edges(&graph);
    let mut found: BTreeSet<String> = BTreeSet::new();
    for (parent, siblings) in &edges {
        println!("{}:", name(parent));
        for (from, to) in siblings {
            println!(
                "  {from} -> {}",
                to.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        for cycle in cycles(siblings) {
            let members: Vec<String> = cycle
                .iter()
                .map(|m| name(&[parent.clone(), vec![m.clone()]].concat()))
                .collect();
            found.insert(members.join(" "));
        }
    }
    let known: BTreeSet<String> = KNOWN_CYCLES.iter().map(|c| c.join(" ")).collect();
    println!("cycles: {found:#?}");
    let new: Vec<_> = found.difference(&known).collect();
    let gone: Vec<_> = known.difference(&found).collect();
    assert!(
        new.is_empty(),
        "import cycles among sibling modules: {new:#?}"
    );
    assert!(
        gone.is_empty(),
        "these cycles are gone: take them out of KNOWN_CYCLES: {gone:#?}"
    );
}

#[test]
fn protobuf_stays_in_the_plugin_and_admin_modules() {
    let graph = build();
    let users: BTreeSet<String> = graph
        .proto_users
        .iter()
        .filter(|m| {
            !m.first()
                .is_some_and(|top| PROTO_HOMES.contains(&top.as_str()))
        })
        .map(|m| name(m))
        .collect();
    let known: BTreeSet<String> = KNOWN_PROTO_USERS.iter().map(|s| s.to_string()).collect();
    println!("midge_proto outside {PROTO_HOMES:?}: {users:#?}");
    let new: Vec<_> = users.difference(&known).collect();
    let gone: Vec<_> = known.difference(&users).collect();
    assert!(
        new.is_empty(),
        "midge_proto used outside {PROTO_HOMES:?}: {new:#?}"
    );
    assert!(
        gone.is_empty(),
        "no longer using midge_proto: take them out of KNOWN_PROTO_USERS: {gone:#?}"
    );
}

#[test]
fn the_checker_sees_a_cycle_and_resolves_paths() {
    // The checker itself, on a made-up graph: a → b → c → a is one cycle, d is outside it.
    let mut edges = BTreeMap::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        edges
            .entry(from.to_string())
            .or_insert_with(BTreeSet::new)
            .insert(to.to_string());
    }
    assert_eq!(cycles(&edges), [vec!["a", "b", "c"]]);
    // And on the real tree it found modules and references at all.
    let graph = build();
    assert!(graph.modules.contains(&vec!["plugin".to_string()]));
    assert!(graph.modules.len() > 20 && graph.references.len() > 100);
}
