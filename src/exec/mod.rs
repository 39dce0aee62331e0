//! Execute: the planned DAG -> artifacts, in topological order, through the cache.
//!
//! For each cached kind of node: a verified cache entry is loaded ("cached"); otherwise its
//! inputs are made available and it is computed and stored at once ("computed"), so a run
//! that fails or is killed later keeps every node it finished. Cheap kinds are not cached
//! (reading IDX files, sampling noise, grouping models into an ensemble): they are made
//! only when some node has to compute.
//!
//! The executor knows node kinds only through their [`Runner`]s, which `crate::kinds`
//! supplies (one per kind file): how a kind computes, which files it reads, and what must
//! happen once before keys are computed. The [`Executor`]'s public methods are what a
//! kind's `run` uses to reach its inputs.

pub mod artifacts;
pub mod jobs;
mod one;
pub mod progress;

use crate::cache::{Cache, Lookup, Manifest};
use crate::check::ir::{Node, NodeId, Program};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval::MetricMap;
use crate::files::{self, FileKind};
use crate::nn::{Classifier, Model};
use crate::plan::{self, Plan};
pub use artifacts::Artifact;
use indicatif::ProgressBar;
use one::cached_inputs;
pub use one::run_node;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// How a node kind runs: the executor's side of a kind (see `crate::kinds`).
pub struct Runner {
    /// Computes the node's artifact; its inputs are reached through the [`Executor`].
    pub run: fn(&mut Executor<'_>, NodeId) -> Result<Artifact>,
    /// The files the node reads, given the data folder: their bytes enter its key.
    pub reads: Option<ReadsFn>,
    /// Runs once before any key is computed when the program has a node of this kind
    /// (MNIST's fetch), with a line logger.
    pub prepare: Option<PrepareFn>,
}

/// [`Runner::reads`]: the files a node reads, given the data folder.
pub type ReadsFn = fn(&Node, &Path) -> Result<Vec<PathBuf>>;
/// [`Runner::prepare`]: what runs once before keys are computed, with a line logger.
pub type PrepareFn = fn(&Path, &mut dyn FnMut(&str)) -> Result<()>;

/// Finds the runner of a node kind by name.
pub type Runners = fn(&str) -> Option<&'static Runner>;

fn runner_of(runners: Runners, node: &Node) -> Result<&'static Runner> {
    runners(node.kind.name).ok_or_else(|| Error::msg(format!("node kind `{}` has no runner registered", node.kind.name)))
}

/// Where a run reads and writes.
pub struct RunOptions<'a> {
    /// The folder with the MNIST files (fetched there when absent).
    pub data_dir: PathBuf,
    /// The artifact cache.
    pub cache: &'a Cache,
    /// Draw progress bars (on a terminal).
    pub progress: bool,
    /// How each node kind runs (`advpipe::kinds::runner`).
    pub runners: Runners,
    /// The least time between two checkpoints of a fit (`checkpoint_seconds`).
    pub checkpoint_every: std::time::Duration,
}

/// What happened to a node in this run.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Loaded from a verified cache entry.
    Cached,
    /// Computed and stored.
    Computed,
    /// A cache entry failed verification (the reason); computed again and stored.
    Recomputed(String),
    /// An uncached node (data, an ensemble) made because some node needed it.
    Loaded,
    /// An uncached node nobody needed this time.
    NotNeeded,
}

impl Status {
    /// A one-word summary for the terminal.
    pub fn word(&self) -> &'static str {
        match self {
            Status::Cached => "cached",
            Status::Computed => "computed",
            Status::Recomputed(_) => "recomputed",
            Status::Loaded => "loaded",
            Status::NotNeeded => "not needed",
        }
    }
}

/// One node's record in a run.
#[derive(Clone, Debug)]
pub struct NodeRecord {
    /// Declared or generated name.
    pub name: String,
    /// Its kind.
    pub kind: &'static str,
    /// Its cache key.
    pub key: String,
    /// What happened.
    pub status: Status,
    /// Wall time spent on it in this run.
    pub seconds: f64,
    /// The files it read (data and checkpoints), with their digests.
    pub files: Vec<FileRead>,
}

