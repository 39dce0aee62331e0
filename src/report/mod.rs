//! Report: metrics -> the pipeline's tables, plots and example grids, on the terminal and
//! as files.
//!
//! A run writes `table.md`, `results.json` (tables and plot points), `manifest.json`
//! (advpipe version, seed, per-node status, wall time, cache key and parameters, machine),
//! `plot-N.svg` per plot and `examples-NAME.svg` per example grid into its results folder.
//! Rates are shown as percentages; "diff" is measured minus paper in percentage points.

use crate::check::ir::Program;
use crate::error::{Error, Result};
use crate::exec::Outcome;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod cards;
pub mod folder;
pub mod grid;
mod html;
pub mod pictures;
pub mod spread;

pub use pictures::{examples_svg, plot_svg, weights_svg};
pub use spread::Spread;

/// One row with its measured value.
#[derive(Clone, Debug, Serialize)]
pub struct RowResult {
    /// The row's label.
    pub label: String,
    /// The evaluation node measured (several, comma-separated, for a `mean`).
    pub node: String,
    /// Which metric.
    pub metric: String,
    /// What this run measured (the mean, for a `mean`).
    pub measured: f64,
    /// For a `mean`: the values averaged, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<f64>,
    /// What the paper reports, if cited.
    pub paper: Option<f64>,
    /// The tolerance the row allows around `paper`, if it gives one.
    pub tol: Option<f64>,
    /// How far the measurement can be trusted: the seeds' spread for a `mean`, a 95%
    /// binomial interval for one error rate (see [`spread`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spread: Option<Spread>,
    /// The column it fills, in a table whose rows name columns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
}

/// One table with its rows.
#[derive(Clone, Debug, Serialize)]
pub struct TableResult {
    /// Title.
    pub title: String,
    /// Rows.
    pub rows: Vec<RowResult>,
    /// The columns its rows name, in first-use order (drawn as a grid, see [`grid`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
}

/// One plot with its measured points, grouped into series.
#[derive(Clone, Debug, Serialize)]
pub struct PlotResult {
    /// Title.
    pub title: String,
    /// Series name -> (x, y) points in file order.
    pub series: BTreeMap<String, Vec<(f64, f64)>>,
    /// The metrics plotted (for the y axis label).
    pub metrics: Vec<String>,
    /// The x axis's name, when the rows' `x:` name a variable (`eps`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_label: Option<String>,
}

/// Fills the program's plots with the run's metrics.
pub fn plots(program: &Program, outcome: &Outcome) -> Vec<PlotResult> {
    program
        .plots
        .iter()
        .map(|p| {
            let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
            let mut metrics: Vec<String> = Vec::new();
            for point in &p.points {
                series
                    .entry(point.series.clone())
                    .or_default()
                    .push((point.x, outcome.metrics[&point.node][&point.field]));
                if !metrics.contains(&point.field) {
                    metrics.push(point.field.clone());
                }
            }
            PlotResult {
                title: p.title.clone(),
                series,
                metrics,
                x_label: p.x_label.clone(),
            }
        })
        .collect()
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
                .map(|r| {
                    let values: Vec<f64> = r.sources.iter().map(|(node, field)| outcome.metrics[node][field]).collect();
                    let names: Vec<&str> = r.sources.iter().map(|(node, _)| program.nodes[*node].name.as_str()).collect();
                    let measured = values.iter().sum::<f64>() / values.len() as f64;
                    let spread = match r.sources.as_slice() {
                        // Error rates, and the agreement and rubbish rates, are proportions of
                        // the node's `examples`.
                        [(node, field)] if field == "error" || field == "rate" => outcome.metrics[node]
                            .get("examples")
                            .and_then(|&n| Spread::binomial(measured, n as usize)),
                        [(node, field)] if field == "error_on_correct" => outcome.metrics[node]
                            .get("correct_before")
                            .and_then(|&n| Spread::binomial(measured, n as usize)),
                        [_] => None,
                        _ => Spread::of_seeds(&values),
                    };
                    RowResult {
                        label: r.label.clone(),
                        node: names.join(", "),
                        metric: r.sources[0].1.clone(),
                        measured,
                        samples: if values.len() > 1 { values } else { vec![] },
                        paper: r.paper,
                        tol: r.tol,
                        spread,
                        column: r.column.clone(),
                    }
                })
                .collect(),
            columns: t.columns.clone(),
        })
        .collect()
}

fn is_count(metric: &str) -> bool {
    metric == "examples" || metric == "correct_before"
}

