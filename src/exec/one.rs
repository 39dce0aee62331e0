//! One node through the cache: what a job does (`advpipe node`, run by a local `--jobs`
//! worker or by a Slurm job). Its cached inputs must already be in the cache; the node is
//! loaded if it is there too (a re-run or a resubmitted job does no work twice), else computed
//! and stored exactly as a whole-program run would, so where a node ran never changes what
//! it produced.

use super::{Executor, NodeRecord, RunOptions, Status};
use crate::cache::Lookup;
use crate::check::ir::{NodeId, Program};
use crate::error::{Error, Result};
use crate::plan::Plan;
use std::io::Write;

/// Computes and stores node `id` of a planned program (or finds it cached), reading its
/// cached inputs from the cache. With `expected_key`, refuses to run when the node's key is
/// another one: the file, its data or advpipe changed after the job was submitted.
pub fn run_node(
    program: &Program,
    plan: &Plan,
    opts: &RunOptions,
    id: NodeId,
    expected_key: Option<&str>,
    log: &mut dyn Write,
) -> Result<NodeRecord> {
    let node = &program.nodes[id];
    if !node.kind.cached {
        return Err(Error::msg(format!(
            "node `{}` ({}) is not cached: it is made where it is needed, not on its own",
            node.name, node.kind.name
        )));
    }
    let mut exec = Executor::start(program, plan, opts, log)?;
    if let Some(expected) = expected_key {
        if exec.keys[id] != expected {
            return Err(Error::msg(format!(
                "node `{}` now has key {}, not the {} it was submitted with: the pipeline file, its data or advpipe changed since; run it again",
                node.name,
                &exec.keys[id][..12],
                &expected[..12.min(expected.len())]
            )));
        }
    }
    for input in cached_inputs(program, id) {
        exec.load_input(input, id)?;
    }
    exec.cached_node(id)?;
    Ok(exec.records[id].clone())
}

/// The cached nodes node `id` reads, directly or through uncached ones (data, ensembles):
/// what a job for `id` needs in the cache, and so the jobs it must wait for.
pub(super) fn cached_inputs(program: &Program, id: NodeId) -> Vec<NodeId> {
    let mut found = Vec::new();
    let mut stack: Vec<NodeId> = program.nodes[id].inputs.iter().map(|(_, i)| *i).collect();
    let mut seen = std::collections::HashSet::new();
    while let Some(n) = stack.pop() {
        if !seen.insert(n) {
            continue;
        }
        if program.nodes[n].kind.cached {
            found.push(n);
        } else {
            stack.extend(program.nodes[n].inputs.iter().map(|(_, i)| *i));
        }
    }
    found.sort_unstable();
    found
}

impl Executor<'_> {
    /// Loads cached input `id` of node `for_node`, which must be in the cache.
    fn load_input(&mut self, id: NodeId, for_node: NodeId) -> Result<()> {
        let node = &self.program.nodes[id];
        let key = &self.keys[id];
        let why = match self.opts.cache.lookup(key) {
            Lookup::Hit(_, files) => match super::Artifact::decode(node.kind, &self.dev, &files) {
                Ok(artifact) => {
                    self.artifacts.insert(id, artifact);
                    self.records[id].status = Status::Cached;
                    return Ok(());
                }
                Err(e) => format!("its cache entry is unreadable ({e})"),
            },
            Lookup::Corrupt(why) => format!("its cache entry is corrupt ({why})"),
            Lookup::Miss => "it is not in the cache".to_string(),
        };
        Err(Error::msg(format!(
            "input `{}` ({}, key {}) of node `{}`: {why}; the job that computes it must finish first",
            node.name,
            node.kind.name,
            &key[..12],
            self.program.nodes[for_node].name
        )))
    }
}
