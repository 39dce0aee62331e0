//! Settings a user sets once: `advpipe.toml` in the working folder, environment variables
//! and command-line flags, in increasing priority.
//!
//! ```toml
//! data_dir = "/data/mnist"       # MNIST's four IDX files (fetched here when absent)
//! cache_dir = ".advpipe/cache"   # content-addressed artifacts
//! results_dir = "results"        # one sub-folder per pipeline file
//! ```

use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The settings file's contents; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Where the MNIST files are.
    pub data_dir: Option<PathBuf>,
    /// Where artifacts are cached.
    pub cache_dir: Option<PathBuf>,
    /// Where results folders go.
    pub results_dir: Option<PathBuf>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the MNIST files are.
    pub data_dir: PathBuf,
    /// Where artifacts are cached.
    pub cache_dir: PathBuf,
    /// Where results folders go.
    pub results_dir: PathBuf,
}

/// Reads `advpipe.toml` from `dir` if present.
pub fn read_file_config(dir: &Path) -> Result<FileConfig> {
    let path = dir.join("advpipe.toml");
    if !path.exists() {
        return Ok(FileConfig::default());
    }
    let text = crate::files::read_text(&path, crate::files::FileKind::Config)?;
    toml::from_str(&text).map_err(|e| Error::msg(format!("{}: {e}", path.display())))
}

/// Flag > environment (`ADVPIPE_DATA`, `ADVPIPE_CACHE`) > `advpipe.toml` > default.
/// Defaults: data in the user's cache folder (`~/.cache/advpipe/mnist`), cache in
/// `.advpipe/cache`, results in `results`.
pub fn resolve(file: FileConfig, data_flag: Option<PathBuf>, cache_flag: Option<PathBuf>, results_flag: Option<PathBuf>) -> Settings {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let default_data = dirs::cache_dir()
        .unwrap_or_else(|| PathBuf::from(".advpipe"))
        .join("advpipe")
        .join("mnist");
    Settings {
        data_dir: data_flag.or_else(|| env("ADVPIPE_DATA")).or(file.data_dir).unwrap_or(default_data),
        cache_dir: cache_flag
            .or_else(|| env("ADVPIPE_CACHE"))
            .or(file.cache_dir)
            .unwrap_or_else(|| PathBuf::from(".advpipe/cache")),
        results_dir: results_flag.or(file.results_dir).unwrap_or_else(|| PathBuf::from("results")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file() {
        let file: FileConfig = toml::from_str("data_dir = \"/d\"\ncache_dir = \"/c\"").unwrap();
        let s = resolve(file, None, Some("/flag".into()), None);
        assert_eq!(s.cache_dir, PathBuf::from("/flag"));
        assert_eq!(s.results_dir, PathBuf::from("results"));
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<FileConfig>("cache = 1").is_err());
    }
}
