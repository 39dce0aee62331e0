//! `fit(net, data, ...)`: train a net on softmax cross-entropy (or binary cross-entropy
//! under a `sigmoid_top`) with SGD and momentum or Adam, optionally on a mixture of the clean
//! loss and attacks, with early stopping on (adversarial) validation error. See
//! `train` for the loop.

use super::Kind;
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::diagnostics::{codes, Diagnostic};
use crate::error::Result;
use crate::estimate::{attack_gradients, Estimate, Sizes, F32};
#[cfg(feature = "compute")]
use crate::exec::{params, Artifact, Executor, Runner};
use crate::params::Category;
#[cfg(feature = "compute")]
use crate::train::{resume::Saved, Checkpoints, FitEvent};
use serde_json::json;
use std::sync::Arc;

/// The registry entry.
pub const KIND: Kind = Kind {
    spec: NodeKind {
        name: "fit",
        category: Category::Model,
        version: 4,
        sources: &[
            "src/kinds/fit.rs",
            "src/train/mod.rs",
            "src/train/stages.rs",
            "src/train/resume.rs",
            "src/train/step.rs",
            "src/train/schema.rs",
            "src/exec/artifacts.rs",
        ],
        cached: true,
        doc: "train a net on softmax cross-entropy (SGD with momentum, or Adam)",
        params: crate::train::FitParams::PARAMS,
        check,
    },
    #[cfg(feature = "compute")]
    runner: Runner {
        run,
        reads: None,
        prepare: None,
    },
    estimate,
};

fn check(c: &mut Checker<'_>, mut bound: Bound, at: &At<'_>) -> Option<Value> {
    let Some(Value::Net(net)) = bound.values.remove("net") else {
        return None;
    };
    let (data, shape, classes) = c.take_data(&mut bound, "data")?;
    let net_span = bound.spans["net"];
    c.fits(&net, &shape, classes, net_span, bound.spans["data"])?;
    let mut inputs = vec![("data", data)];
    if let Some(Value::Data {
        node: valid,
        shape,
        classes,
    }) = bound.values.remove("valid")
    {
        c.fits(&net, &shape, classes, net_span, bound.spans["valid"])?;
        inputs.push(("valid", valid));
    } else {
        for needs_valid in ["patience", "valid_attack"] {
            if bound.spans.contains_key(needs_valid) {
                return c.error(
                    Diagnostic::new(
                        codes::MISSING_PARAM,
                        bound.spans[needs_valid],
                        format!("`{needs_valid}` needs a validation set"),
                    )
                    .label("no `valid` given")
                    .help("add `valid: <data>`, e.g. `data valid = mnist(split: \"train\", skip: 50000)`"),
                );
            }
        }
    }
    if bound.json["loss"].is_null() {
        bound.json["loss"] = json!([{"weight": 1.0, "attack": null}]);
    }
    c.take_attack(&mut bound, "valid_attack");
    bound.json.insert("net".into(), serde_json::to_value(&net).expect("nets serialize"));
    Some(Value::Model {
        node: c.push(at, bound.json, inputs),
        net,
    })
}