/// The result of a run.
pub struct Outcome {
    /// Per node, indexed by node id.
    pub records: Vec<NodeRecord>,
    /// The metrics of every evaluation node.
    pub metrics: BTreeMap<NodeId, MetricMap>,
    /// The example sets of every `examples` node.
    pub examples: BTreeMap<NodeId, crate::eval::ExampleSet>,
    /// The figures of every `figure` node.
    pub figures: BTreeMap<NodeId, crate::eval::weights::WeightsFigure>,
    /// The files of every `export` node.
    pub exports: BTreeMap<NodeId, Vec<(&'static str, Vec<u8>)>>,
    /// How every model trained in (or cached for) this run trained.
    pub fits: BTreeMap<NodeId, crate::train::FitSummary>,
}

/// A run in progress: what a kind's `run` reads its inputs and settings through.
pub struct Executor<'a> {
    program: &'a Program,
    opts: &'a RunOptions<'a>,
    dev: crate::nn::Dev,
    keys: Vec<String>,
    artifacts: HashMap<NodeId, Artifact>,
    records: Vec<NodeRecord>,
    log: &'a mut dyn Write,
}

/// Runs a planned program. Status lines go to `log`.
pub fn run(program: &Program, plan: &Plan, opts: &RunOptions, log: &mut dyn Write) -> Result<Outcome> {
    let mut exec = Executor::start(program, plan, opts, log)?;
    for &id in &plan.order {
        if program.nodes[id].kind.cached {
            exec.cached_node(id)?;
        }
    }
    // What the report reads, moved out of the artifacts in one pass.
    let (mut metrics, mut examples, mut figures, mut exports) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    let mut fits = BTreeMap::new();
    for (id, artifact) in exec.artifacts {
        match artifact {
            Artifact::Metrics(m) => {
                metrics.insert(id, m);
            }
            Artifact::Examples(e) => {
                examples.insert(id, e);
            }
            Artifact::Figure(f) => {
                figures.insert(id, f);
            }
            Artifact::Export(files) => {
                exports.insert(id, files);
            }
            Artifact::Model { summary, .. } => {
                fits.insert(id, summary);
            }
            Artifact::Data(_) | Artifact::Models { .. } => {}
        }
    }
    Ok(Outcome {
        records: exec.records,
        metrics,
        examples,
        figures,
        exports,
        fits,
    })
}

/// Runs what the program's kinds need once before keys are computed (MNIST's fetch).
pub fn prepare(program: &Program, opts: &RunOptions, log: &mut dyn Write) -> Result<()> {
    let mut prepared: Vec<&str> = Vec::new();
    for node in &program.nodes {
        if let (Some(prepare), false) = (runner_of(opts.runners, node)?.prepare, prepared.contains(&node.kind.name)) {
            prepared.push(node.kind.name);
            prepare(&opts.data_dir, &mut |m| {
                let _ = writeln!(log, "{m}");
            })?;
        }
    }
    Ok(())
}

/// What a run would do, node by node in execution order, without computing anything.
pub fn preview(program: &Program, plan: &Plan, opts: &RunOptions) -> Result<Vec<NodeRecord>> {
    let keys = keys(program, plan, opts)?;
    let mut records: Vec<NodeRecord> = Vec::new();
    for &id in &plan.order {
        let node = &program.nodes[id];
        let status = if node.kind.cached {
            expected_status(opts.cache, &keys[id])
        } else {
            Status::NotNeeded
        };
        records.push(NodeRecord {
            name: node.name.clone(),
            kind: node.kind.name,
            key: keys[id].clone(),
            status,
            seconds: 0.0,
            files: Vec::new(),
        });
    }
    Ok(records)
}

