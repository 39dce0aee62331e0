//! Running the nodes a program has to compute as separate jobs, each `advpipe node FILE
//! NODE`: local worker processes (`run --jobs N`) or Slurm jobs (`run --executor slurm`).
//!
//! The driver only decides what to submit and when, and watches: a job computes its node
//! through the cache (see [`super::run_node`]) and the cache is the only channel between
//! jobs, so a node's artifact is byte for byte the one a single-process run makes. The
//! cache's contract makes a shared folder safe: every entry is written under a unique name
//! in `tmp/` and renamed into place in one step, and a second store of a key that is already
//! there keeps the first (equal by construction). Once every job is done the caller runs the
//! program in-process, which finds every node cached and reports as a local run does.
//!
//! Failure policy, for every backend: a failed job stops new submissions and cancels what has
//! not started; running jobs finish and their nodes stay cached. A job stopped by a time
//! limit or preemption is submitted again and its fit resumes from its checkpoint; only
//! attempts that saved no checkpoint count against `max_resubmits` (a fit that outlives
//! several limits goes on as long as each attempt moves it forward).
//! The first Ctrl-C cancels what has not started (and, on Slurm, what runs); the second
//! stops the local workers too.

pub mod local;
pub mod slurm;

use crate::cache::{Cache, Lookup};
use crate::check::ir::{NodeId, Program};
use crate::error::{Error, Result};
use crate::plan::Plan;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// One node to compute as a job.
#[derive(Clone, Debug)]
pub struct Job {
    /// The node.
    pub node: NodeId,
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: &'static str,
    /// Its key: the job refuses to run if the node's key is another one by then.
    pub key: String,
    /// The jobs (indices into the job list) whose nodes this one reads.
    pub after: Vec<usize>,
}

/// The nodes a run has to compute, in execution order, each after the jobs it reads from:
/// every cached kind of node that is not in the cache (or whose entry is corrupt), one job
/// per key (two declarations with one recipe, such as the quick profile's `big` and `mx`,
/// are one computation; the second waits for it like any reader).
pub fn jobs_to_run(program: &Program, plan: &Plan, keys: &[String], cache: &Cache) -> Vec<Job> {
    let mut index_of = std::collections::HashMap::new();
    let mut job_of_key: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut jobs: Vec<Job> = Vec::new();
    for &id in &plan.order {
        let node = &program.nodes[id];
        if !node.kind.cached || matches!(cache.peek(&keys[id]), Lookup::Hit(..)) {
            continue;
        }
        if let Some(&same) = job_of_key.get(keys[id].as_str()) {
            index_of.insert(id, same);
            continue;
        }
        job_of_key.insert(&keys[id], jobs.len());
        let mut after: Vec<usize> = super::cached_inputs(program, id)
            .into_iter()
            .filter_map(|n| index_of.get(&n).copied())
            .collect();
        after.sort_unstable();
        // Two inputs may be one job (one key).
        after.dedup();
        index_of.insert(id, jobs.len());
        jobs.push(Job {
            node: id,
            name: node.name.clone(),
            kind: node.kind.name,
            key: keys[id].clone(),
            after,
        });
    }
    jobs
}

/// How a job is started: this program with `node FILE NODE --key KEY` and the run's flags.
#[derive(Clone, Debug)]
pub struct WorkerCommand {
    /// The `advpipe` binary.
    pub program: PathBuf,
    /// The pipeline file (absolute).
    pub file: PathBuf,
    /// The flags that choose the program and its places (`--profile`, `--set`, `--cache-dir`, ...).
    pub flags: Vec<OsString>,
}

impl WorkerCommand {
    /// The arguments after the program for `job`.
    pub fn args(&self, job: &Job) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["node".into(), self.file.clone().into(), job.name.clone().into()];
        args.extend(["--key".into(), job.key.clone().into()]);
        args.extend(self.flags.iter().cloned());
        args
    }
}

/// What a backend saw of a submitted job.
#[derive(Clone, Debug, PartialEq)]
pub enum Seen {
    /// Waiting to start (the scheduler's reason).
    Pending(String),
    /// Running.
    Running,
    /// Ended successfully.
    Done,
    /// Ended otherwise (why).
    Failed(String),
    /// Stopped from outside before it could finish (time limit, preemption): run it again.
    Stopped(String),
    /// The backend no longer knows the job; the cache says whether it finished.
    Gone,
}

