//! `gaussian(n, shape, classes)`: n samples of N(0, I), labelled 0: inputs of no class,
//! which the paper's appendix A feeds to models to count "rubbish" predictions.

use super::{Kind, NODE_SEED};
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::error::Result;
use crate::estimate::{DataShape, Estimate, Sizes};
use crate::exec::{params, Artifact, Executor, Runner};
use crate::params::{Category, Default, ParamSpec, ParamType};
use serde_json::json;
use std::sync::Arc;

/// The registry entry.
pub const KIND: Kind = Kind {
    spec: NodeKind {
        name: "gaussian",
        category: Category::Data,
        version: 1,
        sources: &["src/kinds/gaussian.rs", "src/data/mod.rs"],
        cached: false,
        doc: "n samples of N(0, I) in a given shape, labelled 0 (inputs of no class, for rubbish)",
        params: &[
            ParamSpec::required("n", ParamType::Int, "how many samples").range(1.0, 1.0e6),
            ParamSpec::with_default(
                "shape",
                ParamType::Shape,
                Default::Optional,
                "one sample's shape (default [1, 28, 28])",
            ),
            ParamSpec::with_default("classes", ParamType::Int, Default::Int(10), "classes of the models it is fed to").range(2.0, 100000.0),
            NODE_SEED,
        ],
        check,
    },
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

fn run(x: &mut Executor<'_>, id: crate::check::ir::NodeId) -> Result<Artifact> {
    let p = &x.node(id).params;
    let n = p["n"].as_u64().unwrap_or(1) as usize;
    let shape: Vec<usize> = params(&p["shape"])?;
    let classes = p["classes"].as_u64().unwrap_or(10) as usize;
    Ok(Artifact::Data(Arc::new(crate::data::gaussian(n, &shape, classes, x.seed(id))?)))
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