/// What a run would do to a cached kind of node with this key: `Cached`, `Computed` (a
/// miss) or `Recomputed` (a corrupt entry). Reads the cache, changes nothing.
pub fn expected_status(cache: &Cache, key: &str) -> Status {
    match cache.peek(key) {
        Lookup::Hit(..) => Status::Cached,
        Lookup::Corrupt(why) => Status::Recomputed(why),
        Lookup::Miss => Status::Computed,
    }
}

/// Every node's cache key: what it computes, from what, and the bytes of the files it reads
/// (MNIST must be in the data folder; `run` fetches it first).
pub fn keys(program: &Program, plan: &Plan, opts: &RunOptions) -> Result<Vec<String>> {
    keys_and_files(program, plan, opts).map(|(keys, _)| keys)
}

/// Every node's key, and per node the files it read with their digests (the manifest's).
pub fn keys_and_files(program: &Program, plan: &Plan, opts: &RunOptions) -> Result<(Vec<String>, Vec<Vec<FileRead>>)> {
    // Several nodes read the same files (every `mnist` node of a split): hash each once.
    let mut digests = HashMap::new();
    let mut files = vec![Vec::new(); program.nodes.len()];
    let keys = plan::keys(program, plan, &mut |id| {
        node_digest(&program.nodes[id], opts, &mut digests, &mut files[id])
    })?;
    Ok((keys, files))
}

/// The content digest of the files one node reads, if any (what `explain` shows).
pub fn source_digest(program: &Program, id: NodeId, opts: &RunOptions) -> Result<Option<String>> {
    node_digest(&program.nodes[id], opts, &mut HashMap::new(), &mut Vec::new())
}

/// A file a node read, as the run manifest records it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FileRead {
    /// The path, as the node's parameters or the data folder give it.
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// The BLAKE3 digest of its bytes.
    pub blake3: String,
}

/// The digest of the files `node` reads (its runner's `reads`), each file hashed once per
/// `digests`, each listed in `read`; `None` for kinds that read no files.
fn node_digest(
    node: &Node,
    opts: &RunOptions,
    digests: &mut HashMap<PathBuf, (blake3::Hash, u64)>,
    read: &mut Vec<FileRead>,
) -> Result<Option<String>> {
    let Some(reads) = runner_of(opts.runners, node)?.reads else {
        return Ok(None);
    };
    let in_node = |e: Error| e.in_node(&node.name, node.kind.name);
    let mut hasher = blake3::Hasher::new();
    for path in reads(node, &opts.data_dir).map_err(in_node)? {
        let (digest, bytes) = match digests.get(&path) {
            Some(d) => *d,
            None => {
                let bytes = files::read(&path, FileKind::Checkpoint).map_err(in_node)?;
                *digests.entry(path.clone()).or_insert((blake3::hash(&bytes), bytes.len() as u64))
            }
        };
        hasher.update(digest.as_bytes());
        read.push(FileRead {
            path: path.display().to_string(),
            bytes,
            blake3: digest.to_hex().to_string(),
        });
    }
    Ok(Some(hasher.finalize().to_hex().to_string()))
}

/// A model input: one model, or an ensemble's members.
pub struct Models {
    /// The model, or the ensemble's members.
    pub members: Vec<Arc<Model>>,
    /// How the members are combined, for an ensemble.
    pub ensemble: Option<crate::nn::Combine>,
}

impl Models {
    /// The classifier the models form.
    pub fn classifier(&self) -> Classifier<'_> {
        match self.ensemble {
            Some(combine) => Classifier::Ensemble(&self.members, combine),
            None => Classifier::Single(&self.members[0]),
        }
    }
}

/// A node's canonical parameters (or a part of them) as a typed struct.
pub fn params<T: serde::de::DeserializeOwned>(json: &serde_json::Value) -> Result<T> {
    serde_json::from_value(json.clone()).map_err(|e| Error::msg(format!("node parameters: {e}")))
}

