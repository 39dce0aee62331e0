//! Local parallel execution (`run --jobs N`): the same bytes as one node at a time, and a
//! failing node stops the run without losing what finished.

use crate::support::{advpipe, fixture, models, write_tiny_mnist};
use std::path::Path;

/// `advpipe run FIXTURE` in `dir` with `extra` flags; returns (exit code, stderr).
pub fn run_in(dir: &Path, fixture_name: &str, cache: &str, out: &str, extra: &[&str]) -> (i32, String) {
    run_with_env(dir, fixture_name, cache, out, extra, &[])
}

/// [`run_in`] with more environment variables.
pub fn run_with_env(dir: &Path, fixture_name: &str, cache: &str, out: &str, extra: &[&str], env: &[(&str, &Path)]) -> (i32, String) {
    let output = advpipe()
        .envs(env.iter().copied())
        .current_dir(dir)
        .arg("run")
        .arg(fixture(fixture_name))
        .args(["--data-dir", "data", "--cache-dir", cache, "--out", out])
        .args(extra)
        .env_remove("ADVPIPE_DATA")
        .env_remove("ADVPIPE_CACHE")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn two_jobs_at_once_give_the_bytes_of_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_mnist(&dir.path().join("data"), 500, 200);
    let (code, one) = run_in(dir.path(), "run/jobs.adv", "c1", "r1", &[]);
    assert_eq!(code, 0, "{one}");
    let (code, two) = run_in(dir.path(), "run/jobs.adv", "c2", "r2", &["--jobs", "2"]);
    assert_eq!(code, 0, "{two}");
    // Every computed node ran in a worker of its own, and said so.
    for node in ["a", "b", "c", "a_clean", "a_fgsm", "b_fgsm", "ens"] {
        assert!(
            two.lines()
                .any(|l| l.contains(" running ") && l.contains(&format!(" {node} ")) && l.contains("(pid ")),
            "{node}: {two}"
        );
    }
    assert!(two.contains("7 node(s) computed"), "{two}");
    let read = |p: &str| std::fs::read(dir.path().join(p)).unwrap();
    assert_eq!(read("r1/results.json"), read("r2/results.json"));
    let (m1, m2) = (models(&dir.path().join("c1")), models(&dir.path().join("c2")));
    assert_eq!(m1.len(), 3);
    assert!(m1 == m2, "the models differ between --jobs 1 and --jobs 2");
    // Each worker's output is in its own log, the fit's epochs included.
    let logs: Vec<String> = std::fs::read_dir(dir.path().join(".advpipe/logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let a_log = logs.iter().find(|n| n.starts_with("a-")).expect("a's log");
    let text = std::fs::read_to_string(dir.path().join(".advpipe/logs").join(a_log)).unwrap();
    assert!(text.contains("a: epoch 1 loss") && text.contains("s/epoch"), "{text}");
    // Run again: nothing to compute, nothing submitted.
    let (code, again) = run_in(dir.path(), "run/jobs.adv", "c2", "r3", &["--jobs", "2"]);
    assert_eq!(code, 0, "{again}");
    assert!(again.contains("0 node(s) computed") && !again.contains("(pid "), "{again}");
}

#[test]
fn a_failing_job_stops_the_run_names_the_node_and_keeps_what_finished() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_mnist(&dir.path().join("data"), 300, 100);
    // Its header fits the net, so `check` passes; its values do not, so the job fails.
    let nan: Vec<u8> = [f32::NAN; 7840].iter().flat_map(|v| v.to_le_bytes()).collect();
    let zeros = vec![0u8; 40];
    let views = vec![
        (
            "layers.1.weight",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![784, 10], &nan).unwrap(),
        ),
        (
            "layers.1.bias",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![10], &zeros).unwrap(),
        ),
    ];
    std::fs::write(
        dir.path().join("not-a-checkpoint.safetensors"),
        safetensors::tensor::serialize(views, &None).unwrap(),
    )
    .unwrap();
    let (code, log) = run_in(dir.path(), "run/jobs_fail.adv", "c", "r", &["--jobs", "2"]);
    assert_eq!(code, 3, "{log}");
    let error = log.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("{log}"));
    assert!(
        error.contains("node `bad_test` (evaluate) failed") && error.contains("its log:"),
        "{error}"
    );
    assert!(
        error.contains("not-a-checkpoint.safetensors"),
        "the error says what was wrong: {error}"
    );
    assert!(!dir.path().join("r").exists(), "a failed run writes no results");
    // The fit that ran beside it finished and is cached.
    let plan = advpipe()
        .current_dir(dir.path())
        .args(["plan"])
        .arg(fixture("run/jobs_fail.adv"))
        .args(["--data-dir", "data", "--cache-dir", "c"])
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(plan.lines().any(|l| l.contains(" good ") && l.contains("cached")), "{plan}");
}

