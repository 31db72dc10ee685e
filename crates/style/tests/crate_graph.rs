//! The dependencies between workspace crates, as the manifests declare them,
//! must be the graph ARCHITECTURE.md's Code map documents, and every declared
//! dependency on a workspace crate must be used.
//!
//! The documented graph is the fenced block of the Code map that starts with
//! the line `crate graph (…)`: one line per crate, `name -> dep dep …` (or
//! `name -> (none)`), then a `dev-dependencies …` line and the dev-dependency
//! edges in the same form. Names are the directories under `crates/`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Declared dependencies on workspace crates that no source uses yet, with
/// why they are tolerated. Each entry is (crate, dependency, reason), both
/// names being directories under `crates/`. The test fails when an entry is no
/// longer needed (the dependency was dropped or is used now): remove the
/// entry then, and the edge from ARCHITECTURE.md's block if it was dropped.
const KNOWN_UNUSED: &[(&str, &str, &str)] = &[];

/// The line that opens the documented graph inside its fenced block.
const BLOCK_HEADER: &str = "crate graph (";
/// The line that starts the dev-dependency part of the block.
const DEV_HEADER: &str = "dev-dependencies";

/// Edges from a crate to the workspace crates it depends on.
type Graph = BTreeMap<String, BTreeSet<String>>;

