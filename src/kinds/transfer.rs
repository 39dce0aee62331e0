//! `transfer([m1, m2, ...], data, attack)`: the transfer matrix: the error of every model
//! on examples crafted against every model.

use super::{Kind, EVAL_BATCH, NODE_SEED};
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::error::{Error, Result};
use crate::estimate::scoring_rule;
#[cfg(feature = "compute")]
use crate::exec::{params, Artifact, Executor, Runner};
use crate::params::{Category, ParamType};
use crate::params::{Input, ParamDef};

crate::declare_params! {
    /// `transfer`'s parameters, as its node's canonical JSON holds them.
    #[derive(Clone, Debug, serde::Deserialize)]
    pub struct TransferParams {
        /// the models, e.g. [mx, mx_at]
        #[serde(default)]
        models: Input = ParamDef::required(ParamType::ModelList),
        /// the clean examples
        #[serde(default)]
        data: Input = ParamDef::required(ParamType::Dataset),
        /// the attack
        attack: serde_json::Value = ParamDef::required(ParamType::Attack),
        /// examples per batch (bounds memory)
        batch: usize = EVAL_BATCH,
        /// seed of random attacks and noise (default: the file's seed)
        seed: Option<u64> = NODE_SEED,
    }
}

/// The registry entry.
pub const KIND: Kind = Kind {
    spec: NodeKind {
        name: "transfer",
        category: Category::Eval,
        version: 3,
        sources: &["src/kinds/transfer.rs", "src/eval/mod.rs"],
        cached: true,
        doc: "error of every model on examples crafted against every model (metrics: error_<source>_<target>, by list index)",
        params: TransferParams::PARAMS,
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
    let models = c.take_models(&mut bound, "models")?;
    let (data, shape, classes) = c.take_data(&mut bound, "data")?;
    for (_, net) in &models {
        c.fits(net, &shape, classes, bound.spans["models"], bound.spans["data"])?;
    }
    c.take_attack(&mut bound, "attack");
    let mut inputs: Vec<(&'static str, usize)> = models.iter().map(|(id, _)| ("models", *id)).collect();
    inputs.push(("data", data));
    let n = models.len();
    let fields = (0..n).flat_map(|i| (0..n).map(move |j| format!("error_{i}_{j}").into())).collect();
    Some(Value::Metrics {
        node: c.push(at, bound.json, inputs),
        fields,
    })
}

#[cfg(feature = "compute")]
fn run(x: &mut Executor<'_>, id: crate::check::ir::NodeId) -> Result<Artifact> {
    let mut all = Vec::new();
    for m in x.inputs_of(id, "models") {
        all.push(x.models(m)?);
    }
    let data = x.data(x.input(id, "data")?)?;
    let p: TransferParams = params(&x.node(id).params)?;
    let attack = crate::attacks::Crafter::from_json(&p.attack).map_err(Error::msg)?;
    let classifiers: Vec<crate::nn::Classifier> = all.iter().map(crate::exec::Models::classifier).collect();
    Ok(Artifact::Metrics(crate::eval::transfer(
        x.dev(),
        &classifiers,
        &data,
        &attack,
        x.seed(id),
        p.batch,
    )))
}
