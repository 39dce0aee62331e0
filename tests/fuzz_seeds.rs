//! The fuzz targets' seeds (`fuzz/seeds/<target>/`), replayed through the same readers as
//! the targets in `fuzz/fuzz_targets/`: every input that once found a bug stays a
//! regression test here. A property test feeds the cache's entry reader arbitrary manifests.

use proptest::prelude::*;
use std::path::{Path, PathBuf};

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| (e.path(), std::fs::read(e.path()).unwrap()))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

const KEY: &str = "abababababababababababababababababababababababababababababababab";

/// What the `cache_entry` target does: one entry whose manifest is `manifest`.
fn lookup_entry(manifest: &[u8]) -> advpipe::cache::Lookup {
    let dir = tempfile::tempdir().unwrap();
    let cache = advpipe::cache::Cache::open(dir.path()).unwrap();
    let entry = dir.path().join("objects/ab").join(KEY);
    std::fs::create_dir_all(&entry).unwrap();
    std::fs::write(entry.join("a"), b"{\"error\": 0.5}").unwrap();
    std::fs::write(entry.join("manifest.json"), manifest).unwrap();
    cache.lookup(KEY)
}

#[test]
fn compile_seeds_never_panic() {
    for (_, bytes) in seeds("compile") {
        let text = String::from_utf8_lossy(&bytes);
        let _ = advpipe::compile(&advpipe::diagnostics::Source::new("fuzz.adv", text.as_ref()));
    }
}

#[test]
fn idx_seeds_never_panic() {
    for (path, bytes) in seeds("idx") {
        let _ = advpipe::data::idx::parse(&bytes);
        if let Ok(inflated) = advpipe::files::gunzip(&path, &bytes, 1 << 24) {
            let _ = advpipe::data::idx::parse(&inflated);
        }
    }
}

#[test]
fn checkpoint_seeds_never_panic() {
    let dev = advpipe::nn::model::Dev::default();
    for (path, bytes) in seeds("checkpoint") {
        let loaded = advpipe::nn::Model::from_safetensors(&dev, &bytes);
        if path.ends_with("linear.safetensors") {
            assert!(loaded.is_ok(), "the valid seed must load: {:?}", loaded.err());
        }
    }
}

#[test]
fn cache_entry_seeds_never_panic() {
    for (path, bytes) in seeds("cache_entry") {
        let found = lookup_entry(&bytes);
        let valid = path.ends_with("valid.json");
        assert_eq!(matches!(found, advpipe::cache::Lookup::Hit(..)), valid, "{}", path.display());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_manifest_is_a_hit_or_moved_aside(
        files in proptest::collection::btree_map("\\PC{0,8}", "\\PC{0,70}", 0..3),
        key_ok in any::<bool>(),
    ) {
        let manifest = serde_json::json!({
            "key": if key_ok { KEY } else { "x" },
            "kind": "evaluate", "node": "e", "advpipe_version": "0", "seconds": 0.0,
            "files": files, "recipe": null,
        });
        let found = lookup_entry(&serde_json::to_vec(&manifest).unwrap());
        prop_assert!(matches!(found, advpipe::cache::Lookup::Hit(..) | advpipe::cache::Lookup::Corrupt(_)));
    }

    #[test]
    fn any_bytes_as_a_manifest_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = lookup_entry(&bytes);
    }
}
