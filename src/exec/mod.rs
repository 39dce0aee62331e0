//! Execute: the planned DAG -> artifacts, in topological order, through the cache.
//!
//! For each computing node: a verified cache entry is loaded ("cached"); otherwise its
//! inputs are made available and it is computed and stored at once ("computed"), so a run
//! that fails or is killed later keeps every node it finished. Data nodes are not cached:
//! reading IDX files is cheap, and they are read only when some node has to compute.

mod artifacts;

use crate::cache::{Cache, Lookup, Manifest};
use crate::check::ir::{NodeId, Program};
use crate::data::{mnist, Dataset, MnistParams};
use crate::error::{Error, Result};
use crate::eval::Metrics;
use crate::plan::{self, Plan};
use artifacts::Artifact;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Where a run reads and writes.
pub struct RunOptions<'a> {
    /// The folder with the MNIST files (fetched there when absent).
    pub data_dir: PathBuf,
    /// The artifact cache.
    pub cache: &'a Cache,
    /// Draw progress bars (on a terminal).
    pub progress: bool,
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
    /// A data node read from disk because some node needed it.
    Loaded,
    /// A data node nobody needed this time.
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
}

/// The result of a run.
pub struct Outcome {
    /// Per node, indexed by node id.
    pub records: Vec<NodeRecord>,
    /// The metrics of every evaluation node.
    pub metrics: BTreeMap<NodeId, Metrics>,
}

struct Executor<'a> {
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
    let needs_mnist = program.nodes.iter().any(|n| n.kind.name == "mnist");
    if needs_mnist {
        mnist::ensure(&opts.data_dir, &mut |m| {
            let _ = writeln!(log, "{m}");
        })?;
    }
    let mut digests: HashMap<String, String> = HashMap::new();
    let keys = plan::keys(program, plan, &mut |id| {
        let node = &program.nodes[id];
        if node.kind.name != "mnist" {
            return Ok(None);
        }
        let split = node.params["split"].as_str().unwrap_or("train").to_string();
        if !digests.contains_key(&split) {
            digests.insert(split.clone(), mnist::digest(&opts.data_dir, &split)?);
        }
        Ok(digests.get(&split).cloned())
    })?;
    let records = program
        .nodes
        .iter()
        .zip(&keys)
        .map(|(n, k)| NodeRecord {
            name: n.name.clone(),
            kind: n.kind.name,
            key: k.clone(),
            status: Status::NotNeeded,
            seconds: 0.0,
        })
        .collect();
    let mut exec = Executor {
        program,
        opts,
        dev: crate::nn::Dev::default(),
        keys,
        artifacts: HashMap::new(),
        records,
        log,
    };
    for &id in &plan.order {
        if program.nodes[id].kind.name != "mnist" {
            exec.node(id)?;
        }
    }
    let metrics = exec
        .artifacts
        .iter()
        .filter_map(|(id, a)| a.metrics().map(|m| (*id, m.clone())))
        .collect();
    Ok(Outcome {
        records: exec.records,
        metrics,
    })
}

