//! `ensemble([m1, m2, ...])`: one classifier predicting its members' mean softmax
//! probability. Not cached: it only groups models made elsewhere.

use super::Kind;
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::diagnostics::{codes, Diagnostic};
use crate::error::Result;
use crate::estimate::scoring_rule;
#[cfg(feature = "compute")]
use crate::exec::{Artifact, Executor, Runner};
use crate::params::{Category, ParamDef, ParamType};

crate::declare_params! {
    /// `ensemble`'s parameters.
    #[derive(Clone, Debug, serde::Deserialize)]
    pub struct EnsembleParams {
        /// the members, e.g. [m1, m2, m3]
        #[serde(default)]
        models: crate::params::Input = ParamDef::required(ParamType::ModelList),
    }
}

/// The registry entry.
pub const KIND: Kind = Kind {
    spec: NodeKind {
        name: "ensemble",
        category: Category::Model,
        version: 1,
        sources: &["src/kinds/ensemble.rs", "src/nn/classifier.rs"],
        cached: false,
        doc: "average the members' softmax probabilities",
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
                "an ensemble averages softmax probabilities; a member has a sigmoid top",
            )
            .label("includes a sigmoid-top model")
            .help("ensemble models that end in a softmax (no `sigmoid_top`)"),
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
    let mut members = Vec::new();
    for m in x.inputs_of(id, "models") {
        members.extend(x.models(m)?.members);
    }
    Ok(Artifact::Models { members, ensemble: true })
}
