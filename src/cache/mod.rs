//! The content-addressed artifact cache.
//!
//! An entry is a folder `objects/<key[..2]>/<key>/` holding the artifact's files and a
//! `manifest.json` that records each file's BLAKE3 digest and the recipe behind the key.
//! Entries are written into `tmp/advpipe-store-<key>-<pid>-<nanos>/` and renamed into place,
//! so a crash never leaves a half-written entry and two runs racing on one key both end with
//! one whole entry. An entry that fails verification or cannot be decoded is moved to
//! `corrupt/` with a `REASON.txt`, never trusted and never deleted.
//!
//! The cache deletes only what it can prove it wrote: a store holds an exclusive lock on
//! `tmp/advpipe-store-….lock` while it writes, and cleans up its folder itself when it fails.
//! Opening a cache removes a store folder only when its lock file exists and nobody holds the
//! lock (its run was killed), and then only the plain files the store wrote in it. Anything
//! else in `tmp/` (or anywhere else) is left alone. A folder that holds files but is not an
//! advpipe cache is refused, so `--cache-dir ~` cannot scatter entries through a home folder.
//!
//! Unfinished work (a fit's checkpoints) lives apart, under `progress/` (see [`progress`]).

use crate::error::{Error, Result};
use crate::files::{self, FileKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

mod progress;

/// Names of the folders a store writes in `tmp/`, and of their lock files.
const STORE_PREFIX: &str = "advpipe-store-";
const LOCK_SUFFIX: &str = ".lock";
/// The tag that marks a cache folder (<https://bford.info/cachedir/>): backup tools skip it,
/// and `Cache::open` knows the folder for an advpipe cache by it.
const TAG_NAME: &str = "CACHEDIR.TAG";
const TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by advpipe.\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";

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
    /// Opens (creating) a cache folder, and cleans up the stores of runs that were killed.
    pub fn open(root: impl Into<PathBuf>) -> Result<Cache> {
        let root = root.into();
        refuse_foreign_folder(&root)?;
        for sub in ["objects", "tmp", "corrupt", progress::FOLDER] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        let tag = root.join(TAG_NAME);
        if !tag.exists() {
            std::fs::write(&tag, TAG).map_err(|e| Error::io(&tag, e))?;
        }
        let cache = Cache { root };
        cache.sweep_abandoned_stores();
        cache.sweep_abandoned_progress();
        Ok(cache)
    }

    fn entry_dir(&self, key: &str) -> PathBuf {
        self.root.join("objects").join(key.get(..2).unwrap_or("__")).join(key)
    }

    /// Removes the folders of stores whose run died: named by a store, with a lock file
    /// nobody holds. Only the plain files directly inside are removed (a store writes no
    /// others); a folder with anything else in it is left where it is.
    fn sweep_abandoned_stores(&self) {
        let tmp = self.root.join("tmp");
        let Ok(entries) = std::fs::read_dir(&tmp) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(LOCK_SUFFIX)).filter(|n| is_store_name(n)) else {
                continue;
            };
            let lock_path = entry.path();
            let Ok(lock) = File::options().read(true).write(true).open(&lock_path) else {
                continue;
            };
            if lock.try_lock().is_err() {
                continue; // a live store
            }
            let folder = tmp.join(stem);
            if remove_store_folder(&folder) {
                let _ = std::fs::remove_file(&lock_path);
            }
        }
    }

    /// Looks `key` up and verifies every file against the manifest, changing nothing.
    pub fn peek(&self, key: &str) -> Lookup {
        let dir = self.entry_dir(key);
        match std::fs::symlink_metadata(&dir) {
            // NotADirectory: `objects/<xx>` is a file, which `store` moves aside.
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => return Lookup::Miss,
            Err(e) => return Lookup::Corrupt(format!("entry folder unreadable: {e}")),
            Ok(meta) if !meta.is_dir() => return Lookup::Corrupt("the entry is not a folder".into()),
            Ok(_) => {}
        }
        match self.verify(key, &dir) {
            Ok((manifest, files)) => Lookup::Hit(manifest, files),
            Err(why) => Lookup::Corrupt(why),
        }
    }

    /// Looks `key` up and verifies every file against the manifest; a corrupt entry is moved
    /// to `corrupt/` so that it is recomputed.
    pub fn lookup(&self, key: &str) -> Lookup {
        match self.peek(key) {
            Lookup::Corrupt(why) => {
                self.set_aside(key, &why);
                Lookup::Corrupt(why)
            }
            found => found,
        }
    }

    /// Moves the entry for `key` to `corrupt/<key>.<suffix>/` with a `REASON.txt` saying
    /// `why`, so that the next lookup misses. Used for entries that verify but cannot be
    /// decoded too. If another run moved it first, the entry is gone either way.
    pub fn set_aside(&self, key: &str, why: &str) {
        let aside = self.root.join("corrupt").join(format!("{key}.{}", unique_suffix()));
        if std::fs::rename(self.entry_dir(key), &aside).is_ok() && aside.is_dir() {
            let _ = std::fs::write(aside.join("REASON.txt"), format!("{why}\n"));
        }
    }

    fn verify(&self, key: &str, dir: &Path) -> Result<(Manifest, BTreeMap<String, Vec<u8>>), String> {
        let text = files::read(&dir.join("manifest.json"), FileKind::CacheFile).map_err(|e| format!("manifest unreadable: {e}"))?;
        let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| format!("manifest invalid: {e}"))?;
        if manifest.key != key {
            return Err(format!("manifest is for key {}", short(&manifest.key)));
        }
        let mut contents = BTreeMap::new();
        for (name, digest) in &manifest.files {
            if !is_plain_file_name(name) {
                return Err(format!("the manifest lists `{}`, which is not a file name", short(name)));
            }
            let bytes = files::read(&dir.join(name), FileKind::CacheFile).map_err(|e| format!("{name} unreadable: {e}"))?;
            let actual = blake3::hash(&bytes).to_hex().to_string();
            if &actual != digest {
                return Err(format!(
                    "{name} has checksum {}… but the manifest says {}…",
                    short(&actual),
                    short(digest)
                ));
            }
            contents.insert(name.clone(), bytes);
        }
        Ok((manifest, contents))
    }

    /// Stores files under `key`: written to `tmp/`, then renamed into place in one step. A
    /// store that fails removes what it wrote before it returns the error.
    pub fn store(&self, mut manifest: Manifest, files: &[(&str, Vec<u8>)]) -> Result<()> {
        if !is_plain_file_name(&manifest.key) {
            return Err(Error::msg(format!("`{}` is not a cache key", short(&manifest.key))));
        }
        let mut staging = Staging::begin(&self.root.join("tmp"), &manifest.key)?;
        for (name, bytes) in files {
            staging.write(name, bytes)?;
            manifest.files.insert(name.to_string(), blake3::hash(bytes).to_hex().to_string());
        }
        let manifest_json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::msg(e.to_string()))?;
        staging.write("manifest.json", &manifest_json)?;
        let dest = self.entry_dir(&manifest.key);
        let parent = dest.parent().expect("entries have a parent");
        if parent.exists() && !parent.is_dir() {
            // `objects/<xx>` is not a folder: move it aside, or no entry under it could be stored.
            let aside = self
                .root
                .join("corrupt")
                .join(format!("objects-{}.{}", short(&manifest.key), unique_suffix()));
            std::fs::rename(parent, &aside).map_err(|e| Error::io(parent, e))?;
        }
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        staging.commit(&dest)
    }
}

