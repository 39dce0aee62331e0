//! The `advpipe` command line: `run`, `check`, `plan`, `explain` and `graph` on a pipeline
//! file.
//!
//! Exit status: 0 on success; 1 when the pipeline file has errors (all are printed, with
//! file:line:col); 2 for a misused command line; 3 when running fails (missing data, I/O,
//! a diverging fit): everything finished before the failure stays cached.

// mimalloc keeps freed pages for reuse: with the system allocator every step's
// multi-megabyte gradient buffers went back to the kernel and were faulted in again,
// which cost training steps up to half their time (see README, Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use advpipe::check::ir::Program;
use advpipe::diagnostics::{render, Source};
use advpipe::{cache::Cache, config, estimate, exec, kinds, plan, report, Error};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "advpipe",
    version,
    about = "Adversarial-robustness pipelines: check, plan, run and report",
    after_help = "Exit status: 0 success; 1 the pipeline file has errors; 2 bad command line; 3 a run failed (missing data, I/O, divergence)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where data and cache live (flag > environment > advpipe.toml > default).
#[derive(Args)]
struct Places {
    /// Folder with MNIST's IDX files; fetched there when absent [env: ADVPIPE_DATA]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Artifact cache folder [env: ADVPIPE_CACHE] [default: .advpipe/cache]
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

/// Which values the file's `param`s take.
#[derive(Args, Default)]
struct Choose {
    /// Take every `profile(...)` param at this profile's value [default: the first listed]
    #[arg(long)]
    profile: Option<String>,
    /// Override a param: NAME=VALUE (a number, "string" or [list]); repeatable
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
}

/// Where `run` computes nodes.
#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Executor {
    /// On this machine (`--jobs N` at once).
    Local,
    /// One Slurm job per node, through `sbatch` (settings: `[slurm]` in advpipe.toml).
    Slurm,
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    Dot,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Check, plan and execute a pipeline; print its tables and write them to the results folder
    Run {
        /// The pipeline file (.adv)
        file: PathBuf,
        #[command(flatten)]
        choose: Choose,
        #[command(flatten)]
        places: Places,
        /// Results folder for this pipeline [default: results/<file stem>]
        #[arg(long)]
        out: Option<PathBuf>,
        /// Nodes computed at once, each in its own worker process [default: `jobs` in advpipe.toml, else 1]
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        jobs: Option<u16>,
        /// Where nodes are computed
        #[arg(long, value_enum, default_value = "local")]
        executor: Executor,
    },
    /// Compute one node into the cache, its cached inputs read from the cache (what each job of
    /// `run --jobs` or `run --executor slurm` runs)
    Node {
        /// The pipeline file (.adv)
        file: PathBuf,
        /// The node's name (a declaration, or kind@line:col for an inline call)
        node: String,
        /// Refuse to run unless the node's cache key is this one
        #[arg(long)]
        key: Option<String>,
        #[command(flatten)]
        choose: Choose,
        #[command(flatten)]
        places: Places,
    },
    /// Parse and check a pipeline without computing anything
    Check {
        /// The pipeline file (.adv)
        file: PathBuf,
        #[command(flatten)]
        choose: Choose,
    },
    /// List the nodes in execution order with what a run would do to each (needs the data)
    Plan {
        /// The pipeline file (.adv)
        file: PathBuf,
        #[command(flatten)]
        choose: Choose,
        #[command(flatten)]
        places: Places,
    },
    /// Show a node's cache key and everything that goes into it
    Explain {
        /// The pipeline file (.adv)
        file: PathBuf,
        #[command(flatten)]
        choose: Choose,
        /// The node's name (a declaration, or kind@line:col for an inline call)
        node: String,
        #[command(flatten)]
        places: Places,
    },
    /// Print a pipeline's DAG (DOT: pipe into `dot -Tsvg`; or JSON)
    Graph {
        /// The pipeline file (.adv)
        file: PathBuf,
        #[command(flatten)]
        choose: Choose,
        /// Output format
        #[arg(long, value_enum, default_value = "dot")]
        format: GraphFormat,
    },
}

