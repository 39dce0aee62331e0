//! The results folder as a whole: written into a staging folder beside it, then swapped in,
//! so a failure half-way leaves the previous results as they were and a success leaves no
//! picture of an earlier run behind.
//!
//! advpipe replaces only folders it wrote: a results folder carries a `.advpipe-results`
//! marker, and every file in it must have a name advpipe gives its results. A folder with
//! anything else in it (a user's notes) is refused before any compute, with its name.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The marker file of a results folder.
pub const MARKER: &str = ".advpipe-results";

/// Whether `name` is one of the files advpipe writes into a results folder.
pub fn is_result_file(name: &str) -> bool {
    matches!(
        name,
        MARKER | "table.md" | "tables.csv" | "results.json" | "manifest.json" | "index.html"
    ) || (name.ends_with(".svg") && ["plot-", "examples-", "figure-", "curve-"].iter().any(|p| name.starts_with(p)))
        || (name.starts_with("export-") && name.ends_with(".safetensors"))
}

/// Checks, before anything runs, that `dir` can take new results: absent, an empty folder,
/// or a results folder advpipe wrote.
pub fn check_replaceable(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(Error::msg(format!(
                "results folder {} is a file; give --out a folder",
                dir.display()
            )))
        }
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut foreign = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let plain = entry.file_type().is_ok_and(|t| t.is_file());
        if !plain || !is_result_file(&name) {
            foreign.push(name);
        }
    }
    if foreign.is_empty() {
        return Ok(());
    }
    foreign.sort();
    let shown: Vec<&str> = foreign.iter().take(5).map(String::as_str).collect();
    Err(Error::msg(format!(
        "results folder {} holds files advpipe did not write ({}{}); advpipe replaces a \
         results folder as a whole, so give --out a new or empty folder",
        dir.display(),
        shown.join(", "),
        if foreign.len() > shown.len() { ", ..." } else { "" }
    )))
}

/// A results folder being written: files go into a hidden sibling of `dir` until
/// [`Staged::swap_in`].
pub struct Staged {
    dir: PathBuf,
    staging: PathBuf,
    done: bool,
}

impl Staged {
    /// Starts a staging folder beside `dir` (creating `dir`'s parent).
    pub fn begin(dir: &Path) -> Result<Staged> {
        check_replaceable(dir)?;
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let name = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
        remove_dead_siblings(&parent, &name);
        let staging = parent.join(format!(".{name}.advpipe-staging-{}", suffix()));
        std::fs::create_dir(&staging).map_err(|e| Error::io(&staging, e))?;
        std::fs::write(staging.join(MARKER), "results written by advpipe\n").map_err(|e| Error::io(&staging, e))?;
        Ok(Staged {
            dir: dir.to_path_buf(),
            staging,
            done: false,
        })
    }

    /// Where files go until the swap.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// The folder the results end up in.
    pub fn final_path(&self, file: &Path) -> PathBuf {
        file.strip_prefix(&self.staging)
            .map_or_else(|_| file.to_path_buf(), |rel| self.dir.join(rel))
    }

    /// Puts the staged folder in place of `dir`, then removes the previous results (only
    /// files advpipe writes; anything else keeps the old folder, renamed, and is reported).
    pub fn swap_in(mut self) -> Result<()> {
        check_replaceable(&self.dir)?;
        let previous = self.staging.with_file_name(format!(
            ".{}.advpipe-previous-{}",
            self.dir.file_name().unwrap_or_default().to_string_lossy(),
            suffix()
        ));
        let had_previous = self.dir.exists();
        if had_previous {
            std::fs::rename(&self.dir, &previous).map_err(|e| Error::io(&self.dir, e))?;
        }
        if let Err(e) = std::fs::rename(&self.staging, &self.dir) {
            if had_previous {
                let _ = std::fs::rename(&previous, &self.dir);
            }
            return Err(Error::io(&self.dir, e));
        }
        self.done = true;
        if had_previous {
            remove_results(&previous)?;
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = remove_results(&self.staging);
        }
    }
}

