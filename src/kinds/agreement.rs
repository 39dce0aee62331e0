//! `agreement(source, other, data, over)`: section 8's class agreement: how often `other`
//! predicts the class `source` predicts, over the examples `over` picks.

use super::{Kind, EVAL_BATCH};
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::error::Result;
use crate::estimate::scoring_rule;
#[cfg(feature = "compute")]
use crate::exec::{params, Artifact, Executor, Runner};
use crate::params::{Category, Default, ParamType};
use crate::params::{Input, ParamDef};

crate::declare_params! {
    /// `agreement`'s parameters, as its node's canonical JSON holds them.
    #[derive(Clone, Debug, serde::Deserialize)]
    pub struct AgreementParams {
        /// the reference model
        #[serde(default)]
        source: Input = ParamDef::required(ParamType::Model),
        /// the model compared with it
        #[serde(default)]
        other: Input = ParamDef::required(ParamType::Model),
        /// the examples (often a crafted set)
        #[serde(default)]
        data: Input = ParamDef::required(ParamType::Dataset),
        /// which examples count: those source gets wrong, those both get wrong, or all
        over: crate::eval::Over = ParamDef::or(ParamType::Choice(&["source_wrong", "both_wrong", "all"]), Default::Str("source_wrong")),
        /// examples per batch (bounds memory)
        batch: usize = EVAL_BATCH,
    }
}

/// The registry entry.
pub const KIND: Kind = Kind {
    spec: NodeKind {
        name: "agreement",
        category: Category::Eval,
        version: 3,
        sources: &["src/kinds/agreement.rs", "src/eval/mod.rs"],
        cached: true,
        doc: "how often `other` predicts the class `source` predicts (metrics: rate, examples)",
        params: AgreementParams::PARAMS,
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
    let (source, net) = c.take_model(&mut bound, "source")?;
    let (other, other_net) = c.take_model(&mut bound, "other")?;
    let (data, shape, classes) = c.take_data(&mut bound, "data")?;
    c.fits(&net, &shape, classes, bound.spans["source"], bound.spans["data"])?;
    c.fits(&other_net, &shape, classes, bound.spans["other"], bound.spans["data"])?;
    let fields = ["rate".into(), "examples".into()].into();
    Some(Value::Metrics {
        node: c.push(at, bound.json, vec![("source", source), ("other", other), ("data", data)]),
        fields,
    })
}

#[cfg(feature = "compute")]
fn run(x: &mut Executor<'_>, id: crate::check::ir::NodeId) -> Result<Artifact> {
    let source = x.models(x.input(id, "source")?)?;
    let other = x.models(x.input(id, "other")?)?;
    let data = x.data(x.input(id, "data")?)?;
    let p: AgreementParams = params(&x.node(id).params)?;
    Ok(Artifact::Metrics(crate::eval::agreement(
        x.dev(),
        source.classifier(),
        other.classifier(),
        &data,
        p.over,
        p.batch,
    )))
}
