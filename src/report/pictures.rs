//! Pictures for the report: line plots (plotters), example grids and first-layer weight
//! figures (SVG with embedded PNGs, drawn pixelated so a pixel stays a pixel).

use super::PlotResult;
use crate::error::{Error, Result};

/// A plot as an SVG line chart: one line per series, points marked, a legend. Rates are
/// drawn in percent.
pub fn plot_svg(plot: &PlotResult) -> Result<String> {
    use plotters::prelude::*;
    let percent = plot.metrics.iter().all(|m| super::is_rate(m));
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
        chart
            .configure_mesh()
            .x_desc(plot.x_label.as_deref().unwrap_or(""))
            .y_desc(y_desc)
            .draw()
            .map_err(|e| draw_error(&e))?;
        for (i, (name, points)) in plot.series.iter().enumerate() {
            let color = SERIES_COLOURS[i % SERIES_COLOURS.len()];
            let points: Vec<(f64, f64)> = points.iter().map(|(x, y)| (*x, y * scale)).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(|e| draw_error(&e))?;
            // A marker shape per series as well as a colour, so lines on top of each other
            // and readers who do not tell the colours apart still see every series.
            // Legend entries are drawn relative to their anchor.
            let line = move |(x, y): (i32, i32)| EmptyElement::at((x, y)) + PathElement::new(vec![(0, 0), (18, 0)], color.stroke_width(2));
            let fill = color.filled();
            let drawn = match i % 4 {
                0 => chart
                    .draw_series(points.iter().map(|p| Circle::new(*p, 4, fill)))
                    .map(|s| s.legend(move |(x, y)| line((x, y)) + Circle::new((9, 0), 4, fill))),
                1 => chart
                    .draw_series(points.iter().map(|p| TriangleMarker::new(*p, 5, fill)))
                    .map(|s| s.legend(move |(x, y)| line((x, y)) + TriangleMarker::new((9, 0), 5, fill))),
                2 => chart
                    .draw_series(
                        points
                            .iter()
                            .map(|p| EmptyElement::at(*p) + Rectangle::new([(-4, -4), (4, 4)], fill)),
                    )
                    .map(|s| s.legend(move |(x, y)| line((x, y)) + Rectangle::new([(5, -4), (13, 4)], fill))),
                _ => chart
                    .draw_series(points.iter().map(|p| Cross::new(*p, 4, color.stroke_width(2))))
                    .map(|s| s.legend(move |(x, y)| line((x, y)) + Cross::new((9, 0), 4, color.stroke_width(2)))),
            };
            drawn.map_err(|e| draw_error(&e))?.label(name.as_str());
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

/// Okabe and Ito's colour-blind-safe palette (blue, orange, bluish green, vermillion,
/// reddish purple, sky blue, yellow, black), in the order series take them.
const SERIES_COLOURS: [plotters::style::RGBColor; 8] = [
    plotters::style::RGBColor(0, 114, 178),
    plotters::style::RGBColor(230, 159, 0),
    plotters::style::RGBColor(0, 158, 115),
    plotters::style::RGBColor(213, 94, 0),
    plotters::style::RGBColor(204, 121, 167),
    plotters::style::RGBColor(86, 180, 233),
    plotters::style::RGBColor(240, 228, 66),
    plotters::style::RGBColor(0, 0, 0),
];

/// An example grid as SVG: per example, the clean image, the perturbation (grey is zero,
/// scaled to the largest change in the set) and the adversarial image, each with the
/// model's prediction and confidence; images are embedded PNGs drawn pixelated. Classes are
/// shown by `class_names` where the data names them; an adversarial example the model gets
/// wrong (and got right clean) is marked "fooled" in red.
pub fn examples_svg(title: &str, set: &crate::eval::ExampleSet, class_names: Option<&[String]>) -> Result<String> {
    let class = |c: usize| match class_names.and_then(|n| n.get(c)) {
        Some(name) => format!("{c} {name}"),
        None => c.to_string(),
    };
    const SIDE: usize = 112;
    // Wide enough for a caption line such as "says 0 T-shirt/top (58%)".
    const CELL: usize = SIDE + 88;
    let largest = set
        .rows
        .iter()
        .flat_map(|r| r.clean.iter().zip(&r.adversarial).map(|(c, a)| (a - c).abs()))
        .fold(1e-12f32, f32::max);
    let png = |pixels: &[f32]| png_base64(pixels, &set.shape);
    let width = 3 * CELL + 20;
    let height = 56 + set.rows.len() * (SIDE + 58);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"22\" font-size=\"16\">{}</text>\n",
        escape(title)
    );
    for (c, head) in ["clean", "perturbation", "adversarial"].iter().enumerate() {
        svg.push_str(&format!("<text x=\"{}\" y=\"46\">{head}</text>\n", 10 + c * CELL));
    }
    for (i, row) in set.rows.iter().enumerate() {
        let y = 56 + i * (SIDE + 58);
        let perturbation: Vec<f32> = row
            .clean
            .iter()
            .zip(&row.adversarial)
            .map(|(c, a)| 0.5 + 0.5 * (a - c) / largest)
            .collect();
        let fooled = row.clean_prediction.0 == row.label && row.adversarial_prediction.0 != row.label;
        let cells = [
            (
                png(&row.clean)?,
                format!(
                    "label {}\nsays {} ({:.0}%)",
                    class(row.label),
                    class(row.clean_prediction.0),
                    row.clean_prediction.1 * 100.0
                ),
                "black",
            ),
            (png(&perturbation)?, format!("max |d| = {largest:.3}"), "black"),
            (
                png(&row.adversarial)?,
                format!(
                    "{}says {} ({:.0}%)",
                    if fooled { "fooled: " } else { "" },
                    class(row.adversarial_prediction.0),
                    row.adversarial_prediction.1 * 100.0
                ),
                if fooled { "#c0392b" } else { "black" },
            ),
        ];
        for (c, (data, caption, colour)) in cells.iter().enumerate() {
            let x = 10 + c * CELL;
            svg.push_str(&format!(
                "<image x=\"{x}\" y=\"{y}\" width=\"{SIDE}\" height=\"{SIDE}\" style=\"image-rendering:pixelated\" href=\"data:image/png;base64,{data}\"/>\n\
                 <text x=\"{x}\" y=\"{}\" fill=\"{colour}\">{}</text>\n",
                y + SIDE + 16,
                caption
                    .lines()
                    .enumerate()
                    .map(|(l, line)| format!("<tspan x=\"{x}\" dy=\"{}\">{}</tspan>", if l == 0 { 0 } else { 15 }, escape(line)))
                    .collect::<String>()
            ));
        }
        if fooled {
            svg.push_str(&format!(
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#c0392b\" stroke-width=\"3\"/>\n",
                10 + 2 * CELL - 2,
                y - 2,
                SIDE + 4,
                SIDE + 4
            ));
        }
    }
    svg.push_str("</svg>\n");
    Ok(svg)
}

/// Text safe inside SVG or HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An image with pixels in [0, 1] (clamped), laid out `[channels, height, width]`, as a
/// base64 PNG: grey for one channel, RGB for three.
pub fn png_base64(pixels: &[f32], shape: &[usize]) -> Result<String> {
    use base64::Engine;
    let (channels, height, width) = match shape {
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
    let mut writer = encoder.write_header().map_err(|e| Error::msg(format!("encoding an image: {e}")))?;
    writer
        .write_image_data(&bytes)
        .map_err(|e| Error::msg(format!("encoding an image: {e}")))?;
    drop(writer);
    Ok(base64::engine::general_purpose::STANDARD.encode(out))
}

/// First-layer weights as SVG, the paper's figure 3: a panel per model, a row per unit, a
/// column per maxout piece. Each filter is scaled to its own largest |weight|: mid-grey is
/// zero, white positive, black negative.
pub fn weights_svg(title: &str, figure: &crate::eval::weights::WeightsFigure) -> Result<String> {
    const SIDE: usize = 56;
    const GAP: usize = 4;
    let pieces = figure.panels.iter().flat_map(|p| p.units.iter().map(Vec::len)).max().unwrap_or(1);
    let rows = figure.panels.iter().map(|p| p.units.len()).max().unwrap_or(0);
    let panel_width = pieces * (SIDE + GAP) + 24;
    let width = (figure.panels.len() * panel_width + 20).max(360);
    let height = 70 + rows * (SIDE + GAP);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"22\" font-size=\"16\">{}</text>\n",
        escape(title)
    );
    let shape: Vec<usize> = match figure.shape.as_slice() {
        // A colour filter would need three planes of one piece; show them as grey planes.
        [c, h, w] if *c != 1 && *c != 3 => vec![1, c * h, *w],
        other => other.to_vec(),
    };
    for (i, panel) in figure.panels.iter().enumerate() {
        let x0 = 10 + i * panel_width;
        svg.push_str(&format!("<text x=\"{x0}\" y=\"50\">{}</text>\n", escape(&panel.model)));
        for (u, unit) in panel.units.iter().enumerate() {
            for (p, filter) in unit.iter().enumerate() {
                let largest = filter.iter().fold(1e-12f32, |m, w| m.max(w.abs()));
                let grey: Vec<f32> = filter.iter().map(|w| 0.5 + 0.5 * w / largest).collect();
                svg.push_str(&format!(
                    "<image x=\"{}\" y=\"{}\" width=\"{SIDE}\" height=\"{SIDE}\" style=\"image-rendering:pixelated\" href=\"data:image/png;base64,{}\"/>\n",
                    x0 + p * (SIDE + GAP),
                    60 + u * (SIDE + GAP),
                    png_base64(&grey, &shape)?
                ));
            }
        }
    }
    svg.push_str("</svg>\n");
    Ok(svg)
}
