//! The `advpipe` command line: `run`, `check` and `graph` on a pipeline file.
//!
//! Exit status: 0 on success; 1 when the pipeline file has errors (all are printed, with
//! file:line:col); 2 for a misused command line; 3 when running fails (missing data, I/O,
//! a diverging fit): everything finished before the failure stays cached.

use advpipe::diagnostics::{render, Source};
use advpipe::{cache::Cache, config, exec, plan, report, Error};
use clap::{Parser, Subcommand};
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

#[derive(Subcommand)]
enum Command {
    /// Check, plan and execute a pipeline; print its tables and write them to the results folder
    Run {
        /// The pipeline file (.adv)
        file: PathBuf,
        /// Folder with MNIST's IDX files; fetched there when absent [env: ADVPIPE_DATA]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Artifact cache folder [env: ADVPIPE_CACHE] [default: .advpipe/cache]
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Results folder for this pipeline [default: results/<file stem>]
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Parse and check a pipeline without computing anything
    Check {
        /// The pipeline file (.adv)
        file: PathBuf,
    },
    /// Print a pipeline's DAG in Graphviz DOT (pipe into `dot -Tsvg`)
    Graph {
        /// The pipeline file (.adv)
        file: PathBuf,
    },
}

enum Failure {
    Pipeline,
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
        Err(Failure::Runtime(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
    }
}

fn load(path: &Path) -> Result<(Source, advpipe::check::ir::Program), Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::msg(format!("cannot read pipeline file {}: {e}", path.display())))?;
    let source = Source::new(path.display().to_string(), text);
    match advpipe::compile(&source) {
        Ok(program) => Ok((source, program)),
        Err(diags) => {
            eprint!("{}", render(&source, &diags, std::io::stderr().is_terminal()));
            Err(Failure::Pipeline)
        }
    }
}

fn dispatch(command: Command) -> Result<(), Failure> {
    match command {
        Command::Check { file } => {
            let (_, program) = load(&file)?;
            println!(
                "{}: ok ({} nodes, {} tables)",
                file.display(),
                program.nodes.len(),
                program.tables.len()
            );
            Ok(())
        }
        Command::Graph { file } => {
            let (_, program) = load(&file)?;
            print!("{}", plan::to_dot(&program, &plan::plan(&program)));
            Ok(())
        }
        Command::Run {
            file,
            data_dir,
            cache_dir,
            out,
        } => {
            let started = Instant::now();
            let (_, program) = load(&file)?;
            let settings = config::resolve(config::read_file_config(Path::new("."))?, data_dir, cache_dir, None);
            let results = out.unwrap_or_else(|| settings.results_dir.join(file.file_stem().unwrap_or_default()));
            let cache = Cache::open(&settings.cache_dir)?;
            let dag = plan::plan(&program);
            eprintln!(
                "advpipe: {} ({} nodes), cache {}",
                file.display(),
                program.nodes.len(),
                settings.cache_dir.display()
            );
            let opts = exec::RunOptions {
                data_dir: settings.data_dir,
                cache: &cache,
                progress: std::io::stderr().is_terminal(),
            };
            let outcome = exec::run(&program, &dag, &opts, &mut std::io::stderr())?;
            let tables = report::tables(&program, &outcome);
            let seconds = started.elapsed().as_secs_f64();
            print!("{}", report::terminal(&tables));
            report::write(&results, &file, &program, &outcome, &tables, seconds)?;
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
