//! The layer rule of `ARCHITECTURE.md`, checked on the source: every
//! module of `src/` is named in its table with a layer, no module imports
//! one its layer may not (above all, no adapter imports another adapter),
//! and the files of `src/` import each other without a circle.
//!
//! The check reads the table from `ARCHITECTURE.md` itself, so the page
//! and the rule cannot drift apart, and parses every file with `syn`:
//! `use` trees and every path in the code (`crate::…`, `super::…`,
//! `self::…`, a child module's name) count; code under `#[cfg(test)]`
//! does not (tests may set up with anything), nor does a module's
//! `pub use` of its own children (that is its face, not a dependency).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The layers, lowest first. A module may import its own top-level
/// module and the layers its own layer allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    /// Pure: no I/O, imports only other core modules.
    Core,
    /// Shared plumbing that imports nothing of the crate (the HTTP client's
    /// settings).
    Support,
    /// What the jobs need from the world: imports core and support only.
    Port,
    /// Speaks to one outside system: imports core, support and ports,
    /// never another adapter.
    Adapter,
    /// Joins adapters: imports anything below, and other flows.
    Flow,
    /// The commands and the server: imports anything.
    App,
    /// Helpers for `#[cfg(test)]` code only.
    Tests,
}

impl Layer {
    fn named(name: &str) -> Option<Layer> {
        Some(match name {
            "core" => Layer::Core,
            "support" => Layer::Support,
            "port" => Layer::Port,
            "adapter" => Layer::Adapter,
            "flow" => Layer::Flow,
            "app" => Layer::App,
            "tests" => Layer::Tests,
            _ => return None,
        })
    }

    /// Whether a module of this layer may import a module of `other`
    /// (another top-level module: its own is always allowed).
    fn may_import(self, other: Layer) -> bool {
        use Layer::*;
        match self {
            Core => other == Core,
            Support => false,
            Port => matches!(other, Core | Support),
            Adapter => matches!(other, Core | Support | Port),
            Flow => matches!(other, Core | Support | Port | Adapter | Flow),
            App => other != Tests,
            Tests => true,
        }
    }
}

/// A module path inside the crate: `["gitlab", "actions"]`.
type ModPath = Vec<String>;

/// One source file: its module path and text.
struct Source {
    module: ModPath,
    shown: String,
    text: String,
}

/// An import of one file by another, with the path that made it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Import {
    from: ModPath,
    to: ModPath,
    written: String,
}

/// The layer table of `ARCHITECTURE.md`: rows whose first cell is a
/// backticked `src/<module>` (a folder `src/x/` or a file `src/x.rs`).
fn layer_table(markdown: &str) -> Result<BTreeMap<String, Layer>, String> {
    let mut table = BTreeMap::new();
    for line in markdown.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[1].starts_with("`src/") {
            continue;
        }
        let module = cells[1]
            .trim_matches('`')
            .trim_start_matches("src/")
            .trim_end_matches('/')
            .trim_end_matches(".rs")
            .to_owned();
        let layer = Layer::named(cells[2])
            .ok_or_else(|| format!("`{}`: unknown layer {:?}", module, cells[2]))?;
        if table.insert(module.clone(), layer).is_some() {
            return Err(format!("`src/{module}` is in the table twice"));
        }
    }
    Ok(table)
}

/// Every `.rs` file under `src/` with its module path (the binary's
/// `main.rs` is its own crate and is left out).
fn sources(root: &Path) -> Vec<Source> {
    let mut files = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let relative: PathBuf = path.strip_prefix(root).unwrap().to_path_buf();
            let mut module: ModPath = relative
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            match module.last().map(String::as_str) {
                Some("main") if module.len() == 1 => return None,
                Some("mod") | Some("lib") => {
                    module.pop();
                }
                _ => {}
            }
            Some(Source {
                module,
                shown: format!("src/{}", relative.display()),
                text: std::fs::read_to_string(&path).unwrap(),
            })
        })
        .collect()
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr
                .parse_args::<syn::Meta>()
                .is_ok_and(|meta| meta.path().is_ident("test"))
    })
}

/// Collects the paths a file's code (not its tests) names.
struct Collector<'a> {
    /// The module the code being walked is in (inline modules extend the
    /// file's).
    module: ModPath,
    file_module: &'a ModPath,
    /// Child modules declared in the file (`mod api;`), by which a bare
    /// path may begin.
    children: BTreeSet<String>,
    found: Vec<(ModPath, String)>,
}

