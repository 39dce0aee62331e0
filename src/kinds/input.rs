//! `input([1, 28, 28])`: the start of a layer stack. It makes no node: its value is a net
//! with no layers yet, which `>>` extends.

use super::Kind;
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::error::{Error, Result};
use crate::estimate::{Estimate, Sizes};
#[cfg(feature = "compute")]
use crate::exec::{Artifact, Executor, Runner};
use crate::nn::NetSpec;
use crate::params::{Category, ParamDef, ParamType};

crate::declare_params! {
    /// `input`'s parameters.
    #[derive(Clone, Debug, serde::Deserialize)]
    pub struct InputParams {
        /// one example's shape, e.g. [1, 28, 28]
        shape: Vec<usize> = ParamDef::required(ParamType::Shape),
    }
}

/// The registry entry.
pub const KIND: Kind = Kind {
    spec: NodeKind {
        name: "input",
        category: Category::Net,
        version: 1,
        sources: &["src/kinds/input.rs"],
        cached: false,
        doc: "the start of a net: the shape of one example",
        params: InputParams::PARAMS,
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

fn check(_: &mut Checker<'_>, bound: Bound, _: &At<'_>) -> Option<Value> {
    let shape: Vec<usize> = serde_json::from_value(bound.json["shape"].clone()).ok()?;
    Some(Value::Net(NetSpec {
        input: shape,
        layers: vec![],
    }))
}

#[cfg(feature = "compute")]
fn run(_: &mut Executor<'_>, _: crate::check::ir::NodeId) -> Result<Artifact> {
    Err(Error::msg("`input` starts a net; it is never a node"))
}

fn estimate(_: &Sizes) -> Estimate {
    Estimate::default()
}
