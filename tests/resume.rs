//! Fits that resume mid-training: a run killed with SIGKILL at several points of a fit, then
//! run again, ends with the same model bytes and the same tables as a run never interrupted.

use crate::support::{advpipe, fixture, models, write_tiny_mnist};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Runs the fixture in `dir` (whose `advpipe.toml` asks for a checkpoint every epoch) with
/// `cache`; with `kill_at`, kills the run with SIGKILL once it has logged that epoch of the
/// fit's first stage. Returns the run's log.
fn run(dir: &Path, cache: &Path, out: &Path, kill_at: Option<usize>) -> String {
    let mut child = advpipe()
        .current_dir(dir)
        .arg("run")
        .arg(fixture("run/resume.adv"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--cache-dir")
        .arg(cache)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if let Some(k) = kill_at {
            if line.contains(&format!("m: epoch {k} loss")) && line.contains("validation error") {
                child.kill().unwrap();
                child.wait().unwrap();
                return log;
            }
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{log}");
    log
}

#[test]
fn a_fit_killed_mid_training_resumes_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_mnist(&dir.path().join("data"), 600, 200);
    std::fs::write(dir.path().join("advpipe.toml"), "checkpoint_seconds = 0\n").unwrap();
    let (whole, broken): (PathBuf, PathBuf) = (dir.path().join("whole"), dir.path().join("broken"));
    let log = run(dir.path(), &whole, &dir.path().join("out-whole"), None);
    assert!(log.contains("validation objective"), "the continue stage ran: {log}");
    assert!(!log.contains("resumed"), "{log}");

    for kill_at in [2, 5] {
        let log = run(dir.path(), &broken, &dir.path().join("out-broken"), Some(kill_at));
        assert!(log.contains(&format!("m: epoch {kill_at} loss")), "{log}");
    }
    let plan = advpipe()
        .current_dir(dir.path())
        .arg("plan")
        .arg(fixture("run/resume.adv"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--cache-dir")
        .arg(&broken)
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(plan.lines().any(|l| l.contains(" m ") && l.contains("will resume")), "{plan}");
    let log = run(dir.path(), &broken, &dir.path().join("out-broken"), None);
    assert!(log.contains("resumed    fit       m at epoch"), "{log}");
    // Resumed after the last checkpoint before the kill, not from the start.
    let first_stage_epoch_1 = |log: &str| log.lines().any(|l| l.contains("m: epoch 1 loss") && l.contains("validation error"));
    assert!(!first_stage_epoch_1(&log), "{log}");

    assert_eq!(models(&broken), models(&whole), "the same model, bit for bit");
    let results = |d: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.path().join(d).join("results.json")).unwrap()).unwrap()
    };
    assert_eq!(results("out-broken")["tables"], results("out-whole")["tables"]);
    let progress: Vec<_> = std::fs::read_dir(broken.join("progress")).unwrap().collect();
    assert!(progress.is_empty(), "a finished fit leaves no checkpoint behind");
}

#[test]
fn a_damaged_checkpoint_is_set_aside_and_the_fit_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_mnist(&dir.path().join("data"), 600, 200);
    std::fs::write(dir.path().join("advpipe.toml"), "checkpoint_seconds = 0\n").unwrap();
    let cache = dir.path().join("c");
    run(dir.path(), &cache, &dir.path().join("out"), Some(3));
    let progress = cache.join("progress");
    let file = std::fs::read_dir(&progress)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "fit"))
        .expect("a checkpoint");
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let log = run(dir.path(), &cache, &dir.path().join("out"), None);
    assert!(
        log.contains("checkpoint was set aside (its digest does not match its contents); starting over"),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("m: epoch 1 loss") && l.contains("validation error")),
        "it started over: {log}"
    );
    let aside: Vec<_> = std::fs::read_dir(cache.join("corrupt")).unwrap().flatten().collect();
    assert_eq!(aside.len(), 1, "the damaged checkpoint is kept aside, not deleted");
}
