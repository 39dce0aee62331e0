//! The report's descriptive sections, what a lab notebook keeps beside the numbers: the data
//! read (files and digests), a card per trained model (architecture, parameter count,
//! recipe, training curves, clean error), titles for example grids, and the pipeline's own
//! source, highlighted.

use super::html;
use super::PlotResult;
use crate::check::ir::{NodeId, Program};
use crate::exec::Outcome;
use crate::params::Category;
use std::collections::BTreeMap;
use std::path::Path;

/// The datasets the run read from files, for the page's Data section.
pub fn data_lines(program: &Program, outcome: &Outcome) -> Vec<html::DataLine> {
    program
        .nodes
        .iter()
        .zip(&outcome.records)
        .filter(|(node, r)| node.kind.category == crate::params::Category::Data && !r.files.is_empty())
        .map(|(node, r)| {
            let shown: Vec<String> = node
                .params
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, v)| !v.is_null() && !matches!(k.as_str(), "class_names" | "name"))
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let classes = match crate::data::source::class_names(&node.params) {
                Some(names) => names.join(", "),
                None => "numbered".into(),
            };
            html::DataLine {
                node: node.name.clone(),
                name: node.params["name"].as_str().unwrap_or(node.kind.name).to_string(),
                call: format!("{}({})", node.kind.name, shown.join(", ")),
                classes,
                files: r
                    .files
                    .iter()
                    .map(|f| format!("{} ({}, {}…)", f.path, crate::files::human_bytes(f.bytes), &f.blake3[..16]))
                    .collect(),
            }
        })
        .collect()
}

/// An example grid's title: its name, the model, the attack with its budget, and the data.
pub fn examples_title(program: &Program, id: NodeId) -> String {
    let node = &program.nodes[id];
    let input = |role: &str| {
        node.inputs
            .iter()
            .find(|(r, _)| *r == role)
            .map_or("?", |(_, i)| program.nodes[*i].name.as_str())
    };
    let attack = &node.params["attack"];
    let mut said = attack["attack"].as_str().unwrap_or("attack").to_string();
    for budget in ["eps", "norm", "steps"] {
        if let Some(v) = attack.get(budget).filter(|v| !v.is_null()) {
            said.push_str(&format!(" {budget} {}", v.as_str().map_or(v.to_string(), str::to_string)));
        }
    }
    format!("{}: {} under {said}, on {}", node.name, input("model"), input("data"))
}

/// The class names of the data an example grid (or crafting node) reads, found by following
/// `data` inputs back to the source that names its classes.
pub fn data_class_names(program: &Program, mut id: NodeId) -> Option<Vec<String>> {
    for _ in 0..program.nodes.len() {
        if let Some(names) = crate::data::source::class_names(&program.nodes[id].params) {
            return Some(names);
        }
        id = program.nodes[id].inputs.iter().find(|(role, _)| *role == "data")?.1;
    }
    None
}

/// A card per model the run trained, in file order; curves are drawn by `draw` (which also
/// writes them as `curve-NAME.svg`).
pub fn model_cards(
    program: &Program,
    outcome: &Outcome,
    draw: &mut dyn FnMut(&str, &PlotResult) -> crate::Result<html::Picture>,
) -> crate::Result<Vec<html::ModelCard>> {
    let mut cards = Vec::new();
    for (id, summary) in &outcome.fits {
        let node = &program.nodes[*id];
        let net: Option<crate::nn::NetSpec> = serde_json::from_value(node.params["net"].clone()).ok();
        let mut curves = Vec::new();
        let epochs = summary.history.iter().chain(&summary.refit_history);
        let loss: Vec<(f64, f64)> = epochs.clone().enumerate().map(|(i, e)| ((i + 1) as f64, e.loss)).collect();
        let valid: Vec<(f64, f64)> = epochs
            .enumerate()
            .filter_map(|(i, e)| Some(((i + 1) as f64, e.valid_error?)))
            .collect();
        for (metric, series, points) in [("loss", "training loss", loss), ("error", "validation error", valid)] {
            if points.len() > 1 {
                let plot = PlotResult {
                    title: format!("{}: {series} per epoch", node.name),
                    series: BTreeMap::from([(series.to_string(), points)]),
                    metrics: vec![metric.to_string()],
                    x_label: Some("epoch".into()),
                };
                curves.push(draw(&format!("{}-{metric}", node.name), &plot)?);
            }
        }
        cards.push(html::ModelCard {
            name: node.name.clone(),
            layers: net.as_ref().map_or_else(String::new, describe_net),
            parameters: net.as_ref().map_or(0, parameter_count),
            recipe: recipe(&node.params),
            stopped: match (summary.stopped_early, summary.refit_history.len()) {
                (true, 0) => format!("stopped early; kept epoch {}", summary.best_epoch),
                (true, n) => format!("stopped early at epoch {}, then {n} more on train + valid", summary.best_epoch),
                (false, 0) => format!("{} epochs; kept epoch {}", summary.history.len(), summary.best_epoch),
                (false, n) => format!("{} epochs, then {n} more on train + valid", summary.history.len()),
            },
            clean: clean_errors(program, outcome, *id),
            curves,
        });
    }
    Ok(cards)
}

