//! `load(path, net, layout, prefix)`: a model from a safetensors checkpoint, with advpipe's
//! tensor names (`layers.{i}.weight` `[in, out]`, `layers.{i}.bias` `[out]`) or, with
//! `layout: "torch"`, a PyTorch `nn.Sequential`'s `state_dict` (see `nn::checkpoint`).
//! `check` opens the file's header and matches every tensor's name and shape against the
//! net before anything runs. The file's bytes are part of the key; not cached (the file is
//! the artifact).

use super::Kind;
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::diagnostics::{codes, Diagnostic};
use crate::error::{Error, Result};
use crate::estimate::{Estimate, Sizes, F32};
#[cfg(feature = "compute")]
use crate::exec::{params, Artifact, Executor, Runner};
use crate::files::{self, FileKind};
use crate::nn::checkpoint;
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
        /// "advpipe" (layers.{i}.weight [in, out]) or "torch" (an nn.Sequential's state_dict: {i}.weight [out, in])
        #[serde(default)]
        layout: Option<String> = ParamDef::optional(ParamType::Choice(&["advpipe", "torch"])),
        /// with layout "torch": what comes before the index in every name, e.g. "net." (default: nothing)
        #[serde(default)]
        prefix: Option<String> = ParamDef::optional(ParamType::Text),
    }
}

/// The registry entry.
pub const KIND: Kind = Kind {
    spec: NodeKind {
        name: "load",
        category: Category::Model,
        version: 1,
        sources: &["src/kinds/load.rs", "src/nn/checkpoint.rs"],
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
    if let Err(problem) = fits(&bound.json, &net) {
        let at_path = bound.spans.get("path").copied().unwrap_or(at.span);
        return c.error(Diagnostic::new(codes::BAD_DATA, at_path, problem).label("this checkpoint"));
    }
    // Files written before `layout` and `prefix` existed keep their keys.
    for absent in ["layout", "prefix"] {
        if bound.json.get(absent).is_some_and(|v| v.is_null()) {
            bound.json.remove(absent);
        }
    }
    bound.json.insert("net".into(), serde_json::to_value(&net).expect("nets serialize"));
    Some(Value::Model {
        node: c.push(at, bound.json, vec![]),
        net,
    })
}

/// Whether the checkpoint a call names fits its net, from the file's header alone.
fn fits(json: &serde_json::Map<String, serde_json::Value>, net: &crate::nn::NetSpec) -> std::result::Result<(), String> {
    let path = Path::new(json.get("path").and_then(|p| p.as_str()).unwrap_or_default());
    let layout = checkpoint::Layout::parse(json.get("layout").and_then(|l| l.as_str()));
    let prefix = json.get("prefix").and_then(|p| p.as_str()).unwrap_or_default();
    let wants = checkpoint::wanted(net, layout, prefix)?;
    let found = crate::data::arrays::safetensors_tensors(path)
        .map_err(|e| format!("cannot read the checkpoint: {e}"))?
        .into_iter()
        .map(|(name, dtype, shape)| (name, checkpoint::Found { dtype, shape }))
        .collect();
    match checkpoint::mismatch(&found, &wants, layout) {
        Some(problem) => Err(format!("{}: checkpoint does not fit the net: {problem}", path.display())),
        None => Ok(()),
    }
}

#[cfg(feature = "compute")]
fn run(x: &mut Executor<'_>, id: crate::check::ir::NodeId) -> Result<Artifact> {
    let LoadParams { path, net, layout, prefix } = params(&x.node(id).params)?;
    let bytes = files::read(&path, FileKind::Checkpoint)?;
    let layout = checkpoint::Layout::parse(layout.as_deref());
    let model = Model::from_safetensors_as(x.dev(), &bytes, &net, layout, prefix.as_deref().unwrap_or_default())
        .map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
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
