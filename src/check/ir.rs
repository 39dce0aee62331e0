//! The checked program: what the planner turns into a DAG.
//!
//! Nets and attacks are values, folded into the parameters of the nodes that use them;
//! only things that compute (data, fit, evaluate) are nodes. Every node's `params` is the
//! canonical JSON its cache key hashes, defaults filled in.

use super::kinds::NodeKind;
use crate::diagnostics::Span;

/// Index of a node in [`Program::nodes`].
pub type NodeId = usize;

/// A checked pipeline.
#[derive(Debug)]
pub struct Program {
    /// The file's seed (`seed N`; 0 when absent).
    pub seed: u64,
    /// Computing nodes; every node's inputs come before it.
    pub nodes: Vec<Node>,
    /// Tables to report, in file order.
    pub tables: Vec<Table>,
    /// Plots to draw, in file order.
    pub plots: Vec<Plot>,
    /// Every `param` with the value this run took.
    pub params: Vec<super::expand::ParamChoice>,
    /// The profiles the file offers (`profile(quick: .., full: ..)`), in order.
    pub profiles: Vec<String>,
    /// The profile this run took: the one chosen, else the first offered.
    pub profile: Option<String>,
}

impl Program {
    /// The node a user names (on the command line), numeric indices in any spelling:
    /// `e[.1]`, `e[0.10]` and `e[1.0]` name `e[0.1]`, `e[0.1]` and `e[1]`.
    pub fn node_named(&self, name: &str) -> Option<NodeId> {
        let wanted = canonical_node_name(name);
        self.nodes.iter().position(|n| n.name == wanted)
    }
}

/// A node name as the checker writes it: numeric indices in their shortest form.
fn canonical_node_name(name: &str) -> String {
    let Some(open) = name.find('[') else { return name.to_string() };
    let mut out = name[..open].to_string();
    for index in name[open..].split_inclusive(']') {
        let inner = index.strip_prefix('[').and_then(|i| i.strip_suffix(']'));
        match inner.map(|i| i.trim().parse::<f64>()) {
            Some(Ok(value)) if value.is_finite() => out.push_str(&format!("[{value}]")),
            _ => out.push_str(index),
        }
    }
    out
}

/// One computation.
#[derive(Debug)]
pub struct Node {
    /// The declared name, or `kind@line:col` for a call written inline.
    pub name: String,
    /// What it computes.
    pub kind: &'static NodeKind,
    /// Canonical parameters (a JSON object), defaults filled in.
    pub params: serde_json::Value,
    /// Nodes it reads, by parameter name.
    pub inputs: Vec<(&'static str, NodeId)>,
    /// Where it is written.
    pub span: Span,
}

/// A results table.
#[derive(Debug)]
pub struct Table {
    /// Its title.
    pub title: String,
    /// Its rows.
    pub rows: Vec<Row>,
    /// The columns its rows' `column:` name, in first-use order; empty for a table of one
    /// value per row.
    pub columns: Vec<String>,
}

/// One row: a measured metric next to the paper's value.
#[derive(Debug)]
pub struct Row {
    /// The row's label.
    pub label: String,
    /// The evaluation nodes and metrics measured: one, or several that `mean(...)` averages.
    pub sources: Vec<(NodeId, String)>,
    /// The paper's number, if the row cites one.
    pub paper: Option<f64>,
    /// How far from `paper` the measurement may be and still count as reproduced.
    pub tol: Option<f64>,
    /// The column it fills, in a table whose rows name columns: rows with the same label
    /// share a line.
    pub column: Option<String>,
}

/// A line plot: points grouped into series by their row label.
#[derive(Debug)]
pub struct Plot {
    /// Its title.
    pub title: String,
    /// Its points in file order.
    pub points: Vec<Point>,
    /// The x axis's name: the variable its rows' `x:` names (`eps`), if they name one.
    pub x_label: Option<String>,
}

/// One point: `x` given in the file, `y` a measured metric.
#[derive(Debug)]
pub struct Point {
    /// The series (line) it belongs to.
    pub series: String,
    /// Its x coordinate.
    pub x: f64,
    /// The evaluation node measured.
    pub node: NodeId,
    /// Which of its metrics.
    pub field: String,
}

#[cfg(test)]
mod tests {
    #[test]
    fn node_names_on_the_command_line_take_any_spelling_of_a_number() {
        for (typed, meant) in [
            ("e[.1]", "e[0.1]"),
            ("e[0.10]", "e[0.1]"),
            ("e[1.0]", "e[1]"),
            ("at[train][true]", "at[train][true]"),
            ("s[1e-1][2]", "s[0.1][2]"),
            ("plain", "plain"),
            ("e[", "e["),
        ] {
            assert_eq!(super::canonical_node_name(typed), meant, "{typed}");
        }
    }
}
