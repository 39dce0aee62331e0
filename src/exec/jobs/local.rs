//! Local worker processes (`run --jobs N`): up to N `advpipe node` processes at once, the
//! machine's cores divided among them (each worker's kernels get cores / N threads, through
//! `RAYON_NUM_THREADS`) so N fits do not fight over the same cores. Each worker writes its
//! output to its own log; the driver shows the last line of each.
//!
//! Workers run in their own process group: a Ctrl-C at the terminal reaches the driver only,
//! which decides what to stop (see `super`).

use super::{file_safe, Backend, Job, Seen, WorkerCommand};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Runs jobs as child processes of this one.
pub struct Local {
    slots: usize,
    threads: usize,
    worker: WorkerCommand,
    logs: PathBuf,
    children: HashMap<String, Child>,
}

impl Local {
    /// At most `slots` workers at once, their logs in `logs`; the machine's cores are divided
    /// among them.
    pub fn new(slots: usize, worker: WorkerCommand, logs: PathBuf) -> Result<Local> {
        std::fs::create_dir_all(&logs).map_err(|e| Error::io(&logs, e))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Local {
            slots: slots.max(1),
            threads: (cores / slots.max(1)).max(1),
            worker,
            logs,
            children: HashMap::new(),
        })
    }

    fn log_of(&self, job: &Job) -> PathBuf {
        self.logs.join(format!("{}-{}.log", file_safe(&job.name), &job.key[..12]))
    }
}

impl Backend for Local {
    fn handle_word(&self) -> &'static str {
        "pid"
    }

    fn slots(&self) -> Option<usize> {
        Some(self.slots)
    }

    fn submit(&mut self, job: &Job, _after: &[String]) -> Result<String> {
        let log_path = self.log_of(job);
        let log = std::fs::File::create(&log_path).map_err(|e| Error::io(&log_path, e))?;
        let err = log.try_clone().map_err(|e| Error::io(&log_path, e))?;
        let child = Command::new(&self.worker.program)
            .args(self.worker.args(job))
            .env("RAYON_NUM_THREADS", self.threads.to_string())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| Error::msg(format!("could not start {}: {e}", self.worker.program.display())))?;
        let pid = child.id().to_string();
        self.children.insert(pid.clone(), child);
        Ok(pid)
    }

    fn observe(&mut self, handles: &[String]) -> Result<Vec<Seen>> {
        Ok(handles
            .iter()
            .map(|h| match self.children.get_mut(h).map(|c| c.try_wait()) {
                None => Seen::Gone,
                Some(Ok(None)) => Seen::Running,
                Some(Ok(Some(status))) if status.success() => Seen::Done,
                Some(Ok(Some(status))) => Seen::Failed(match status.code() {
                    Some(code) => format!("it exited with status {code}"),
                    None => format!("it was killed ({status})"),
                }),
                Some(Err(e)) => Seen::Failed(format!("could not wait for it: {e}")),
            })
            .collect())
    }

    fn resubmit(&mut self, handle: &str, job: &Job) -> Result<String> {
        self.children.remove(handle);
        self.submit(job, &[])
    }

    fn redepend(&mut self, _handle: &str, _after: &[String]) -> Result<()> {
        Ok(())
    }

    fn cancel(&mut self, handles: &[String]) {
        for h in handles {
            if let Some(child) = self.children.get_mut(h) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    fn interrupt_cancels_running(&self) -> bool {
        false
    }

    fn log_path(&self, job: &Job, _handle: &str) -> PathBuf {
        self.log_of(job)
    }
}

impl Drop for Local {
    /// A driver that returns early (an error while watching) leaves no worker behind.
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
