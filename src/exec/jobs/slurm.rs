//! Slurm (`run --executor slurm`): one `sbatch` job per node, each with
//! `--dependency=afterok:` on the jobs that make its inputs, all submitted at once; the
//! scheduler runs them as the cluster allows. A thin layer over `sbatch`, `squeue`,
//! `scontrol` and `scancel` and their machine-readable output: nothing here schedules.
//!
//! A job stopped by its time limit or by preemption is submitted again (a new job id) and
//! its fit resumes from the checkpoint it left in the shared cache; the jobs waiting on it
//! are told to wait for the new one (`scontrol update Dependency=`), since Slurm marks a
//! dependency on a stopped job as never satisfied. Each job's script and logs
//! (`<node>-<key>-<jobid>.out`, one per attempt) are in the logs folder.

use super::{file_safe, Backend, Job, Seen, WorkerCommand};
use crate::config::SlurmConfig;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

/// Submits jobs to the Slurm cluster that `sbatch` on PATH talks to.
pub struct Slurm {
    config: SlurmConfig,
    worker: WorkerCommand,
    logs: PathBuf,
    workdir: PathBuf,
}

impl Slurm {
    /// Checks that Slurm's commands are on PATH and answer.
    pub fn new(config: SlurmConfig, worker: WorkerCommand, logs: PathBuf) -> Result<Slurm> {
        let logs = std::path::absolute(&logs).map_err(|e| Error::io(&logs, e))?;
        std::fs::create_dir_all(&logs).map_err(|e| Error::io(&logs, e))?;
        let workdir = std::env::current_dir().map_err(|e| Error::msg(format!("the working folder: {e}")))?;
        for tool in ["sbatch", "squeue", "scontrol", "scancel"] {
            if which(tool).is_none() {
                return Err(Error::msg(format!(
                    "--executor slurm needs Slurm's `{tool}` on PATH, and it is not there (is this a login node of the cluster?)"
                )));
            }
        }
        Ok(Slurm {
            config,
            worker,
            logs,
            workdir,
        })
    }

    fn stem(&self, job: &Job) -> String {
        format!("{}-{}", file_safe(&job.name), &job.key[..12])
    }

    /// The job script: the worker's command line, its kernels on the job's CPUs.
    fn script(&self, job: &Job) -> String {
        let mut words = vec![quote(&self.worker.program.to_string_lossy())];
        words.extend(self.worker.args(job).iter().map(|a| quote(&a.to_string_lossy())));
        format!(
            "#!/bin/sh\n# advpipe: node `{}` ({}), key {}\nexport RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-1}}\"\nexec {}\n",
            job.name.replace('\n', " "),
            job.kind,
            job.key,
            words.join(" ")
        )
    }
}

/// `s` in single quotes for sh.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(tool)).find(|p| p.is_file()))
}

