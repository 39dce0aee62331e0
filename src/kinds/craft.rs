//! `craft(model, data, attack)`: the adversarial version of a dataset against a model (or
//! ensemble), stored as float32 so other nodes (transfer, agreement) can score it.

use super::{Kind, EVAL_BATCH, NODE_SEED};
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::error::{Error, Result};
use crate::estimate::{Estimate, Sizes};
#[cfg(feature = "compute")]
use crate::exec::{params, Artifact, Executor, Runner};
use crate::params::{Category, ParamType};
use crate::params::{Input, ParamDef};
use std::sync::Arc;

crate::declare_params! {
    /// `craft`'s parameters, as its node's canonical JSON holds them.
    #[derive(Clone, Debug, serde::Deserialize)]
    pub struct CraftParams {
        /// the model (or ensemble) attacked
        #[serde(default)]
        model: Input = ParamDef::required(ParamType::Model),
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
        name: "craft",
        category: Category::Data,
        version: 3,
        sources: &["src/kinds/craft.rs", "src/eval/mod.rs", "src/exec/artifacts.rs"],
        cached: true,
        doc: "adversarial examples of a dataset against a model (stored as float32)",
        params: CraftParams::PARAMS,
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
    let (model, data, shape, classes) = c.take_model_and_data(&mut bound)?;
    c.take_attack(&mut bound, "attack");
    let node = c.push(at, bound.json, vec![("model", model), ("data", data)]);
    Some(Value::Data { node, shape, classes })
}

#[cfg(feature = "compute")]
fn run(x: &mut Executor<'_>, id: crate::check::ir::NodeId) -> Result<Artifact> {
    let models = x.models(x.input(id, "model")?)?;
    let data = x.data(x.input(id, "data")?)?;
    let p: CraftParams = params(&x.node(id).params)?;
    let attack = crate::attacks::Crafter::from_json(&p.attack).map_err(Error::msg)?;
    let bar = x.examples_progress(id, data.len() as u64);
    let crafted = crate::eval::craft_set(x.dev(), models.classifier(), &data, &attack, x.seed(id), p.batch, &mut |done, _| {
        bar.set_position(done as u64)
    });
    bar.finish();
    Ok(Artifact::Data(Arc::new(crafted)))
}

fn estimate(sizes: &Sizes) -> Estimate {
    Estimate {
        // The crafted copy beside the clean data.
        memory: sizes.scoring() + sizes.data_bytes(),
        params: sizes.net_params,
        data: sizes.data.first().copied(),
        gradients: sizes.attack_work(&sizes.params["attack"], sizes.examples()),
    }
}
