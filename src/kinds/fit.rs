//! `fit(net, data, ...)`: train a net on softmax cross-entropy (or binary cross-entropy
//! under a `sigmoid_top`) with SGD and momentum or Adam, optionally on a mixture of the clean
//! loss and attacks, with early stopping on (adversarial) validation error. See
//! `train` for the loop.

use super::Kind;
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::diagnostics::{codes, Diagnostic};
use crate::error::Result;
use crate::estimate::{attack_gradients, Estimate, Sizes, F32};
use crate::exec::{params, Artifact, Executor, Runner};
use crate::params::{Category, Default, ParamSpec, ParamType};
use crate::train::FitEvent;
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
            "src/train/step.rs",
            "src/train/schema.rs",
            "src/exec/artifacts.rs",
        ],
        cached: true,
        doc: "train a net on softmax cross-entropy (SGD with momentum, or Adam)",
        params: &[
            ParamSpec::required("net", ParamType::Net, "the architecture"),
            ParamSpec::required("data", ParamType::Dataset, "the training set"),
            ParamSpec::with_default(
                "loss",
                ParamType::Loss,
                Default::Optional,
                "training objective: clean (default), an attack, or a weighted sum such as 0.5 * clean + 0.5 * fgsm25",
            ),
            ParamSpec::with_default(
                "valid",
                ParamType::Dataset,
                Default::Optional,
                "validation set: its error is recorded every epoch",
            ),
            ParamSpec::with_default(
                "valid_attack",
                ParamType::Attack,
                Default::Optional,
                "measure validation error under this attack (early stopping on adversarial error)",
            ),
            ParamSpec::with_default("epochs", ParamType::Int, Default::Int(10), "most passes over the training set").range(1.0, 100000.0),
            ParamSpec::with_default("batch", ParamType::Int, Default::Int(100), "examples per step").range(1.0, 100000.0),
            ParamSpec::with_default("optimizer", ParamType::Choice(&["sgd", "adam"]), Default::Str("sgd"), "update rule"),
            ParamSpec::with_default("lr", ParamType::Number, Default::Number(0.1), "initial learning rate").range(1e-9, 100.0),
            ParamSpec::with_default(
                "lr_decay",
                ParamType::Number,
                Default::Number(1.0),
                "divide the learning rate by this after every update",
            )
            .range(1.0, 2.0),
            ParamSpec::with_default(
                "lr_min",
                ParamType::Number,
                Default::Number(0.0),
                "floor of the decayed learning rate",
            )
            .range(0.0, 100.0),
            ParamSpec::with_default("momentum", ParamType::Number, Default::Number(0.5), "momentum at epoch 1 (sgd)").range(0.0, 0.999),
            ParamSpec::with_default(
                "momentum_end",
                ParamType::Number,
                Default::Optional,
                "momentum reached at momentum_epochs (default: momentum)",
            )
            .range(0.0, 0.999),
            ParamSpec::with_default(
                "momentum_epochs",
                ParamType::Int,
                Default::Int(1),
                "epoch at which the linear ramp reaches momentum_end",
            )
            .range(1.0, 100000.0),
            ParamSpec::with_default(
                "max_norm",
                ParamType::Number,
                Default::Optional,
                "largest norm of a unit's incoming weights (default: none)",
            )
            .range(1e-6, 1000.0),
            ParamSpec::with_default(
                "init",
                ParamType::Number,
                Default::Number(0.005),
                "initial weights uniform in [-init, init]",
            )
            .range(0.0, 10.0),
            ParamSpec::with_default(
                "l1",
                ParamType::Number,
                Default::Number(0.0),
                "L1 weight decay on the first layer's weights (section 5)",
            )
            .range(0.0, 1.0),
            ParamSpec::with_default(
                "seed",
                ParamType::Int,
                Default::Optional,
                "initialisation, shuffling and dropout seed (default: the file's seed)",
            )
            .range(0.0, 9.0e15),
            ParamSpec::with_default(
                "patience",
                ParamType::Int,
                Default::Optional,
                "stop after this many epochs without validation improvement (needs valid)",
            )
            .range(1.0, 100000.0),
            ParamSpec::with_default(
                "after_stop",
                ParamType::Choice(&["best", "refit"]),
                Default::Str("best"),
                "after early stopping: keep the best epoch, or refit on train + valid for that many epochs",
            ),
        ],
        check,
    },
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
    let log = x.log();
    let (model, summary) = crate::train::fit(&net, &data, valid.as_deref(), &fit_params, &mut |event| match event {
        FitEvent::Step(epoch, step, steps, loss) => bar.set_message(format!("epoch {epoch} step {step}/{steps} loss {loss:.4}")),
        FitEvent::Epoch(record) => {
            let valid = record
                .valid_error
                .map_or(String::new(), |e| format!(", validation error {:.2}%", e * 100.0));
            let line = format!("             {}: epoch {} loss {:.4}{valid}", node.name, record.epoch, record.loss);
            bar.set_position(record.epoch as u64);
            if tty {
                bar.println(line);
            } else {
                let _ = writeln!(log, "{line}");
            }
        }
    })?;
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

    /// `fit`'s parameter list and `FitParams` are still declared apart (FitParams is also
    /// the training record): this ties them, name for name and default for default.
    #[test]
    fn the_declared_parameters_are_the_fields_of_fit_params() {
        let record = serde_json::to_value(crate::train::FitParams::sgd(1, 1, 0.1, 0.5, 0)).unwrap();
        let fields: Vec<&str> = record.as_object().unwrap().keys().map(String::as_str).collect();
        let inputs = ["net", "data", "valid"];
        let mut declared: Vec<&str> = KIND.spec.params.iter().map(|p| p.name).filter(|n| !inputs.contains(n)).collect();
        let mut fields = fields.clone();
        declared.sort();
        fields.sort();
        assert_eq!(declared, fields);
        // Every default deserializes, and is the default FitParams has.
        let mut json = serde_json::Map::new();
        for p in KIND.spec.params.iter().filter(|p| !inputs.contains(&p.name)) {
            json.insert(p.name.into(), p.default_json().unwrap_or(serde_json::Value::Null));
        }
        json.insert("seed".into(), 0.into());
        json.insert("loss".into(), serde_json::json!([{"weight": 1.0, "attack": null}]));
        let defaults: crate::train::FitParams = serde_json::from_value(serde_json::Value::Object(json)).unwrap();
        assert_eq!(serde_json::to_value(defaults).unwrap()["lr"], 0.1);
    }
}
