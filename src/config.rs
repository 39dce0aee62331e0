//! Settings a user sets once: `advpipe.toml` in the working folder, environment variables
//! and command-line flags, in increasing priority.
//!
//! ```toml
//! data_dir = "/data/mnist"       # MNIST's four IDX files (fetched here when absent)
//! cache_dir = ".advpipe/cache"   # content-addressed artifacts
//! results_dir = "results"        # one sub-folder per pipeline file
//! max_memory = "16 GiB"          # refuse nodes estimated to need more (default: physical memory)
//! checkpoint_seconds = 5         # a fit checkpoints at the end of an epoch this long after the last
//! jobs = 2                       # nodes computed at once by `run` (default 1; `--jobs`)
//! logs_dir = ".advpipe/logs"     # each job's log (parallel and Slurm runs)
//!
//! [slurm]                        # `run --executor slurm`: one Slurm job per node
//! partition = "cpu"              # default: the cluster's default partition
//! time = "12:00:00"              # sbatch --time
//! cpus = 4                       # sbatch --cpus-per-task (the job's kernel threads)
//! mem = "8G"                     # sbatch --mem
//! extra = ["--qos=normal"]       # more sbatch arguments, as given
//! max_resubmits = 3              # new attempts in a row at a job stopped (time limit, preemption)
//!                                 # before it saved a checkpoint; one that saved one goes on
//! poll_seconds = 2               # how often the driver asks squeue
//! [slurm.kinds.fit]              # per-kind overrides of partition, time, cpus, mem, extra
//! time = "48:00:00"
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
    /// The most memory one node may be estimated to need: `"16 GiB"`, `"512 MiB"`, or bytes.
    #[serde(default, deserialize_with = "memory_size")]
    pub max_memory: Option<u64>,
    /// The least time between two checkpoints of a fit, in seconds (default 5; 0: every epoch).
    pub checkpoint_seconds: Option<f64>,
    /// How many nodes `run` computes at once (default 1: in this process, one at a time).
    pub jobs: Option<usize>,
    /// Where the logs of jobs go (default `.advpipe/logs`).
    pub logs_dir: Option<PathBuf>,
    /// The Slurm executor's settings.
    #[serde(default)]
    pub slurm: SlurmConfig,
}

/// What each Slurm job asks for; `None` leaves it to the cluster's defaults.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmResources {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time`, in any form sbatch takes (`"90"`, `"4:00:00"`, `"2-00:00:00"`).
    pub time: Option<String>,
    /// `--cpus-per-task`: also the number of threads the job's kernels use.
    pub cpus: Option<u32>,
    /// `--mem` (`"8G"`).
    pub mem: Option<String>,
    /// More `sbatch` arguments, passed as given.
    #[serde(default)]
    pub extra: Vec<String>,
}

/// The `[slurm]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmConfig {
    /// `--partition` of every job.
    pub partition: Option<String>,
    /// `--time` of every job.
    pub time: Option<String>,
    /// `--cpus-per-task` of every job.
    pub cpus: Option<u32>,
    /// `--mem` of every job.
    pub mem: Option<String>,
    /// More `sbatch` arguments for every job.
    #[serde(default)]
    pub extra: Vec<String>,
    /// How many times a job stopped by its time limit or by preemption is submitted again (default 3).
    pub max_resubmits: Option<u32>,
    /// Seconds between two looks at the queue (default 2).
    pub poll_seconds: Option<f64>,
    /// Per node kind (`fit`, `evaluate`, ...): settings that replace the defaults above.
    #[serde(default)]
    pub kinds: std::collections::BTreeMap<String, SlurmResources>,
}