impl<'a> Executor<'a> {
    /// Prepares what the program's kinds need (MNIST's fetch) and computes every key.
    fn start(program: &'a Program, plan: &Plan, opts: &'a RunOptions<'a>, log: &'a mut dyn Write) -> Result<Executor<'a>> {
        prepare(program, opts, log)?;
        let (keys, files) = keys_and_files(program, plan, opts)?;
        let records = program
            .nodes
            .iter()
            .zip(&keys)
            .zip(files)
            .map(|((n, k), files)| NodeRecord {
                name: n.name.clone(),
                kind: n.kind.name,
                key: k.clone(),
                status: Status::NotNeeded,
                seconds: 0.0,
                files,
            })
            .collect();
        Ok(Executor {
            program,
            opts,
            dev: crate::nn::Dev::default(),
            keys,
            artifacts: HashMap::new(),
            records,
            log,
        })
    }

    fn say(&mut self, id: NodeId) {
        let r = &self.records[id];
        let time = if r.seconds >= 0.05 {
            format!(" ({:.1} s)", r.seconds)
        } else {
            String::new()
        };
        let extra = match &r.status {
            Status::Recomputed(why) => format!(" - the cache entry was corrupt: {why}"),
            _ => String::new(),
        };
        let _ = writeln!(
            self.log,
            "  {:<10} {:<9} {:<20} {}{time}{extra}",
            r.status.word(),
            r.kind,
            r.name,
            &r.key[..12]
        );
    }

    /// A cached kind: load a verified entry, or compute and store.
    fn cached_node(&mut self, id: NodeId) -> Result<()> {
        let node = &self.program.nodes[id];
        let key = self.keys[id].clone();
        let started = Instant::now();
        let mut status = Status::Computed;
        match self.opts.cache.lookup(&key) {
            Lookup::Hit(_, files) => match Artifact::decode(node.kind, &self.dev, &files) {
                Ok(artifact) => {
                    self.artifacts.insert(id, artifact);
                    self.records[id].status = Status::Cached;
                    self.records[id].seconds = started.elapsed().as_secs_f64();
                    self.say(id);
                    return Ok(());
                }
                Err(e) => {
                    let why = format!("unreadable artifact: {e}");
                    self.opts.cache.set_aside(&key, &why);
                    status = Status::Recomputed(why);
                }
            },
            Lookup::Corrupt(why) => status = Status::Recomputed(why),
            Lookup::Miss => {}
        }
        let _ = writeln!(
            self.log,
            "  {:<10} {:<9} {:<20} {}",
            "running",
            node.kind.name,
            node.name,
            &key[..12]
        );
        let artifact = self.compute(id).map_err(|e| e.in_node(&node.name, node.kind.name))?;
        let seconds = started.elapsed().as_secs_f64();
        // Cached kinds read no files of their own, so their recipe has no source digest.
        let recipe = serde_json::to_value(plan::recipe(self.program, id, &self.keys, None)).map_err(|e| Error::msg(e.to_string()))?;
        let manifest = Manifest {
            key: key.clone(),
            kind: node.kind.name.into(),
            node: node.name.clone(),
            advpipe_version: env!("CARGO_PKG_VERSION").into(),
            seconds,
            files: BTreeMap::new(),
            recipe,
        };
        self.opts.cache.store(manifest, &artifact.encode(seconds)?)?;
        // Stored: the node's unfinished work, if it kept any, is no longer needed.
        self.opts.cache.clear_progress(&key);
        self.artifacts.insert(id, artifact);
        self.records[id].status = status;
        self.records[id].seconds = seconds;
        self.say(id);
        Ok(())
    }

    /// Makes an uncached node's artifact if it is not in memory yet.
    fn ensure(&mut self, id: NodeId) -> Result<()> {
        if self.artifacts.contains_key(&id) {
            return Ok(());
        }
        let started = Instant::now();
        let node = &self.program.nodes[id];
        let artifact = self.compute(id).map_err(|e| e.in_node(&node.name, node.kind.name))?;
        self.artifacts.insert(id, artifact);
        self.records[id].status = Status::Loaded;
        self.records[id].seconds = started.elapsed().as_secs_f64();
        self.say(id);
        Ok(())
    }

    /// The dataset node `id` makes, made first if needed.
    pub fn data(&mut self, id: NodeId) -> Result<Arc<Dataset>> {
        self.ensure(id)?;
        match &self.artifacts[&id] {
            Artifact::Data(d) => Ok(d.clone()),
            _ => Err(Error::msg(format!(
                "node `{}` does not make a dataset",
                self.program.nodes[id].name
            ))),
        }
    }

    /// The model (or ensemble) node `id` makes, made first if needed.
    pub fn models(&mut self, id: NodeId) -> Result<Models> {
        self.ensure(id)?;
        match &self.artifacts[&id] {
            Artifact::Model { model, .. } => Ok(Models {
                members: vec![model.clone()],
                ensemble: None,
            }),
            Artifact::Models { members, ensemble } => Ok(Models {
                members: members.clone(),
                ensemble: *ensemble,
            }),
            _ => Err(Error::msg(format!("node `{}` does not make a model", self.program.nodes[id].name))),
        }
    }

    /// The inputs of node `id` under parameter `role`, in order.
    pub fn inputs_of(&self, id: NodeId, role: &str) -> Vec<NodeId> {
        self.program.nodes[id]
            .inputs
            .iter()
            .filter(|(r, _)| *r == role)
            .map(|(_, i)| *i)
            .collect()
    }

    /// The input of node `id` under parameter `role` (the checker made sure there is one).
    pub fn input(&self, id: NodeId, role: &str) -> Result<NodeId> {
        self.optional_input(id, role)
            .ok_or_else(|| Error::msg(format!("node `{}` has no `{role}` input", self.program.nodes[id].name)))
    }

    /// The input of node `id` under parameter `role`, if it has one.
    pub fn optional_input(&self, id: NodeId, role: &str) -> Option<NodeId> {
        self.inputs_of(id, role).first().copied()
    }

    /// Node `id` as the checker made it.
    pub fn node(&self, id: NodeId) -> &'a Node {
        &self.program.nodes[id]
    }

    /// Node `id`'s seed: its own `seed` parameter, else the file's.
    pub fn seed(&self, id: NodeId) -> u64 {
        self.program.nodes[id]
            .params
            .get("seed")
            .and_then(|s| s.as_u64())
            .unwrap_or(self.program.seed)
    }

    /// The cache, for kinds that keep unfinished work in it (see `Cache::progress`).
    pub fn cache(&self) -> &'a Cache {
        self.opts.cache
    }

    /// The cache key of node `id`.
    pub fn key(&self, id: NodeId) -> &str {
        &self.keys[id]
    }

    /// The least time between two checkpoints of a long computation.
    pub fn checkpoint_every(&self) -> std::time::Duration {
        self.opts.checkpoint_every
    }

    /// The device models compute on.
    pub fn dev(&self) -> &crate::nn::Dev {
        &self.dev
    }

    /// The folder with the data files.
    pub fn data_dir(&self) -> &Path {
        &self.opts.data_dir
    }

    /// Whether progress is drawn on a terminal (else it is logged line by line).
    pub fn progress(&self) -> bool {
        self.opts.progress
    }

    /// Where status lines go.
    pub fn log(&mut self) -> &mut dyn Write {
        &mut *self.log
    }

    /// The progress of node `id`'s pass over `len` examples: a bar on a terminal, plain lines
    /// every few seconds elsewhere (see [`progress`]).
    pub fn examples_progress(&self, id: NodeId, len: u64) -> progress::Progress {
        progress::Progress::new(self.opts.progress, &self.program.nodes[id].name, "examples", len)
    }

    /// A progress bar of `len` steps (hidden when not on a terminal).
    pub fn bar(&self, len: u64, what: &str) -> ProgressBar {
        if !self.opts.progress {
            return ProgressBar::hidden();
        }
        progress::bar(len, what)
    }

    fn compute(&mut self, id: NodeId) -> Result<Artifact> {
        let runner = runner_of(self.opts.runners, &self.program.nodes[id])?;
        (runner.run)(self, id)
    }
}
