//! The Slurm executor on a real one-node Slurm cluster (slurmctld, slurmd and munge from
//! Debian's packages, see `../shared/notes/slurm.md` in the team's notes), started here in a
//! temporary folder with ports of its own. Without the packages (or without root, which
//! slurmd needs) the test says why and skips; with `ADVPIPE_REQUIRE_SLURM=1` it fails.

use crate::jobs::{run_in, run_with_env};
use crate::support::{models, write_tiny_mnist};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A running cluster; dropping it stops its daemons (and munged, if it started it).
struct Cluster {
    dir: tempfile::TempDir,
    conf: PathBuf,
    started_munged: bool,
}

fn found(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn sh(script: &str) -> (bool, String) {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Cluster {
    /// Starts a cluster, or returns why it cannot here.
    fn start() -> Result<Cluster, String> {
        let missing: Vec<&str> = ["slurmctld", "slurmd", "sbatch", "munged", "munge", "unmunge"]
            .into_iter()
            .filter(|t| !found(t))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "Slurm is not installed here (no {}; Debian: apt-get install slurm-wlm munge)",
                missing.join(", ")
            ));
        }
        if !sh("[ \"$(id -u)\" = 0 ]").0 {
            return Err("slurmd needs root".into());
        }
        let mut started_munged = false;
        if !sh("munge -n | unmunge").0 {
            let (ok, why) = sh("mkdir -p /run/munge && chown munge:munge /run/munge && su -s /bin/sh munge -c munged");
            if !ok {
                return Err(format!("could not start munged: {why}"));
            }
            started_munged = true;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("d")).unwrap();
        std::fs::create_dir_all(d.join("ctld")).unwrap();
        let host = sh("hostname -s").1.trim().to_string();
        let conf = d.join("slurm.conf");
        let (ctld_port, d_port) = (free_port(), free_port());
        std::fs::write(
            &conf,
            format!(
                "ClusterName=advpipetest\nSlurmctldHost={host}\nSlurmctldPort={ctld_port}\nSlurmdPort={d_port}\n\
                 AuthType=auth/munge\nProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n\
                 SchedulerType=sched/backfill\nSelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n\
                 SlurmctldPidFile={d}/slurmctld.pid\nSlurmdPidFile={d}/slurmd.pid\nSlurmdSpoolDir={d}/d\n\
                 StateSaveLocation={d}/ctld\nSlurmctldLogFile={d}/ctld.log\nSlurmdLogFile={d}/d.log\n\
                 SlurmUser=root\nReturnToService=2\n\
                 NodeName={host} CPUs=2 RealMemory=8000 State=UNKNOWN\n\
                 PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP\n",
                d = d.display()
            ),
        )
        .unwrap();
        let cluster = Cluster { dir, conf, started_munged };
        let (ok, why) = cluster.sh(&format!("slurmctld && slurmd -N {host}"));
        if !ok {
            return Err(format!("could not start the Slurm daemons: {why}"));
        }
        let until = Instant::now() + Duration::from_secs(60);
        while !cluster.sh("sinfo -h -o %T").1.contains("idle") {
            if Instant::now() > until {
                return Err(format!(
                    "the Slurm node did not come up: {}",
                    cluster.sh("sinfo; tail -5 $D/d.log $D/ctld.log").1
                ));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(cluster)
    }

    /// A shell command with this cluster's config.
    fn sh(&self, script: &str) -> (bool, String) {
        sh(&format!(
            "export SLURM_CONF='{}' D='{}'; {script}",
            self.conf.display(),
            self.dir.path().display()
        ))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.sh("scancel --user=root 2>/dev/null; kill $(cat $D/slurmd.pid) $(cat $D/slurmctld.pid) 2>/dev/null");
        if self.started_munged {
            sh("pkill -x munged");
        }
    }
}

/// `advpipe run FIXTURE --executor slurm` in `dir` on `cluster`; (exit code, stderr).
fn run_on(cluster: &Cluster, dir: &Path, fixture_name: &str, cache: &str, out: &str, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["--executor", "slurm"];
    args.extend(extra);
    run_with_env(dir, fixture_name, cache, out, &args, &[("SLURM_CONF", &cluster.conf)])
}

#[test]
fn slurm_runs_a_pipeline_as_jobs_with_the_bytes_of_a_local_run() {
    let cluster = match Cluster::start() {
        Ok(c) => c,
        Err(why) if std::env::var("ADVPIPE_REQUIRE_SLURM").as_deref() == Ok("1") => panic!("ADVPIPE_REQUIRE_SLURM=1 but {why}"),
        Err(why) => {
            eprintln!("skipping the Slurm tests: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    write_tiny_mnist(&dir.path().join("data"), 500, 200);
    std::fs::write(dir.path().join("advpipe.toml"), "[slurm]\npoll_seconds = 0.5\n").unwrap();

    let (code, local) = run_in(dir.path(), "run/jobs.adv", "local", "r_local", &[]);
    assert_eq!(code, 0, "{local}");
    let (code, slurm) = run_on(&cluster, dir.path(), "run/jobs.adv", "shared", "r_slurm", &[]);
    assert_eq!(code, 0, "{slurm}");
    for node in ["a", "b", "c", "a_clean", "a_fgsm", "b_fgsm", "ens"] {
        assert!(
            slurm
                .lines()
                .any(|l| l.contains("submitted") && l.contains(&format!(" {node} ")) && l.contains("(job ")),
            "{node}: {slurm}"
        );
    }
    // Jobs that read another job's node waited for it (afterok), and it all adds up.
    assert!(slurm.contains("7 node(s) computed"), "{slurm}");
    let read = |p: &str| std::fs::read(dir.path().join(p)).unwrap();
    assert_eq!(read("r_local/results.json"), read("r_slurm/results.json"));
    assert!(
        models(&dir.path().join("local")) == models(&dir.path().join("shared")),
        "models differ between Slurm and local"
    );
    let logs = std::fs::read_dir(dir.path().join(".advpipe/logs")).unwrap().count();
    assert!(logs >= 14, "a script and a log per job: {logs} files");

    // A re-run finds everything cached and submits nothing.
    let (code, again) = run_on(&cluster, dir.path(), "run/jobs.adv", "shared", "r_again", &[]);
    assert_eq!(code, 0, "{again}");
    assert!(again.contains("0 node(s) computed") && !again.contains("submitted"), "{again}");

    // What Slurm refuses is a clear error, exit 3.
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("advpipe.toml"), "[slurm]\npartition = \"no-such-partition\"\n").unwrap();
    std::os::unix::fs::symlink(dir.path().join("data"), bad.join("data")).unwrap();
    let (code, refused) = run_on(&cluster, &bad, "run/jobs.adv", "c", "r", &[]);
    assert_eq!(code, 3, "{refused}");
    let error = refused
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("{refused}"));
    assert!(
        error.contains("Slurm rejected the job") && error.contains("invalid partition"),
        "{error}"
    );

    // Ctrl-C cancels every submitted job (scancel) and exits 3; nothing of ours stays queued.
    let stop = dir.path().join("stop");
    std::fs::create_dir_all(&stop).unwrap();
    write_tiny_mnist(&stop.join("data"), 2000, 100);
    let mut driver = crate::support::advpipe()
        .current_dir(&stop)
        .env("SLURM_CONF", &cluster.conf)
        .arg("run")
        .arg(crate::support::fixture("run/slurm_long.adv"))
        .args(["--data-dir", "data", "--cache-dir", "c", "--out", "r", "--executor", "slurm"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = String::new();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(driver.stderr.take().unwrap()));
    for line in lines.by_ref() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains(" running ") && line.contains(" m ") {
            assert!(Command::new("kill")
                .args(["-INT", &driver.id().to_string()])
                .status()
                .unwrap()
                .success());
            break;
        }
    }
    log.extend(lines.map(|l| l.unwrap() + "\n"));
    assert_eq!(driver.wait().unwrap().code(), Some(3), "{log}");
    assert!(
        log.contains("interrupted: cancelled every submitted job") && log.contains("error: interrupted"),
        "{log}"
    );
    let (_, queue) = cluster.sh("squeue -h -t PENDING,RUNNING,COMPLETING -o %i");
    assert!(queue.trim().is_empty(), "jobs left in the queue: {queue}");

    // A fit stopped by its one-minute time limit is submitted again (as often as each attempt
    // saves a checkpoint), resumes from its checkpoint and ends with the model of an
    // uninterrupted local run (computed meanwhile, beside it).
    let long = dir.path().join("long");
    std::fs::create_dir_all(&long).unwrap();
    write_tiny_mnist(&long.join("data"), 2000, 200);
    std::fs::write(
        long.join("advpipe.toml"),
        "checkpoint_seconds = 1\n[slurm]\npoll_seconds = 1\n[slurm.kinds.fit]\ntime = \"1\"\n",
    )
    .unwrap();
    let reference = {
        let long = long.clone();
        std::thread::spawn(move || run_in(&long, "run/slurm_long.adv", "local", "r_local", &[]))
    };
    // Meanwhile, beside it: a fit that saves no checkpoint before its limit is not resubmitted
    // past `max_resubmits` (0 here); the error says why.
    let stall = dir.path().join("stall");
    std::fs::create_dir_all(&stall).unwrap();
    write_tiny_mnist(&stall.join("data"), 2000, 100);
    std::fs::write(
        stall.join("advpipe.toml"),
        "checkpoint_seconds = 100000\n[slurm]\npoll_seconds = 1\nmax_resubmits = 0\n[slurm.kinds.fit]\ntime = \"1\"\n",
    )
    .unwrap();
    let stalled = {
        let conf = cluster.conf.clone();
        std::thread::spawn(move || {
            run_with_env(
                &stall,
                "run/slurm_long.adv",
                "c",
                "r",
                &["--executor", "slurm"],
                &[("SLURM_CONF", &conf)],
            )
        })
    };
    let (code, timed) = run_on(&cluster, &long, "run/slurm_long.adv", "shared", "r_slurm", &[]);
    let (ref_code, ref_log) = reference.join().unwrap();
    assert_eq!(ref_code, 0, "{ref_log}");
    let (stall_code, stall_log) = stalled.join().unwrap();
    assert_eq!(stall_code, 3, "{stall_log}");
    assert!(
        stall_log.contains("TIMEOUT (1 attempt(s) in a row stopped before saving a checkpoint") && !stall_log.contains("resubmitted"),
        "{stall_log}"
    );
    assert_eq!(code, 0, "{timed}");
    assert!(
        timed
            .lines()
            .any(|l| l.contains("resubmitted") && l.contains(" m ") && l.contains("TIMEOUT")),
        "{timed}"
    );
    // One Slurm log per attempt: the first stopped by the limit, the second resumed.
    let fit_log: String = std::fs::read_dir(long.join(".advpipe/logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("m-") && p.extension().is_some_and(|e| e == "out"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        fit_log.contains("DUE TO TIME LIMIT") && fit_log.contains("resumed    fit       m at epoch"),
        "{fit_log}"
    );
    assert_eq!(
        std::fs::read(long.join("r_local/results.json")).unwrap(),
        std::fs::read(long.join("r_slurm/results.json")).unwrap()
    );
    assert!(
        models(&long.join("local")) == models(&long.join("shared")),
        "the resubmitted fit's model differs from an uninterrupted one"
    );
}
