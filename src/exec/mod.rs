//! Execute: the planned DAG -> artifacts, in topological order, through the cache.
//!
//! For each cached kind of node: a verified cache entry is loaded ("cached"); otherwise its
//! inputs are made available and it is computed and stored at once ("computed"), so a run
//! that fails or is killed later keeps every node it finished. Cheap kinds are not cached
//! (reading IDX files, sampling noise, grouping models into an ensemble): they are made
//! only when some node has to compute.

mod artifacts;

use crate::cache::{Cache, Lookup, Manifest};
use crate::check::ir::{NodeId, Program};
use crate::data::{mnist, Dataset, MnistParams};
use crate::error::{Error, Result};
use crate::eval::MetricMap;
use crate::files::{self, FileKind};
use crate::nn::train::FitEvent;
use crate::nn::{Classifier, Model};
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
    let keys = keys(program, plan, &opts.data_dir)?;
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
        if program.nodes[id].kind.cached {
            exec.cached_node(id)?;
        }
    }
    // What the report reads, moved out of the artifacts in one pass.
    let (mut metrics, mut examples, mut figures) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
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
            Artifact::Data(_) | Artifact::Model { .. } | Artifact::Ensemble(_) => {}
        }
    }
    Ok(Outcome {
        records: exec.records,
        metrics,
        examples,
        figures,
    })
}

/// What a run would do, node by node in execution order, without computing anything.
pub fn preview(program: &Program, plan: &Plan, opts: &RunOptions) -> Result<Vec<NodeRecord>> {
    let keys = keys(program, plan, &opts.data_dir)?;
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
/// (MNIST must be in `data_dir`; `run` fetches it first).
pub fn keys(program: &Program, plan: &Plan, data_dir: &std::path::Path) -> Result<Vec<String>> {
    let mut digests: HashMap<String, String> = HashMap::new();
    plan::keys(program, plan, &mut |id| {
        let node = &program.nodes[id];
        if node.kind.name == "mnist" {
            let split = node.params["split"].as_str().unwrap_or("train").to_string();
            if !digests.contains_key(&split) {
                digests.insert(split.clone(), mnist::digest(data_dir, &split)?);
            }
            return Ok(digests.get(&split).cloned());
        }
        source_digest(program, id, data_dir)
    })
}

/// The content digest of the files a node reads (MNIST's split, a loaded checkpoint), if any.
pub fn source_digest(program: &Program, id: NodeId, data_dir: &std::path::Path) -> Result<Option<String>> {
    let node = &program.nodes[id];
    match node.kind.name {
        "mnist" => mnist::digest(data_dir, node.params["split"].as_str().unwrap_or("train")).map(Some),
        "load" => {
            let path = PathBuf::from(node.params["path"].as_str().unwrap_or_default());
            let bytes = files::read(&path, FileKind::Checkpoint)
                .map_err(|e| Error::msg(format!("node `{}` (load): cannot read the checkpoint: {e}", node.name)))?;
            Ok(Some(blake3::hash(&bytes).to_hex().to_string()))
        }
        _ => Ok(None),
    }
}

/// A model input: one model, or an ensemble's members.
struct Models {
    members: Vec<Arc<Model>>,
    ensemble: bool,
}

impl Models {
    fn classifier(&self) -> Classifier<'_> {
        if self.ensemble {
            Classifier::Ensemble(&self.members)
        } else {
            Classifier::Single(&self.members[0])
        }
    }
}