/// Perturbation norms (`l2_median`, `linf_mean_fooled`, ...): distances, not rates.
fn is_norm(metric: &str) -> bool {
    metric.starts_with("l2_") || metric.starts_with("linf_")
}

/// Whether a metric is a proportion, shown in percent (and differences in points).
pub(crate) fn is_rate(metric: &str) -> bool {
    // A training loss (the model cards' curves) is a plain number too.
    !is_count(metric) && !is_norm(metric) && metric != "loss"
}

/// `99.9%`, `0.94%`; counts as plain integers, norms with three decimals.
pub fn format_value(metric: &str, v: f64) -> String {
    if is_count(metric) {
        format!("{v:.0}")
    } else if is_norm(metric) {
        format!("{v:.3}")
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

    /// Whether the paper's value lies inside the row's spread (the seeds' range or the 95%
    /// interval): `None` without a paper value or a spread.
    pub fn paper_inside_spread(&self) -> Option<bool> {
        Some(self.spread.as_ref()?.contains(self.paper?))
    }
}

/// The spread as a cell: `sd 0.12 pp, 1.53-1.88%` over seeds, `95%: 1.47-1.98%` for a rate.
fn spread_cell(row: &RowResult) -> String {
    let range = |lo: f64, hi: f64| {
        let (lo, hi) = (format_value(&row.metric, lo), format_value(&row.metric, hi));
        format!("{}-{hi}", lo.trim_end_matches('%'))
    };
    match row.spread {
        Some(Spread::Seeds { sd, min, max }) if is_rate(&row.metric) => format!("sd {:.2} pp, {}", sd * 100.0, range(min, max)),
        Some(Spread::Seeds { sd, min, max }) => format!("sd {}, {}", format_value(&row.metric, sd), range(min, max)),
        Some(Spread::Binomial { low, high, .. }) => format!("95%: {}", range(low, high)),
        None => "-".into(),
    }
}

fn cells(row: &RowResult) -> [String; 6] {
    let paper = row.paper.map_or("-".into(), |p| format_value(&row.metric, p));
    let diff = match row.paper {
        Some(p) if is_rate(&row.metric) => format!("{:+.1} pp", (row.measured - p) * 100.0),
        Some(p) if is_norm(&row.metric) => format!("{:+.3}", row.measured - p),
        Some(p) => format!("{:+.0}", row.measured - p),
        None => "-".into(),
    };
    let mut verdict = match row.within() {
        Some(true) => format!("within {}", format_value(&row.metric, row.tol.unwrap_or_default())),
        Some(false) => format!("outside {}", format_value(&row.metric, row.tol.unwrap_or_default())),
        None => "-".into(),
    };
    if let (Some(inside), Some(spread)) = (row.paper_inside_spread(), &row.spread) {
        let place = if inside { "in" } else { "outside" };
        let said = format!("paper {place} {}", spread.name());
        verdict = if verdict == "-" { said } else { format!("{verdict}; {said}") };
    }
    [
        row.label.clone(),
        format_value(&row.metric, row.measured),
        spread_cell(row),
        paper,
        diff,
        verdict,
    ]
}

const HEADER: [&str; 6] = ["", "measured", "spread", "paper", "diff", "reproduced"];

/// How many of [`HEADER`]'s columns a table shows: the paper's three only where some row
/// has a paper value.
fn shown_columns(t: &TableResult) -> usize {
    if has_paper_values(t) {
        6
    } else {
        3
    }
}

/// Whether any row of `t` has a paper value.
pub fn has_paper_values(t: &TableResult) -> bool {
    t.rows.iter().any(|r| r.paper.is_some())
}

/// What a table shows as text: a grid when its rows name columns, else a row per line
/// under [`HEADER`] (the paper's columns only where some row cites the paper).
fn shown(t: &TableResult) -> grid::Grid {
    grid::grid(t).unwrap_or_else(|| {
        let columns = shown_columns(t);
        grid::Grid {
            header: HEADER[..columns].iter().map(|h| h.to_string()).collect(),
            lines: t.rows.iter().map(|row| cells(row)[..columns].to_vec()).collect(),
            rule: ["---", "---:", "---:", "---:", "---:", "---"][..columns].to_vec(),
        }
    })
}

/// The tables for a terminal.
pub fn terminal(tables: &[TableResult]) -> String {
    let mut out = String::new();
    for t in tables {
        let shown = shown(t);
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header(shown.header);
        for line in shown.lines {
            table.add_row(line);
        }
        out.push_str(&format!("\n{}\n{table}\n", t.title));
    }
    out
}

/// The tables as GitHub-flavoured markdown.
pub fn markdown(tables: &[TableResult]) -> String {
    let mut out = String::new();
    for t in tables {
        let shown = shown(t);
        out.push_str(&format!(
            "## {}\n\n| {} |\n|{}|\n",
            t.title,
            shown.header.join(" | "),
            shown.rule.join("|")
        ));
        for line in shown.lines {
            out.push_str(&format!("| {} |\n", line.join(" | ")));
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
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    files: &'a [crate::exec::FileRead],
}

/// Writes the results folder `dir` as a whole (see [`folder`]): `table.md`, `tables.csv`,
/// `results.json` (tables and plots), `manifest.json`, `plot-N.svg` per plot,
/// `examples-NAME.svg` per example grid, `figure-NAME.svg` per figure and `index.html`
/// showing all of it. Returns the files written, the page last.
pub fn write(
    dir: &Path,
    pipeline: &Path,
    program: &Program,
    outcome: &Outcome,
    tables: &[TableResult],
    seconds: f64,
) -> Result<Vec<PathBuf>> {
    let staged = folder::Staged::begin(dir)?;
    let written = write_into(staged.path(), pipeline, program, outcome, tables, seconds)?;
    let written = written.iter().map(|f| staged.final_path(f)).collect();
    staged.swap_in()?;
    Ok(written)
}

fn write_into(
    dir: &Path,
    pipeline: &Path,
    program: &Program,
    outcome: &Outcome,
    tables: &[TableResult],
    seconds: f64,
) -> Result<Vec<PathBuf>> {
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
            files: &r.files,
        })
        .collect();
    let machine = serde_json::json!({
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "cpu": cpu_model(),
    });
    let finished = std::time::SystemTime::now();
    let manifest = serde_json::json!({
        "advpipe_version": env!("CARGO_PKG_VERSION"),
        "pipeline": pipeline.display().to_string(),
        "seed": program.seed,
        "profile": program.profile,
        "params": program.params,
        "wall_seconds": seconds,
        "finished_unix": finished.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "nodes": nodes,
        "machine": machine,
    });
    write_atomic(&dir.join("table.md"), markdown(tables).as_bytes())?;
    write_atomic(&dir.join("tables.csv"), &csv(tables)?)?;
    let plots = plots(program, outcome);
    write_atomic(
        &dir.join("results.json"),
        &pretty(&serde_json::json!({"tables": tables, "plots": plots, "profile": program.profile, "params": program.params}))?,
    )?;
    write_atomic(&dir.join("manifest.json"), &pretty(&manifest)?)?;
    let mut written = Vec::new();
    let mut write_picture = |file: String, title: &str, svg: String| -> Result<html::Picture> {
        let path = dir.join(&file);
        write_atomic(&path, svg.as_bytes())?;
        written.push(path);
        Ok(html::Picture::svg(title, &file, &svg))
    };
    let mut page = html::Page {
        name: pipeline.file_stem().unwrap_or_default().to_string_lossy().into_owned(),
        pipeline: pipeline.display().to_string(),
        version: env!("CARGO_PKG_VERSION"),
        seed: program.seed,
        profile: program.profile.clone(),
        profiles: program.profiles.clone(),
        params: &program.params,
        wall: format!("{seconds:.1} s"),
        finished: humantime::format_rfc3339_seconds(finished).to_string(),
        machine: &machine,
        nodes: outcome
            .records
            .iter()
            .map(|r| html::NodeLine {
                name: r.name.clone(),
                kind: r.kind.to_string(),
                status: r.status.word().to_string(),
                seconds: format!("{:.2}", r.seconds),
                key: r.key[..16.min(r.key.len())].to_string(),
            })
            .collect(),
        data: cards::data_lines(program, outcome),
        models: vec![],
        attacks: cards::attacks_used(program),
        source: cards::highlighted_source(pipeline),
        exports: vec![],
        plots: vec![],
        examples: vec![],
        figures: vec![],
    };
    for (i, plot) in plots.iter().enumerate() {
        page.plots
            .push(write_picture(format!("plot-{}.svg", i + 1), &plot.title, plot_svg(plot)?)?);
    }
    for (id, set) in &outcome.examples {
        let name = &program.nodes[*id].name;
        let title = cards::examples_title(program, *id);
        let names = cards::data_class_names(program, *id);
        page.examples.push(write_picture(
            format!("examples-{}.svg", file_safe(name)),
            &title,
            examples_svg(&title, set, names.as_deref())?,
        )?);
    }
    page.models = cards::model_cards(program, outcome, &mut |name, plot| {
        write_picture(format!("curve-{}.svg", file_safe(name)), &plot.title, plot_svg(plot)?)
    })?;
    for (id, figure) in &outcome.figures {
        let name = &program.nodes[*id].name;
        page.figures.push(write_picture(
            format!("figure-{}.svg", file_safe(name)),
            name,
            weights_svg(name, figure)?,
        )?);
    }
    for (id, files) in &outcome.exports {
        let name = file_safe(&program.nodes[*id].name);
        for (stored, bytes) in files {
            let file = match *stored {
                "model.torch.safetensors" => format!("export-{name}.torch.safetensors"),
                _ => format!("export-{name}.safetensors"),
            };
            write_atomic(&dir.join(&file), bytes)?;
            page.exports
                .push(format!("{file} ({})", crate::files::human_bytes(bytes.len() as u64)));
            written.push(dir.join(file));
        }
    }
    let index = dir.join("index.html");
    write_atomic(&index, html::render(&page, tables)?.as_bytes())?;
    written.push(index);
    Ok(written)
}

fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect()
}

