//! Keys follow code: a source file that decides results may not change while every version
//! covering it stays the same, or cached results computed by the old code would still be
//! taken for the new code's.
//!
//! `code_versions.toml` records, for every code unit (`advpipe::versions::units`), its
//! version, and for every source file a digest of its code (the text before its
//! `#[cfg(test)]` module, so tests can change freely). When a file's digest differs from the
//! table, some unit covering that file must have a new version; either way the table is
//! then refreshed with `ADVPIPE_BLESS_VERSIONS=1 cargo test --test main code_versions`, so
//! a behaviour-preserving change (a rename, a comment) is acknowledged in the diff.
//! Every file under `src/` is either covered by a unit or listed in [`NEUTRAL`] with the
//! reason it cannot change a result.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const TABLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/code_versions.toml");

/// Files that cannot change a cached result: what they decide is in the key as data (the
/// canonical parameters that the front end produces, the input keys, the data digests), or
/// they only read results (the report).
const NEUTRAL: &[&str] = &[
    "src/cache/",
    "src/config.rs",
    "src/diagnostics.rs",
    "src/error.rs",
    "src/exec/mod.rs",
    // Where and when a node computes (a worker, a Slurm job), never what: a job runs the same
    // kind code through the same cache, and tests/jobs.rs and tests/slurm.rs compare the bytes.
    "src/exec/one.rs",
    "src/exec/jobs/",
    // Progress lines while a pass runs; what the pass computes is the kind's.
    "src/exec/progress.rs",
    "src/kinds/mod.rs",
    "src/estimate.rs",
    "src/files.rs",
    "src/lib.rs",
    "src/main.rs",
    "src/params.rs",
    "src/plan.rs",
    "src/versions.rs",
    "src/train/tests.rs",
    "src/nn/layers/testing.rs",
    "src/check/",
    "src/syntax/",
    "src/report/",
];

#[derive(serde::Serialize, serde::Deserialize, Default, PartialEq, Debug)]
struct Table {
    versions: BTreeMap<String, u32>,
    sources: BTreeMap<String, String>,
}

fn code_digest(path: &str) -> String {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    // The code is what comes before the first test module (`#[cfg(test)]`, or
    // `#[cfg(all(test, ...))]` for tests that need a feature).
    let code = text
        .split("\n#[cfg(test)]")
        .next()
        .and_then(|t| t.split("\n#[cfg(all(test").next())
        .unwrap_or_default();
    blake3::hash(code.as_bytes()).to_hex()[..16].to_string()
}

fn rust_files(dir: &Path, root: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
        }
    }
}

/// The crate's own units (tests may register attacks of their own in this process).
fn builtin_units() -> Vec<advpipe::versions::CodeUnit> {
    advpipe::kinds::code_units()
        .into_iter()
        .filter(|u| u.sources.iter().all(|s| s.starts_with("src/")))
        .collect()
}

fn current(units: &[advpipe::versions::CodeUnit]) -> Table {
    let mut table = Table::default();
    for unit in units {
        table.versions.insert(unit.name.clone(), unit.version);
        for source in &unit.sources {
            table.sources.insert(source.to_string(), code_digest(source));
        }
    }
    table
}

/// What is wrong with the recorded table, given the units and the table they make now.
fn problems(recorded: &Table, now: &Table, units: &[advpipe::versions::CodeUnit]) -> Vec<String> {
    let mut problems = Vec::new();
    for (source, digest) in &now.sources {
        if recorded.sources.get(source) == Some(digest) {
            continue;
        }
        let covering: Vec<_> = units.iter().filter(|u| u.sources.contains(&source.as_str())).collect();
        let bumped = covering
            .iter()
            .any(|u| recorded.versions.get(&u.name).is_some_and(|v| *v != u.version));
        let names: Vec<&str> = covering.iter().map(|u| u.name.as_str()).collect();
        if !recorded.sources.contains_key(source) {
            problems.push(format!("{source} is a new source of {}: record it", names.join(", ")));
        } else if bumped {
            problems.push(format!("{source} changed and a version covering it was bumped: record it"));
        } else {
            problems.push(format!(
                "{source} changed but no version covering it did ({}). If results can change \
                 for the same parameters, bump the version of the affected unit(s); if the change \
                 preserves behaviour, acknowledge it by refreshing the table",
                names.join(", ")
            ));
        }
    }
    for (name, version) in &now.versions {
        if recorded.versions.get(name) != Some(version) {
            problems.push(format!(
                "unit {name} is at version {version}, the table says {:?}",
                recorded.versions.get(name)
            ));
        }
    }
    for gone in recorded.sources.keys().filter(|s| !now.sources.contains_key(*s)) {
        problems.push(format!("{gone} is no longer a source of any unit"));
    }
    for gone in recorded.versions.keys().filter(|n| !now.versions.contains_key(*n)) {
        problems.push(format!("unit {gone} no longer exists"));
    }
    problems
}

