//! Determinism rules of the core, and a few repository-wide rules.

use std::fs;
use std::path::{Path, PathBuf};

/// Crates whose code runs inside the simulator and must depend on nothing but
/// their inputs and their seed.
const DETERMINISTIC_CRATES: &[&str] = &["raft", "kv", "node", "simnet", "lab"];

/// Tokens that must not appear in the non-test source of a deterministic crate.
const FORBIDDEN: &[(&str, &str)] = &[
    (
        "std::time::Instant",
        "the OS clock; take time as ticks or from the driver",
    ),
    (
        "Instant::now",
        "the OS clock; take time as ticks or from the driver",
    ),
    (
        "SystemTime",
        "the OS clock; take time as ticks or from the driver",
    ),
    (
        "HashMap",
        "iteration order is random per process; use BTreeMap",
    ),
    (
        "HashSet",
        "iteration order is random per process; use BTreeSet",
    ),
    ("thread_rng", "OS randomness; use the node's seeded RNG"),
    ("rand::random", "OS randomness; use the node's seeded RNG"),
    ("OsRng", "OS randomness; use the node's seeded RNG"),
    ("getrandom", "OS randomness; use the node's seeded RNG"),
    ("tokio", "no async runtime in the core; the driver owns IO"),
    (
        "std::thread",
        "no threads in the core; the driver owns concurrency",
    ),
    ("std::fs", "no file IO in the core; the driver persists"),
    ("std::net", "no network IO in the core; the driver sends"),
];

/// Files of a deterministic crate that may use one forbidden token, and why.
/// Each entry is a single file (a path relative to the workspace root) and a
/// single token: everything else in that file, and that token everywhere
/// else, stays forbidden.
const EXEMPT: &[(&str, &str, &str)] = &[(
    "crates/lab/src/output.rs",
    "std::fs",
    "the lab CLI writes the diagrams a user asked for after the run; \
     the rule guards the algorithms' determinism, and no algorithm, \
     simulator or renderer code lives in this file",
)];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
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

/// Returns the part of a source file that is compiled outside of tests: the text
/// before the first `#[cfg(test)]` line (test modules sit at the end of a file
/// by convention here), with line comments removed.
fn non_test_code(src: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in src.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = match line.find("//") {
            Some(pos) => &line[..pos],
            None => line,
        };
        out.push((i + 1, code.to_string()));
    }
    out
}

/// Whether `file` may use `tok` under `exempt`.
fn exempted(file: &Path, tok: &str, exempt: &[(&str, &str, &str)]) -> bool {
    exempt
        .iter()
        .any(|(path, t, _)| *t == tok && file.ends_with(path))
}

fn scan(
    files: &[PathBuf],
    forbidden: &[(&str, &str)],
    exempt: &[(&str, &str, &str)],
) -> Vec<String> {
    let mut violations = Vec::new();
    for f in files {
        let src = fs::read_to_string(f).unwrap();
        for (lineno, code) in non_test_code(&src) {
            for (tok, why) in forbidden {
                if code.contains(tok) && !exempted(f, tok, exempt) {
                    violations.push(format!("{}:{lineno}: `{tok}`: {why}", f.display()));
                }
            }
        }
    }
    violations
}

#[test]
fn deterministic_core_uses_no_os_time_randomness_or_io() {
    let root = workspace_root();
    let mut files = Vec::new();
    for c in DETERMINISTIC_CRATES {
        rust_files(&root.join("crates").join(c).join("src"), &mut files);
    }
    assert!(
        !files.is_empty(),
        "no source files found under {}",
        root.display()
    );
    let v = scan(&files, FORBIDDEN, EXEMPT);
    assert!(v.is_empty(), "determinism rules broken:\n{}", v.join("\n"));
}