impl Collector<'_> {
    /// `segments` resolved against the module the code is in, if it names
    /// something of this crate.
    fn absolute(&self, segments: &[String]) -> Option<ModPath> {
        let first = segments.first()?;
        let mut base = match first.as_str() {
            "crate" => Vec::new(),
            "self" => self.module.clone(),
            "super" => self.module.clone(),
            child
                if segments.len() > 1
                    && self.children.contains(child)
                    && self.module == *self.file_module =>
            {
                return Some(
                    self.module
                        .iter()
                        .cloned()
                        .chain(segments.iter().cloned())
                        .collect(),
                );
            }
            _ => return None,
        };
        let mut rest = segments;
        if first == "crate" || first == "self" {
            rest = &segments[1..];
        }
        while rest.first().is_some_and(|s| s == "super") {
            base.pop()?;
            rest = &rest[1..];
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    fn note(&mut self, segments: Vec<String>) {
        if let Some(path) = self.absolute(&segments) {
            self.found.push((path, segments.join("::")));
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree, facade: bool) {
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.use_tree(prefix, &path.tree, facade);
                prefix.pop();
            }
            syn::UseTree::Name(name) => {
                let mut full = prefix.clone();
                if name.ident != "self" {
                    full.push(name.ident.to_string());
                }
                self.used(full, facade);
            }
            syn::UseTree::Rename(rename) => {
                let mut full = prefix.clone();
                if rename.ident != "self" {
                    full.push(rename.ident.to_string());
                }
                self.used(full, facade);
            }
            syn::UseTree::Glob(_) => self.used(prefix.clone(), facade),
            syn::UseTree::Group(group) => {
                for tree in &group.items {
                    self.use_tree(prefix, tree, facade);
                }
            }
        }
    }

    /// A `use` of `full`; a module's public re-export of its own
    /// descendants is its face and not counted.
    fn used(&mut self, full: Vec<String>, facade: bool) {
        if facade
            && let Some(path) = self.absolute(&full)
            && path.len() > self.module.len()
            && path.starts_with(&self.module)
        {
            return;
        }
        self.note(full);
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
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
        if is_test_only(attrs) {
            return;
        }
        match item {
            syn::Item::Use(item_use) => {
                let facade = !matches!(item_use.vis, syn::Visibility::Inherited);
                self.use_tree(&mut Vec::new(), &item_use.tree, facade);
            }
            syn::Item::Mod(module) => match &module.content {
                Some((_, items)) => {
                    self.module.push(module.ident.to_string());
                    for item in items {
                        self.visit_item(item);
                    }
                    self.module.pop();
                }
                None => {
                    self.children.insert(module.ident.to_string());
                }
            },
            other => syn::visit::visit_item(self, other),
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.note(segments);
        syn::visit::visit_path(self, path);
    }
}

/// The file modules each file imports, and the modules declared only for
/// tests (`#[cfg(test)] mod tests;`), which are left out of the graph.
fn imports(sources: &[Source]) -> Result<(Vec<Import>, BTreeSet<ModPath>), String> {
    let files: BTreeSet<&ModPath> = sources.iter().map(|s| &s.module).collect();
    let mut test_only = BTreeSet::new();
    let mut found = Vec::new();
    for source in sources {
        let parsed = syn::parse_file(&source.text)
            .map_err(|e| format!("{}: cannot parse: {e}", source.shown))?;
        let mut collector = Collector {
            module: source.module.clone(),
            file_module: &source.module,
            children: BTreeSet::new(),
            found: Vec::new(),
        };
        // Child modules first, so a bare path can be told from a crate name.
        for item in &parsed.items {
            if let syn::Item::Mod(module) = item
                && module.content.is_none()
            {
                let name = module.ident.to_string();
                if is_test_only(&module.attrs) {
                    let mut path = source.module.clone();
                    path.push(name);
                    test_only.insert(path);
                } else {
                    collector.children.insert(name);
                }
            }
        }
        for item in &parsed.items {
            collector.visit_item(item);
        }
        for (path, written) in collector.found {
            // The longest prefix that is a file of its own.
            let Some(to) = (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|prefix| files.contains(prefix))
            else {
                continue;
            };
            // A module's own children are its parts: it declares them and
            // speaks for them, and they may use what it holds.
            let own_child = to.len() > source.module.len() && to.starts_with(&source.module);
            if to != source.module && !to.is_empty() && !own_child {
                found.push(Import {
                    from: source.module.clone(),
                    to,
                    written,
                });
            }
        }
    }
    // Everything under a test-only module is test code.
    found.retain(|import| {
        !test_only
            .iter()
            .any(|t| import.from.starts_with(t) || import.to.starts_with(t))
    });
    found.sort();
    found.dedup_by(|a, b| a.from == b.from && a.to == b.to);
    Ok((found, test_only))
}

/// Imports the layer rule forbids, as lines to print.
fn layer_breaches(
    imports: &[Import],
    table: &BTreeMap<String, Layer>,
) -> Result<Vec<String>, String> {
    let layer_of = |module: &ModPath| {
        table
            .get(&module[0])
            .copied()
            .ok_or_else(|| format!("`src/{}` is not in ARCHITECTURE.md's table", module[0]))
    };
    let mut breaches = Vec::new();
    for import in imports {
        if import.from[0] == import.to[0] {
            continue;
        }
        let (from, to) = (layer_of(&import.from)?, layer_of(&import.to)?);
        if !from.may_import(to) {
            breaches.push(format!(
                "{} ({from:?}) imports {} ({to:?}) by `{}`",
                import.from.join("::"),
                import.to.join("::"),
                import.written
            ));
        }
    }
    Ok(breaches)
}

/// The import circles among files: each strongly connected set of more
/// than one file, with the imports inside it.
fn circles(imports: &[Import]) -> Vec<Vec<String>> {
    let mut nodes: BTreeSet<&ModPath> = BTreeSet::new();
    let mut out: BTreeMap<&ModPath, Vec<&ModPath>> = BTreeMap::new();
    for import in imports {
        nodes.insert(&import.from);
        nodes.insert(&import.to);
        out.entry(&import.from).or_default().push(&import.to);
    }
    // Tarjan's algorithm, iteratively.
    let mut index: BTreeMap<&ModPath, usize> = BTreeMap::new();
    let mut low: BTreeMap<&ModPath, usize> = BTreeMap::new();
    let mut stack: Vec<&ModPath> = Vec::new();
    let mut on_stack: BTreeSet<&ModPath> = BTreeSet::new();
    let mut found = Vec::new();
    let mut next = 0;
    for &start in &nodes {
        if index.contains_key(start) {
            continue;
        }
        let mut work: Vec<(&ModPath, usize)> = vec![(start, 0)];
        while let Some((node, child)) = work.pop() {
            if child == 0 {
                index.insert(node, next);
                low.insert(node, next);
                next += 1;
                stack.push(node);
                on_stack.insert(node);
            }
            let targets = out.get(node).map(Vec::as_slice).unwrap_or(&[]);
            if let Some(&target) = targets.get(child) {
                work.push((node, child + 1));
                if !index.contains_key(target) {
                    work.push((target, 0));
                } else if on_stack.contains(target) {
                    let lowest = low[node].min(index[target]);
                    low.insert(node, lowest);
                }
                continue;
            }
            if let Some(&(parent, _)) = work.last() {
                let lowest = low[parent].min(low[node]);
                low.insert(parent, lowest);
            }
            if low[node] == index[node] {
                let mut members = BTreeSet::new();
                while let Some(member) = stack.pop() {
                    on_stack.remove(member);
                    members.insert(member);
                    if member == node {
                        break;
                    }
                }
                if members.len() > 1 {
                    found.push(
                        imports
                            .iter()
                            .filter(|i| members.contains(&i.from) && members.contains(&i.to))
                            .map(|i| {
                                format!(
                                    "{} -> {} (`{}`)",
                                    i.from.join("::"),
                                    i.to.join("::"),
                                    i.written
                                )
                            })
                            .collect(),
                    );
                }
            }
        }
    }
    found
}

fn check(sources: &[Source], markdown: &str) -> Result<(), String> {
    let table = layer_table(markdown)?;
    let tops: BTreeSet<String> = sources
        .iter()
        .filter_map(|s| s.module.first().cloned())
        .collect();
    let mut problems = Vec::new();
    for top in &tops {
        if !table.contains_key(top) {
            problems.push(format!("`src/{top}` is not in ARCHITECTURE.md's table"));
        }
    }
    for named in table.keys() {
        if !tops.contains(named) {
            problems.push(format!(
                "ARCHITECTURE.md names `src/{named}`, which is not there"
            ));
        }
    }
    let (imports, _) = imports(sources)?;
    problems.extend(layer_breaches(&imports, &table)?);
    for circle in circles(&imports) {
        problems.push(format!("an import circle:\n    {}", circle.join("\n    ")));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[test]
fn the_source_keeps_the_layer_rule_of_architecture_md() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let markdown = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let sources = sources(&root.join("src"));
    assert!(sources.len() > 100, "the source was found");
    if let Err(problems) = check(&sources, &markdown) {
        panic!("{problems}");
    }
}

/// The check on a made-up crate, to show what it catches.
mod the_check;
