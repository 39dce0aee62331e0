//! `ensemble([m1, m2, ...], combine)`: one classifier from its members, by the mean of
//! their softmax probabilities (the default), the mean of their logits, or a majority vote
//! (see `nn::combine`). Not cached: it only groups models made elsewhere.

use super::Kind;
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::diagnostics::{codes, Diagnostic};
use crate::error::Result;
use crate::estimate::scoring_rule;
#[cfg(feature = "compute")]
use crate::exec::{Artifact, Executor, Runner};
use crate::params::{Category, Default, ParamDef, ParamType};

crate::declare_params! {
    /// `ensemble`'s parameters.
    #[derive(Clone, Debug, serde::Deserialize)]
    pub struct EnsembleParams {
        /// the members, e.g. [m1, m2, m3]
        #[serde(default)]
        models: crate::params::Input = ParamDef::required(ParamType::ModelList),
        /// how the members become one prediction: "mean_probabilities", "mean_logits" or "vote" (the paper does not say)
        #[serde(default)]
        combine: crate::nn::Combine = ParamDef::or(ParamType::Choice(crate::nn::Combine::NAMES), Default::Str("mean_probabilities")),
    }
}

/// The registry entry.
pub const KIND: Kind = Kind {
    spec: NodeKind {
        name: "ensemble",
        category: Category::Model,
        version: 2,
        sources: &["src/kinds/ensemble.rs", "src/nn/classifier.rs", "src/nn/combine.rs"],
        cached: false,
        doc: "one classifier from its members: mean probabilities, mean logits or a vote",
        params: EnsembleParams::PARAMS,
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
    let members = c.take_models(&mut bound, "models")?;
    if members.iter().any(|(_, net)| net.top() != crate::nn::Top::Softmax) {
        return c.error(
            Diagnostic::new(
                codes::WRONG_TYPE,
                bound.spans["models"],
                "an ensemble combines softmax classifiers; a member has independent per-class outputs",
            )
            .label("includes a model ending in `sigmoid_top` or a membership `rbf`")
            .help("ensemble models that end in a softmax (no `sigmoid_top`; `rbf(..., output: \"softmax\")`)"),
        );
    }
    let net = members[0].1.clone();
    let inputs = members.iter().map(|(id, _)| ("models", *id)).collect();
    Some(Value::Model {
        node: c.push(at, bound.json, inputs),
        net,
    })
}

#[cfg(feature = "compute")]
fn run(x: &mut Executor<'_>, id: crate::check::ir::NodeId) -> Result<Artifact> {
    let combine = crate::exec::params::<EnsembleParams>(&x.node(id).params)?.combine;
    let mut members = Vec::new();
    for m in x.inputs_of(id, "models") {
        members.extend(x.models(m)?.members);
    }
    Ok(Artifact::Models {
        members,
        ensemble: Some(combine),
    })
}
