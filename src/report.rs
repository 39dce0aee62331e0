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

/// One plot with its measured points, grouped into series.
#[derive(Clone, Debug, Serialize)]
pub struct PlotResult {
    /// Title.
    pub title: String,
    /// Series name -> (x, y) points in file order.
    pub series: BTreeMap<String, Vec<(f64, f64)>>,
    /// The metrics plotted (for the y axis label).
    pub metrics: Vec<String>,
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
            }
        })
        .collect()
}

/// A plot as an SVG line chart: one line per series, points marked, a legend. Rates are
/// drawn in percent.
pub fn plot_svg(plot: &PlotResult) -> Result<String> {
    use plotters::prelude::*;
    let percent = plot.metrics.iter().all(|m| !is_count(m));
    let scale = if percent { 100.0 } else { 1.0 };
    let all: Vec<(f64, f64)> = plot.series.values().flatten().map(|(x, y)| (*x, y * scale)).collect();
    let (x_lo, x_hi) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (x, _)| (lo.min(*x), hi.max(*x)));
    let y_hi = all.iter().fold(0.0f64, |hi, (_, y)| hi.max(*y));
    let pad = if x_hi > x_lo { (x_hi - x_lo) * 0.05 } else { 0.5 };
    let y_top = if percent { 100.0f64.max(y_hi) } else { y_hi * 1.1 + 1e-9 };
    let draw_error = |e: &dyn std::fmt::Display| Error::msg(format!("drawing plot \"{}\": {e}", plot.title));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_error(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&plot.title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d((x_lo - pad)..(x_hi + pad), 0.0..y_top)
            .map_err(|e| draw_error(&e))?;
        let y_desc = format!("{}{}", plot.metrics.join(", "), if percent { " (%)" } else { "" });
        chart.configure_mesh().y_desc(y_desc).draw().map_err(|e| draw_error(&e))?;
        for (i, (name, points)) in plot.series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let points: Vec<(f64, f64)> = points.iter().map(|(x, y)| (*x, y * scale)).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(|e| draw_error(&e))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled())))
                .map_err(|e| draw_error(&e))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|e| draw_error(&e))?;
        root.present().map_err(|e| draw_error(&e))?;
    }
    Ok(svg)
}

/// An example grid as SVG: per example, the clean image, the perturbation (grey is zero,
/// scaled to the largest change in the set) and the adversarial image, each with the
/// model's prediction and confidence; images are embedded PNGs drawn pixelated.
pub fn examples_svg(title: &str, set: &crate::eval::ExampleSet) -> Result<String> {
    use base64::Engine;
    const SIDE: usize = 112;
    const CELL: usize = SIDE + 48;
    let largest = set
        .rows
        .iter()
        .flat_map(|r| r.clean.iter().zip(&r.adversarial).map(|(c, a)| (a - c).abs()))
        .fold(1e-12f32, f32::max);
    let png = |pixels: &[f32]| -> Result<String> {
        let (channels, height, width) = match set.shape.as_slice() {
            [c, h, w] => (*c, *h, *w),
            [n] => (1, 1, *n),
            other => (1, 1, other.iter().product()),
        };
        let color = if channels == 3 {
            png::ColorType::Rgb
        } else {
            png::ColorType::Grayscale
        };
        let plane = height * width;
        let mut bytes = Vec::with_capacity(plane * if channels == 3 { 3 } else { 1 });
        for p in 0..plane {
            if channels == 3 {
                bytes.extend((0..3).map(|c| (pixels[c * plane + p].clamp(0.0, 1.0) * 255.0).round() as u8));
            } else {
                bytes.push((pixels[p].clamp(0.0, 1.0) * 255.0).round() as u8);
            }
        }
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, width as u32, height as u32);
        encoder.set_color(color);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| Error::msg(format!("encoding an example image: {e}")))?;
        writer
            .write_image_data(&bytes)
            .map_err(|e| Error::msg(format!("encoding an example image: {e}")))?;
        drop(writer);
        Ok(base64::engine::general_purpose::STANDARD.encode(out))
    };
    let escape = |t: &str| t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let width = 3 * CELL + 20;
    let height = 56 + set.rows.len() * (CELL + 10);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"22\" font-size=\"16\">{}</text>\n",
        escape(title)
    );
    for (c, head) in ["clean", "perturbation", "adversarial"].iter().enumerate() {
        svg.push_str(&format!("<text x=\"{}\" y=\"46\">{head}</text>\n", 10 + c * CELL));
    }
    for (i, row) in set.rows.iter().enumerate() {
        let y = 56 + i * (CELL + 10);
        let perturbation: Vec<f32> = row
            .clean
            .iter()
            .zip(&row.adversarial)
            .map(|(c, a)| 0.5 + 0.5 * (a - c) / largest)
            .collect();
        let cells = [
            (
                png(&row.clean)?,
                format!(
                    "label {}, says {} ({:.0}%)",
                    row.label,
                    row.clean_prediction.0,
                    row.clean_prediction.1 * 100.0
                ),
            ),
            (png(&perturbation)?, format!("max |d| = {largest:.3}")),
            (
                png(&row.adversarial)?,
                format!(
                    "says {} ({:.0}%)",
                    row.adversarial_prediction.0,
                    row.adversarial_prediction.1 * 100.0
                ),
            ),
        ];
        for (c, (data, caption)) in cells.iter().enumerate() {
            let x = 10 + c * CELL;
            svg.push_str(&format!(
                "<image x=\"{x}\" y=\"{y}\" width=\"{SIDE}\" height=\"{SIDE}\" style=\"image-rendering:pixelated\" href=\"data:image/png;base64,{data}\"/>\n\
                 <text x=\"{x}\" y=\"{}\">{}</text>\n",
                y + SIDE + 16,
                escape(caption)
            ));
        }
    }
    svg.push_str("</svg>\n");
    Ok(svg)
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

/// Writes `table.md`, `results.json` (tables and plots), `manifest.json`, one `plot-N.svg`
/// per plot and one `examples-NAME.svg` per example grid into `dir`, each atomically;
/// returns the pictures written.
pub fn write(
    dir: &Path,
    pipeline: &Path,
    program: &Program,
    outcome: &Outcome,
    tables: &[TableResult],
    seconds: f64,
) -> Result<Vec<PathBuf>> {
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
    let plots = plots(program, outcome);
    write_atomic(
        &dir.join("results.json"),
        &pretty(&serde_json::json!({"tables": tables, "plots": plots}))?,
    )?;
    write_atomic(&dir.join("manifest.json"), &pretty(&manifest)?)?;
    let mut written = Vec::new();
    for (i, plot) in plots.iter().enumerate() {
        let path = dir.join(format!("plot-{}.svg", i + 1));
        write_atomic(&path, plot_svg(plot)?.as_bytes())?;
        written.push(path);
    }
    for (id, set) in &outcome.examples {
        let name = &program.nodes[*id].name;
        let file: String = name
            .chars()
            .map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .collect();
        let path = dir.join(format!("examples-{file}.svg"));
        write_atomic(&path, examples_svg(name, set)?.as_bytes())?;
        written.push(path);
    }
    Ok(written)
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