/// The processor's model name (Linux's /proc/cpuinfo), for the manifest.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The tables as CSV: one line per row with its table, label, metric, measured, paper and
/// difference (fractions, not percentages) and whether it is within tolerance.
pub fn csv(tables: &[TableResult]) -> Result<Vec<u8>> {
    let mut out = ::csv::Writer::from_writer(Vec::new());
    let fail = |e: ::csv::Error| Error::msg(format!("writing tables.csv: {e}"));
    out.write_record([
        "table",
        "row",
        "node",
        "metric",
        "measured",
        "paper",
        "diff",
        "tol",
        "within",
        "spread",
        "low",
        "high",
        "paper_inside",
        "column",
    ])
    .map_err(fail)?;
    let number = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    for t in tables {
        for r in &t.rows {
            out.write_record([
                t.title.as_str(),
                &r.label,
                &r.node,
                &r.metric,
                &format!("{}", r.measured),
                &number(r.paper),
                &number(r.paper.map(|p| r.measured - p)),
                &number(r.tol),
                r.within().map_or("", |w| if w { "yes" } else { "no" }),
                match r.spread {
                    Some(Spread::Seeds { .. }) => "seeds",
                    Some(Spread::Binomial { .. }) => "binomial95",
                    None => "",
                },
                &number(r.spread.as_ref().map(|s| s.bounds().0)),
                &number(r.spread.as_ref().map(|s| s.bounds().1)),
                r.paper_inside_spread().map_or("", |w| if w { "yes" } else { "no" }),
                r.column.as_deref().unwrap_or(""),
            ])
            .map_err(fail)?;
        }
    }
    out.into_inner().map_err(|e| Error::msg(format!("writing tables.csv: {e}")))
}

