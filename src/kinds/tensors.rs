//! `tensors(path, images, labels, name, class_names, classes, skip, take, layout)`: a
//! labelled image set from arrays in a `.npz` (numpy.savez) or `.safetensors` file, so any
//! image classification set (CIFAR-10 exported from numpy or PyTorch) can be brought in.
//! Bytes are scaled to [0, 1], floats taken as they are. The checker reads the image
//! header and the labels; the file's bytes are part of the key; not cached.

use super::{labelled, Kind};
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::data::{arrays, source};
use crate::error::Result;
use crate::estimate::{Estimate, Sizes};
#[cfg(feature = "compute")]
use crate::exec::{params, Artifact, Executor, Runner};
use crate::params::{Category, Default, ParamDef, ParamType};
use serde::Deserialize;
use std::path::{Path, PathBuf};

crate::declare_params! {
    /// `tensors`' parameters, as its node's canonical JSON holds them.
    #[derive(Clone, Debug, Deserialize)]
    pub struct TensorsParams {
        /// the .npz or .safetensors file, relative to the working folder
        path: PathBuf = ParamDef::required(ParamType::Text),
        /// the image array's name in the file: [n, features], [n, h, w] or [n, c, h, w] / [n, h, w, c]
        images: String = ParamDef::or(ParamType::Text, Default::Str("images")),
        /// the label array's name in the file: [n] integers from 0
        labels: String = ParamDef::or(ParamType::Text, Default::Str("labels")),
        /// the dataset's name in the report (default: the file's name)
        name: Option<String> = labelled::NAME,
        /// a name per class, in label order, shown in example grids and the report
        class_names: Option<Vec<String>> = labelled::CLASS_NAMES,
        /// keep only these classes, relabelled 0, 1, ... (default: all)
        #[serde(default)]
        classes: Option<Vec<usize>> = ParamDef::optional(ParamType::Classes),
        /// examples dropped from the front
        skip: usize = labelled::SKIP,
        /// examples kept after skip (default: all)
        take: Option<usize> = labelled::TAKE,
        /// the order of 4-dimensional images: "nchw" (channels first) or "nhwc" (channels last)
        layout: Option<String> = labelled::LAYOUT,
    }
}

/// The registry entry.
pub const KIND: Kind = Kind {
    spec: NodeKind {
        name: "tensors",
        category: Category::Data,
        version: 1,
        sources: &[
            "src/kinds/tensors.rs",
            "src/kinds/labelled.rs",
            "src/data/source.rs",
            "src/data/arrays.rs",
            "src/data/mod.rs",
        ],
        cached: false,
        doc: "a labelled image set from arrays in a .npz (numpy.savez) or .safetensors file",
        params: TensorsParams::PARAMS,
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

fn names(json: &serde_json::Map<String, serde_json::Value>) -> (PathBuf, String, String) {
    let text = |k: &str, d: &str| json.get(k).and_then(|v| v.as_str()).unwrap_or(d).to_string();
    (PathBuf::from(text("path", "")), text("images", "images"), text("labels", "labels"))
}

fn check(c: &mut Checker<'_>, bound: Bound, at: &At<'_>) -> Option<Value> {
    let (path, images, labels) = names(&bound.json);
    let what = format!("{}", path.display());
    let surveyed = (|| {
        arrays::Container::of(&path).map_err(|m| ("path", m))?;
        let header = arrays::peek(&path, &images).map_err(|e| blame(e.to_string(), &images, "images"))?;
        let labels = arrays::read(&path, &labels).map_err(|e| blame(e.to_string(), &labels, "labels"))?;
        source::survey(&header, &labels, labelled::layout(&bound.json))
    })();
    labelled::check(c, bound, at, surveyed, &what)
}

/// A missing array is the `images`/`labels` argument's fault; anything else the file's.
fn blame(message: String, array: &str, arg: &'static str) -> (&'static str, String) {
    if message.contains(&format!("no array named `{array}`")) {
        (arg, message)
    } else {
        ("path", message)
    }
}

#[cfg(feature = "compute")]
fn run(x: &mut Executor<'_>, id: crate::check::ir::NodeId) -> Result<Artifact> {
    let p: TensorsParams = params(&x.node(id).params)?;
    let images = arrays::read(&p.path, &p.images)?;
    let labels = arrays::read(&p.path, &p.labels)?;
    let picked = source::Pick {
        skip: p.skip,
        take: p.take,
        classes: p.classes.as_deref(),
    };
    let call = || format!("tensors(path: \"{}\", skip: {}, take: {:?})", p.path.display(), p.skip, p.take);
    let layout = source::Layout::parse(p.layout.as_deref());
    let data = source::assemble(&images, &labels, layout, &picked, p.class_names.as_ref().map(Vec::len), &call)
        .map_err(|e| crate::error::Error::msg(format!("{}: {e}", p.path.display())))?;
    Ok(Artifact::Data(std::sync::Arc::new(data)))
}

/// The file: its bytes are part of the key.
#[cfg(feature = "compute")]
fn reads(node: &crate::check::ir::Node, _: &Path) -> Result<Vec<PathBuf>> {
    Ok(vec![params::<TensorsParams>(&node.params)?.path])
}

fn estimate(sizes: &Sizes) -> Estimate {
    let dims = sizes.params.as_object().and_then(|json| {
        let (path, images, _) = names(json);
        Some(arrays::peek(&path, &images).ok()?.dims)
    });
    labelled::estimate(sizes, dims)
}