/// `input [1, 28, 28] -> flatten -> maxout(units 240, pieces 5) -> ...`
fn describe_net(net: &crate::nn::NetSpec) -> String {
    let mut parts = vec![format!("input {:?}", net.input)];
    for layer in &net.layers {
        let json = serde_json::to_value(layer).unwrap_or_default();
        // In the order the layer declares its parameters, as a file writes them.
        let declared = crate::nn::layers::find(layer.name()).map_or(&[][..], |kind| kind.params);
        let args: Vec<String> = declared
            .iter()
            .filter_map(|p| Some((p.name, json.get(p.name).filter(|v| !v.is_null())?)))
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        parts.push(if args.is_empty() {
            layer.name().to_string()
        } else {
            format!("{}({})", layer.name(), args.join(", "))
        });
    }
    parts.join(" → ")
}

/// Weights and biases of every layer.
fn parameter_count(net: &crate::nn::NetSpec) -> usize {
    let mut shape = net.input.clone();
    let mut total = 0usize;
    for layer in &net.layers {
        if let Ok(Some((rows, columns))) = layer.weight_shape(&shape) {
            total = total.saturating_add(rows.saturating_mul(columns).saturating_add(columns));
        }
        match layer.output_shape(&shape) {
            Ok(next) => shape = next,
            Err(_) => break,
        }
    }
    total
}

/// A fit's settings as `name: value` lines, the loss written as the file writes it.
fn recipe(params: &serde_json::Value) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(terms) = params["loss"].as_array() {
        let loss: Vec<String> = terms
            .iter()
            .map(|t| {
                let weight = t["weight"].as_f64().unwrap_or(1.0);
                let what = match t["attack"].as_object() {
                    None => "clean".to_string(),
                    Some(a) => {
                        let name = a.get("attack").and_then(|n| n.as_str()).unwrap_or("attack");
                        let eps = a
                            .get("eps")
                            .filter(|e| !e.is_null())
                            .map(|e| format!("(eps {e})"))
                            .unwrap_or_default();
                        format!("{name}{eps}")
                    }
                };
                if weight == 1.0 {
                    what
                } else {
                    format!("{weight} × {what}")
                }
            })
            .collect();
        lines.push(format!("loss: {}", loss.join(" + ")));
    }
    for (name, value) in params.as_object().into_iter().flatten() {
        let skip = matches!(name.as_str(), "net" | "loss" | "data" | "valid" | "valid_attack") || value.is_null();
        if !skip && !value.is_object() && !value.is_array() {
            lines.push(format!("{name}: {value}"));
        }
    }
    lines
}

/// "1.69% on test" for every clean evaluation of model `id`.
fn clean_errors(program: &Program, outcome: &Outcome, id: NodeId) -> Vec<String> {
    program
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.kind.category == Category::Eval && n.params.get("attack").is_none_or(|a| a.is_null()))
        .filter(|(_, n)| n.inputs.iter().any(|(role, i)| *role == "model" && *i == id))
        .filter_map(|(e, n)| {
            let error = outcome.metrics.get(&e)?.get("error")?;
            let data = n.inputs.iter().find(|(role, _)| *role == "data")?.1;
            // A set crafted against a model (it reads one) is not clean data.
            if program.nodes[data].inputs.iter().any(|(role, _)| *role == "model") {
                return None;
            }
            Some(format!("{} on {}", super::format_value("error", *error), program.nodes[data].name))
        })
        .collect()
}

