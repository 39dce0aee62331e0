//! Report: metrics -> the pipeline's tables, on the terminal and as files.
//!
//! A run writes `table.md`, `results.json` and `manifest.json` (advpipe version, seed,
//! per-node status, wall time and cache key, machine) into its results folder. Rates are
//! shown as percentages; "diff" is measured minus paper in percentage points.

use crate::check::ir::Program;
use crate::error::{Error, Result};
use crate::exec::Outcome;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde::Serialize;
use std::path::Path;

/// One row with its measured value.
#[derive(Clone, Debug, Serialize)]
pub struct RowResult {
    /// The row's label.
    pub label: String,
    /// The evaluation node measured.
    pub node: String,
    /// Which metric.
    pub metric: String,
    /// What this run measured.
    pub measured: f64,
    /// What the paper reports, if cited.
    pub paper: Option<f64>,
    /// The tolerance the row allows around `paper`, if it gives one.
    pub tol: Option<f64>,
}

/// One table with its rows.
#[derive(Clone, Debug, Serialize)]
pub struct TableResult {
    /// Title.
    pub title: String,
    /// Rows.
    pub rows: Vec<RowResult>,
}

/// Fills the program's tables with the run's metrics.
pub fn tables(program: &Program, outcome: &Outcome) -> Vec<TableResult> {
    program
        .tables
        .iter()
        .map(|t| TableResult {
            title: t.title.clone(),
            rows: t
                .rows
                .iter()
                .map(|r| RowResult {
                    label: r.label.clone(),
                    node: program.nodes[r.node].name.clone(),
                    metric: r.field.clone(),
                    measured: outcome.metrics[&r.node][&r.field],
                    paper: r.paper,
                    tol: r.tol,
                })
                .collect(),
        })
        .collect()
}

fn is_count(metric: &str) -> bool {
    metric == "examples"
}

/// `99.9%`, `0.94%`; counts as plain integers.
pub fn format_value(metric: &str, v: f64) -> String {
    if is_count(metric) {
        format!("{v:.0}")
    } else if v.abs() >= 0.1 && (v >= 1.0 || format!("{:.1}", v * 100.0) != "100.0") {
        format!("{:.1}%", v * 100.0)
    } else {
        format!("{:.2}%", v * 100.0)
    }
}

impl RowResult {
    /// Whether the measurement is within `tol` of the paper: `None` when the row gives no
    /// tolerance.
    pub fn within(&self) -> Option<bool> {
        Some((self.measured - self.paper?).abs() <= self.tol? + 1e-12)
    }
}

fn cells(row: &RowResult) -> [String; 5] {
    let paper = row.paper.map_or("-".into(), |p| format_value(&row.metric, p));
    let diff = match row.paper {
        Some(p) if !is_count(&row.metric) => format!("{:+.1} pp", (row.measured - p) * 100.0),
        Some(p) => format!("{:+.0}", row.measured - p),
        None => "-".into(),
    };
    let verdict = match row.within() {
        Some(true) => format!("within {}", format_value(&row.metric, row.tol.unwrap_or_default())),
        Some(false) => format!("outside {}", format_value(&row.metric, row.tol.unwrap_or_default())),
        None => "-".into(),
    };
    [row.label.clone(), format_value(&row.metric, row.measured), paper, diff, verdict]
}

const HEADER: [&str; 5] = ["", "measured", "paper", "diff", "reproduced"];

/// The tables for a terminal.
pub fn terminal(tables: &[TableResult]) -> String {
    let mut out = String::new();
    for t in tables {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header(HEADER);
        for row in &t.rows {
            table.add_row(cells(row));
        }
        out.push_str(&format!("\n{}\n{table}\n", t.title));
    }
    out
}

/// The tables as GitHub-flavoured markdown.
pub fn markdown(tables: &[TableResult]) -> String {
    let mut out = String::new();
    for t in tables {
        out.push_str(&format!("## {}\n\n| {} |\n|---|---:|---:|---:|---|\n", t.title, HEADER.join(" | ")));
        for row in &t.rows {
            out.push_str(&format!("| {} |\n", cells(row).join(" | ")));
        }
        out.push('\n');
    }
    out
}

#[derive(Serialize)]
struct NodeEntry<'a> {
    name: &'a str,
    kind: &'a str,
    key: &'a str,
    status: &'a str,
    seconds: f64,
    params: &'a serde_json::Value,
}

/// Writes `table.md`, `results.json` and `manifest.json` into `dir`, each atomically.
pub fn write(dir: &Path, pipeline: &Path, program: &Program, outcome: &Outcome, tables: &[TableResult], seconds: f64) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let nodes: Vec<NodeEntry> = outcome
        .records
        .iter()
        .zip(&program.nodes)
        .map(|(r, node)| NodeEntry {
            name: &r.name,
            kind: r.kind,
            key: &r.key,
            status: r.status.word(),
            seconds: r.seconds,
            params: &node.params,
        })
        .collect();
    let manifest = serde_json::json!({
        "advpipe_version": env!("CARGO_PKG_VERSION"),
        "pipeline": pipeline.display().to_string(),
        "seed": program.seed,
        "wall_seconds": seconds,
        "finished_unix": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "nodes": nodes,
        "machine": {
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
            "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        },
    });
    write_atomic(&dir.join("table.md"), markdown(tables).as_bytes())?;
    write_atomic(&dir.join("results.json"), &pretty(&tables)?)?;
    write_atomic(&dir.join("manifest.json"), &pretty(&manifest)?)?;
    Ok(())
}

fn pretty<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| Error::msg(e.to_string()))
}

/// Writes a file through a temporary sibling and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rates_and_differences() {
        assert_eq!(format_value("error", 0.999), "99.9%");
        assert_eq!(format_value("error", 0.0094), "0.94%");
        assert_eq!(format_value("examples", 10000.0), "10000");
        assert_eq!(format_value("error", 0.9997), "99.97%", "never round up to a perfect score");
        assert_eq!(format_value("error", 1.0), "100.0%");
        let row = RowResult {
            label: "x".into(),
            node: "n".into(),
            metric: "error".into(),
            measured: 0.95,
            paper: Some(0.999),
            tol: Some(0.05),
        };
        assert_eq!(cells(&row)[3], "-4.9 pp");
        assert_eq!(cells(&row)[4], "within 5.00%");
        assert_eq!(
            RowResult {
                tol: Some(0.01),
                ..row.clone()
            }
            .within(),
            Some(false)
        );
        assert_eq!(RowResult { tol: None, ..row }.within(), None);
    }
}
