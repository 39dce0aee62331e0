//! Shared helpers: a small generated MNIST-format dataset and a pipeline runner.

use advpipe::cache::Cache;
use advpipe::data::idx;
use advpipe::diagnostics::Source;
use advpipe::exec::{self, Outcome, RunOptions};
use std::path::Path;

/// Writes a learnable 10-class dataset in MNIST's four-file layout: class `c` lights up a
/// 6x6 block at a place of its own, on top of uniform noise. `train` and `test` examples.
pub fn write_tiny_mnist(dir: &Path, train: usize, test: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut state = 0x2545_f491_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let mut pixels = vec![0u8; n * 784];
        let mut labels = vec![0u8; n];
        for i in 0..n {
            let class = (next() % 10) as usize;
            labels[i] = class as u8;
            let (row0, col0) = ((class / 5) * 12 + 4, (class % 5) * 5 + 1);
            for p in 0..784 {
                let (r, c) = (p / 28, p % 28);
                let lit = (row0..row0 + 6).contains(&r) && (col0..col0 + 4).contains(&c);
                let noise = (next() % 100) as u8;
                pixels[i * 784 + p] = if lit { 80 + noise } else { noise };
            }
        }
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), idx::encode(&[n, 28, 28], &pixels)).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), idx::encode(&[n], &labels)).unwrap();
    }
}

/// Compiles and runs pipeline text against a data folder and a cache folder.
pub fn run_text(text: &str, data: &Path, cache: &Path) -> (advpipe::check::ir::Program, Outcome, String) {
    let source = Source::new("test.adv", text);
    let program = advpipe::compile(&source).unwrap_or_else(|d| panic!("{}", advpipe::diagnostics::render(&source, &d, false)));
    let plan = advpipe::plan::plan(&program);
    let cache = Cache::open(cache).unwrap();
    let opts = RunOptions {
        checkpoint_every: std::time::Duration::from_secs(5),
        data_dir: data.to_path_buf(),
        cache: &cache,
        progress: false,
        runners: advpipe::kinds::runner,
    };
    let mut log = Vec::new();
    let outcome = exec::run(&program, &plan, &opts, &mut log).unwrap();
    (program, outcome, String::from_utf8(log).unwrap())
}

/// The status word of the node named `name`.
pub fn status(outcome: &Outcome, name: &str) -> &'static str {
    outcome
        .records
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no node {name}"))
        .status
        .word()
}

/// The path of a fixture.
pub fn fixture(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

/// The `advpipe` binary built for these tests.
pub fn advpipe() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_advpipe"))
}

/// `run FILE --data-dir DATA --cache-dir CACHE [--out OUT]`.
pub fn run_args<'a>(file: &'a Path, data: &'a Path, cache: &'a Path, out: Option<&'a Path>) -> Vec<&'a std::ffi::OsStr> {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "run".as_ref(),
        file.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--cache-dir".as_ref(),
        cache.as_os_str(),
    ];
    if let Some(out) = out {
        args.extend(["--out".as_ref(), out.as_os_str()]);
    }
    args
}

/// Runs the CLI with `args` (and `PATH` replaced when given), without the data and cache
/// variables; returns the exit code, stdout and stderr.
pub fn run_cli(args: &[&std::ffi::OsStr], env_path: Option<&str>) -> (i32, String, String) {
    let mut cmd = advpipe();
    cmd.args(args);
    if let Some(p) = env_path {
        cmd.env("PATH", p);
    }
    let out = cmd.env_remove("ADVPIPE_DATA").env_remove("ADVPIPE_CACHE").output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every `model.safetensors` in a cache, by entry.
pub fn models(cache: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    for prefix in std::fs::read_dir(cache.join("objects")).unwrap().flatten() {
        for entry in std::fs::read_dir(prefix.path()).unwrap().flatten() {
            let file = entry.path().join("model.safetensors");
            if file.exists() {
                found.push((entry.file_name().to_string_lossy().into_owned(), std::fs::read(file).unwrap()));
            }
        }
    }
    found.sort();
    found
}
