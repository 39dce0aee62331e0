//! `load(path, net)`: a model from a safetensors checkpoint with advpipe's tensor names
//! (`layers.{i}.weight` `[in, out]`, `layers.{i}.bias` `[out]`), from advpipe or any other
//! tool. The file's bytes are part of the key; not cached (the file is the artifact).

use super::Kind;
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::diagnostics::{codes, Diagnostic};
use crate::error::{Error, Result};
use crate::estimate::{Estimate, Sizes, F32};
#[cfg(feature = "compute")]
use crate::exec::{params, Artifact, Executor, Runner};
use crate::files::{self, FileKind};
#[cfg(feature = "compute")]
use crate::nn::Model;
use crate::params::{Category, ParamDef, ParamType};
use std::path::{Path, PathBuf};
use std::sync::Arc;

crate::declare_params! {
    /// `load`'s parameters, as its node's canonical JSON holds them.
    #[derive(Clone, Debug, serde::Deserialize)]
    pub struct LoadParams {
        /// the .safetensors file, relative to the working folder
        path: PathBuf = ParamDef::required(ParamType::Text),
        /// the architecture the tensors belong to
        net: crate::nn::NetSpec = ParamDef::required(ParamType::Net),
    }
}

/// The registry entry.
pub const KIND: Kind = Kind {
    spec: NodeKind {
        name: "load",
        category: Category::Model,
        version: 1,
        sources: &["src/kinds/load.rs"],
        cached: false,
        doc: "a model from a safetensors file with advpipe's tensor names (layers.{i}.weight [in, out], layers.{i}.bias [out])",
        params: LoadParams::PARAMS,
        check,
    },
    #[cfg(feature = "compute")]
    runner: Runner {
        run,
        reads: Some(reads),
        prepare: None,
    },
    estimate,
};

fn check(c: &mut Checker<'_>, mut bound: Bound, at: &At<'_>) -> Option<Value> {
    let Some(Value::Net(net)) = bound.values.remove("net") else {
        return None;
    };
    if net.layers.is_empty() {
        return c
            .error(Diagnostic::new(codes::WRONG_TYPE, bound.spans["net"], "a net without layers has nothing to load").label("no layers"));
    }
    bound.json.insert("net".into(), serde_json::to_value(&net).expect("nets serialize"));
    Some(Value::Model {
        node: c.push(at, bound.json, vec![]),
        net,
    })
}

#[cfg(feature = "compute")]
fn run(x: &mut Executor<'_>, id: crate::check::ir::NodeId) -> Result<Artifact> {
    let LoadParams { path, net } = params(&x.node(id).params)?;
    let bytes = files::read(&path, FileKind::Checkpoint)?;
    let model = Model::from_safetensors_for(x.dev(), &bytes, &net).map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
    Ok(Artifact::Models {
        members: vec![Arc::new(model)],
        ensemble: None,
    })
}

#[cfg(feature = "compute")]
fn reads(node: &crate::check::ir::Node, _: &Path) -> Result<Vec<PathBuf>> {
    Ok(vec![params::<LoadParams>(&node.params)?.path])
}

fn estimate(sizes: &Sizes) -> Estimate {
    Estimate {
        memory: 2.0 * sizes.net_params * F32,
        params: sizes.net_params,
        data: None,
        gradients: None,
    }
}