fn pretty<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| Error::msg(e.to_string()))
}

/// Writes a file through a temporary sibling and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(|e| Error::io(path, e))?;
    // Results are for sharing: readable by everyone, like a file written the usual way.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(path, e))?;
    }
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
        assert_eq!(format_value("l2_median", 1.3784), "1.378");
        assert_eq!(format_value("linf_mean_fooled", 0.0785), "0.079");
        assert_eq!(format_value("error", 0.9997), "99.97%", "never round up to a perfect score");
        assert_eq!(format_value("error", 1.0), "100.0%");
        let row = RowResult {
            label: "x".into(),
            node: "n".into(),
            metric: "error".into(),
            measured: 0.95,
            samples: vec![],
            paper: Some(0.999),
            tol: Some(0.05),
            spread: None,
            column: None,
        };
        assert_eq!(cells(&row)[4], "-4.9 pp");
        assert_eq!(cells(&row)[5], "within 5.00%");
        let seeds = RowResult {
            samples: vec![0.94, 0.96],
            spread: Spread::of_seeds(&[0.94, 0.96]),
            ..row.clone()
        };
        assert_eq!(cells(&seeds)[2], "sd 1.41 pp, 94.0-96.0%");
        assert_eq!(cells(&seeds)[5], "within 5.00%; paper outside the seeds' range");
        let rate = RowResult {
            measured: 0.0094,
            paper: Some(0.0094),
            tol: None,
            spread: Spread::binomial(0.0094, 10_000),
            ..row.clone()
        };
        assert_eq!(cells(&rate)[2], "95%: 0.77-1.15%");
        assert_eq!(cells(&rate)[5], "paper in the 95% interval");
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
