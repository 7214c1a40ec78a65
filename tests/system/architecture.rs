//! The structure ARCHITECTURE.md draws, checked from the code: the graph of `crate::` paths
//! between `src/`'s top-level modules has no cycle, and no library module reaches up into the
//! edges (`service`, `cli`, `daemon`), which only assemble the library. Reading the source is
//! enough: an import is a `crate::module` path, whether in a `use` or inline.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const EDGES: [&str; 3] = ["service", "cli", "daemon"];

/// Top-level module → the top-level modules its non-test code names.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap();
            let top = relative
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            if top == "lib"
                || top == "bin"
                || relative.components().any(|c| c.as_os_str() == "tests")
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Unit tests may reach anywhere; the structure is about the code they test.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let names = graph.entry(top.clone()).or_default();
            for (i, _) in code.match_indices("crate::") {
                let name: String = code[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() && name != top {
                    names.insert(name);
                }
            }
        }
    }
    graph
}

/// A cycle through `from`, if there is one.
fn cycle(
    graph: &BTreeMap<String, BTreeSet<String>>,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    let here = path.last().cloned()?;
    for next in graph.get(&here).into_iter().flatten() {
        if let Some(start) = path.iter().position(|m| m == next) {
            let mut found = path[start..].to_vec();
            found.push(next.clone());
            return Some(found);
        }
        path.push(next.clone());
        if let Some(found) = cycle(graph, path) {
            return Some(found);
        }
        path.pop();
    }
    None
}

#[test]
fn the_module_graph_has_no_cycle_and_the_library_never_imports_its_edges() {
    let graph = imports();
    assert!(graph.len() > 10, "the modules were read: {graph:?}");
    for module in graph.keys() {
        if let Some(found) = cycle(&graph, &mut vec![module.clone()]) {
            panic!("an import cycle: {}", found.join(" → "));
        }
    }
    for (module, names) in &graph {
        if EDGES.contains(&module.as_str()) {
            continue;
        }
        for edge in EDGES {
            assert!(
                !names.contains(edge),
                "library module `{module}` imports `{edge}`, an edge that only assembles the library"
            );
        }
    }
}

/// The packages `package` depends on, directly or not, as Cargo.lock records them (normal,
/// build and dev dependencies alike: the lock file does not tell them apart, so this is the
/// strictest reading).
fn locked_dependencies(package: &str) -> BTreeSet<String> {
    let lock =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock")).unwrap();
    let lock: toml::Table = toml::from_str(&lock).unwrap();
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in lock["package"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap().to_string();
        let listed = p.get("dependencies").and_then(|d| d.as_array());
        // An entry is "name" or "name version" when two versions are locked.
        let names = listed
            .into_iter()
            .flatten()
            .map(|d| d.as_str().unwrap().split(' ').next().unwrap().to_string());
        deps.entry(name).or_default().extend(names);
    }
    let mut seen = BTreeSet::new();
    let mut stack = vec![package.to_string()];
    while let Some(name) = stack.pop() {
        for dep in deps.get(&name).into_iter().flatten() {
            if seen.insert(dep.clone()) {
                stack.push(dep.clone());
            }
        }
    }
    seen
}

/// dbxportd and dbxportctl never link GTK: the export dialog is its own crate of the workspace
/// (ARCHITECTURE.md, "Module layers"), which the product does not depend on.
#[test]
fn the_product_never_depends_on_gtk_or_the_dialog() {
    let deps = locked_dependencies("dbxport");
    assert!(deps.contains("zbus"), "the lock file was read: {deps:?}");
    let gui: Vec<&String> = deps
        .iter()
        .filter(|d| {
            d.starts_with("gtk")
                || d.starts_with("gdk")
                || d.starts_with("libadwaita")
                || d.starts_with("glib")
                || d.starts_with("gio")
                || d.starts_with("pango")
                || d.starts_with("cairo")
                || *d == "dbxport-export"
        })
        .collect();
    assert!(gui.is_empty(), "the product depends on {gui:?}");
    // And the check sees GTK where it is.
    assert!(locked_dependencies("dbxport-export").contains("gtk4"));
}