fn params<T: serde::de::DeserializeOwned>(json: &serde_json::Value) -> Result<T> {
    serde_json::from_value(json.clone()).map_err(|e| Error::msg(format!("node parameters: {e}")))
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

    fn data(&mut self, id: NodeId) -> Result<Arc<Dataset>> {
        self.ensure(id)?;
        match &self.artifacts[&id] {
            Artifact::Data(d) => Ok(d.clone()),
            _ => unreachable!("checked: a dataset"),
        }
    }

    fn models(&mut self, id: NodeId) -> Result<Models> {
        self.ensure(id)?;
        match &self.artifacts[&id] {
            Artifact::Model { model, .. } => Ok(Models {
                members: vec![model.clone()],
                ensemble: false,
            }),
            // A loaded model is a one-member group that is not an ensemble.
            Artifact::Ensemble(members) => Ok(Models {
                members: members.clone(),
                ensemble: self.program.nodes[id].kind.name == "ensemble",
            }),
            _ => unreachable!("checked: a model"),
        }
    }

    fn inputs_of(&self, id: NodeId, role: &str) -> Vec<NodeId> {
        self.program.nodes[id]
            .inputs
            .iter()
            .filter(|(r, _)| *r == role)
            .map(|(_, i)| *i)
            .collect()
    }

    fn input(&self, id: NodeId, role: &str) -> NodeId {
        self.inputs_of(id, role)[0]
    }

    fn optional_input(&self, id: NodeId, role: &str) -> Option<NodeId> {
        self.inputs_of(id, role).first().copied()
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

    fn attack(json: &serde_json::Value, name: &str) -> Result<Option<crate::attacks::Crafter>> {
        match json.get(name) {
            Some(a) if !a.is_null() => Ok(Some(crate::attacks::Crafter::from_json(a).map_err(Error::msg)?)),
            _ => Ok(None),
        }
    }

    fn compute(&mut self, id: NodeId) -> Result<Artifact> {
        let node = &self.program.nodes[id];
        let p = &node.params;
        let seed = p.get("seed").and_then(|s| s.as_u64()).unwrap_or(self.program.seed);
        let batch = p.get("batch").and_then(|b| b.as_u64()).unwrap_or(500) as usize;
        match node.kind.name {
            "mnist" => {
                let params: MnistParams = params(p)?;
                Ok(Artifact::Data(Arc::new(mnist::load(&self.opts.data_dir, &params)?)))
            }
            "gaussian" => {
                let n = p["n"].as_u64().unwrap_or(1) as usize;
                let shape: Vec<usize> = params(&p["shape"])?;
                let classes = p["classes"].as_u64().unwrap_or(10) as usize;
                Ok(Artifact::Data(Arc::new(crate::data::gaussian(n, &shape, classes, seed)?)))
            }
            "load" => {
                let path = PathBuf::from(p["path"].as_str().unwrap_or_default());
                let bytes = files::read(&path, FileKind::Checkpoint)?;
                let net = params(&p["net"])?;
                let model =
                    Model::from_safetensors_for(&self.dev, &bytes, &net).map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
                Ok(Artifact::Ensemble(vec![Arc::new(model)]))
            }
            "ensemble" => {
                let mut members = Vec::new();
                for m in self.inputs_of(id, "models") {
                    members.extend(self.models(m)?.members);
                }
                Ok(Artifact::Ensemble(members))
            }
            "fit" => {
                let data = self.data(self.input(id, "data"))?;
                let valid = match self.optional_input(id, "valid") {
                    Some(v) => Some(self.data(v)?),
                    None => None,
                };
                let net = params(&p["net"])?;
                let params: crate::nn::train::FitParams = params(p)?;
                let bar = self.bar(params.epochs as u64, "epochs");
                let (name, tty, log) = (&node.name, self.opts.progress, &mut *self.log);
                let (model, summary) = crate::nn::train::fit(&net, &data, valid.as_deref(), &params, &mut |event| match event {
                    FitEvent::Step(epoch, step, steps, loss) => {
                        bar.set_message(format!("epoch {epoch} step {step}/{steps} loss {loss:.4}"))
                    }
                    FitEvent::Epoch(record) => {
                        let valid = record
                            .valid_error
                            .map_or(String::new(), |e| format!(", validation error {:.2}%", e * 100.0));
                        let line = format!("             {name}: epoch {} loss {:.4}{valid}", record.epoch, record.loss);
                        bar.set_position(record.epoch as u64);
                        if tty {
                            bar.println(line);
                        } else {
                            let _ = writeln!(log, "{line}");
                        }
                    }
                })?;
                bar.finish_and_clear();
                Ok(Artifact::Model {
                    model: Arc::new(model),
                    params,
                    summary,
                })
            }
            "craft" => {
                let models = self.models(self.input(id, "model"))?;
                let data = self.data(self.input(id, "data"))?;
                let attack = Self::attack(p, "attack")?.ok_or_else(|| Error::msg("craft needs an attack"))?;
                let bar = self.bar(data.len() as u64, "examples");
                let crafted = crate::eval::craft_set(&self.dev, models.classifier(), &data, &attack, seed, batch, &mut |done, _| {
                    bar.set_position(done as u64)
                });
                bar.finish_and_clear();
                Ok(Artifact::Data(Arc::new(crafted)))
            }
            "evaluate" => {
                let models = self.models(self.input(id, "model"))?;
                let data = self.data(self.input(id, "data"))?;
                let attack = Self::attack(p, "attack")?;
                let bar = self.bar(data.len() as u64, "examples");
                let metrics = crate::eval::evaluate(
                    &self.dev,
                    models.classifier(),
                    &data,
                    attack.as_ref(),
                    seed,
                    batch,
                    &mut |done, _| bar.set_position(done as u64),
                );
                bar.finish_and_clear();
                Ok(Artifact::Metrics(metrics.to_map()))
            }
            "agreement" => {
                let source = self.models(self.input(id, "source"))?;
                let other = self.models(self.input(id, "other"))?;
                let data = self.data(self.input(id, "data"))?;
                let over: crate::eval::Over = params(&p["over"])?;
                Ok(Artifact::Metrics(crate::eval::agreement(
                    &self.dev,
                    source.classifier(),
                    other.classifier(),
                    &data,
                    over,
                    batch,
                )))
            }
            "rubbish" => {
                let models = self.models(self.input(id, "model"))?;
                let data = self.data(self.input(id, "data"))?;
                let threshold = p["threshold"].as_f64().unwrap_or(0.5);
                Ok(Artifact::Metrics(crate::eval::rubbish(
                    &self.dev,
                    models.classifier(),
                    &data,
                    threshold,
                    batch,
                )))
            }
            "examples" => {
                let models = self.models(self.input(id, "model"))?;
                let data = self.data(self.input(id, "data"))?;
                let attack = Self::attack(p, "attack")?.ok_or_else(|| Error::msg("examples needs an attack"))?;
                let n = p["n"].as_u64().unwrap_or(8) as usize;
                Ok(Artifact::Examples(crate::eval::example_set(
                    &self.dev,
                    models.classifier(),
                    &data,
                    &attack,
                    seed,
                    n,
                )))
            }
            "weights" => {
                let n = p["n"].as_u64().unwrap_or(10) as usize;
                let mut panels = Vec::new();
                let mut shape = Vec::new();
                for m in self.inputs_of(id, "models") {
                    let models = self.models(m)?;
                    let name = &self.program.nodes[m].name;
                    shape = models.members[0].net.input.clone();
                    panels.push(crate::eval::weights::first_layer(name, &models.members[0], n));
                }
                Ok(Artifact::Figure(crate::eval::weights::WeightsFigure { shape, panels }))
            }
            "transfer" => {
                let mut all = Vec::new();
                for m in self.inputs_of(id, "models") {
                    all.push(self.models(m)?);
                }
                let data = self.data(self.input(id, "data"))?;
                let attack = Self::attack(p, "attack")?.ok_or_else(|| Error::msg("transfer needs an attack"))?;
                let classifiers: Vec<Classifier> = all.iter().map(Models::classifier).collect();
                Ok(Artifact::Metrics(crate::eval::transfer(
                    &self.dev,
                    &classifiers,
                    &data,
                    &attack,
                    seed,
                    batch,
                )))
            }
            other => unreachable!("no executor for {other}"),
        }
    }
}
