//! The HTML report (`index.html`): the tables with a verdict per row, every picture inlined
//! as a data URI (the page is one self-contained file), the params the run took and the
//! run manifest. The page is a minijinja template (`report.html`, auto-escaped) filled from
//! [`Page`]; its script marks `<body data-rendered="ok">` once every image has decoded
//! without errors, which the browser test reads.

use super::{cells, TableResult};
use crate::error::{Error, Result};
use serde::Serialize;

const TEMPLATE: &str = include_str!("report.html");

/// One picture of the page.
#[derive(Serialize)]
pub struct Picture {
    /// Its caption.
    pub title: String,
    /// The file it is also written to.
    pub file: String,
    /// The SVG as a `data:` URI.
    pub uri: String,
}

impl Picture {
    /// A picture from its SVG text.
    pub fn svg(title: &str, file: &str, svg: &str) -> Picture {
        use base64::Engine;
        Picture {
            title: title.to_string(),
            file: file.to_string(),
            uri: format!(
                "data:image/svg+xml;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(svg)
            ),
        }
    }
}

/// One node of the manifest, as the page lists it.
#[derive(Serialize)]
pub struct NodeLine {
    pub name: String,
    pub kind: String,
    pub status: String,
    pub seconds: String,
    pub key: String,
}

/// One dataset the run read from files, as the page lists it.
#[derive(Serialize)]
pub struct DataLine {
    /// The node's name.
    pub node: String,
    /// The dataset's own name (`name:`), or the node kind's.
    pub name: String,
    /// How it was called, e.g. `idx(split: "test")`.
    pub call: String,
    /// Its classes, named where the call names them.
    pub classes: String,
    /// `path (size, BLAKE3 prefix)` per file read.
    pub files: Vec<String>,
}

/// One attack the run used.
#[derive(Serialize)]
pub struct AttackLine {
    /// `fgsm(eps: 0.25, clip: [0.0, 1.0], ...)`, every parameter as the run took it.
    pub call: String,
    /// The nodes that used it.
    pub users: String,
}

/// One trained model, as the page's card shows it.
#[derive(Serialize)]
pub struct ModelCard {
    /// The node's name.
    pub name: String,
    /// Its layers, `input [1, 28, 28] → flatten → ...`.
    pub layers: String,
    /// Weights and biases.
    pub parameters: usize,
    /// Its training settings, `name: value`.
    pub recipe: Vec<String>,
    /// How training ended.
    pub stopped: String,
    /// Clean error on each dataset an evaluation scored it on.
    pub clean: Vec<String>,
    /// Training loss and validation error per epoch.
    pub curves: Vec<Picture>,
}

/// Everything the page shows.
#[derive(Serialize)]
pub struct Page<'a> {
    pub name: String,
    pub pipeline: String,
    pub version: &'static str,
    pub seed: u64,
    pub profile: Option<String>,
    pub profiles: Vec<String>,
    pub params: &'a [crate::check::expand::ParamChoice],
    pub wall: String,
    pub finished: String,
    pub machine: &'a serde_json::Value,
    pub nodes: Vec<NodeLine>,
    pub data: Vec<DataLine>,
    /// A card per trained model.
    pub models: Vec<ModelCard>,
    /// Every attack used, with its parameters.
    pub attacks: Vec<AttackLine>,
    /// The pipeline file, highlighted HTML.
    pub source: Option<String>,
    /// Files written for other tools (`export-NAME.safetensors`), with their sizes.
    pub exports: Vec<String>,
    pub plots: Vec<Picture>,
    pub examples: Vec<Picture>,
    pub figures: Vec<Picture>,
}

#[derive(Serialize)]
struct RowView {
    label: String,
    measured: String,
    spread: String,
    paper: String,
    diff: String,
    verdict: String,
    verdict_class: &'static str,
    samples: Vec<String>,
}

#[derive(Serialize)]
struct TableView {
    title: String,
    paper: bool,
    /// For a table whose rows name columns: the header and the lines (see `grid`).
    grid: Option<(Vec<String>, Vec<Vec<String>>)>,
    rows: Vec<RowView>,
}

/// The page for `tables` and `page`.
pub fn render(page: &Page, tables: &[TableResult]) -> Result<String> {
    let views: Vec<TableView> = tables
        .iter()
        .map(|t| TableView {
            title: t.title.clone(),
            paper: super::has_paper_values(t),
            grid: super::grid::grid(t).map(|g| (g.header, g.lines)),
            rows: t
                .rows
                .iter()
                .map(|r| {
                    let [label, measured, spread, paper, diff, verdict] = cells(r);
                    RowView {
                        label,
                        measured,
                        spread,
                        paper,
                        diff,
                        verdict,
                        verdict_class: match r.within() {
                            Some(true) => "within",
                            Some(false) => "outside",
                            None => "none",
                        },
                        samples: r.samples.iter().map(|v| super::format_value(&r.metric, *v)).collect(),
                    }
                })
                .collect(),
        })
        .collect();
    let rows = tables.iter().flat_map(|t| &t.rows);
    let summary = serde_json::json!({
        "compared": rows.clone().filter(|r| r.paper.is_some()).count(),
        "within": rows.clone().filter(|r| r.within() == Some(true)).count(),
        "outside": rows.filter(|r| r.within() == Some(false)).count(),
        "computed": page.nodes.iter().filter(|n| n.status == "computed" || n.status == "recomputed").count(),
        "nodes": page.nodes.len(),
    });
    let mut context = serde_json::to_value(page).map_err(|e| Error::msg(e.to_string()))?;
    context["tables"] = serde_json::to_value(&views).map_err(|e| Error::msg(e.to_string()))?;
    context["summary"] = summary;
    let mut env = minijinja::Environment::new();
    env.add_template("report.html", TEMPLATE)
        .map_err(|e| Error::msg(format!("the report template: {e}")))?;
    env.get_template("report.html")
        .and_then(|t| t.render(minijinja::value::Serde(&context)))
        .map_err(|e| Error::msg(format!("rendering the HTML report: {e}")))
}
