//! Plan: a checked program -> a petgraph DAG in execution order, with a cache key per node.
//!
//! A node's key is the BLAKE3 hash of its recipe: kind, the versions of every piece of
//! code it uses (kind, attacks, layers, optimizer; see [`crate::versions`]), canonical
//! parameters, the keys of its inputs, the file's seed and, for data nodes, a digest of
//! the files read. Anything that changes a result changes the recipe, so a re-run
//! recomputes exactly the nodes downstream of a change.

use crate::check::ir::{NodeId, Program};
use crate::error::{Error, Result};
use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;
use serde_json::json;

/// The DAG of a program.
pub struct Plan {
    /// Edges run from an input to the node that reads it, labelled with the parameter name.
    pub graph: DiGraph<NodeId, &'static str>,
    /// Nodes in an order where every input precedes its readers.
    pub order: Vec<NodeId>,
}

/// Builds the DAG. The checker already rejects circles; a cycle here is a bug.
pub fn plan(program: &Program) -> Plan {
    let mut graph = DiGraph::new();
    let index: Vec<NodeIndex> = (0..program.nodes.len()).map(|i| graph.add_node(i)).collect();
    for (id, node) in program.nodes.iter().enumerate() {
        for (role, input) in &node.inputs {
            graph.add_edge(index[*input], index[id], *role);
        }
    }
    let order = petgraph::algo::toposort(&graph, None)
        .expect("the checker rejects cycles")
        .into_iter()
        .map(|i| graph[i])
        .collect();
    Plan { graph, order }
}

/// Everything that determines a node's result; its canonical JSON is what the key hashes.
/// Fields are in alphabetical order and parameter maps are sorted, so the JSON is canonical.
#[derive(Debug, Serialize)]
pub struct Recipe<'a> {
    /// The version of every piece of code the node uses (its kind, attacks, layers,
    /// optimizer): see [`crate::versions`].
    pub code: crate::versions::CodeVersions<'a>,
    /// `(parameter, input key)` in parameter order; a list, so that several inputs under one
    /// parameter (`ensemble([a, b])`) all count.
    pub inputs: Vec<(&'a str, &'a str)>,
    /// The node kind.
    pub kind: &'a str,
    /// Its canonical parameters.
    pub params: &'a serde_json::Value,
    /// The file's seed.
    pub seed: u64,
    /// The digest of the files the node reads, if any.
    pub source: Option<&'a str>,
}

/// The recipe of one node, given its inputs' keys.
pub fn recipe<'a>(program: &'a Program, id: NodeId, input_keys: &'a [String], source_digest: Option<&'a str>) -> Recipe<'a> {
    let node = &program.nodes[id];
    Recipe {
        code: crate::versions::used_by(node),
        inputs: node
            .inputs
            .iter()
            .map(|(role, input)| (*role, input_keys[*input].as_str()))
            .collect(),
        kind: node.kind.name,
        params: &node.params,
        seed: program.seed,
        source: source_digest,
    }
}