/// Where jobs run: local processes or a cluster's scheduler.
pub trait Backend {
    /// The word for a job's handle in messages ("pid", "job").
    fn handle_word(&self) -> &'static str;
    /// How many jobs may run at once (the driver holds the rest back), or `None` when the
    /// backend queues them itself and every job can be submitted at once.
    fn slots(&self) -> Option<usize>;
    /// Starts `job` after the jobs with these handles (all done unless `slots` is `None`).
    fn submit(&mut self, job: &Job, after: &[String]) -> Result<String>;
    /// What each of these jobs is doing now.
    fn observe(&mut self, handles: &[String]) -> Result<Vec<Seen>>;
    /// Runs a stopped job again (its inputs are done); returns its (possibly new) handle.
    fn resubmit(&mut self, handle: &str, job: &Job) -> Result<String>;
    /// Makes a queued job wait for these jobs again (after one of them was resubmitted: Slurm
    /// marks a dependency on a stopped job as never satisfied).
    fn redepend(&mut self, handle: &str, after: &[String]) -> Result<()>;
    /// Cancels jobs (best effort).
    fn cancel(&mut self, handles: &[String]);
    /// Whether the first Ctrl-C also cancels running jobs (a cluster's) or lets them finish.
    fn interrupt_cancels_running(&self) -> bool;
    /// The log of a job.
    fn log_path(&self, job: &Job, handle: &str) -> PathBuf;
}

/// How the driver watches.
pub struct DriverOptions {
    /// Time between two looks.
    pub poll: Duration,
    /// New attempts allowed, in a row, at a job stopped by a time limit or preemption before
    /// it saved a checkpoint (an attempt that saved one resets the count).
    pub max_resubmits: u32,
    /// Live lines on a terminal.
    pub progress: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum State {
    Waiting,
    Submitted {
        handle: String,
        seen: Seen,
        /// Attempts in a row stopped without saving a checkpoint.
        stalls: u32,
        /// When the node's checkpoint was saved as this attempt was submitted.
        saved_at: Option<SystemTime>,
    },
    Done {
        seconds: f64,
    },
    Failed(String),
    NotRun,
}

/// A node a job computed: its id and the seconds its cache entry records.
pub type Computed = (NodeId, f64);

static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);

/// Counts Ctrl-C presses from here on instead of dying at the first.
fn count_interrupts() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            INTERRUPTS.fetch_add(1, Ordering::SeqCst);
        });
    });
}

/// A job's name for the terminal and for file names: its node's name with anything but
/// letters, digits, `_`, `-` and `.` replaced.
pub fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || "_-.".contains(c) { c } else { '_' })
        .collect()
}

/// The last non-empty line of a log (what a running job said last), if any.
pub fn last_line(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut tail = Vec::new();
    f.take(4096).read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    // Progress bars end their updates with carriage returns; the last update is what counts.
    let line = text
        .lines()
        .rev()
        .flat_map(|l| l.rsplit('\r'))
        .map(str::trim)
        .find(|l| !l.is_empty())?;
    Some(line.chars().take(120).collect())
}

