//! `weights([m1, m2], n)`: the paper's figure 3: the first layer's weights of each model as
//! images, one row per unit and one column per maxout piece.

use super::Kind;
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::error::Result;
use crate::estimate::scoring_rule;
#[cfg(feature = "compute")]
use crate::exec::{params, Artifact, Executor, Runner};
use crate::params::{Category, Default, ParamType};
use crate::params::{Input, ParamDef};

crate::declare_params! {
    /// `weights`'s parameters, as its node's canonical JSON holds them.
    #[derive(Clone, Debug, serde::Deserialize)]
    pub struct WeightsParams {
        /// the models shown side by side, e.g. [mx, mx_at]
        #[serde(default)]
        models: Input = ParamDef::required(ParamType::ModelList),
        /// how many units (the first n)
        n: usize = ParamDef::or(ParamType::Int, Default::Int(10)).range(1.0, 100.0),
    }
}

/// The registry entry.
pub const KIND: Kind = Kind {
    spec: NodeKind {
        name: "weights",
        category: Category::Figure,
        version: 1,
        sources: &["src/kinds/weights.rs", "src/eval/weights.rs"],
        cached: true,
        doc:
            "the first layer's weights of each model as images, one row per unit and one column per maxout piece (drawn as figure-NAME.svg)",
        params: WeightsParams::PARAMS,
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
    use crate::nn::layers::{conv2d::Conv2d, linear::Linear, maxout::Maxout, rbf::Rbf};
    let models = c.take_models(&mut bound, "models")?;
    for (_, net) in &models {
        let first = net
            .layers
            .iter()
            .find(|l| l.is::<Conv2d>() || l.is::<Linear>() || l.is::<Maxout>() || l.is::<Rbf>());
        if !first.is_some_and(|l| l.is::<Linear>() || l.is::<Maxout>()) {
            return c.error(
                crate::diagnostics::Diagnostic::new(
                    crate::diagnostics::codes::WRONG_TYPE,
                    bound.spans["models"],
                    "`weights` draws a first linear or maxout layer; a model starts with another layer",
                )
                .label("no linear or maxout first layer")
                .help("list models whose first layer with weights is `linear` or `maxout`"),
            );
        }
    }
    let inputs = models.iter().map(|(id, _)| ("models", *id)).collect();
    c.push(at, bound.json, inputs);
    Some(Value::Figure)
}

#[cfg(feature = "compute")]
fn run(x: &mut Executor<'_>, id: crate::check::ir::NodeId) -> Result<Artifact> {
    let n = params::<WeightsParams>(&x.node(id).params)?.n;
    let mut panels = Vec::new();
    let mut shape = Vec::new();
    for m in x.inputs_of(id, "models") {
        let models = x.models(m)?;
        shape = models.members[0].net.input.clone();
        panels.push(crate::eval::weights::first_layer(&x.node(m).name, &models.members[0], n));
    }
    Ok(Artifact::Figure(crate::eval::weights::WeightsFigure { shape, panels }))
}