#[test]
fn code_versions_follow_source_changes() {
    let units = builtin_units();
    let now = current(&units);
    if std::env::var_os("ADVPIPE_BLESS_VERSIONS").is_some() {
        let text = format!(
            "# Code unit versions and source digests; see tests/code_versions.rs.\n\
             # Refresh with: ADVPIPE_BLESS_VERSIONS=1 cargo test --test main code_versions\n\n{}",
            toml::to_string(&now).unwrap()
        );
        std::fs::write(TABLE, text).unwrap();
        return;
    }
    let recorded: Table = toml::from_str(&std::fs::read_to_string(TABLE).unwrap()).unwrap();
    let problems = problems(&recorded, &now, &units);
    assert!(
        problems.is_empty(),
        "{}\n\nRefresh tests/code_versions.toml with: ADVPIPE_BLESS_VERSIONS=1 cargo test --test main code_versions",
        problems.join("\n")
    );
}

#[test]
fn every_source_file_is_covered_or_neutral() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), root, &mut files);
    let units = builtin_units();
    let covered: BTreeSet<&str> = units.iter().flat_map(|u| u.sources.iter().copied()).collect();
    let loose: Vec<&String> = files
        .iter()
        .filter(|f| !covered.contains(f.as_str()) && !NEUTRAL.iter().any(|n| f.starts_with(n)))
        .collect();
    assert!(
        loose.is_empty(),
        "these files are neither a source of a code unit (advpipe::versions) nor listed as \
         neutral in tests/code_versions.rs: {loose:?}"
    );
    for unit in &units {
        for source in &unit.sources {
            assert!(root.join(source).is_file(), "{} names {source}, which does not exist", unit.name);
        }
    }
}

/// The check can fail: a file whose code changed with no version bumped is reported with
/// the fix; with fgsm's version bumped it asks only to be recorded.
#[test]
fn a_changed_file_without_a_bump_is_caught() {
    let units = builtin_units();
    let now = current(&units);
    let mut recorded = current(&units);
    recorded.sources.insert("src/attacks/fgsm.rs".into(), "0000000000000000".into());
    let found = problems(&recorded, &now, &units);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("src/attacks/fgsm.rs changed but no version covering it did (attack/fgsm)"),
        "{found:?}"
    );
    recorded.versions.insert("attack/fgsm".into(), 0);
    let found = problems(&recorded, &now, &units);
    assert!(found[0].contains("was bumped: record it"), "{found:?}");
}

/// The digests cover a file's text up to its first test module, so code after one would
/// escape them: every top-level item after a test module must be another test module.
#[test]
fn no_code_hides_after_a_test_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), root, &mut files);
    let item = [
        "pub ",
        "pub(crate) ",
        "fn ",
        "const ",
        "static ",
        "struct ",
        "enum ",
        "impl",
        "trait ",
        "type ",
        "mod ",
        "use ",
    ];
    let mut hidden = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let mut in_tests = false;
        let mut gated = false;
        for (n, line) in text.lines().enumerate() {
            let test_gate = line.starts_with("#[cfg(test)]") || line.starts_with("#[cfg(all(test");
            if in_tests && !gated && item.iter().any(|i| line.starts_with(i)) {
                hidden.push(format!("{file}:{}: {line}", n + 1));
            }
            in_tests |= test_gate;
            gated = test_gate || (gated && line.starts_with("#["));
        }
    }
    assert!(
        hidden.is_empty(),
        "code after a test module escapes the version digests; move it above:\n{}",
        hidden.join("\n")
    );
}