/// Every attack the run used (to evaluate, craft, draw or train against), with its full
/// parameters and the nodes that used it, in first-use order.
pub fn attacks_used(program: &Program) -> Vec<html::AttackLine> {
    let mut lines: Vec<(serde_json::Value, Vec<String>)> = Vec::new();
    for node in &program.nodes {
        let mut used: Vec<&serde_json::Value> = ["attack", "valid_attack"].iter().filter_map(|k| node.params.get(*k)).collect();
        if let Some(terms) = node.params.get("loss").and_then(|l| l.as_array()) {
            used.extend(terms.iter().filter_map(|t| t.get("attack")));
        }
        for attack in used.into_iter().filter(|a| a.is_object()) {
            match lines.iter_mut().find(|(a, _)| a == attack) {
                Some((_, users)) => users.push(node.name.clone()),
                None => lines.push((attack.clone(), vec![node.name.clone()])),
            }
        }
    }
    lines
        .into_iter()
        .map(|(attack, users)| {
            let name = attack["attack"].as_str().unwrap_or("attack").to_string();
            let params: Vec<String> = attack
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, v)| *k != "attack" && !v.is_null())
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            html::AttackLine {
                call: format!("{name}({})", params.join(", ")),
                users: users.join(", "),
            }
        })
        .collect()
}

/// The pipeline file as HTML: comments, strings, numbers and declaration words in their
/// own classes (the page's style colours them); `None` when the file cannot be read again.
pub fn highlighted_source(pipeline: &Path) -> Option<String> {
    let text = crate::files::read_text(pipeline, crate::files::FileKind::Pipeline).ok()?;
    const WORDS: [&str; 14] = [
        "data", "net", "model", "attack", "eval", "examples", "figure", "export", "param", "table", "plot", "row", "for", "seed",
    ];
    let escape = super::pictures::escape;
    let mut out = String::with_capacity(text.len() * 2);
    for line in text.lines() {
        let mut rest = line;
        while !rest.is_empty() {
            let c = rest.chars().next().expect("not empty");
            let (class, len) = if c == '#' {
                ("c", rest.len())
            } else if c == '"' {
                ("s", rest[1..].find('"').map_or(rest.len(), |end| end + 2))
            } else if c.is_ascii_digit() || (c == '.' && rest[1..].starts_with(|d: char| d.is_ascii_digit())) {
                (
                    "n",
                    rest.find(|d: char| !(d.is_ascii_alphanumeric() || d == '.' || d == '%'))
                        .unwrap_or(rest.len()),
                )
            } else if c.is_ascii_alphabetic() || c == '_' {
                let len = rest.find(|d: char| !(d.is_ascii_alphanumeric() || d == '_')).unwrap_or(rest.len());
                (if WORDS.contains(&&rest[..len]) { "k" } else { "" }, len)
            } else {
                ("", c.len_utf8())
            };
            let (piece, after) = rest.split_at(len);
            if class.is_empty() {
                out.push_str(&escape(piece));
            } else {
                out.push_str(&format!("<span class=\"{class}\">{}</span>", escape(piece)));
            }
            rest = after;
        }
        out.push('\n');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_is_escaped_and_highlighted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.adv");
        std::fs::write(
            &path,
            "data d = mnist(split: \"<test>\") # a # comment\nattack a = fgsm(eps: .25)\n",
        )
        .unwrap();
        let html = highlighted_source(&path).unwrap();
        assert!(
            html.starts_with("<span class=\"k\">data</span> d = mnist(split: <span class=\"s\">&quot;&lt;test&gt;&quot;</span>)"),
            "{html}"
        );
        assert!(html.contains("<span class=\"c\"># a # comment</span>\n"), "{html}");
        assert!(html.contains("eps: <span class=\"n\">.25</span>"), "{html}");
    }

    #[test]
    fn nets_are_described_and_counted() {
        let net: crate::nn::NetSpec = serde_json::from_value(serde_json::json!({
            "input": [1, 28, 28],
            "layers": [{"layer": "flatten"}, {"layer": "maxout", "units": 240, "pieces": 5}, {"layer": "linear", "units": 10}]
        }))
        .unwrap();
        assert_eq!(
            describe_net(&net),
            "input [1, 28, 28] → flatten → maxout(units 240, pieces 5) → linear(units 10)"
        );
        assert_eq!(parameter_count(&net), 784 * 1200 + 1200 + 240 * 10 + 10);
    }
}
