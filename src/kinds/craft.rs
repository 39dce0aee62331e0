//! `craft(model, data, attack)`: the adversarial version of a dataset against a model (or
//! ensemble), stored as float32 so other nodes (transfer, agreement) can score it.

use super::{Kind, EVAL_BATCH, NODE_SEED};
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::error::{Error, Result};
use crate::estimate::{Estimate, Sizes};
use crate::exec::{Artifact, Executor, Runner};
use crate::params::{Category, ParamSpec, ParamType};
use std::sync::Arc;

/// The registry entry.
pub const KIND: Kind = Kind {
    spec: NodeKind {
        name: "craft",
        category: Category::Data,
        version: 3,
        sources: &["src/kinds/craft.rs", "src/eval/mod.rs", "src/exec/artifacts.rs"],
        cached: true,
        doc: "adversarial examples of a dataset against a model (stored as float32)",
        params: &[
            ParamSpec::required("model", ParamType::Model, "the model (or ensemble) attacked"),
            ParamSpec::required("data", ParamType::Dataset, "the clean examples"),
            ParamSpec::required("attack", ParamType::Attack, "the attack"),
            EVAL_BATCH,
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
    let (model, data, shape, classes) = c.take_model_and_data(&mut bound)?;
    c.take_attack(&mut bound, "attack");
    let node = c.push(at, bound.json, vec![("model", model), ("data", data)]);
    Some(Value::Data { node, shape, classes })
}

fn run(x: &mut Executor<'_>, id: crate::check::ir::NodeId) -> Result<Artifact> {
    let models = x.models(x.input(id, "model")?)?;
    let data = x.data(x.input(id, "data")?)?;
    let attack = Executor::attack(&x.node(id).params, "attack")?.ok_or_else(|| Error::msg("craft needs an attack"))?;
    let bar = x.bar(data.len() as u64, "examples");
    let crafted = crate::eval::craft_set(
        x.dev(),
        models.classifier(),
        &data,
        &attack,
        x.seed(id),
        x.batch(id),
        &mut |done, _| bar.set_position(done as u64),
    );
    bar.finish_and_clear();
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