enum Failure {
    Pipeline,
    Usage(String),
    Runtime(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Runtime(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Pipeline) => ExitCode::from(1),
        Err(Failure::Usage(why)) => {
            eprintln!("error: {why}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
    }
}

fn load(path: &Path, choose: &Choose) -> Result<(Source, Program), Failure> {
    let mut choices = advpipe::check::expand::Choices {
        profile: choose.profile.clone(),
        overrides: vec![],
    };
    for text in &choose.set {
        let (name, value) = advpipe::parse_override(text).map_err(Failure::Usage)?;
        if choices.overrides.iter().any(|(n, _)| *n == name) {
            return Err(Failure::Usage(format!("--set {name} is given twice; give each param once")));
        }
        choices.overrides.push((name, value));
    }
    let source = match advpipe::load_source(path) {
        Ok(source) => source,
        Err(advpipe::LoadError::Io(e)) => return Err(e.into()),
        Err(advpipe::LoadError::Imports(source, diags)) => {
            eprint!("{}", render(&source, &diags, std::io::stderr().is_terminal()));
            return Err(Failure::Pipeline);
        }
    };
    match advpipe::compile_with(&source, &choices) {
        Ok(program) => {
            if let Some(p) = &choose.profile {
                if !program.profiles.contains(p) {
                    return Err(Failure::Usage(match program.profiles.as_slice() {
                        [] => format!("--profile {p}: {} offers no profiles", path.display()),
                        offered => format!("--profile {p}: {} offers {}", path.display(), offered.join(", ")),
                    }));
                }
            }
            for (name, _) in &choices.overrides {
                if !program.params.iter().any(|q| q.name == *name) {
                    let names = program.params.iter().map(|q| q.name.as_str());
                    let hint = advpipe::diagnostics::did_you_mean(name, names).map_or(String::new(), |s| format!(" (did you mean `{s}`?)"));
                    return Err(Failure::Usage(format!(
                        "--set {name}: {} has no param `{name}`{hint}",
                        path.display()
                    )));
                }
            }
            Ok((source, program))
        }
        Err(diags) => {
            eprint!("{}", render(&source, &diags, std::io::stderr().is_terminal()));
            Err(Failure::Pipeline)
        }
    }
}

fn settings(places: Places) -> Result<config::Settings, Failure> {
    Ok(config::resolve(
        config::read_file_config(Path::new("."))?,
        places.data_dir,
        places.cache_dir,
        None,
    ))
}

/// How to run, from the settings.
fn run_options<'a>(settings: &config::Settings, cache: &'a Cache, progress: bool) -> exec::RunOptions<'a> {
    exec::RunOptions {
        checkpoint_every: settings.checkpoint_every,
        data_dir: settings.data_dir.clone(),
        cache,
        progress,
        runners: kinds::runner,
    }
}

/// `plan`'s word for what a run would do to the node with `key`.
fn intent(status: &exec::Status, cache: &Cache, key: &str) -> String {
    match status {
        exec::Status::Cached => "cached".into(),
        exec::Status::Computed if cache.has_progress(key) => "will resume".into(),
        exec::Status::Computed => "will run".into(),
        exec::Status::Recomputed(why) => format!("will rerun (cache entry corrupt: {why})"),
        _ => "on demand".into(),
    }
}

/// Computes the nodes that are not cached as jobs (worker processes or Slurm jobs), before the
/// in-process run that then finds them all cached. Returns the nodes computed, with seconds.
fn run_as_jobs(
    program: &Program,
    dag: &plan::Plan,
    opts: &exec::RunOptions,
    executor: Executor,
    jobs: usize,
    settings: &config::Settings,
    worker: exec::jobs::WorkerCommand,
) -> Result<Vec<exec::jobs::Computed>, Failure> {
    exec::prepare(program, opts, &mut std::io::stderr())?;
    let keys = exec::keys(program, dag, opts)?;
    let todo = exec::jobs::jobs_to_run(program, dag, &keys, opts.cache);
    if todo.is_empty() {
        return Ok(Vec::new());
    }
    let poll = settings
        .slurm
        .poll_seconds
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(2.0)
        .min(600.0);
    let mut backend: Box<dyn exec::jobs::Backend> = match executor {
        Executor::Local => {
            eprintln!("  {} node(s) to compute, {jobs} at a time", todo.len());
            Box::new(exec::jobs::local::Local::new(jobs, worker, settings.logs_dir.clone())?)
        }
        Executor::Slurm => {
            eprintln!("  {} node(s) to compute as Slurm jobs", todo.len());
            Box::new(exec::jobs::slurm::Slurm::new(
                settings.slurm.clone(),
                worker,
                settings.logs_dir.clone(),
            )?)
        }
    };
    let driver = exec::jobs::DriverOptions {
        poll: std::time::Duration::from_secs_f64(if executor == Executor::Local { 0.2 } else { poll }),
        max_resubmits: settings.slurm.max_resubmits.unwrap_or(3),
        progress: opts.progress,
    };
    Ok(exec::jobs::drive(
        &todo,
        backend.as_mut(),
        opts.cache,
        &driver,
        &mut std::io::stderr(),
    )?)
}