#[cfg(feature = "compute")]
fn run(x: &mut Executor<'_>, id: crate::check::ir::NodeId) -> Result<Artifact> {
    let node = x.node(id);
    let data = x.data(x.input(id, "data")?)?;
    let valid = match x.optional_input(id, "valid") {
        Some(v) => Some(x.data(v)?),
        None => None,
    };
    let net = params(&node.params["net"])?;
    let fit_params: crate::train::FitParams = params(&node.params)?;
    let bar = x.bar(fit_params.epochs as u64, "epochs");
    let tty = x.progress();
    // A checkpoint of this very fit (same key) left by a run that did not finish.
    let (cache, key, every) = (x.cache(), x.key(id).to_string(), x.checkpoint_every());
    let mut notes = Vec::new();
    let resume = match cache
        .progress(&key)
        .map_err(|e| e.to_string())
        .and_then(|b| b.map(|b| Saved::decode(&b)).transpose())
    {
        Ok(saved) => saved,
        Err(why) => {
            cache.set_aside_progress(&key, &why);
            notes.push(format!(
                "             {}: its checkpoint was set aside ({why}); starting over",
                node.name
            ));
            None
        }
    };
    if let Some(saved) = &resume {
        let stage = format!("{:?}", saved.stage()).to_lowercase();
        notes.push(format!(
            "  resumed    fit       {} at epoch {} of its {stage} stage",
            node.name,
            saved.epoch()
        ));
    }
    let log = x.log();
    for note in notes.drain(..) {
        let _ = writeln!(log, "{note}");
    }
    let mut save = |bytes: Vec<u8>| cache.save_progress(&key, &bytes);
    let mut rejected = |why: String| {
        cache.set_aside_progress(&key, &why);
        notes.push(format!(
            "             {}: its checkpoint was set aside ({why}); started over",
            node.name
        ));
    };
    let mut checkpoints = Checkpoints::new(resume, every, &mut save, &mut rejected);
    let mut last_epoch = std::time::Instant::now();
    let fitted = crate::train::fit_resumable(
        &net,
        &data,
        valid.as_deref(),
        &fit_params,
        &mut |event| match event {
            FitEvent::Step(epoch, step, steps, loss) => bar.set_message(format!("epoch {epoch} step {step}/{steps} loss {loss:.4}")),
            FitEvent::Epoch(record) => {
                let valid = match (record.valid_error, record.valid_objective) {
                    (Some(e), _) if fit_params.valid_attack.is_some() => format!(", adversarial validation error {:.2}%", e * 100.0),
                    (Some(e), _) => format!(", validation error {:.2}%", e * 100.0),
                    (None, Some(o)) => format!(", validation objective {o:.4}"),
                    (None, None) => String::new(),
                };
                // Early stopping may end the fit sooner: the time left is an upper bound.
                let per_epoch = last_epoch.elapsed().as_secs_f64();
                last_epoch = std::time::Instant::now();
                let left = fit_params.epochs.saturating_sub(record.epoch) as f64 * per_epoch;
                let rate = data.len() as f64 / per_epoch.max(1e-9);
                let line = format!(
                    "             {}: epoch {} loss {:.4}{valid} ({per_epoch:.1} s/epoch, {rate:.0} examples/s, at most {} left of {} epochs)",
                    node.name,
                    record.epoch,
                    record.loss,
                    humantime::format_duration(std::time::Duration::from_secs(left.round() as u64)),
                    fit_params.epochs
                );
                bar.set_position(record.epoch as u64);
                if tty {
                    bar.println(line);
                } else {
                    let _ = writeln!(log, "{line}");
                }
            }
        },
        &mut checkpoints,
    );
    drop(checkpoints);
    for note in notes {
        let _ = writeln!(log, "{note}");
    }
    let (model, summary) = fitted?;
    bar.finish_and_clear();
    Ok(Artifact::Model {
        model: Arc::new(model),
        params: fit_params,
        summary,
    })
}

fn estimate(sizes: &Sizes) -> Estimate {
    // Weights, gradients and optimizer state (one buffer for momentum, two for Adam).
    let state = if sizes.params["optimizer"] == "adam" { 4.0 } else { 3.0 };
    let crafting: f64 = sizes.params["loss"]
        .as_array()
        .map_or(0.0, |terms| terms.iter().map(|t| attack_gradients(&t["attack"])).sum());
    Estimate {
        memory: sizes.net_params * F32 * state + 2.0 * sizes.batch * sizes.activations * F32 + sizes.data_bytes(),
        params: sizes.net_params,
        data: None,
        gradients: (crafting > 0.0).then(|| crafting * sizes.examples() * sizes.number("epochs", 1.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every declared default deserializes into `FitParams` (the checker fills in the seed
    /// and the clean loss).
    #[test]
    fn the_declared_defaults_make_a_fit_params() {
        let mut json = serde_json::Map::new();
        for p in KIND.spec.params {
            json.insert(p.name.into(), p.default_json().unwrap_or(serde_json::Value::Null));
        }
        json.insert("seed".into(), 0.into());
        json.insert("loss".into(), serde_json::json!([{"weight": 1.0, "attack": null}]));
        let defaults: crate::train::FitParams = serde_json::from_value(serde_json::Value::Object(json)).unwrap();
        let record = serde_json::to_value(defaults).unwrap();
        assert_eq!(record["lr"], 0.1);
        assert!(record.get("net").is_none(), "inputs are not part of the training record");
    }
}