/// Removes the staging and previous-results folders a killed run left beside `name`: only
/// folders named by this module, holding the marker, whose process (from the name) is gone.
fn remove_dead_siblings(parent: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = [".advpipe-staging-", ".advpipe-previous-"]
            .iter()
            .find_map(|kind| file_name.strip_prefix(&format!(".{name}{kind}")))
        else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let ours = entry.file_type().is_ok_and(|t| t.is_dir()) && entry.path().join(MARKER).is_file();
        if ours && pid.is_some_and(|p| !process_alive(p)) {
            let _ = remove_results(&entry.path());
        }
    }
}

/// Whether process `pid` is running (assumed so where that cannot be told).
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

/// Removes a results folder advpipe wrote: its result files, then the folder.
fn remove_results(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // `.tmp…` files are `write_atomic`'s own, left by a run killed mid-write.
        let ours = is_result_file(&name) || name.starts_with(".tmp");
        if entry.file_type().is_ok_and(|t| t.is_file()) && ours {
            std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
        }
    }
    std::fs::remove_dir(dir).map_err(|e| {
        Error::msg(format!(
            "the previous results were kept in {} because it holds other files: {e}",
            dir.display()
        ))
    })
}

fn suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_swap_replaces_the_whole_folder() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("out");
        let first = Staged::begin(&dir).unwrap();
        std::fs::write(first.path().join("plot-2.svg"), "old").unwrap();
        std::fs::write(first.path().join("results.json"), "old").unwrap();
        first.swap_in().unwrap();
        let second = Staged::begin(&dir).unwrap();
        std::fs::write(second.path().join("results.json"), "new").unwrap();
        second.swap_in().unwrap();
        assert_eq!(names(&dir), [MARKER, "results.json"]);
        assert_eq!(std::fs::read_to_string(dir.join("results.json")).unwrap(), "new");
        assert_eq!(names(root.path()), ["out"], "no staging or previous folder is left");
    }

    #[test]
    fn a_failed_write_leaves_the_previous_results() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("out");
        let first = Staged::begin(&dir).unwrap();
        std::fs::write(first.path().join("index.html"), "old page").unwrap();
        first.swap_in().unwrap();
        let second = Staged::begin(&dir).unwrap();
        std::fs::write(second.path().join("results.json"), "half").unwrap();
        drop(second); // the run failed before the swap
        assert_eq!(names(&dir), [MARKER, "index.html"]);
        assert_eq!(names(root.path()), ["out"]);
    }

    #[test]
    fn a_killed_runs_staging_folder_is_removed_and_a_live_ones_kept() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("out");
        // A run that died mid-write (no process has pid 0 in /proc), and one that lives.
        let dead = root.path().join(".out.advpipe-staging-0-1");
        let live = root.path().join(format!(".out.advpipe-staging-{}-1", std::process::id()));
        let foreign = root.path().join(".out.advpipe-staging-0-2");
        for folder in [&dead, &live, &foreign] {
            std::fs::create_dir(folder).unwrap();
            std::fs::write(folder.join("results.json"), "half").unwrap();
        }
        for folder in [&dead, &live] {
            std::fs::write(folder.join(MARKER), "").unwrap();
        }
        std::fs::write(dead.join(".tmpAbC123"), "half").unwrap();
        Staged::begin(&dir).unwrap().swap_in().unwrap();
        assert!(!dead.exists(), "a dead run's staging folder stays");
        assert!(live.join("results.json").exists(), "a live run's staging folder was touched");
        assert!(foreign.join("results.json").exists(), "a folder without the marker was touched");
    }

    #[test]
    fn folders_with_other_files_are_refused() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("thesis.tex"), "mine").unwrap();
        let e = Staged::begin(root.path()).err().unwrap().to_string();
        assert!(e.contains("holds files advpipe did not write (thesis.tex)"), "{e}");
        let file = root.path().join("thesis.tex");
        let e = Staged::begin(&file).err().unwrap().to_string();
        assert!(e.contains("is a file"), "{e}");
        assert_eq!(std::fs::read_to_string(file).unwrap(), "mine");
    }
}