/// Every node's key. `source_digest` gives the content digest of what a data node reads.
///
/// Keys are computed a depth at a time (a node's depth is one more than its deepest
/// input's), each depth's nodes in parallel: they depend only on the keys of shallower
/// nodes.
pub fn keys(program: &Program, plan: &Plan, source_digest: &mut dyn FnMut(NodeId) -> Result<Option<String>>) -> Result<Vec<String>> {
    let mut digests = vec![None; program.nodes.len()];
    let mut depth = vec![0usize; program.nodes.len()];
    let mut by_depth: Vec<Vec<NodeId>> = Vec::new();
    for &id in &plan.order {
        digests[id] = source_digest(id)?;
        depth[id] = program.nodes[id]
            .inputs
            .iter()
            .map(|(_, input)| depth[*input] + 1)
            .max()
            .unwrap_or(0);
        if by_depth.len() <= depth[id] {
            by_depth.resize_with(depth[id] + 1, Vec::new);
        }
        by_depth[depth[id]].push(id);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let mut keys = vec![String::new(); program.nodes.len()];
    for ids in &by_depth {
        let keys_so_far = &keys;
        let key_of = |ids: &[NodeId]| -> Result<Vec<String>> {
            let mut text = Vec::with_capacity(1024);
            ids.iter()
                .map(|&id| {
                    text.clear();
                    let recipe = recipe(program, id, keys_so_far, digests[id].as_deref());
                    serde_json::to_writer(&mut text, &recipe).map_err(|e| Error::msg(e.to_string()))?;
                    Ok(blake3::hash(&text).to_hex().to_string())
                })
                .collect()
        };
        // A thread per share of the nodes, when there are enough to be worth one.
        let share = ids.len().div_ceil(threads).max(MIN_NODES_PER_THREAD);
        let computed: Vec<String> = std::thread::scope(|scope| {
            let mut chunks = ids.chunks(share);
            let first = chunks.next().unwrap_or(&[]);
            // A chunk whose thread could not be started is keyed here, after the first.
            let rest: Vec<_> = chunks
                .map(|chunk| (chunk, std::thread::Builder::new().spawn_scoped(scope, move || key_of(chunk)).ok()))
                .collect();
            let mut all = key_of(first)?;
            for (chunk, handle) in rest {
                all.extend(match handle {
                    Some(handle) => handle.join().expect("computing a key does not panic")?,
                    None => key_of(chunk)?,
                });
            }
            Ok::<_, Error>(all)
        })?;
        for (&id, key) in ids.iter().zip(computed) {
            keys[id] = key;
        }
    }
    Ok(keys)
}

/// Fewer nodes than this at one depth are keyed on the calling thread alone.
const MIN_NODES_PER_THREAD: usize = 512;

/// The DAG in Graphviz DOT: one box per node (name and kind), edges labelled by parameter.
pub fn to_dot(program: &Program, plan: &Plan) -> String {
    let mut out = String::from("digraph pipeline {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n");
    for &id in &plan.order {
        let node = &program.nodes[id];
        let mut label = format!("{}\\n{}", node.name, node.kind.name);
        if let Some(attack) = node.params.get("attack").and_then(|a| a.get("attack")) {
            let eps = node.params["attack"].get("eps").map_or(String::new(), |e| format!(" eps={e}"));
            label.push_str(&format!("\\n{}{eps}", attack.as_str().unwrap_or("?")));
        }
        out.push_str(&format!("  n{id} [label=\"{}\"];\n", label.replace('"', "\\\"")));
    }
    for edge in plan.graph.edge_indices() {
        let (a, b) = plan.graph.edge_endpoints(edge).expect("edge exists");
        out.push_str(&format!(
            "  n{} -> n{} [label=\"{}\"];\n",
            plan.graph[a], plan.graph[b], plan.graph[edge]
        ));
    }
    out.push_str("}\n");
    out
}

/// The DAG as JSON: `nodes` (id, name, kind, category, cached, parameters) in execution
/// order, and `edges` (from, to, parameter name).
pub fn to_json(program: &Program, plan: &Plan) -> serde_json::Value {
    let nodes: Vec<serde_json::Value> = plan
        .order
        .iter()
        .map(|&id| {
            let n = &program.nodes[id];
            json!({"id": id, "name": n.name, "kind": n.kind.name, "category": n.kind.category.word(), "cached": n.kind.cached, "params": n.params})
        })
        .collect();
    let edges: Vec<serde_json::Value> = plan
        .graph
        .edge_indices()
        .map(|e| {
            let (a, b) = plan.graph.edge_endpoints(e).expect("edge exists");
            json!({"from": plan.graph[a], "to": plan.graph[b], "role": plan.graph[e]})
        })
        .collect();
    json!({"nodes": nodes, "edges": edges})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Source;

    fn keys_of(text: &str) -> Vec<(String, String)> {
        let program = crate::compile(&Source::new("t.adv", text)).unwrap();
        let plan = plan(&program);
        let keys = keys(&program, &plan, &mut |_| Ok(None)).unwrap();
        program.nodes.iter().map(|n| n.name.clone()).zip(keys).collect()
    }

    const BASE: &str = "data d = mnist(split: \"test\")\nnet n = input([1, 28, 28]) >> flatten >> linear(10)\n\
        model a = fit(n, d, seed: 1)\nmodel b = fit(n, d, seed: 2)\nmodel c = fit(n, d, seed: 3)\n";

    #[test]
    fn every_input_counts_even_several_under_one_parameter() {
        let ab = keys_of(&format!("{BASE}model e = ensemble([a, b])\neval x = evaluate(e, d)"));
        let ac = keys_of(&format!("{BASE}model e = ensemble([a, c])\neval x = evaluate(e, d)"));
        let key = |ks: &[(String, String)], name: &str| ks.iter().find(|(n, _)| n == name).unwrap().1.clone();
        assert_ne!(key(&ab, "x"), key(&ac, "x"));
        assert_eq!(key(&ab, "a"), key(&ac, "a"));
    }

    #[test]
    fn names_and_layout_do_not_change_keys_but_parameters_do() {
        let one = keys_of(&format!("{BASE}eval x = evaluate(a, d)"));
        let renamed = keys_of(&format!("{}eval y   =   evaluate(a, d)  # same", BASE));
        assert_eq!(one.last().unwrap().1, renamed.last().unwrap().1);
        let other = keys_of(&format!("{BASE}eval x = evaluate(a, d, batch: 100)"));
        assert_ne!(one.last().unwrap().1, other.last().unwrap().1);
    }
}
