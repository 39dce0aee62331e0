//! `examples(model, data, attack, n)`: the report's picture of an attack: the first n
//! examples clean, their perturbation and adversarial version, with predictions.

use super::{Kind, NODE_SEED};
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::error::{Error, Result};
use crate::estimate::{scoring_rule, Estimate, Sizes};
use crate::exec::{Artifact, Executor, Runner};
use crate::params::{Category, Default, ParamSpec, ParamType};

/// The registry entry.
pub const KIND: Kind = Kind {
    spec: NodeKind {
        name: "examples",
        category: Category::Examples,
        version: 2,
        sources: &["src/kinds/examples.rs", "src/eval/mod.rs", "src/exec/artifacts.rs"],
        cached: true,
        doc: "the first n examples clean, their perturbation and adversarial version, with predictions (drawn as examples-NAME.svg)",
        params: &[
            ParamSpec::required("model", ParamType::Model, "the model attacked"),
            ParamSpec::required("data", ParamType::Dataset, "where the examples come from"),
            ParamSpec::required("attack", ParamType::Attack, "the attack"),
            ParamSpec::with_default("n", ParamType::Int, Default::Int(8), "how many examples").range(1.0, 100.0),
            NODE_SEED,
        ],
        check,
    },
    runner: Runner {
        run,
        reads: None,
        prepare: None,
    },
    estimate: estimate,
};

fn check(c: &mut Checker<'_>, mut bound: Bound, at: &At<'_>) -> Option<Value> {
    let (model, data, _, _) = c.take_model_and_data(&mut bound)?;
    c.take_attack(&mut bound, "attack");
    c.push(at, bound.json, vec![("model", model), ("data", data)]);
    Some(Value::Examples)
}

fn run(x: &mut Executor<'_>, id: crate::check::ir::NodeId) -> Result<Artifact> {
    let models = x.models(x.input(id, "model")?)?;
    let data = x.data(x.input(id, "data")?)?;
    let p = &x.node(id).params;
    let attack = Executor::attack(p, "attack")?.ok_or_else(|| Error::msg("examples needs an attack"))?;
    let n = p["n"].as_u64().unwrap_or(8) as usize;
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