/// Every exemption names an existing file that really uses its token (a
/// stale exemption would silently widen the rule's blind spot), inside a
/// deterministic crate, for a token the rule forbids.
#[test]
fn every_exemption_is_used_and_narrow() {
    let root = workspace_root();
    for (path, tok, why) in EXEMPT {
        assert!(
            FORBIDDEN.iter().any(|(t, _)| t == tok),
            "{path}: `{tok}` is not forbidden"
        );
        assert!(
            DETERMINISTIC_CRATES
                .iter()
                .any(|c| path.starts_with(&format!("crates/{c}/src/"))),
            "{path} is not in a deterministic crate"
        );
        assert!(!why.is_empty());
        let src = fs::read_to_string(root.join(path))
            .unwrap_or_else(|e| panic!("exempted file {path}: {e}"));
        assert!(
            non_test_code(&src)
                .iter()
                .any(|(_, code)| code.contains(tok)),
            "{path} no longer uses `{tok}`: drop its exemption"
        );
    }
}

/// The lab's exemption covers `std::fs` in its output module and nothing
/// else: the same line in an algorithm, or another token in the output
/// module, is still a violation.
#[test]
fn lab_output_exemption_does_not_cover_algorithms() {
    let dir = std::env::temp_dir().join(format!("synod-style-exempt-{}", std::process::id()));
    let planted = "pub fn save() { std::fs::write(\"x\", \"y\").unwrap(); }\n\
                   use std::collections::HashMap;\n";
    let mut files = vec![];
    for rel in [
        "crates/lab/src/output.rs",
        "crates/lab/src/algos/output.rs",
        "crates/lab/src/cli.rs",
    ] {
        let f = dir.join(rel);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(&f, planted).unwrap();
        files.push(f);
    }
    let v = scan(&files, FORBIDDEN, EXEMPT);
    fs::remove_dir_all(&dir).unwrap();
    let hits = |file: &str, tok: &str| {
        v.iter()
            .filter(|l| l.contains(&format!("{file}:")) && l.contains(&format!("`{tok}`")))
            .count()
    };
    // The same `std::fs` line is a violation in an algorithm and in the CLI…
    assert_eq!(hits("lab/src/algos/output.rs", "std::fs"), 1, "{v:?}");
    assert_eq!(hits("lab/src/cli.rs", "std::fs"), 1, "{v:?}");
    // …and only the output module may use it; nothing else is exempted there.
    assert_eq!(hits("lab/src/output.rs", "std::fs"), 0, "{v:?}");
    assert_eq!(hits("lab/src/output.rs", "HashMap"), 1, "{v:?}");
    assert_eq!(v.len(), 5, "{v:?}");
}

#[test]
fn deterministic_core_depends_on_no_runtime() {
    let root = workspace_root();
    for c in DETERMINISTIC_CRATES {
        let manifest = fs::read_to_string(root.join("crates").join(c).join("Cargo.toml")).unwrap();
        for bad in [
            "tokio",
            "async-std",
            "smol",
            "getrandom",
            "mio",
            "redb",
            "synod-store",
        ] {
            assert!(
                !manifest.lines().any(|l| l.trim_start().starts_with(bad)),
                "crates/{c}/Cargo.toml depends on {bad}; the deterministic core must not"
            );
        }
    }
}

/// The scanner itself must be able to fail: a planted violation is found.
#[test]
fn scanner_catches_a_planted_violation() {
    let dir = std::env::temp_dir().join(format!("synod-style-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let f = dir.join("planted.rs");
    fs::write(
        &f,
        "use std::collections::HashMap; // bad\n// HashMap in a comment is fine\n#[cfg(test)]\nmod t { use std::time::Instant; }\n",
    )
    .unwrap();
    let v = scan(std::slice::from_ref(&f), FORBIDDEN, EXEMPT);
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].contains(":1:") && v[0].contains("HashMap"));
}

#[test]
fn every_crate_is_described_in_architecture_md() {
    let root = workspace_root();
    let arch =
        fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md at the root");
    for e in fs::read_dir(root.join("crates")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(
            arch.contains(&format!("`crates/{name}`")),
            "ARCHITECTURE.md has no paragraph for `crates/{name}`"
        );
    }
}