/// Refuses a program with a node estimated to need more memory than a run may use.
fn check_memory(program: &Program, estimates: &[estimate::Estimate], max_memory: Option<u64>) -> Result<(), Failure> {
    match estimate::memory_limit(max_memory) {
        Some(limit) => estimate::check_fits(program, estimates, limit).map_err(|e| Failure::Runtime(Error::msg(e))),
        None => Ok(()),
    }
}

/// The id of the node named `name`, or an error listing the names there are.
fn find_node(program: &Program, file: &Path, name: &str) -> Result<usize, Failure> {
    program.node_named(name).ok_or_else(|| {
        let names: Vec<&str> = program.nodes.iter().map(|n| n.name.as_str()).collect();
        let hint =
            advpipe::diagnostics::did_you_mean(name, names.iter().copied()).map_or(String::new(), |s| format!(" (did you mean `{s}`?)"));
        Failure::Usage(format!("no node `{name}` in {}{hint}; nodes: {}", file.display(), names.join(", ")))
    })
}

/// The flags a job passes on so that it compiles the same program over the same places.
fn worker_command(file: &Path, choose: &Choose, settings: &config::Settings) -> Result<exec::jobs::WorkerCommand, Failure> {
    let absolute = |p: &Path| std::path::absolute(p).map_err(|e| Failure::Runtime(Error::io(p, e)));
    let mut flags: Vec<std::ffi::OsString> = Vec::new();
    if let Some(p) = &choose.profile {
        flags.extend(["--profile".into(), p.into()]);
    }
    for s in &choose.set {
        flags.extend(["--set".into(), s.into()]);
    }
    flags.extend(["--data-dir".into(), absolute(&settings.data_dir)?.into()]);
    flags.extend(["--cache-dir".into(), absolute(&settings.cache_dir)?.into()]);
    Ok(exec::jobs::WorkerCommand {
        program: std::env::current_exe().map_err(|e| Failure::Runtime(Error::msg(format!("where is advpipe itself? {e}"))))?,
        file: absolute(file)?,
        flags,
    })
}

