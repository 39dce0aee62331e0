//! The content-addressed artifact cache.
//!
//! An entry is a folder `objects/<key[..2]>/<key>/` holding the artifact's files and a
//! `manifest.json` that records each file's BLAKE3 digest and the recipe behind the key.
//! Entries are written into `tmp/` and renamed into place, so a crash never leaves a
//! half-written entry and two runs racing on one key both end with one whole entry. An
//! entry whose files do not match their digests is moved to `corrupt/` and reported,
//! never trusted.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A cache rooted at a folder.
pub struct Cache {
    root: PathBuf,
}

/// What an entry's `manifest.json` says.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// The key, repeated so a misplaced folder is detected.
    pub key: String,
    /// The node's kind.
    pub kind: String,
    /// The node's name when it was stored.
    pub node: String,
    /// advpipe's version that wrote it.
    pub advpipe_version: String,
    /// Seconds the computation took.
    pub seconds: f64,
    /// File name -> BLAKE3 hex digest.
    pub files: BTreeMap<String, String>,
    /// The JSON the key hashes.
    pub recipe: serde_json::Value,
}

/// The result of a lookup.
pub enum Lookup {
    /// No entry.
    Miss,
    /// A verified entry: its manifest and file contents.
    Hit(Manifest, BTreeMap<String, Vec<u8>>),
    /// An entry that failed verification (now moved aside), and why.
    Corrupt(String),
}

impl Cache {
    /// Opens (creating) a cache folder, and removes temporary folders abandoned by killed runs.
    pub fn open(root: impl Into<PathBuf>) -> Result<Cache> {
        let root = root.into();
        for sub in ["objects", "tmp", "corrupt"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        let cache = Cache { root };
        cache.sweep_tmp(Duration::from_secs(3600));
        Ok(cache)
    }

    /// The cache's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn entry_dir(&self, key: &str) -> PathBuf {
        self.root.join("objects").join(&key[..2]).join(key)
    }

    fn sweep_tmp(&self, older_than: Duration) {
        let Ok(entries) = std::fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > older_than);
            if old {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Looks `key` up and verifies every file against the manifest, changing nothing.
    pub fn peek(&self, key: &str) -> Lookup {
        let dir = self.entry_dir(key);
        if !dir.exists() {
            return Lookup::Miss;
        }
        match self.verify(key, &dir.join("manifest.json")) {
            Ok((manifest, files)) => Lookup::Hit(manifest, files),
            Err(why) => Lookup::Corrupt(why),
        }
    }

    /// Looks `key` up and verifies every file against the manifest; a corrupt entry is moved
    /// to `corrupt/` so that it is recomputed.
    pub fn lookup(&self, key: &str) -> Lookup {
        let dir = self.entry_dir(key);
        match self.peek(key) {
            Lookup::Corrupt(why) => {
                let aside = self.root.join("corrupt").join(format!("{key}.{}", unique_suffix()));
                // If another run already moved it, the entry is gone either way.
                let _ = std::fs::rename(&dir, &aside);
                Lookup::Corrupt(why)
            }
            found => found,
        }
    }

    fn verify(&self, key: &str, manifest_path: &Path) -> Result<(Manifest, BTreeMap<String, Vec<u8>>), String> {
        let text = std::fs::read(manifest_path).map_err(|e| format!("manifest unreadable: {e}"))?;
        let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| format!("manifest invalid: {e}"))?;
        if manifest.key != key {
            return Err(format!("manifest is for key {}", manifest.key));
        }
        let dir = manifest_path.parent().expect("manifest is inside its entry");
        let mut files = BTreeMap::new();
        for (name, digest) in &manifest.files {
            let bytes = std::fs::read(dir.join(name)).map_err(|e| format!("{name} unreadable: {e}"))?;
            let actual = blake3::hash(&bytes).to_hex().to_string();
            if &actual != digest {
                return Err(format!(
                    "{name} has checksum {}… but the manifest says {}…",
                    &actual[..12],
                    &digest[..12]
                ));
            }
            files.insert(name.clone(), bytes);
        }
        Ok((manifest, files))
    }

    /// Stores files under `key`: written to `tmp/`, then renamed into place in one step.
    pub fn store(&self, mut manifest: Manifest, files: &[(&str, Vec<u8>)]) -> Result<()> {
        let tmp = self.root.join("tmp").join(format!("{}.{}", manifest.key, unique_suffix()));
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let write = |name: &str, bytes: &[u8]| -> Result<()> {
            let path = tmp.join(name);
            let mut f = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
            std::io::Write::write_all(&mut f, bytes).map_err(|e| Error::io(&path, e))?;
            f.sync_all().map_err(|e| Error::io(&path, e))
        };
        for (name, bytes) in files {
            write(name, bytes)?;
            manifest.files.insert(name.to_string(), blake3::hash(bytes).to_hex().to_string());
        }
        write(
            "manifest.json",
            &serde_json::to_vec_pretty(&manifest).map_err(|e| Error::msg(e.to_string()))?,
        )?;
        let dest = self.entry_dir(&manifest.key);
        let parent = dest.parent().expect("entries have a parent");
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        if std::fs::rename(&tmp, &dest).is_err() {
            // Another run stored the same key first; its entry is equivalent.
            let _ = std::fs::remove_dir_all(&tmp);
            if !dest.join("manifest.json").exists() {
                return Err(Error::msg(format!("could not move a new cache entry into {}", dest.display())));
            }
        }
        Ok(())
    }
}

fn unique_suffix() -> String {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(key: &str) -> Manifest {
        Manifest {
            key: key.into(),
            kind: "evaluate".into(),
            node: "e".into(),
            advpipe_version: "test".into(),
            seconds: 0.0,
            files: BTreeMap::new(),
            recipe: serde_json::Value::Null,
        }
    }

    #[test]
    fn store_then_hit_then_corrupt_then_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let key = "ab".repeat(32);
        assert!(matches!(cache.lookup(&key), Lookup::Miss));
        cache
            .store(manifest(&key), &[("metrics.json", b"{\"error\": 0.5}".to_vec())])
            .unwrap();
        let Lookup::Hit(_, files) = cache.lookup(&key) else {
            panic!("expected a hit")
        };
        assert_eq!(files["metrics.json"], b"{\"error\": 0.5}");
        std::fs::write(cache.entry_dir(&key).join("metrics.json"), b"{\"error\": 0.0}").unwrap();
        let Lookup::Corrupt(why) = cache.lookup(&key) else {
            panic!("expected corruption")
        };
        assert!(why.contains("metrics.json"), "{why}");
        assert!(matches!(cache.lookup(&key), Lookup::Miss));
        assert_eq!(std::fs::read_dir(dir.path().join("corrupt")).unwrap().count(), 1);
    }

    #[test]
    fn storing_a_key_twice_keeps_one_whole_entry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let key = "cd".repeat(32);
        cache.store(manifest(&key), &[("a", vec![1])]).unwrap();
        cache.store(manifest(&key), &[("a", vec![1])]).unwrap();
        assert!(matches!(cache.lookup(&key), Lookup::Hit(..)));
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }
}
