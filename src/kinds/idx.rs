//! `idx(dir, split | images + labels, name, class_names, classes, skip, take, layout)`: a
//! labelled image set in IDX files (plain or `.gz`), such as Fashion-MNIST, KMNIST or EMNIST,
//! from any folder. The checker reads the image header and the labels, so shapes and classes
//! are checked before anything runs; the files' bytes are part of the key; not cached.

use super::{labelled, Kind};
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::data::{idx, mnist, source};
use crate::error::{Error, Result};
use crate::estimate::{Estimate, Sizes};
#[cfg(feature = "compute")]
use crate::exec::{params, Artifact, Executor, Runner};
use crate::params::{Category, ParamDef, ParamType};
use serde::Deserialize;
use std::path::{Path, PathBuf};

crate::declare_params! {
    /// `idx`'s parameters, as its node's canonical JSON holds them.
    #[derive(Clone, Debug, Deserialize)]
    pub struct IdxParams {
        /// the folder holding the files, relative to the working folder
        dir: PathBuf = ParamDef::required(ParamType::Text),
        /// MNIST's file names: "train" reads train-images-idx3-ubyte, "test" t10k-images-idx3-ubyte (plain or .gz)
        split: Option<String> = ParamDef::optional(ParamType::Choice(&["train", "test"])),
        /// the image file's name in dir, instead of split
        images: Option<String> = ParamDef::optional(ParamType::Text),
        /// the label file's name in dir, with images
        labels: Option<String> = ParamDef::optional(ParamType::Text),
        /// the dataset's name in the report (default: the folder's name)
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
        name: "idx",
        category: Category::Data,
        version: 1,
        sources: &[
            "src/kinds/idx.rs",
            "src/kinds/labelled.rs",
            "src/data/source.rs",
            "src/data/idx.rs",
            "src/data/arrays.rs",
            "src/data/mod.rs",
        ],
        cached: false,
        doc: "a labelled image set in IDX files (plain or .gz) from any folder, e.g. Fashion-MNIST",
        params: IdxParams::PARAMS,
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

/// The image and label files a node's parameters name; the error names the argument to blame.
fn files(json: &serde_json::Value) -> Result<(PathBuf, PathBuf), (&'static str, String)> {
    let dir = PathBuf::from(json["dir"].as_str().unwrap_or_default());
    let in_dir = |arg: &'static str, name: &str| {
        mnist::find(&dir, name).ok_or_else(|| (arg, format!("no file {name} (plain or .gz) in {}", dir.display())))
    };
    if !dir.is_dir() {
        return Err(("dir", format!("{} is not a folder", dir.display())));
    }
    match (json["split"].as_str(), json["images"].as_str(), json["labels"].as_str()) {
        (Some(split), None, None) => {
            let (images, labels) = mnist::split_names(split);
            Ok((in_dir("split", &images)?, in_dir("split", &labels)?))
        }
        (None, Some(images), Some(labels)) => Ok((in_dir("images", images)?, in_dir("labels", labels)?)),
        (Some(_), _, _) => Err((
            "split",
            "give either split (MNIST's file names) or images and labels (file names in dir), not both".into(),
        )),
        _ => Err((
            "dir",
            "say which files: split: \"train\" or \"test\" (MNIST's file names), or images: and labels: (file names in dir)".into(),
        )),
    }
}

fn check(c: &mut Checker<'_>, bound: Bound, at: &At<'_>) -> Option<Value> {
    let json = serde_json::Value::Object(bound.json.clone());
    let what = format!("the IDX files in {}", json["dir"].as_str().unwrap_or_default());
    let surveyed = files(&json).and_then(|(images, labels)| {
        let header = idx::peek(&images).map_err(|e| ("dir", e.to_string()))?;
        let labels = idx::read(&labels).map_err(|e| ("dir", e.to_string()))?;
        let header = crate::data::arrays::Header {
            dims: header,
            dtype: crate::data::arrays::Dtype::U8,
        };
        source::survey(&header, &idx::to_array(labels), labelled::layout(&bound.json))
    });
    labelled::check(c, bound, at, surveyed, &what)
}

#[cfg(feature = "compute")]
fn run(x: &mut Executor<'_>, id: crate::check::ir::NodeId) -> Result<Artifact> {
    let json = &x.node(id).params;
    let p: IdxParams = params(json)?;
    let (images, labels) = files(json).map_err(|(_, m)| Error::msg(m))?;
    let images = idx::to_array(idx::read(&images)?);
    let labels = idx::to_array(idx::read(&labels)?);
    let picked = source::Pick {
        skip: p.skip,
        take: p.take,
        classes: p.classes.as_deref(),
    };
    let call = || format!("idx(dir: \"{}\", skip: {}, take: {:?})", p.dir.display(), p.skip, p.take);
    let data = source::assemble(
        &images,
        &labels,
        source::Layout::parse(p.layout.as_deref()),
        &picked,
        p.class_names.as_ref().map(Vec::len),
        &call,
    )?;
    Ok(Artifact::Data(std::sync::Arc::new(data)))
}

/// The two files: their bytes are part of the key.
#[cfg(feature = "compute")]
fn reads(node: &crate::check::ir::Node, _: &Path) -> Result<Vec<PathBuf>> {
    let (images, labels) = files(&node.params).map_err(|(_, m)| Error::msg(m))?;
    Ok(vec![images, labels])
}

fn estimate(sizes: &Sizes) -> Estimate {
    let dims = files(sizes.params).ok().and_then(|(images, _)| idx::peek(&images).ok());
    labelled::estimate(sizes, dims)
}