#[test]
fn a_node_job_refuses_a_stale_key_and_an_uncomputed_input() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_mnist(&dir.path().join("data"), 300, 100);
    let node = |name: &str, key: Option<&str>| {
        let mut cmd = advpipe();
        cmd.current_dir(dir.path()).arg("node").arg(fixture("run/jobs.adv")).arg(name);
        cmd.args(["--data-dir", "data", "--cache-dir", "c"]);
        if let Some(k) = key {
            cmd.args(["--key", k]);
        }
        let out = cmd.output().unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = node("b_fgsm", None);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("input `b` (fit") && err.contains("not in the cache"), "{err}");
    let (code, err) = node("b", Some(&"0".repeat(64)));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("not the 000000000000 it was submitted with"), "{err}");
    let (code, err) = node("b", None);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("`b` computed"), "{err}");
    let (code, err) = node("b", None);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("`b` cached"), "a second job for a stored node does nothing: {err}");
    let (code, err) = node("train", None);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("is not cached"), "{err}");
}

#[test]
fn two_workers_storing_one_key_at_once_leave_one_whole_entry() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_mnist(&dir.path().join("data"), 300, 100);
    let start = || {
        advpipe()
            .current_dir(dir.path())
            .arg("node")
            .arg(fixture("run/jobs.adv"))
            .arg("b")
            .args(["--data-dir", "data", "--cache-dir", "c"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (start(), start());
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let cache = advpipe::cache::Cache::open(dir.path().join("c")).unwrap();
    let entries: Vec<_> = std::fs::read_dir(dir.path().join("c/objects"))
        .unwrap()
        .flatten()
        .flat_map(|p| std::fs::read_dir(p.path()).unwrap().flatten())
        .collect();
    assert_eq!(entries.len(), 1, "one entry for the one key");
    let key = entries[0].file_name().to_string_lossy().into_owned();
    assert!(
        matches!(cache.lookup(&key), advpipe::cache::Lookup::Hit(..)),
        "the entry is whole and verifies"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("c/tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "nothing left in tmp/: {leftovers:?}");
    let progress: Vec<_> = std::fs::read_dir(dir.path().join("c/progress"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(progress.is_empty(), "no checkpoint left: {progress:?}");
}

#[test]
fn ctrl_c_twice_stops_the_workers_and_keeps_what_finished() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    write_tiny_mnist(&dir.path().join("data"), 2000, 100);
    let mut driver = advpipe()
        .current_dir(dir.path())
        .arg("run")
        .arg(fixture("run/slurm_long.adv"))
        .args([
            "--data-dir",
            "data",
            "--cache-dir",
            "c",
            "--out",
            "r",
            "--jobs",
            "2",
            "--set",
            "epochs=400",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let interrupt = |pid: u32| {
        assert!(std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .unwrap()
            .success())
    };
    let mut log = String::new();
    let mut worker = None;
    let mut lines = BufReader::new(driver.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains(" running ") && line.contains(" m ") {
            worker = line
                .rsplit("(pid ")
                .next()
                .and_then(|p| p.trim_end_matches(')').parse::<u32>().ok());
            // The first press stops new work and lets the fit go on; the second stops it.
            interrupt(driver.id());
            std::thread::sleep(std::time::Duration::from_millis(500));
            interrupt(driver.id());
            break;
        }
    }
    log.extend(lines.map(|l| l.unwrap() + "\n"));
    let status = driver.wait().unwrap();
    assert_eq!(status.code(), Some(3), "{log}");
    assert!(
        log.contains("finish (Ctrl-C again stops them)") && log.contains("error: interrupted"),
        "{log}"
    );
    let worker = worker.unwrap_or_else(|| panic!("no worker pid in: {log}"));
    assert!(
        !Path::new(&format!("/proc/{worker}")).exists(),
        "the worker {worker} was stopped and reaped"
    );
    assert!(!dir.path().join("r").exists(), "an interrupted run writes no results");
}

#[test]
fn slurm_without_sbatch_on_path_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_mnist(&dir.path().join("data"), 100, 50);
    let (code, log) = run_with_env(
        dir.path(),
        "run/jobs.adv",
        "c",
        "r",
        &["--executor", "slurm"],
        &[("PATH", Path::new("/nonexistent"))],
    );
    assert_eq!(code, 3, "{log}");
    assert!(log.contains("--executor slurm needs Slurm's `sbatch` on PATH"), "{log}");
}

#[test]
fn two_nodes_with_one_key_are_one_job() {
    use advpipe::cache::Cache;
    let text = "seed 1\ndata train = mnist(split: \"train\")\nnet n = input([1, 28, 28]) >> flatten >> linear(10)\n\
                model a = fit(n, train, epochs: 1)\nmodel b = fit(n, train, epochs: 1)\n\
                eval ea = evaluate(a, train)\neval eb = evaluate(b, train, batch: 50)\n";
    let source = advpipe::diagnostics::Source::new("same.adv", text);
    let program = advpipe::compile(&source).unwrap();
    let plan = advpipe::plan::plan(&program);
    let keys = advpipe::plan::keys(&program, &plan, &mut |_| Ok(None)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jobs = advpipe::exec::jobs::jobs_to_run(&program, &plan, &keys, &Cache::open(dir.path()).unwrap());
    let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let fit = names.iter().position(|n| *n == "a" || *n == "b").unwrap();
    for eval in ["ea", "eb"] {
        let job = jobs.iter().find(|j| j.name == eval).unwrap();
        assert_eq!(job.after, vec![fit], "{eval} waits for the one fit");
    }
}
