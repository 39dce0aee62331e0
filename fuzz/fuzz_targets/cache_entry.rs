//! Any bytes as a cache entry's `manifest.json` must give a hit, a miss or an entry moved
//! aside: never a panic. The entry also holds a file `a` for manifests that list it.
#![no_main]

use libfuzzer_sys::fuzz_target;

const KEY: &str = "abababababababababababababababababababababababababababababababab";

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temp folder");
    let cache = advpipe::cache::Cache::open(dir.path()).expect("a new cache opens");
    let entry = dir.path().join("objects/ab").join(KEY);
    std::fs::create_dir_all(&entry).expect("an entry folder");
    std::fs::write(entry.join("a"), b"{\"error\": 0.5}").expect("a file");
    std::fs::write(entry.join("manifest.json"), data).expect("a manifest");
    let _ = cache.lookup(KEY);
});