impl SlurmConfig {
    /// The resources a job of `kind` asks for: the kind's own settings over the defaults.
    pub fn resources_for(&self, kind: &str) -> SlurmResources {
        let base = SlurmResources {
            partition: self.partition.clone(),
            time: self.time.clone(),
            cpus: self.cpus,
            mem: self.mem.clone(),
            extra: self.extra.clone(),
        };
        match self.kinds.get(kind) {
            None => base,
            Some(k) => SlurmResources {
                partition: k.partition.clone().or_else(|| base.partition.clone()),
                time: k.time.clone().or_else(|| base.time.clone()),
                cpus: k.cpus.or(base.cpus),
                mem: k.mem.clone().or_else(|| base.mem.clone()),
                extra: if k.extra.is_empty() { base.extra.clone() } else { k.extra.clone() },
            },
        }
    }
}

fn memory_size<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    let text = match Size::deserialize(d)? {
        Size::Bytes(n) => return Ok(Some(n)),
        Size::Text(t) => t,
    };
    parse_memory_size(&text).map(Some).map_err(serde::de::Error::custom)
}

/// `"16 GiB"`, `"512MiB"`, `"2 TiB"`, `"1000000"` -> bytes.
pub fn parse_memory_size(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale: u64 = match unit.trim() {
        "" | "B" | "bytes" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other => return Err(format!("max_memory: unknown unit `{other}` (use KiB, MiB, GiB or TiB)")),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("max_memory: `{text}` is not a size such as \"16 GiB\""))?;
    let bytes = value * scale as f64;
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("max_memory: `{text}` is not a usable size"));
    }
    Ok(bytes as u64)
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
    /// The most memory one node may be estimated to need, if set.
    pub max_memory: Option<u64>,
    /// The least time between two checkpoints of a fit.
    pub checkpoint_every: std::time::Duration,
    /// How many nodes `run` computes at once.
    pub jobs: usize,
    /// Where the logs of jobs go.
    pub logs_dir: PathBuf,
    /// The Slurm executor's settings.
    pub slurm: SlurmConfig,
}

/// A fit's checkpoints, unless `checkpoint_seconds` says otherwise: at the end of every epoch
/// that ends at least this long after the last one.
pub const DEFAULT_CHECKPOINT_SECONDS: f64 = 5.0;

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
        max_memory: file.max_memory,
        checkpoint_every: std::time::Duration::from_secs_f64(
            file.checkpoint_seconds
                .filter(|s| s.is_finite() && *s >= 0.0)
                .unwrap_or(DEFAULT_CHECKPOINT_SECONDS)
                .min(1e9),
        ),
        jobs: file.jobs.unwrap_or(1).max(1),
        logs_dir: file.logs_dir.unwrap_or_else(|| PathBuf::from(".advpipe/logs")),
        slurm: file.slurm,
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
    fn memory_sizes() {
        let file: FileConfig = toml::from_str("max_memory = \"1.5 GiB\"").unwrap();
        assert_eq!(file.max_memory, Some(3 << 29));
        let file: FileConfig = toml::from_str("max_memory = 4096").unwrap();
        assert_eq!(file.max_memory, Some(4096));
        let e = toml::from_str::<FileConfig>("max_memory = \"16 GB\"").unwrap_err().to_string();
        assert!(e.contains("unknown unit `GB`"), "{e}");
        assert!(parse_memory_size("lots").is_err());
    }

    #[test]
    fn slurm_kinds_override_the_defaults() {
        let file: FileConfig =
            toml::from_str("jobs = 2\n[slurm]\ntime = \"1:00:00\"\ncpus = 2\nextra = [\"--qos=low\"]\n[slurm.kinds.fit]\ncpus = 8\n")
                .unwrap();
        assert_eq!(file.jobs, Some(2));
        let fit = file.slurm.resources_for("fit");
        assert_eq!((fit.cpus, fit.time.as_deref(), fit.extra.len()), (Some(8), Some("1:00:00"), 1));
        assert_eq!(file.slurm.resources_for("evaluate").cpus, Some(2));
        assert!(toml::from_str::<FileConfig>("[slurm]\ncpu = 2").is_err());
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<FileConfig>("cache = 1").is_err());
    }
}
