//! `gaussian(n, shape, classes)`: n samples of N(0, I), labelled 0: inputs of no class,
//! which the paper's appendix A feeds to models to count "rubbish" predictions.

use super::{Kind, NODE_SEED};
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::error::Result;
use crate::estimate::{DataShape, Estimate, Sizes};
#[cfg(feature = "compute")]
use crate::exec::{params, Artifact, Executor, Runner};
use crate::params::{Category, Default, ParamDef, ParamType};
use serde_json::json;
use std::sync::Arc;

crate::declare_params! {
    /// `gaussian`'s parameters, as its node's canonical JSON holds them.
    #[derive(Clone, Debug, serde::Deserialize)]
    pub struct GaussianParams {
        /// how many samples
        n: usize = ParamDef::required(ParamType::Int).range(1.0, 1.0e6),
        /// one sample's shape (default [1, 28, 28])
        shape: Option<Vec<usize>> = ParamDef::optional(ParamType::Shape),
        /// classes of the models it is fed to
        classes: usize = ParamDef::or(ParamType::Int, Default::Int(10)).range(2.0, 100000.0),
        /// seed of random attacks and noise (default: the file's seed)
        seed: Option<u64> = NODE_SEED,
    }
}

/// The registry entry.
pub const KIND: Kind = Kind {
    spec: NodeKind {
        name: "gaussian",
        category: Category::Data,
        version: 1,
        sources: &["src/kinds/gaussian.rs", "src/data/mod.rs"],
        cached: false,
        doc: "n samples of N(0, I) in a given shape, labelled 0 (inputs of no class, for rubbish)",
        params: GaussianParams::PARAMS,
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
    if bound.json["shape"].is_null() {
        bound.json["shape"] = json!([1, 28, 28]);
    }
    let shape: Vec<usize> = serde_json::from_value(bound.json["shape"].clone()).ok()?;
    let classes = bound.json["classes"].as_u64().unwrap_or(10) as usize;
    let node = c.push(at, bound.json, vec![]);
    Some(Value::Data { node, shape, classes })
}

#[cfg(feature = "compute")]
fn run(x: &mut Executor<'_>, id: crate::check::ir::NodeId) -> Result<Artifact> {
    let p: GaussianParams = params(&x.node(id).params)?;
    let shape = p.shape.unwrap_or_else(|| vec![1, 28, 28]);
    Ok(Artifact::Data(Arc::new(crate::data::gaussian(p.n, &shape, p.classes, x.seed(id))?)))
}

fn estimate(sizes: &Sizes) -> Estimate {
    let width = sizes.params["shape"]
        .as_array()
        .map_or(784.0, |s| s.iter().filter_map(|d| d.as_f64()).product());
    let data = DataShape {
        examples: sizes.number("n", 1.0),
        width,
    };
    Estimate {
        memory: data.bytes(),
        params: 0.0,
        data: Some(data),
        gradients: None,
    }
}