/// Runs `jobs` on `backend` until all are done or one fails; returns the nodes computed.
pub fn drive(jobs: &[Job], backend: &mut dyn Backend, cache: &Cache, opts: &DriverOptions, log: &mut dyn Write) -> Result<Vec<Computed>> {
    count_interrupts();
    let interrupts_before = INTERRUPTS.load(Ordering::SeqCst);
    let mut states = vec![State::Waiting; jobs.len()];
    let mut started = vec![None::<Instant>; jobs.len()];
    let mut failure: Option<String> = None;
    let mut interrupted = 0;
    // Jobs this driver cancelled: their end is not a failure of their own.
    let mut cancelled: std::collections::HashSet<String> = std::collections::HashSet::new();
    let live = opts.progress.then(indicatif::MultiProgress::new);
    let mut bars: Vec<Option<indicatif::ProgressBar>> = vec![None; jobs.len()];
    let mut say = |live: &Option<indicatif::MultiProgress>, line: String| match live {
        Some(m) => {
            let _ = m.println(line);
        }
        None => {
            let _ = writeln!(log, "{line}");
        }
    };
    loop {
        let presses = INTERRUPTS.load(Ordering::SeqCst) - interrupts_before;
        if presses > interrupted {
            interrupted = presses;
            let running: Vec<String> = submitted(&states, |_, s| *s == Seen::Running);
            let queued: Vec<String> = submitted(&states, |_, s| *s != Seen::Running);
            let cancel_running = interrupted >= 2 || backend.interrupt_cancels_running();
            backend.cancel(&queued);
            cancelled.extend(queued);
            if cancel_running {
                backend.cancel(&running);
                cancelled.extend(running.iter().cloned());
            }
            say(
                &live,
                match (cancel_running, running.len()) {
                    (true, _) | (false, 0) => {
                        "  interrupted: cancelled every submitted job; finished nodes stay cached, fits resume from their checkpoints"
                            .to_string()
                    }
                    (false, n) => {
                        format!("  interrupted: cancelled what had not started; {n} running job(s) finish (Ctrl-C again stops them)")
                    }
                },
            );
        }
        let stopping = failure.is_some() || interrupted > 0;
        // Submit what may start.
        let slots = backend.slots();
        for i in 0..jobs.len() {
            if stopping || states[i] != State::Waiting {
                continue;
            }
            if jobs[i].after.iter().any(|&d| matches!(states[d], State::Failed(_) | State::NotRun)) {
                states[i] = State::NotRun;
                continue;
            }
            let inputs_ready = match slots {
                None => jobs[i].after.iter().all(|&d| !matches!(states[d], State::Waiting)),
                Some(_) => jobs[i].after.iter().all(|&d| matches!(states[d], State::Done { .. })),
            };
            let busy = states.iter().filter(|s| matches!(s, State::Submitted { .. })).count();
            if !inputs_ready || slots.is_some_and(|n| busy >= n) {
                continue;
            }
            let after: Vec<String> = jobs[i]
                .after
                .iter()
                .filter_map(|&d| match &states[d] {
                    State::Submitted { handle, .. } => Some(handle.clone()),
                    _ => None,
                })
                .collect();
            let handle = backend
                .submit(&jobs[i], &after)
                .map_err(|e| Error::msg(format!("submitting node `{}`: {e}", jobs[i].name)));
            match handle {
                Ok(handle) => {
                    // Local workers start at once: their `running` line says it.
                    if slots.is_none() {
                        say(&live, line("submitted", &jobs[i], &format!("({} {handle})", backend.handle_word())));
                    }
                    states[i] = State::Submitted {
                        handle,
                        seen: Seen::Pending(String::new()),
                        stalls: 0,
                        saved_at: cache.progress_saved_at(&jobs[i].key),
                    };
                }
                Err(e) => {
                    failure.get_or_insert_with(|| e.to_string());
                    states[i] = State::Failed(e.to_string());
                    let queued = submitted(&states, |_, s| *s != Seen::Running);
                    backend.cancel(&queued);
                    cancelled.extend(queued);
                }
            }
        }
        // Look.
        let watched: Vec<usize> = (0..jobs.len()).filter(|&i| matches!(states[i], State::Submitted { .. })).collect();
        if watched.is_empty() {
            break;
        }
        let handles: Vec<String> = watched.iter().map(|&i| handle_of(&states[i])).collect();
        let seen = backend.observe(&handles)?;
        // What this look saw running counts as started even before the loop below reaches
        // it: a failure earlier in the loop must not cancel a job that is already running.
        let mut running_now = vec![false; jobs.len()];
        for (&i, now) in watched.iter().zip(&seen) {
            running_now[i] = *now == Seen::Running;
        }
        for (&i, now) in watched.iter().zip(seen) {
            let job = &jobs[i];
            let State::Submitted {
                handle,
                seen: before,
                stalls,
                saved_at,
            } = states[i].clone()
            else {
                unreachable!("watched jobs are submitted")
            };
            let now = match now {
                // The scheduler forgot it: the cache says whether it finished.
                Seen::Gone if matches!(cache.peek(&job.key), Lookup::Hit(..)) => Seen::Done,
                Seen::Gone => Seen::Failed("the scheduler no longer knows the job and its node is not in the cache".into()),
                other => other,
            };
            let saved_now = cache.progress_saved_at(&job.key);
            let stalls = if saved_now.is_some() && saved_now != saved_at {
                0
            } else {
                stalls + 1
            };
            match &now {
                Seen::Running if before != Seen::Running => {
                    started[i] = Some(Instant::now());
                    say(&live, line("running", job, &format!("({} {handle})", backend.handle_word())));
                    if let Some(m) = &live {
                        let bar = m.add(indicatif::ProgressBar::new_spinner());
                        bar.set_style(
                            indicatif::ProgressStyle::with_template("  {prefix:<31} {elapsed:>4} {wide_msg}").expect("valid template"),
                        );
                        bar.set_prefix(format!("{} {}", job.kind, job.name));
                        bars[i] = Some(bar);
                    }
                }
                Seen::Pending(why) if before != now && !why.is_empty() && why != "None" => {
                    say(&live, line("pending", job, &format!("({} {handle}: {why})", backend.handle_word())));
                }
                Seen::Done => {
                    let seconds = match cache.peek(&job.key) {
                        Lookup::Hit(manifest, _) => Some(manifest.seconds),
                        _ => None,
                    };
                    match seconds {
                        Some(seconds) => {
                            say(&live, line("computed", job, &format!("({seconds:.1} s)")));
                            states[i] = State::Done { seconds };
                        }
                        None => {
                            let why = format!(
                                "its job ended but the node is not in the cache; its log: {}",
                                backend.log_path(job, &handle).display()
                            );
                            say(&live, line("failed", job, &why));
                            failure.get_or_insert_with(|| format!("node `{}` ({}) failed: {why}", job.name, job.kind));
                            states[i] = State::Failed(why);
                        }
                    }
                }
                Seen::Stopped(why) if stalls <= opts.max_resubmits && interrupted == 0 && failure.is_none() => {
                    let handle = backend.resubmit(&handle, job)?;
                    say(
                        &live,
                        line(
                            "resubmitted",
                            job,
                            &format!("({why}; now {} {handle}; a fit resumes from its checkpoint)", backend.handle_word()),
                        ),
                    );
                    states[i] = State::Submitted {
                        handle,
                        seen: Seen::Pending(String::new()),
                        stalls,
                        saved_at: saved_now,
                    };
                    for k in (0..jobs.len()).filter(|&k| jobs[k].after.contains(&i)) {
                        if let State::Submitted { handle: waiting, .. } = &states[k] {
                            let after: Vec<String> = jobs[k]
                                .after
                                .iter()
                                .filter(|&&d| matches!(states[d], State::Submitted { .. }))
                                .map(|&d| handle_of(&states[d]))
                                .collect();
                            backend.redepend(waiting, &after)?;
                        }
                    }
                    continue;
                }
                Seen::Failed(_) | Seen::Stopped(_) if cancelled.contains(&handle) => {
                    say(&live, line("cancelled", job, ""));
                    states[i] = State::NotRun;
                }
                Seen::Failed(why) | Seen::Stopped(why) => {
                    let log_path = backend.log_path(job, &handle);
                    let tail = last_line(&log_path).map_or(String::new(), |l| format!("; it last said: {l}"));
                    let stalled = match &now {
                        Seen::Stopped(_) if interrupted == 0 && failure.is_none() => format!(
                            " ({stalls} attempt(s) in a row stopped before saving a checkpoint: is the time limit \
                             shorter than an epoch plus `checkpoint_seconds`?)"
                        ),
                        _ => String::new(),
                    };
                    let why = format!("{why}{stalled}; its log: {}{tail}", log_path.display());
                    say(&live, line("failed", job, &why));
                    if interrupted == 0 {
                        failure.get_or_insert_with(|| format!("node `{}` ({}) failed: {why}", job.name, job.kind));
                        let queued = submitted(&states, |k, s| *s != Seen::Running && !running_now[k]);
                        backend.cancel(&queued);
                        cancelled.extend(queued);
                    }
                    states[i] = State::Failed(why);
                }
                _ => {}
            }
            if let State::Submitted { seen, .. } = &mut states[i] {
                *seen = now;
            }
            if !matches!(states[i], State::Submitted { .. }) {
                if let Some(bar) = bars[i].take() {
                    bar.finish_and_clear();
                }
            }
        }
        for (i, bar) in bars.iter().enumerate() {
            if let (Some(bar), State::Submitted { handle, .. }) = (bar, &states[i]) {
                bar.set_message(last_line(&backend.log_path(&jobs[i], handle)).unwrap_or_default());
            }
        }
        std::thread::sleep(opts.poll);
    }
    let not_run = states.iter().filter(|s| matches!(s, State::NotRun | State::Waiting)).count();
    if let Some(why) = failure {
        let rest = if not_run > 0 {
            format!(" ({not_run} node(s) that needed it or came later were not run)")
        } else {
            String::new()
        };
        return Err(Error::msg(format!("{why}{rest}; every node that finished is cached")));
    }
    if interrupted > 0 {
        return Err(Error::msg(format!("interrupted ({not_run} node(s) not run); every node that finished is cached, and a fit that was stopped resumes from its checkpoint")));
    }
    Ok(states
        .iter()
        .zip(jobs)
        .filter_map(|(s, j)| match s {
            State::Done { seconds } => Some((j.node, *seconds)),
            _ => None,
        })
        .collect())
}

fn handle_of(state: &State) -> String {
    match state {
        State::Submitted { handle, .. } => handle.clone(),
        _ => String::new(),
    }
}

/// The handles of submitted jobs whose last sighting passes `filter`.
fn submitted(states: &[State], filter: impl Fn(usize, &Seen) -> bool) -> Vec<String> {
    states
        .iter()
        .enumerate()
        .filter_map(|(k, s)| match s {
            State::Submitted { handle, seen, .. } if filter(k, seen) => Some(handle.clone()),
            _ => None,
        })
        .collect()
}

fn line(word: &str, job: &Job, rest: &str) -> String {
    format!("  {word:<10} {:<9} {:<20} {} {rest}", job.kind, job.name, &job.key[..12])
}

#[cfg(test)]
mod tests;