#[derive(Debug, Default)]
struct Manifest {
    /// `[dependencies]` (and target-specific ones) on workspace crates:
    /// dependency crate -> the name its code uses (`synod_kv`).
    normal: BTreeMap<String, String>,
    /// `[dev-dependencies]` on workspace crates, likewise.
    dev: BTreeMap<String, String>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The workspace crates: directory name -> path of its directory.
fn crate_dirs(root: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(root.join("crates")).unwrap() {
        let p = e.unwrap().path();
        if p.join("Cargo.toml").is_file() {
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            out.insert(name, p.canonicalize().unwrap());
        }
    }
    out
}

fn parse_toml(path: &Path) -> toml::Table {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads every `crates/*/Cargo.toml` and keeps its dependencies on other
/// workspace crates. A workspace crate is recognised by the directory its
/// `path` (or the workspace dependency's `path`) points to, and also by its
/// package name, so that a registry dependency on a workspace crate's name is
/// reported instead of slipping through.
fn read_manifests(root: &Path) -> BTreeMap<String, Manifest> {
    let dirs = crate_dirs(root);
    let root_manifest = parse_toml(&root.join("Cargo.toml"));
    let workspace_deps = root_manifest
        .get("workspace")
        .and_then(|w| w.get("dependencies"))
        .and_then(|d| d.as_table())
        .cloned()
        .unwrap_or_default();

    let tables: BTreeMap<String, toml::Table> = dirs
        .iter()
        .map(|(name, dir)| (name.clone(), parse_toml(&dir.join("Cargo.toml"))))
        .collect();
    let by_package: BTreeMap<String, String> = tables
        .iter()
        .map(|(name, t)| {
            let package = t["package"]["name"].as_str().unwrap().to_string();
            (package, name.clone())
        })
        .collect();

    let mut out = BTreeMap::new();
    for (name, table) in &tables {
        let file = format!("crates/{name}/Cargo.toml");
        let mut m = Manifest::default();
        // Sections at the top level and under each `[target.'cfg(…)']`.
        let mut sections: Vec<&toml::Table> = vec![table];
        if let Some(targets) = table.get("target").and_then(|t| t.as_table()) {
            sections.extend(targets.values().filter_map(|t| t.as_table()));
        }
        for section in sections {
            for (kind, key) in [
                ("normal", "dependencies"),
                ("dev", "dev-dependencies"),
                ("dev", "dev_dependencies"),
                ("build", "build-dependencies"),
                ("build", "build_dependencies"),
            ] {
                let Some(deps) = section.get(key).and_then(|d| d.as_table()) else {
                    continue;
                };
                for (dep_key, spec) in deps {
                    let Some(target) = workspace_target(
                        root,
                        &dirs[name],
                        &dirs,
                        &by_package,
                        &workspace_deps,
                        dep_key,
                        spec,
                        &file,
                    ) else {
                        continue;
                    };
                    let rust_name = dep_key.replace('-', "_");
                    match kind {
                        "normal" => m.normal.insert(target, rust_name),
                        "dev" => m.dev.insert(target, rust_name),
                        _ => panic!(
                            "{file}: [{key}] names the workspace crate `{target}`; \
                             the crate graph test and ARCHITECTURE.md's block \
                             cover [dependencies] and [dev-dependencies] only: \
                             extend both"
                        ),
                    };
                }
            }
        }
        out.insert(name.clone(), m);
    }
    out
}

/// The workspace crate (directory name) a dependency entry refers to, if any.
#[allow(clippy::too_many_arguments)]
fn workspace_target(
    root: &Path,
    crate_dir: &Path,
    dirs: &BTreeMap<String, PathBuf>,
    by_package: &BTreeMap<String, String>,
    workspace_deps: &toml::Table,
    dep_key: &str,
    spec: &toml::Value,
    file: &str,
) -> Option<String> {
    let package = spec
        .get("package")
        .and_then(|p| p.as_str())
        .unwrap_or(dep_key);
    // `dep = { workspace = true }` takes its path from the root manifest.
    let (path, base) = if spec.get("workspace").and_then(|w| w.as_bool()) == Some(true) {
        let ws = workspace_deps.get(dep_key);
        let path = ws.and_then(|w| w.get("path")).and_then(|p| p.as_str());
        (path, root)
    } else {
        (spec.get("path").and_then(|p| p.as_str()), crate_dir)
    };
    match path {
        Some(path) => {
            let target = base
                .join(path)
                .canonicalize()
                .unwrap_or_else(|e| panic!("{file}: `{dep_key}` path {path}: {e}"));
            dirs.iter()
                .find(|(_, d)| **d == target)
                .map(|(n, _)| n.clone())
        }
        None => {
            assert!(
                !by_package.contains_key(package),
                "{file}: `{dep_key}` names the workspace crate `{package}` without a \
                 path; depend on workspace crates by path"
            );
            None
        }
    }
}

fn graphs(manifests: &BTreeMap<String, Manifest>) -> (Graph, Graph) {
    let mut normal = Graph::new();
    let mut dev = Graph::new();
    for (name, m) in manifests {
        normal.insert(name.clone(), m.normal.keys().cloned().collect());
        if !m.dev.is_empty() {
            dev.insert(name.clone(), m.dev.keys().cloned().collect());
        }
    }
    (normal, dev)
}

/// The graph ARCHITECTURE.md documents: (normal, dev) edges.
fn documented(arch: &str) -> Result<(Graph, Graph), String> {
    let lines: Vec<&str> = arch.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with(BLOCK_HEADER))
        .ok_or_else(|| format!("ARCHITECTURE.md has no line starting with `{BLOCK_HEADER}`"))?;
    if start == 0 || !lines[start - 1].starts_with("```") {
        return Err(format!(
            "ARCHITECTURE.md:{}: the `{BLOCK_HEADER}` line must open a fenced block",
            start + 1
        ));
    }
    let mut normal = Graph::new();
    let mut dev = Graph::new();
    let mut in_dev = false;
    for (i, line) in lines.iter().enumerate().skip(start + 1) {
        let at = format!("ARCHITECTURE.md:{}", i + 1);
        let line = line.trim();
        if line.starts_with("```") {
            return Ok((normal, dev));
        }
        if line.is_empty() {
            continue;
        }
        if line.starts_with(DEV_HEADER) {
            if in_dev {
                return Err(format!("{at}: a second `{DEV_HEADER}` line"));
            }
            in_dev = true;
            continue;
        }
        let (from, to) = line
            .split_once("->")
            .ok_or_else(|| format!("{at}: expected `crate -> dep dep …`, found `{line}`"))?;
        let from = from.trim().to_string();
        let to: BTreeSet<String> = match to.trim() {
            "(none)" => BTreeSet::new(),
            deps => deps.split_whitespace().map(str::to_string).collect(),
        };
        let graph = if in_dev { &mut dev } else { &mut normal };
        if graph.insert(from.clone(), to).is_some() {
            return Err(format!("{at}: `{from}` has a second line"));
        }
    }
    Err("ARCHITECTURE.md: the crate graph's fenced block is not closed".to_string())
}

/// Every difference between the declared and the documented graph, each
/// naming the edge and the file to fix.
fn compare(declared: &Graph, documented: &Graph, section: &str) -> Vec<String> {
    let mut out = Vec::new();
    let none = BTreeSet::new();
    let names: BTreeSet<&String> = declared.keys().chain(documented.keys()).collect();
    for name in names {
        let decl = declared.get(name).unwrap_or(&none);
        let doc = documented.get(name).unwrap_or(&none);
        for dep in decl.difference(doc) {
            out.push(format!(
                "missing edge {name} -> {dep}: crates/{name}/Cargo.toml declares it in \
                 {section}, ARCHITECTURE.md's crate graph does not list it there"
            ));
        }
        for dep in doc.difference(decl) {
            out.push(format!(
                "extra edge {name} -> {dep}: ARCHITECTURE.md's crate graph lists it \
                 under {section}, crates/{name}/Cargo.toml does not declare it there"
            ));
        }
    }
    out
}

/// The block as it would read for `normal` and `dev`, for the failure message.
fn render(normal: &Graph, dev: &Graph) -> String {
    let width = normal
        .keys()
        .chain(dev.keys())
        .map(String::len)
        .max()
        .unwrap_or(0);
    let line = |name: &String, deps: &BTreeSet<String>| {
        let deps = if deps.is_empty() {
            "(none)".to_string()
        } else {
            deps.iter().cloned().collect::<Vec<_>>().join(" ")
        };
        format!("{name:width$} -> {deps}\n")
    };
    let mut s = String::new();
    for (name, deps) in normal {
        s += &line(name, deps);
    }
    s += &format!("\n{DEV_HEADER} …\n");
    for (name, deps) in dev {
        s += &line(name, deps);
    }
    s
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Whether `src` names the crate `rust_name` in code: as a whole identifier,
/// on a line that is not a comment (a doc link alone is not a use).
fn names_crate(src: &str, rust_name: &str) -> bool {
    src.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .any(|l| {
            l.match_indices(rust_name).any(|(at, _)| {
                let ident = |c: char| c.is_alphanumeric() || c == '_';
                let before = l[..at].chars().next_back();
                let after = l[at + rust_name.len()..].chars().next();
                !before.is_some_and(ident) && !after.is_some_and(ident)
            })
        })
}

fn used_in(crate_dir: &Path, subdirs: &[&str], rust_name: &str) -> bool {
    let mut files = Vec::new();
    for d in subdirs {
        rust_files(&crate_dir.join(d), &mut files);
    }
    files
        .iter()
        .any(|f| names_crate(&fs::read_to_string(f).unwrap(), rust_name))
}

/// Declared dependencies on workspace crates that no source of the crate
/// names: (crate, dependency, message).
fn unused(root: &Path, manifests: &BTreeMap<String, Manifest>) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (name, m) in manifests {
        let dir = root.join("crates").join(name);
        for (dep, rust_name) in &m.normal {
            if !used_in(&dir, &["src"], rust_name) {
                out.push((
                    name.clone(),
                    dep.clone(),
                    format!(
                        "unused dependency {name} -> {dep}: crates/{name}/Cargo.toml \
                         declares it in [dependencies], nothing under crates/{name}/src \
                         names `{rust_name}`"
                    ),
                ));
            }
        }
        for (dep, rust_name) in &m.dev {
            let places = ["src", "tests", "benches", "examples"];
            if !used_in(&dir, &places, rust_name) {
                out.push((
                    name.clone(),
                    dep.clone(),
                    format!(
                        "unused dev-dependency {name} -> {dep}: crates/{name}/Cargo.toml \
                         declares it in [dev-dependencies], nothing under \
                         crates/{name}/{{src,tests,benches,examples}} names `{rust_name}`"
                    ),
                ));
            }
        }
    }
    out
}

#[test]
fn declared_crate_graph_is_the_documented_one() {
    let root = workspace_root();
    let manifests = read_manifests(&root);
    assert!(
        manifests.len() > 5,
        "found only {} crates under {}",
        manifests.len(),
        root.join("crates").display()
    );
    let (normal, dev) = graphs(&manifests);
    let arch = fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let (doc_normal, doc_dev) = documented(&arch).unwrap_or_else(|e| panic!("{e}"));

    let mut problems = compare(&normal, &doc_normal, "[dependencies]");
    problems.extend(compare(&dev, &doc_dev, "[dev-dependencies]"));
    // Every crate has its line, leaves included, so a new crate is placed.
    for name in normal.keys() {
        if !doc_normal.contains_key(name) {
            problems.push(format!(
                "crate `{name}` has no line in ARCHITECTURE.md's crate graph \
                 (write `{name} -> (none)` for a crate without workspace dependencies)"
            ));
        }
    }
    for name in doc_normal.keys().chain(doc_dev.keys()) {
        if !normal.contains_key(name) {
            problems.push(format!(
                "ARCHITECTURE.md's crate graph names `{name}`, which is not a directory \
                 with a Cargo.toml under crates/"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the crate graph in ARCHITECTURE.md's Code map and the manifests disagree:\n  {}\n\
         the manifests declare (update the block, and the prose around it, or the manifests):\n{}",
        problems.join("\n  "),
        render(&normal, &dev)
    );
}

#[test]
fn every_declared_workspace_dependency_is_used() {
    let root = workspace_root();
    let manifests = read_manifests(&root);
    let found = unused(&root, &manifests);
    let problems: Vec<&str> = found
        .iter()
        .filter(|(c, d, _)| !KNOWN_UNUSED.iter().any(|(kc, kd, _)| kc == c && kd == d))
        .map(|(_, _, msg)| msg.as_str())
        .collect();
    assert!(
        problems.is_empty(),
        "declared but unused (drop the line from the manifest, and the edge from \
         ARCHITECTURE.md's crate graph):\n  {}",
        problems.join("\n  ")
    );
}

/// A known exception that no longer applies would hide the next unused
/// dependency between the same crates: it must go as soon as it is stale.
#[test]
fn every_known_unused_dependency_is_still_declared_and_unused() {
    let root = workspace_root();
    let manifests = read_manifests(&root);
    let found = unused(&root, &manifests);
    for (c, d, why) in KNOWN_UNUSED {
        assert!(!why.is_empty());
        let m = manifests
            .get(*c)
            .unwrap_or_else(|| panic!("KNOWN_UNUSED names `{c}`, not a workspace crate"));
        assert!(
            m.normal.contains_key(*d) || m.dev.contains_key(*d),
            "crates/{c}/Cargo.toml no longer declares `{d}`: drop ({c:?}, {d:?}) from \
             KNOWN_UNUSED in crates/style/tests/crate_graph.rs"
        );
        assert!(
            found.iter().any(|(fc, fd, _)| fc == c && fd == d),
            "crates/{c} uses `{d}` now: drop ({c:?}, {d:?}) from KNOWN_UNUSED in \
             crates/style/tests/crate_graph.rs"
        );
    }
}

/// The comparison must be able to fail: an edge the manifests lack and an
/// edge the document lacks are both reported, naming edge and file.
#[test]
fn comparison_catches_missing_and_extra_edges() {
    let doc = "intro\n```text\ncrate graph (…)\nsynod -> sim bogus\nsim -> (none)\n\n\
               dev-dependencies (…)\nsynod -> proto\n```\n";
    let (doc_normal, doc_dev) = documented(doc).unwrap();
    let set = |deps: &[&str]| deps.iter().map(|d| d.to_string()).collect::<BTreeSet<_>>();
    let mut declared = Graph::new();
    declared.insert("synod".into(), set(&["sim", "server"]));
    declared.insert("sim".into(), set(&[]));
    let v = compare(&declared, &doc_normal, "[dependencies]");
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v
        .iter()
        .any(|l| l.starts_with("missing edge synod -> server")
            && l.contains("crates/synod/Cargo.toml")));
    assert!(v.iter().any(
        |l| l.starts_with("extra edge synod -> bogus") && l.contains("crates/synod/Cargo.toml")
    ));
    let mut declared_dev = Graph::new();
    declared_dev.insert("synod".into(), set(&["proto"]));
    assert!(compare(&declared_dev, &doc_dev, "[dev-dependencies]").is_empty());
    assert!(!compare(&Graph::new(), &doc_dev, "[dev-dependencies]").is_empty());
}

#[test]
fn malformed_blocks_are_refused() {
    assert!(documented("no block here\n").is_err());
    assert!(documented("crate graph (…)\na -> b\n```\n").is_err());
    assert!(documented("```text\ncrate graph (…)\na -> b\n").is_err());
    assert!(documented("```text\ncrate graph (…)\na b\n```\n").is_err());
    assert!(documented("```text\ncrate graph (…)\na -> b\na -> c\n```\n").is_err());
}

/// A use is a whole identifier outside comments: `synod_store` is not found in
/// `synod_storage`, nor in a doc comment.
#[test]
fn usage_search_matches_whole_names_in_code() {
    assert!(names_crate("use synod_kv::Command;\n", "synod_kv"));
    assert!(names_crate(
        "    let c = synod_store::StoreConfig::default();",
        "synod_store"
    ));
    assert!(!names_crate("use synod_storage::Wal;\n", "synod_store"));
    assert!(!names_crate("use my_synod_kv::X;\n", "synod_kv"));
    assert!(!names_crate("//! see [`synod_node::Node`]\n", "synod_node"));
    assert!(!names_crate("// synod_node\n", "synod_node"));
}
