//! `evaluate(model, data, attack: ...)`: a model's error and confidences on a dataset,
//! optionally with every batch perturbed by an attack first (`eval::evaluate`). The worked
//! example of a node kind: parameters, a check rule, a run, an estimate.

use super::{Kind, EVAL_BATCH, NODE_SEED};
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::diagnostics::{codes, Diagnostic};
use crate::error::{Error, Result};
use crate::estimate::scoring_rule;
#[cfg(feature = "compute")]
use crate::exec::{params, Artifact, Executor, Runner};
use crate::params::{Category, Default, ParamType};
use crate::params::{Input, ParamDef};

crate::declare_params! {
    /// `evaluate`'s parameters, as its node's canonical JSON holds them.
    #[derive(Clone, Debug, serde::Deserialize)]
    pub struct EvaluateParams {
        /// the model scored
        #[serde(default)]
        model: Input = ParamDef::required(ParamType::Model),
        /// the examples
        #[serde(default)]
        data: Input = ParamDef::required(ParamType::Dataset),
        /// perturb each batch first
        #[serde(default)]
        attack: Option<serde_json::Value> = ParamDef::optional(ParamType::Attack),
        /// `data` is a crafted set: these are its clean examples, row for row (the attack's fields are measured against them)
        #[serde(default)]
        clean: Input = ParamDef::optional(ParamType::Dataset),
        /// a perturbation larger than this counts as none: the example is scored clean (robust error at this budget, e.g. from one minimal-perturbation set)
        within: Option<f64> = ParamDef::optional(ParamType::Number).range(0.0, 1000.0),
        /// the norm of `within`
        norm: crate::attacks::pgd::Norm = ParamDef::or(ParamType::Choice(&["linf", "l2"]), Default::Str("linf")),
        /// examples per batch (bounds memory)
        batch: usize = EVAL_BATCH,
        /// seed of random attacks and noise (default: the file's seed)
        seed: Option<u64> = NODE_SEED,
    }
}

/// The registry entry.
pub const KIND: Kind = Kind {
    spec: NodeKind {
        name: "evaluate",
        category: Category::Eval,
        version: 8,
        sources: &[
            "src/kinds/evaluate.rs",
            "src/eval/mod.rs",
            "src/eval/paper.rs",
            "src/exec/artifacts.rs",
        ],
        cached: true,
        doc: "error and confidences of a model on a dataset, optionally under attack",
        params: EvaluateParams::PARAMS,
        check,
    },
    #[cfg(feature = "compute")]
    runner: Runner {
        run,
        reads: None,
        prepare: None,
    },
    estimate: scoring_rule,
};

fn check(c: &mut Checker<'_>, mut bound: Bound, at: &At<'_>) -> Option<Value> {
    let (model, data, shape, classes) = c.take_model_and_data(&mut bound)?;
    c.take_attack(&mut bound, "attack");
    let attacked = bound.json.get("attack").is_some_and(|a| !a.is_null());
    let mut inputs = vec![("model", model), ("data", data)];
    if bound.spans.contains_key("clean") {
        let span = bound.spans["clean"];
        let (clean, clean_shape, clean_classes) = c.take_data(&mut bound, "clean")?;
        if attacked {
            return c.error(
                Diagnostic::new(
                    codes::WRONG_TYPE,
                    span,
                    "`clean` is for a set crafted already: it cannot go with `attack`",
                )
                .label("data is attacked here too")
                .help("evaluate(model, craft(model, test, a), clean: test), or evaluate(model, test, attack: a)"),
            );
        }
        if (clean_shape.as_slice(), clean_classes) != (shape.as_slice(), classes) {
            return c.error(
                Diagnostic::new(codes::SHAPE_MISMATCH, span, "`clean` must hold the same kind of examples as `data`")
                    .label("another shape or class count")
                    .help("pass the dataset `data` was crafted from"),
            );
        }
        inputs.push(("clean", clean));
    }
    let perturbed = attacked || inputs.len() == 3;
    if bound.spans.contains_key("within") && !perturbed {
        return c.error(
            Diagnostic::new(
                codes::MISSING_PARAM,
                bound.spans["within"],
                "`within` bounds a perturbation: give `attack` or `clean`",
            )
            .label("nothing perturbed")
            .help("evaluate(model, test, attack: fab(norm: \"linf\"), within: 0.1)"),
        );
    }
    let extra = if perturbed { crate::eval::Metrics::ATTACK_FIELDS } else { &[] };
    let fields = crate::eval::Metrics::FIELDS.iter().chain(extra).map(|(f, _)| (*f).into()).collect();
    Some(Value::Metrics {
        node: c.push(at, bound.json, inputs),
        fields,
    })
}

#[cfg(feature = "compute")]
fn run(x: &mut Executor<'_>, id: crate::check::ir::NodeId) -> Result<Artifact> {
    let models = x.models(x.input(id, "model")?)?;
    let data = x.data(x.input(id, "data")?)?;
    let p: EvaluateParams = params(&x.node(id).params)?;
    let attack = p
        .attack
        .as_ref()
        .map(crate::attacks::Crafter::from_json)
        .transpose()
        .map_err(Error::msg)?;
    let clean = x.optional_input(id, "clean").map(|c| x.data(c)).transpose()?;
    if let Some(clean) = &clean {
        if clean.len() != data.len() {
            return Err(Error::msg(format!(
                "`clean` has {} examples and `data` {}: pass the dataset `data` was crafted from",
                clean.len(),
                data.len()
            )));
        }
    }
    let under = crate::eval::Under {
        attack: attack.as_ref(),
        clean: clean.as_deref(),
        within: p.within.map(|w| (w, p.norm)),
    };
    let bar = x.examples_progress(id, data.len() as u64);
    let metrics = crate::eval::evaluate_under(x.dev(), models.classifier(), &data, &under, x.seed(id), p.batch, &mut |done, _| {
        bar.set_position(done as u64)
    });
    bar.finish();
    Ok(Artifact::Metrics(metrics.to_map()))
}
