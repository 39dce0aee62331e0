//! `evaluate(model, data, attack: ...)`: a model's error and confidences on a dataset,
//! optionally with every batch perturbed by an attack first (`eval::evaluate`). The worked
//! example of a node kind: parameters, a check rule, a run, an estimate.

use super::{Kind, EVAL_BATCH, NODE_SEED};
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::error::{Error, Result};
use crate::estimate::scoring_rule;
#[cfg(feature = "compute")]
use crate::exec::{params, Artifact, Executor, Runner};
use crate::params::{Category, ParamType};
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
    let (model, data, _, _) = c.take_model_and_data(&mut bound)?;
    c.take_attack(&mut bound, "attack");
    let attacked = bound.json.get("attack").is_some_and(|a| !a.is_null());
    let extra = if attacked { crate::eval::Metrics::ATTACK_FIELDS } else { &[] };
    let fields = crate::eval::Metrics::FIELDS.iter().chain(extra).map(|(f, _)| (*f).into()).collect();
    Some(Value::Metrics {
        node: c.push(at, bound.json, vec![("model", model), ("data", data)]),
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
    let bar = x.examples_progress(id, data.len() as u64);
    let metrics = crate::eval::evaluate(
        x.dev(),
        models.classifier(),
        &data,
        attack.as_ref(),
        x.seed(id),
        p.batch,
        &mut |done, _| bar.set_position(done as u64),
    );
    bar.finish();
    Ok(Artifact::Metrics(metrics.to_map()))
}
