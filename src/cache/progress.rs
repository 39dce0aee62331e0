//! Unfinished work: the checkpoint of a fit still running, or of one whose run was killed,
//! as `progress/<key>.fit`, one file per node key. It is written to
//! `progress/<key>.fit.tmp-<pid>-<nanos>-<host>` (locked while written) and renamed over the
//! previous one, so the file is always a whole checkpoint; the fit checks its digest before
//! trusting it (see `train::resume`). Finished entries delete their checkpoint. Opening a
//! cache removes a temporary file only when it has exactly that name, nobody holds its lock
//! and its writer is provably gone (its pid no longer exists on this machine, or a minute
//! passed); a checkpoint that does not check out is moved to `corrupt/` with a `REASON.txt`,
//! never deleted.

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

    /// When the checkpoint of `key` was last saved, if there is one: a job stopped by a time
    /// limit whose stamp moved saved progress, and its next attempt starts from there.
    pub fn progress_saved_at(&self, key: &str) -> Option<std::time::SystemTime> {
        std::fs::metadata(self.progress_path(key)?).ok()?.modified().ok()
    }

    /// Saves `bytes` as the checkpoint of `key`, replacing the previous one in one step. The
    /// temporary file is locked while it is written, which tells a sweep on any machine
    /// sharing the cache that its writer is alive.
    pub fn save_progress(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self
            .progress_path(key)
            .ok_or_else(|| Error::msg(format!("`{key}` is not a cache key")))?;
        let tmp = self
            .root
            .join(FOLDER)
            .join(format!("{key}{TMP}{}-{}", unique_suffix(), this_host()));
        let written = std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut file| {
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
    /// `<key>.fit.tmp-<pid>-<nanos>-<host>` that nobody holds locked, and whose writer is
    /// provably gone: it ran on this machine and its pid no longer exists, or the file was
    /// last written more than a minute ago. A pid says nothing about another machine's
    /// processes (a cache shared by a cluster), hence the host and the lock; the age closes
    /// the moment between a writer creating its file and locking it.
    pub(super) fn sweep_abandoned_progress(&self) {
        let Ok(entries) = std::fs::read_dir(self.root.join(FOLDER)) else {
            return;
        };
        let here = this_host();
        for entry in entries.flatten() {
            let Some((pid, host)) = entry.file_name().to_str().and_then(temporary_writer) else {
                continue;
            };
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let gone_here = host.as_deref() == Some(here.as_str())
                && cfg!(target_os = "linux")
                && !std::path::Path::new(&format!("/proc/{pid}")).exists();
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > ABANDONED_AFTER));
            let Ok(file) = std::fs::File::options().read(true).write(true).open(entry.path()) else {
                continue;
            };
            if (gone_here || old) && file.try_lock().is_ok() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// This machine, as the 16 hex digits of its hostname's hash (a file name part).
fn this_host() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    blake3::hash(name.trim().as_bytes()).to_hex()[..16].to_string()
}

/// How old an unlocked temporary checkpoint must be before a sweep removes it.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// The writer of a temporary checkpoint named `<64 hex>.fit.tmp-<pid>-<nanos>[-<host>]`:
/// its pid and, for names that carry one, its host. `None` for any other name.
fn temporary_writer(name: &str) -> Option<(u32, Option<String>)> {
    let (key, rest) = name.split_once(TMP)?;
    let mut parts = rest.split('-');
    let (pid, nanos, host) = (parts.next()?, parts.next()?, parts.next());
    let hex = key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit());
    let host_ok = host.is_none_or(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (hex && digits(pid) && digits(nanos) && host_ok && parts.next().is_none())
        .then(|| Some((pid.parse().ok()?, host.map(str::to_string))))?
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
    fn only_a_temporary_checkpoint_whose_writer_is_provably_gone_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("c");
        Cache::open(&root).unwrap();
        let progress = root.join(FOLDER);
        let here = this_host();
        // Gone: written here by a pid that cannot be running (above Linux's pid_max); or old.
        let dead_here = format!("{KEY}{TMP}4294967295-12-{here}");
        let old = format!("{KEY}{TMP}4294967295-12");
        // Alive: locked by its writer (on another machine, whatever its pid means here); young
        // and from another machine; young and from before names carried the host.
        let writing = format!("{KEY}{TMP}77-13-0123456789abcdef");
        let elsewhere = format!("{KEY}{TMP}4294967295-14-0123456789abcdef");
        let young = format!("{KEY}{TMP}4294967295-15");
        let two_minutes_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
        let look_alikes = [
            format!("{KEY}{TMP}x-12"),
            "thesis.fit.tmp-1-2".to_string(),
            format!("{KEY}{SUFFIX}"),
        ];
        for name in [&dead_here, &old, &writing, &elsewhere, &young].into_iter().chain(&look_alikes) {
            std::fs::write(progress.join(name), b"x").unwrap();
            if [&old, &writing].contains(&name) || look_alikes.contains(name) {
                let file = std::fs::File::options().write(true).open(progress.join(name)).unwrap();
                file.set_modified(two_minutes_ago).unwrap();
            }
        }
        let held = std::fs::File::options().write(true).open(progress.join(&writing)).unwrap();
        held.lock().unwrap();
        Cache::open(&root).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&progress)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert!(!left.contains(&dead_here) && !left.contains(&old), "{left:?}");
        assert_eq!(
            left.len(),
            6,
            "the locked, the foreign, the young and the look-alikes stay: {left:?}"
        );
        drop(held);
    }

    #[test]
    fn a_saved_checkpoint_names_its_host() {
        assert_eq!(
            temporary_writer(&format!("{KEY}{TMP}12-34-{}", this_host())),
            Some((12, Some(this_host())))
        );
        assert_eq!(temporary_writer(&format!("{KEY}{TMP}12-34")), Some((12, None)));
        assert_eq!(temporary_writer(&format!("{KEY}{TMP}12-34-xyz")), None);
        assert_eq!(temporary_writer(&format!("{KEY}{TMP}12-34-0123456789abcdef-9")), None);
    }
}
