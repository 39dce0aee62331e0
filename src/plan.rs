//! Plan: a checked program -> a petgraph DAG in execution order, with a cache key per node.
//!
//! A node's key is the BLAKE3 hash of its recipe: kind, kind version, canonical
//! parameters, the keys of its inputs, the file's seed and, for data nodes, a digest of
//! the files read. Anything that changes a result changes the recipe, so a re-run
//! recomputes exactly the nodes downstream of a change.

use crate::check::ir::{NodeId, Program};
use crate::error::{Error, Result};
use petgraph::graph::{DiGraph, NodeIndex};
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

/// The JSON every key hashes, for one node; `explain`-style output can print it.
pub fn recipe(program: &Program, id: NodeId, input_keys: &[String], source_digest: Option<&str>) -> serde_json::Value {
    let node = &program.nodes[id];
    let inputs: serde_json::Map<String, serde_json::Value> = node
        .inputs
        .iter()
        .map(|(role, input)| (role.to_string(), input_keys[*input].clone().into()))
        .collect();
    json!({
        "kind": node.kind.name,
        "version": node.kind.version,
        "params": node.params,
        "inputs": inputs,
        "seed": program.seed,
        "source": source_digest,
    })
}

/// Every node's key. `source_digest` gives the content digest of what a data node reads.
pub fn keys(program: &Program, plan: &Plan, source_digest: &mut dyn FnMut(NodeId) -> Result<Option<String>>) -> Result<Vec<String>> {
    let mut keys = vec![String::new(); program.nodes.len()];
    for &id in &plan.order {
        let digest = source_digest(id)?;
        let recipe = recipe(program, id, &keys, digest.as_deref());
        // serde_json's maps are sorted, so this text is canonical.
        let text = serde_json::to_string(&recipe).map_err(|e| Error::msg(e.to_string()))?;
        keys[id] = blake3::hash(text.as_bytes()).to_hex().to_string();
    }
    Ok(keys)
}

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
