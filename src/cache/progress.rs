//! Unfinished work: the checkpoint of a fit still running, or of one whose run was killed,
//! as `progress/<key>.fit`, one file per node key. It is written to
//! `progress/<key>.fit.tmp-<pid>-<nanos>` (locked while written) and renamed over the
//! previous one, so the file is always a whole checkpoint; the fit checks its digest before
//! trusting it (see `train::resume`). Finished entries delete their checkpoint. Opening a
//! cache removes a temporary file only when it has exactly that name, nobody holds its lock
//! and it is over a minute old; a checkpoint that does not check out is moved to `corrupt/` with a `REASON.txt`, never deleted.

use super::{is_plain_file_name, unique_suffix, Cache};
use crate::error::{Error, Result};
use crate::files::{self, FileKind};
use std::path::PathBuf;

/// The folder of unfinished work.
pub(super) const FOLDER: &str = "progress";
const SUFFIX: &str = ".fit";
const TMP: &str = ".fit.tmp-";

impl Cache {
    fn progress_path(&self, key: &str) -> Option<PathBuf> {
        is_plain_file_name(key).then(|| self.root.join(FOLDER).join(format!("{key}{SUFFIX}")))
    }

    /// The checkpoint saved for `key`, if there is one.
    pub fn progress(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.progress_path(key) {
            Some(path) if path.exists() => files::read(&path, FileKind::CacheFile).map(Some),
            _ => Ok(None),
        }
    }

    /// Whether a checkpoint is saved for `key` (unchecked: resuming checks it).
    pub fn has_progress(&self, key: &str) -> bool {
        self.progress_path(key).is_some_and(|p| p.is_file())
    }

    /// Saves `bytes` as the checkpoint of `key`, replacing the previous one in one step. The
    /// temporary file is locked while it is written, which tells a sweep on any machine
    /// sharing the cache that its writer is alive.
    pub fn save_progress(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self
            .progress_path(key)
            .ok_or_else(|| Error::msg(format!("`{key}` is not a cache key")))?;
        let tmp = self.root.join(FOLDER).join(format!("{key}{TMP}{}", unique_suffix()));
        let written = std::fs::File::options().write(true).create_new(true).open(&tmp).and_then(|mut file| {
            file.lock()?;
            std::io::Write::write_all(&mut file, bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        });
        written.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(&path, e)
        })
    }

    /// Deletes the checkpoint of `key` (its work is finished and stored).
    pub fn clear_progress(&self, key: &str) {
        if let Some(path) = self.progress_path(key) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Moves the checkpoint of `key` to `corrupt/` with a `REASON.txt` saying `why`.
    pub fn set_aside_progress(&self, key: &str, why: &str) {
        let Some(path) = self.progress_path(key) else { return };
        let aside = self.root.join("corrupt").join(format!("{key}{SUFFIX}.{}", unique_suffix()));
        if std::fs::create_dir(&aside).is_ok() && std::fs::rename(&path, aside.join(format!("{key}{SUFFIX}"))).is_ok() {
            let _ = std::fs::write(aside.join("REASON.txt"), format!("{why}\n"));
        }
    }

    /// Removes the temporary checkpoints of runs that died mid-write: files named
    /// `<key>.fit.tmp-<pid>-<nanos>` that nobody holds locked and that were last written
    /// more than a minute ago. The lock, not the pid, decides: on a cache shared by several
    /// machines a pid says nothing about another machine's processes. The age closes the
    /// moment between a writer creating its file and locking it.
    pub(super) fn sweep_abandoned_progress(&self) {
        let Ok(entries) = std::fs::read_dir(self.root.join(FOLDER)) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_str().and_then(abandoned_pid).is_none() || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > ABANDONED_AFTER));
            let Ok(file) = std::fs::File::options().read(true).write(true).open(entry.path()) else {
                continue;
            };
            if old && file.try_lock().is_ok() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// How old an unlocked temporary checkpoint must be before a sweep removes it.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// The pid in a temporary checkpoint's name `<64 hex>.fit.tmp-<pid>-<nanos>`, if it is one
/// (only the shape of the name counts: see `sweep_abandoned_progress`).
fn abandoned_pid(name: &str) -> Option<u32> {
    let (key, rest) = name.split_once(TMP)?;
    let (pid, nanos) = rest.split_once('-')?;
    let hex = key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit());
    (hex && nanos.bytes().all(|b| b.is_ascii_digit()) && !nanos.is_empty()).then(|| pid.parse().ok())?
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_checkpoint_is_saved_replaced_read_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("c")).unwrap();
        assert_eq!(cache.progress(KEY).unwrap(), None);
        cache.save_progress(KEY, b"one").unwrap();
        cache.save_progress(KEY, b"two").unwrap();
        assert_eq!(cache.progress(KEY).unwrap().as_deref(), Some(&b"two"[..]));
        let left: Vec<_> = std::fs::read_dir(dir.path().join("c/progress")).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file stays behind");
        cache.clear_progress(KEY);
        assert_eq!(cache.progress(KEY).unwrap(), None);
        assert!(cache.save_progress("../escape", b"x").is_err());
    }

    #[test]
    fn a_bad_checkpoint_is_set_aside_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("c")).unwrap();
        cache.save_progress(KEY, b"garbage").unwrap();
        cache.set_aside_progress(KEY, "its digest does not match");
        assert_eq!(cache.progress(KEY).unwrap(), None);
        let aside: Vec<_> = std::fs::read_dir(dir.path().join("c/corrupt")).unwrap().flatten().collect();
        assert_eq!(aside.len(), 1);
        let reason = std::fs::read_to_string(aside[0].path().join("REASON.txt")).unwrap();
        assert!(reason.contains("digest"));
    }

    #[test]
    fn only_an_unlocked_old_temporary_checkpoint_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("c");
        Cache::open(&root).unwrap();
        let progress = root.join(FOLDER);
        let dead = format!("{KEY}{TMP}4294967295-12");
        let writing = format!("{KEY}{TMP}77-13");
        let young = format!("{KEY}{TMP}78-14");
        let two_minutes_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
        for name in [&dead, &writing, &young, &format!("{KEY}{TMP}x-12"), &"thesis.fit.tmp-1-2".to_string(), &format!("{KEY}{SUFFIX}")] {
            std::fs::write(progress.join(name), b"x").unwrap();
            if *name != young {
                std::fs::File::options().write(true).open(progress.join(name)).unwrap().set_modified(two_minutes_ago).unwrap();
            }
        }
        // A writer on another machine holds its lock, whatever its pid means here.
        let held = std::fs::File::options().write(true).open(progress.join(&writing)).unwrap();
        held.lock().unwrap();
        Cache::open(&root).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&progress)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert!(!left.contains(&dead), "{left:?}");
        assert_eq!(left.len(), 5, "the locked one, the young one and the look-alikes stay: {left:?}");
        drop(held);
    }
}