impl Executor<'_> {
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
            "  {:<10} {:<8} {:<20} {}{time}{extra}",
            r.status.word(),
            r.kind,
            r.name,
            &r.key[..12]
        );
    }

    fn node(&mut self, id: NodeId) -> Result<()> {
        let node = &self.program.nodes[id];
        let key = self.keys[id].clone();
        let started = Instant::now();
        let mut status = Status::Computed;
        match self.opts.cache.lookup(&key) {
            Lookup::Hit(_, files) => match Artifact::decode(node.kind.name, &self.dev, &files) {
                Ok(artifact) => {
                    self.artifacts.insert(id, artifact);
                    self.records[id].status = Status::Cached;
                    self.records[id].seconds = started.elapsed().as_secs_f64();
                    self.say(id);
                    return Ok(());
                }
                Err(e) => status = Status::Recomputed(format!("unreadable artifact: {e}")),
            },
            Lookup::Corrupt(why) => status = Status::Recomputed(why),
            Lookup::Miss => {}
        }
        let _ = writeln!(
            self.log,
            "  {:<10} {:<8} {:<20} {}",
            "running",
            node.kind.name,
            node.name,
            &key[..12]
        );
        let artifact = self
            .compute(id)
            .map_err(|e| Error::msg(format!("node `{}` ({}) failed: {e}", node.name, node.kind.name)))?;
        let seconds = started.elapsed().as_secs_f64();
        let inputs: serde_json::Map<String, serde_json::Value> = node
            .inputs
            .iter()
            .map(|(r, i)| (r.to_string(), self.keys[*i].clone().into()))
            .collect();
        let recipe = serde_json::json!({"kind": node.kind.name, "version": node.kind.version, "params": node.params, "inputs": inputs, "seed": self.program.seed});
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
        self.artifacts.insert(id, artifact);
        self.records[id].status = status;
        self.records[id].seconds = seconds;
        self.say(id);
        Ok(())
    }

    fn dataset(&mut self, id: NodeId) -> Result<Arc<Dataset>> {
        if let Some(Artifact::Data(d)) = self.artifacts.get(&id) {
            return Ok(d.clone());
        }
        let started = Instant::now();
        let params: MnistParams = serde_json::from_value(self.program.nodes[id].params.clone()).map_err(|e| Error::msg(e.to_string()))?;
        let data = Arc::new(mnist::load(&self.opts.data_dir, &params)?);
        self.artifacts.insert(id, Artifact::Data(data.clone()));
        self.records[id].status = Status::Loaded;
        self.records[id].seconds = started.elapsed().as_secs_f64();
        self.say(id);
        Ok(data)
    }

    fn input(&self, id: NodeId, role: &str) -> NodeId {
        self.program.nodes[id]
            .inputs
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, i)| *i)
            .expect("checked inputs")
    }

    fn bar(&self, len: u64, what: &str) -> ProgressBar {
        if !self.opts.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template("  {prefix:>10} [{bar:30}] {pos}/{len} {msg} ({eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(what.to_string());
        bar
    }

    fn compute(&mut self, id: NodeId) -> Result<Artifact> {
        let node = &self.program.nodes[id];
        match node.kind.name {
            "fit" => {
                let data = self.dataset(self.input(id, "data"))?;
                let valid = match node.inputs.iter().find(|(role, _)| *role == "valid") {
                    Some((_, v)) => Some(self.dataset(*v)?),
                    None => None,
                };
                let net = serde_json::from_value(node.params["net"].clone()).map_err(|e| Error::msg(e.to_string()))?;
                let params: crate::nn::train::FitParams =
                    serde_json::from_value(node.params.clone()).map_err(|e| Error::msg(e.to_string()))?;
                let bar = self.bar(params.epochs as u64, "epochs");
                let (model, summary) = crate::nn::train::fit(&net, &data, valid.as_deref(), &params, &mut |epoch, step, steps, loss| {
                    if step == steps {
                        bar.set_position(epoch as u64);
                    }
                    bar.set_message(format!("epoch {epoch} step {step}/{steps} loss {loss:.4}"));
                })?;
                bar.finish_and_clear();
                Ok(Artifact::Model {
                    model: Arc::new(model),
                    params,
                    summary,
                })
            }
            "evaluate" => {
                let model = match self.artifacts.get(&self.input(id, "model")) {
                    Some(Artifact::Model { model, .. }) => model.clone(),
                    _ => unreachable!("models run before their evaluations"),
                };
                let data = self.dataset(self.input(id, "data"))?;
                let attack = match node.params.get("attack") {
                    Some(json) if !json.is_null() => Some(crate::attacks::Crafter::from_json(json).map_err(Error::msg)?),
                    _ => None,
                };
                let batch = node.params["batch"].as_u64().unwrap_or(500) as usize;
                let bar = self.bar(data.len() as u64, "examples");
                let metrics = crate::eval::evaluate(
                    &self.dev,
                    model.as_ref(),
                    &data,
                    attack.as_ref(),
                    node.params["seed"].as_u64().unwrap_or(self.program.seed),
                    batch,
                    &mut |done, _| bar.set_position(done as u64),
                );
                bar.finish_and_clear();
                Ok(Artifact::Metrics(metrics))
            }
            other => unreachable!("no executor for {other}"),
        }
    }
}
