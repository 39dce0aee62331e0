//! `rubbish(model, data, threshold)`: appendix A's rubbish-class rate: the fraction of
//! inputs of no class (e.g. `gaussian` noise) given some class probability above a threshold.

use super::{Kind, EVAL_BATCH};
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::error::Result;
use crate::estimate::scoring_rule;
#[cfg(feature = "compute")]
use crate::exec::{params, Artifact, Executor, Runner};
use crate::params::{Category, Default, ParamType};
use crate::params::{Input, ParamDef};

crate::declare_params! {
    /// `rubbish`'s parameters, as its node's canonical JSON holds them.
    #[derive(Clone, Debug, serde::Deserialize)]
    pub struct RubbishParams {
        /// the model
        #[serde(default)]
        model: Input = ParamDef::required(ParamType::Model),
        /// inputs of no class, e.g. gaussian(n: 10000)
        #[serde(default)]
        data: Input = ParamDef::required(ParamType::Dataset),
        /// a probability above this counts
        threshold: f64 = ParamDef::or(ParamType::Number, Default::Number(0.5)).range(0.0, 1.0),
        /// examples per batch (bounds memory)
        batch: usize = EVAL_BATCH,
    }
}

/// The registry entry.
pub const KIND: Kind = Kind {
    spec: NodeKind {
        name: "rubbish",
        category: Category::Eval,
        version: 3,
        sources: &["src/kinds/rubbish.rs", "src/eval/mod.rs"],
        cached: true,
        doc: "fraction of inputs given some class probability above a threshold (metrics: rate, confidence, examples, share_<k>)",
        params: RubbishParams::PARAMS,
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
    let (model, data, _, classes) = c.take_model_and_data(&mut bound)?;
    let fields = ["rate", "confidence", "examples"]
        .map(Into::into)
        .into_iter()
        .chain((0..classes).map(|k| format!("share_{k}").into()))
        .collect();
    Some(Value::Metrics {
        node: c.push(at, bound.json, vec![("model", model), ("data", data)]),
        fields,
    })
}

#[cfg(feature = "compute")]
fn run(x: &mut Executor<'_>, id: crate::check::ir::NodeId) -> Result<Artifact> {
    let models = x.models(x.input(id, "model")?)?;
    let data = x.data(x.input(id, "data")?)?;
    let p: RubbishParams = params(&x.node(id).params)?;
    Ok(Artifact::Metrics(crate::eval::rubbish(
        x.dev(),
        models.classifier(),
        &data,
        p.threshold,
        p.batch,
    )))
}
