//! `examples(model, data, attack, n)`: the report's picture of an attack: the first n
//! examples clean, their perturbation and adversarial version, with predictions.

use super::{Kind, NODE_SEED};
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::error::{Error, Result};
use crate::estimate::{scoring_rule, Estimate, Sizes};
#[cfg(feature = "compute")]
use crate::exec::{params, Artifact, Executor, Runner};
use crate::params::{Category, Default, ParamType};
use crate::params::{Input, ParamDef};

crate::declare_params! {
    /// `examples`'s parameters, as its node's canonical JSON holds them.
    #[derive(Clone, Debug, serde::Deserialize)]
    pub struct ExamplesParams {
        /// the model attacked
        #[serde(default)]
        model: Input = ParamDef::required(ParamType::Model),
        /// where the examples come from
        #[serde(default)]
        data: Input = ParamDef::required(ParamType::Dataset),
        /// the attack
        attack: serde_json::Value = ParamDef::required(ParamType::Attack),
        /// how many examples
        n: usize = ParamDef::or(ParamType::Int, Default::Int(8)).range(1.0, 100.0),
        /// seed of random attacks and noise (default: the file's seed)
        seed: Option<u64> = NODE_SEED,
    }
}

/// The registry entry.
pub const KIND: Kind = Kind {
    spec: NodeKind {
        name: "examples",
        category: Category::Examples,
        version: 2,
        sources: &["src/kinds/examples.rs", "src/eval/mod.rs", "src/exec/artifacts.rs"],
        cached: true,
        doc: "the first n examples clean, their perturbation and adversarial version, with predictions (drawn as examples-NAME.svg)",
        params: ExamplesParams::PARAMS,
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
    let (model, data, _, _) = c.take_model_and_data(&mut bound)?;
    c.take_attack(&mut bound, "attack");
    c.push(at, bound.json, vec![("model", model), ("data", data)]);
    Some(Value::Examples)
}

#[cfg(feature = "compute")]
fn run(x: &mut Executor<'_>, id: crate::check::ir::NodeId) -> Result<Artifact> {
    let models = x.models(x.input(id, "model")?)?;
    let data = x.data(x.input(id, "data")?)?;
    let p: ExamplesParams = params(&x.node(id).params)?;
    let attack = crate::attacks::Crafter::from_json(&p.attack).map_err(Error::msg)?;
    let n = p.n;
    Ok(Artifact::Examples(crate::eval::example_set(
        x.dev(),
        models.classifier(),
        &data,
        &attack,
        x.seed(id),
        n,
    )))
}

fn estimate(sizes: &Sizes) -> Estimate {
    Estimate {
        gradients: sizes.attack_work(&sizes.params["attack"], sizes.number("n", 1.0)),
        ..scoring_rule(sizes)
    }
}