fn dispatch(command: Command) -> Result<(), Failure> {
    match command {
        Command::Check { file, choose } => {
            let (_, program) = load(&file, &choose)?;
            println!(
                "{}: ok ({} nodes, {} tables)",
                file.display(),
                program.nodes.len(),
                program.tables.len()
            );
            Ok(())
        }
        Command::Graph { file, choose, format } => {
            let (_, program) = load(&file, &choose)?;
            let dag = plan::plan(&program);
            match format {
                GraphFormat::Dot => print!("{}", plan::to_dot(&program, &dag)),
                GraphFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&plan::to_json(&program, &dag)).expect("JSON values print")
                ),
            }
            Ok(())
        }
        Command::Plan { file, choose, places } => {
            let (_, program) = load(&file, &choose)?;
            let settings = settings(places)?;
            let settings_max_memory = settings.max_memory;
            let cache = Cache::open(&settings.cache_dir)?;
            let opts = run_options(&settings, &cache, false);
            let dag = plan::plan(&program);
            let records = exec::preview(&program, &dag, &opts)?;
            let estimates = estimate::estimate(&program, &kinds::estimate_rule);
            for ((i, r), &id) in records.iter().enumerate().zip(&dag.order) {
                let e = &estimates[id];
                let work = e
                    .gradients
                    .map_or(String::new(), |g| format!(", {} gradients", estimate::show_count(g)));
                println!(
                    "{:>4}  {:<10} {:<20} {}  {:<14} ~{}{work}",
                    i + 1,
                    r.kind,
                    r.name,
                    &r.key[..12],
                    intent(&r.status, &cache, &r.key),
                    estimate::show_bytes(e.memory),
                );
            }
            let to_run = records
                .iter()
                .filter(|r| matches!(r.status, exec::Status::Computed | exec::Status::Recomputed(_)))
                .count();
            println!("{to_run} of {} node(s) would run", records.len());
            check_memory(&program, &estimates, settings_max_memory)?;
            Ok(())
        }
        Command::Explain {
            file,
            choose,
            node,
            places,
        } => {
            let (_, program) = load(&file, &choose)?;
            let id = find_node(&program, &file, &node)?;
            let settings = settings(places)?;
            let cache = Cache::open(&settings.cache_dir)?;
            let dag = plan::plan(&program);
            let opts = run_options(&settings, &cache, false);
            let n = &program.nodes[id];
            println!("node     {} ({}, version {})", n.name, n.kind.name, n.kind.version);
            // A key hashes the data files; without them (no data folder yet) the rest of
            // the explanation still holds.
            let keys = match exec::keys(&program, &dag, &opts) {
                Ok(keys) => keys,
                Err(e) => {
                    println!("key      unknown until the files it depends on can be read: {e}");
                    println!("params   {}", n.params);
                    for (role, input) in &n.inputs {
                        println!(
                            "input    {role} = {} ({})",
                            program.nodes[*input].name, program.nodes[*input].kind.name
                        );
                    }
                    return Ok(());
                }
            };
            println!("key      {}", keys[id]);
            let status = if n.kind.cached {
                intent(&exec::expected_status(opts.cache, &keys[id]), opts.cache, &keys[id])
            } else {
                "not cached (made on demand)".into()
            };
            println!("status   {status}");
            let e = &estimate::estimate(&program, &kinds::estimate_rule)[id];
            println!(
                "needs    ~{} of memory, {} parameters{}",
                estimate::show_bytes(e.memory),
                estimate::show_count(e.params),
                e.gradients
                    .map_or(String::new(), |g| format!(", {} input gradients", estimate::show_count(g)))
            );
            for (role, input) in &n.inputs {
                println!(
                    "input    {role} = {} ({})  {}",
                    program.nodes[*input].name, program.nodes[*input].kind.name, keys[*input]
                );
            }
            let digest = exec::source_digest(&program, id, &opts)?;
            let recipe = plan::recipe(&program, id, &keys, digest.as_deref());
            println!("recipe (the key is the BLAKE3 hash of this JSON, compact and with sorted keys):");
            println!("{}", serde_json::to_string_pretty(&recipe).expect("JSON values print"));
            Ok(())
        }
        Command::Node {
            file,
            node,
            key,
            choose,
            places,
        } => {
            let (_, program) = load(&file, &choose)?;
            let id = find_node(&program, &file, &node)?;
            let settings = settings(places)?;
            check_memory(&program, &estimate::estimate(&program, &kinds::estimate_rule), settings.max_memory)?;
            let cache = Cache::open(&settings.cache_dir)?;
            let opts = run_options(&settings, &cache, false);
            let record = exec::run_node(&program, &plan::plan(&program), &opts, id, key.as_deref(), &mut std::io::stderr())?;
            eprintln!("advpipe node: `{}` {} ({:.1} s)", record.name, record.status.word(), record.seconds);
            Ok(())
        }
        Command::Run {
            file,
            choose,
            places,
            out,
            jobs,
            executor,
        } => {
            let started = Instant::now();
            let (_, program) = load(&file, &choose)?;
            let settings = settings(places)?;
            let results = out.unwrap_or_else(|| settings.results_dir.join(file.file_stem().unwrap_or_default()));
            // Before any compute: a results folder that cannot be replaced would lose the run,
            // and a node that cannot fit in memory would abort it half-way.
            report::folder::check_replaceable(&results)?;
            check_memory(&program, &estimate::estimate(&program, &kinds::estimate_rule), settings.max_memory)?;
            let cache = Cache::open(&settings.cache_dir)?;
            let dag = plan::plan(&program);
            eprintln!(
                "advpipe: {} ({} nodes), cache {}",
                file.display(),
                program.nodes.len(),
                settings.cache_dir.display()
            );
            let opts = run_options(&settings, &cache, std::io::stderr().is_terminal());
            let jobs = jobs.map_or(settings.jobs, usize::from);
            let by_jobs = if executor == Executor::Slurm || jobs > 1 {
                run_as_jobs(
                    &program,
                    &dag,
                    &opts,
                    executor,
                    jobs,
                    &settings,
                    worker_command(&file, &choose, &settings)?,
                )?
            } else {
                Vec::new()
            };
            let mut outcome = exec::run(&program, &dag, &opts, &mut std::io::stderr())?;
            // Nodes the jobs computed were loaded from the cache just now; the record says who made them.
            for (id, seconds) in by_jobs {
                outcome.records[id].status = exec::Status::Computed;
                outcome.records[id].seconds = seconds;
            }
            let tables = report::tables(&program, &outcome);
            let seconds = started.elapsed().as_secs_f64();
            print!("{}", report::terminal(&tables));
            for plot in report::write(&results, &file, &program, &outcome, &tables, seconds)? {
                eprintln!("picture: {}", plot.display());
            }
            let computed = outcome
                .records
                .iter()
                .filter(|r| matches!(r.status, exec::Status::Computed | exec::Status::Recomputed(_)))
                .count();
            eprintln!("\n{computed} node(s) computed, results in {} ({seconds:.2} s)", results.display());
            Ok(())
        }
    }
}