/// A store in progress: its folder under `tmp/` and the lock that says it is alive. Dropped
/// before [`Staging::commit`], it removes what it wrote.
struct Staging {
    folder: PathBuf,
    lock_path: PathBuf,
    lock: Option<File>,
    written: Vec<PathBuf>,
}

impl Staging {
    fn begin(tmp: &Path, key: &str) -> Result<Staging> {
        let name = format!("{STORE_PREFIX}{key}-{}", unique_suffix());
        let lock_path = tmp.join(format!("{name}{LOCK_SUFFIX}"));
        let lock = File::options()
            .write(true)
            .create_new(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        let mut staging = Staging {
            folder: tmp.join(&name),
            lock_path,
            lock: None,
            written: Vec::new(),
        };
        lock.lock().map_err(|e| Error::io(&staging.lock_path, e))?;
        staging.lock = Some(lock);
        std::fs::create_dir(&staging.folder).map_err(|e| Error::io(&staging.folder, e))?;
        Ok(staging)
    }

    fn write(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        if !is_plain_file_name(name) || name.starts_with('.') {
            return Err(Error::msg(format!("`{name}` is not a cache file name")));
        }
        let path = self.folder.join(name);
        let mut f = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        self.written.push(path.clone());
        std::io::Write::write_all(&mut f, bytes).map_err(|e| Error::io(&path, e))?;
        f.sync_all().map_err(|e| Error::io(&path, e))
    }

    fn commit(mut self, dest: &Path) -> Result<()> {
        match std::fs::rename(&self.folder, dest) {
            Ok(()) => {
                self.written.clear();
                let _ = std::fs::remove_file(&self.lock_path);
                self.lock = None;
                Ok(())
            }
            // Another run stored the same key first; its entry is equivalent. (Drop cleans up.)
            Err(_) if dest.join("manifest.json").exists() => Ok(()),
            Err(e) => Err(Error::msg(format!("could not move a new cache entry into {}: {e}", dest.display()))),
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.lock.is_none() {
            return;
        }
        for path in &self.written {
            let _ = std::fs::remove_file(path);
        }
        let _ = std::fs::remove_dir(&self.folder);
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// Removes a dead store's folder: its plain files, then the folder if that leaves it empty.
/// Returns whether the folder is gone.
fn remove_store_folder(folder: &Path) -> bool {
    match std::fs::symlink_metadata(folder) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
        Ok(meta) if meta.is_dir() => {}
        _ => return false,
    }
    if let Ok(entries) = std::fs::read_dir(folder) {
        for entry in entries.flatten() {
            let plain = entry.file_type().is_ok_and(|t| t.is_file());
            if plain && entry.file_name().to_str().is_some_and(is_plain_file_name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    std::fs::remove_dir(folder).is_ok()
}

/// `advpipe-store-<64 hex>-<pid>-<nanos>`: the only names a store gives its folders.
fn is_store_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(STORE_PREFIX) else {
        return false;
    };
    let parts: Vec<&str> = rest.split('-').collect();
    matches!(parts.as_slice(), [key, pid, nanos]
        if key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit())
            && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
            && !nanos.is_empty() && nanos.bytes().all(|b| b.is_ascii_digit()))
}

/// A name that stays inside its folder: no separators, not `.` or `..`.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// The first 12 characters of a digest or key, however short or odd it is.
fn short(text: &str) -> String {
    text.chars().take(12).collect()
}

/// An error if `root` holds files but is not an advpipe cache.
fn refuse_foreign_folder(root: &Path) -> Result<()> {
    let mut entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(Error::msg(format!(
                "cache folder {} is a file; pick a folder (--cache-dir)",
                root.display()
            )))
        }
        Err(e) => return Err(Error::io(root, e)),
    };
    let empty = entries.next().is_none();
    // Caches written before the tag existed have `objects/` and are adopted.
    if empty || root.join(TAG_NAME).is_file() || root.join("objects").is_dir() {
        return Ok(());
    }
    Err(Error::msg(format!(
        "{} is not an advpipe cache: it holds other files and no {TAG_NAME}. \
         Pick an empty or new folder for --cache-dir (or cache_dir in advpipe.toml)",
        root.display()
    )))
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

    fn count(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
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
        let aside: Vec<_> = std::fs::read_dir(dir.path().join("corrupt")).unwrap().flatten().collect();
        assert_eq!(aside.len(), 1);
        let reason = std::fs::read_to_string(aside[0].path().join("REASON.txt")).unwrap();
        assert!(reason.contains("metrics.json has checksum"), "{reason}");
    }

    #[test]
    fn storing_a_key_twice_keeps_one_whole_entry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let key = "cd".repeat(32);
        cache.store(manifest(&key), &[("a", vec![1])]).unwrap();
        cache.store(manifest(&key), &[("a", vec![1])]).unwrap();
        assert!(matches!(cache.lookup(&key), Lookup::Hit(..)));
        assert_eq!(count(&dir.path().join("tmp")), 0);
    }

    /// The data-loss repro of issue 11: `tmp/` is the user's own folder when the cache is
    /// pointed at a home folder; nothing in it that the cache did not write may go.
    #[test]
    fn opening_a_cache_never_deletes_folders_it_did_not_write() {
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("cache");
        Cache::open(&cache_dir).unwrap();
        let tmp = cache_dir.join("tmp");
        let theirs = [
            tmp.join("p"),
            tmp.join(format!("{}.123-456", "ab".repeat(32))),
            tmp.join(format!("{STORE_PREFIX}{}-1-2", "ab".repeat(32))), // no lock file
        ];
        for folder in &theirs {
            std::fs::create_dir_all(folder).unwrap();
            std::fs::write(folder.join("thesis.tex"), b"years of work").unwrap();
            let old = SystemTime::now() - std::time::Duration::from_secs(7 * 24 * 3600);
            File::open(folder).unwrap().set_modified(old).unwrap();
        }
        Cache::open(&cache_dir).unwrap();
        for folder in &theirs {
            assert!(folder.join("thesis.tex").exists(), "{} was touched", folder.display());
        }
    }

    #[test]
    fn a_folder_with_other_files_is_not_taken_for_a_cache() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        let e = Cache::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("is not an advpipe cache"), "{e}");
        assert_eq!(count(dir.path()), 1);
        let file = dir.path().join("notes.txt");
        let e = Cache::open(&file).err().unwrap().to_string();
        assert!(e.contains("is a file"), "{e}");
    }

    #[test]
    fn a_killed_store_is_removed_and_a_live_one_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        Cache::open(dir.path()).unwrap();
        let tmp = dir.path().join("tmp");
        // What a store killed mid-write leaves: its folder, part-written, and its lock file,
        // which nobody holds once the process is gone.
        let dead = tmp.join(format!("{STORE_PREFIX}{}-4242-1", "ef".repeat(32)));
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join("model.safetensors"), [0; 1000]).unwrap();
        let dead_lock = tmp.join(format!("{STORE_PREFIX}{}-4242-1{LOCK_SUFFIX}", "ef".repeat(32)));
        std::fs::write(&dead_lock, b"").unwrap();
        let mut live = Staging::begin(&tmp, &"12".repeat(32)).unwrap();
        live.write("metrics.json", b"{}").unwrap();
        Cache::open(dir.path()).unwrap();
        assert!(!dead.exists() && !dead_lock.exists(), "the killed store was not cleaned up");
        assert!(live.folder.join("metrics.json").exists(), "a live store was touched");
        drop(live);
        assert_eq!(count(&tmp), 0, "a failed store leaves nothing behind");
    }

    #[test]
    fn a_failed_store_removes_what_it_wrote_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let key = "ab".repeat(32);
        let e = cache
            .store(manifest(&key), &[("a", vec![1; 100]), ("../escape", vec![2])])
            .unwrap_err();
        assert!(e.to_string().contains("not a cache file name"), "{e}");
        assert_eq!(count(&dir.path().join("tmp")), 0);
        assert!(matches!(cache.lookup(&key), Lookup::Miss));
    }

    #[test]
    fn odd_manifests_are_corrupt_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        for (i, digest) in ["ab", "é", "", "ééééééééééééééé"].iter().enumerate() {
            let key = format!("{i:02}").repeat(32);
            cache.store(manifest(&key), &[("a", vec![1])]).unwrap();
            let path = cache.entry_dir(&key).join("manifest.json");
            let mut m: Manifest = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            m.files.insert("a".into(), digest.to_string());
            std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
            assert!(matches!(cache.lookup(&key), Lookup::Corrupt(_)), "{digest:?}");
            assert!(matches!(cache.lookup(&key), Lookup::Miss));
        }
        let key = "99".repeat(32);
        cache.store(manifest(&key), &[("a", vec![1])]).unwrap();
        let path = cache.entry_dir(&key).join("manifest.json");
        let mut m: Manifest = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        m.files.insert("../../../etc/passwd".into(), "00".into());
        std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
        let Lookup::Corrupt(why) = cache.lookup(&key) else {
            panic!("expected corruption")
        };
        assert!(why.contains("not a file name"), "{why}");
    }

    #[test]
    fn a_file_in_place_of_a_prefix_folder_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let key = "7f".repeat(32);
        std::fs::write(dir.path().join("objects/7f"), b"junk").unwrap();
        assert!(matches!(cache.lookup(&key), Lookup::Miss));
        cache.store(manifest(&key), &[("a", vec![1])]).unwrap();
        assert!(matches!(cache.lookup(&key), Lookup::Hit(..)));
        assert_eq!(count(&dir.path().join("corrupt")), 1);
    }

    #[test]
    fn an_entry_that_is_not_a_folder_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let key = "3c".repeat(32);
        std::fs::create_dir_all(dir.path().join("objects/3c")).unwrap();
        std::fs::write(cache.entry_dir(&key), b"junk").unwrap();
        assert!(matches!(cache.lookup(&key), Lookup::Corrupt(_)));
        cache.store(manifest(&key), &[("a", vec![1])]).unwrap();
        assert!(matches!(cache.lookup(&key), Lookup::Hit(..)));
    }
}
