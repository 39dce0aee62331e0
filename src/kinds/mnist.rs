//! `mnist(split, skip, take, classes)`: MNIST digits, [1, 28, 28] in [0, 1], 10 classes (or
//! the `classes` kept, relabelled 0, 1, ...). Read from the data folder, which is fetched
//! once before anything runs; not cached (reading is cheaper than a cache entry).

use super::Kind;
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::data::{mnist, MnistParams};
use crate::error::Result;
use crate::estimate::{DataShape, Estimate, Sizes};
#[cfg(feature = "compute")]
use crate::exec::{params, Artifact, Executor, Runner};
use crate::params::Category;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The registry entry.
pub const KIND: Kind = Kind {
    spec: NodeKind {
        name: "mnist",
        category: Category::Data,
        version: 1,
        sources: &["src/kinds/mnist.rs", "src/data/mnist.rs", "src/data/idx.rs", "src/data/mod.rs"],
        cached: false,
        doc: "MNIST digits, [1, 28, 28] in [0, 1], 10 classes",
        params: MnistParams::PARAMS,
        check,
    },
    #[cfg(feature = "compute")]
    runner: Runner {
        run,
        reads: Some(reads),
        prepare: Some(prepare),
    },
    estimate,
};

fn check(c: &mut Checker<'_>, bound: Bound, at: &At<'_>) -> Option<Value> {
    let split = bound.json["split"].as_str().unwrap_or("train");
    let what = format!("the MNIST {split} split");
    super::labelled::examples_fit(c, &bound, at, mnist::split_size(split), &what)?;
    let classes = bound.json["classes"].as_array().map_or(10, Vec::len);
    let node = c.push(at, bound.json, vec![]);
    Some(Value::Data {
        node,
        shape: vec![1, 28, 28],
        classes,
    })
}

#[cfg(feature = "compute")]
fn run(x: &mut Executor<'_>, id: crate::check::ir::NodeId) -> Result<Artifact> {
    let params: MnistParams = params(&x.node(id).params)?;
    Ok(Artifact::Data(Arc::new(mnist::load(x.data_dir(), &params)?)))
}

/// The split's two files: their bytes are part of the key.
fn reads(node: &crate::check::ir::Node, data_dir: &Path) -> Result<Vec<PathBuf>> {
    let (images, labels) = mnist::split_files(data_dir, node.params["split"].as_str().unwrap_or("train"))?;
    Ok(vec![images, labels])
}

fn prepare(data_dir: &Path, log: &mut dyn FnMut(&str)) -> Result<()> {
    mnist::ensure(data_dir, log).map(|_| ())
}

fn estimate(sizes: &Sizes) -> Estimate {
    let split = if sizes.params["split"] == "train" { 60_000.0 } else { 10_000.0 };
    let examples = sizes
        .params
        .get("take")
        .and_then(|t| t.as_f64())
        .unwrap_or(split - sizes.number("skip", 0.0));
    let data = DataShape { examples, width: 784.0 };
    Estimate {
        // The IDX bytes of the whole split are read before the examples are chosen.
        memory: data.bytes() + split * 785.0,
        params: 0.0,
        data: Some(data),
        gradients: None,
    }
}
