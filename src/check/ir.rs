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
}

/// A line plot: points grouped into series by their row label.
#[derive(Debug)]
pub struct Plot {
    /// Its title.
    pub title: String,
    /// Its points in file order.
    pub points: Vec<Point>,
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