/// Runs a Slurm command; its stdout, or an error carrying its stderr.
fn slurm(tool: &str, args: &[String]) -> Result<String> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .map_err(|e| Error::msg(format!("could not run `{tool}`: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(Error::msg(format!("`{tool} {}` failed: {err}", args.join(" "))));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What a Slurm job state means to the driver.
fn seen(state: &str, reason: &str) -> Seen {
    match state {
        "PENDING" | "REQUEUED" | "REQUEUE_FED" | "REQUEUE_HOLD" | "RESV_DEL_HOLD" | "SUSPENDED" => Seen::Pending(reason.to_string()),
        "RUNNING" | "CONFIGURING" | "COMPLETING" | "STAGE_OUT" | "RESIZING" | "SIGNALING" => Seen::Running,
        "COMPLETED" => Seen::Done,
        "TIMEOUT" | "PREEMPTED" | "NODE_FAIL" | "BOOT_FAIL" | "DEADLINE" => Seen::Stopped(format!("Slurm stopped it: {state}")),
        other => Seen::Failed(format!(
            "Slurm says {other}{}",
            if reason.is_empty() || reason == "None" {
                String::new()
            } else {
                format!(" ({reason})")
            }
        )),
    }
}

impl Backend for Slurm {
    fn handle_word(&self) -> &'static str {
        "job"
    }

    fn slots(&self) -> Option<usize> {
        None
    }

    fn submit(&mut self, job: &Job, after: &[String]) -> Result<String> {
        let script_path = self.logs.join(format!("{}.sh", self.stem(job)));
        std::fs::write(&script_path, self.script(job)).map_err(|e| Error::io(&script_path, e))?;
        let r = self.config.resources_for(job.kind);
        let mut args = vec![
            "--parsable".to_string(),
            format!("--job-name=advpipe:{}", file_safe(&job.name)),
            format!("--output={}", self.logs.join(format!("{}-%j.out", self.stem(job))).display()),
            format!("--chdir={}", self.workdir.display()),
        ];
        args.extend(r.partition.map(|p| format!("--partition={p}")));
        args.extend(r.time.map(|t| format!("--time={t}")));
        args.extend(r.cpus.map(|c| format!("--cpus-per-task={c}")));
        args.extend(r.mem.map(|m| format!("--mem={m}")));
        args.extend(r.extra);
        if !after.is_empty() {
            args.push(format!("--dependency=afterok:{}", after.join(":")));
        }
        args.push(script_path.display().to_string());
        let out = slurm("sbatch", &args).map_err(|e| Error::msg(format!("Slurm rejected the job: {e}")))?;
        // `--parsable` prints `jobid` or `jobid;cluster`.
        let id = out.trim().split(';').next().unwrap_or("").to_string();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::msg(format!("sbatch printed `{}`, not a job id", out.trim())));
        }
        Ok(id)
    }

    fn observe(&mut self, handles: &[String]) -> Result<Vec<Seen>> {
        // Our jobs the controller still holds, finished ones included. Asked for one job it
        // no longer holds, squeue fails ("Invalid job id specified"): then `scontrol` below
        // and the cache decide.
        let args = [
            "--noheader".into(),
            "--states=all".into(),
            "--format=%i|%T|%r".into(),
            format!("--jobs={}", handles.join(",")),
        ];
        let listing = match slurm("squeue", &args) {
            Ok(listing) => listing,
            Err(e) if e.to_string().contains("Invalid job id") => String::new(),
            Err(e) => return Err(e),
        };
        let mut states: HashMap<&str, (&str, &str)> = HashMap::new();
        for row in listing.lines() {
            let mut cells = row.trim().splitn(3, '|');
            if let (Some(id), Some(state), Some(reason)) = (cells.next(), cells.next(), cells.next()) {
                states.insert(id, (state, reason));
            }
        }
        Ok(handles
            .iter()
            .map(|h| match states.get(h.as_str()) {
                Some((state, reason)) => seen(state, reason),
                None => match slurm("scontrol", &["--oneliner".into(), "show".into(), "job".into(), h.clone()]) {
                    Ok(text) => {
                        let field = |name: &str| text.split_whitespace().find_map(|w| w.strip_prefix(name)).unwrap_or("");
                        seen(field("JobState="), field("Reason="))
                    }
                    Err(_) => Seen::Gone,
                },
            })
            .collect())
    }

    fn resubmit(&mut self, _stopped: &str, job: &Job) -> Result<String> {
        // A new job rather than `scontrol requeue`: requeued in place, a job stopped by its
        // time limit was seen to end FAILED when the old attempt's exit status arrived late.
        // Its inputs are done, so it needs no dependency.
        self.submit(job, &[])
    }

    fn redepend(&mut self, handle: &str, after: &[String]) -> Result<()> {
        let dependency = if after.is_empty() {
            String::new()
        } else {
            format!("afterok:{}", after.join(":"))
        };
        slurm(
            "scontrol",
            &["update".into(), format!("JobId={handle}"), format!("Dependency={dependency}")],
        )
        .map(|_| ())
    }

    fn cancel(&mut self, handles: &[String]) {
        if !handles.is_empty() {
            let _ = slurm("scancel", handles);
        }
    }

    fn interrupt_cancels_running(&self) -> bool {
        true
    }

    fn log_path(&self, job: &Job, handle: &str) -> PathBuf {
        self.logs.join(format!("{}-{handle}.out", self.stem(job)))
    }
}
