//! `export(data, model)`: tensors for numpy and PyTorch, written into the results folder as
//! `export-NAME.safetensors`: the examples (`images` `[n, c, h, w]` f32 as advpipe computed
//! on them, `labels` `[n]` i64) and, with a model, its `logits` `[n, classes]` f32 and
//! `predictions` `[n]` i64. A crafted set (`craft(...)`) exports its adversarial examples.
//! With a model whose every layer has a PyTorch module, `export-NAME.torch.safetensors`
//! holds its parameters as an `nn.Sequential`'s `state_dict` (advpipe -> PyTorch; `load`
//! with `layout: "torch"` is the way back). Cached like any result.

use super::{Kind, EVAL_BATCH};
use crate::check::{At, Bound, Checker, NodeKind, Value};
use crate::error::Result;
use crate::estimate::{scoring_rule, Estimate, Sizes};
#[cfg(feature = "compute")]
use crate::exec::{artifacts::EXPORT_FILES, params, Artifact, Executor, Runner};
use crate::params::{Category, Input, ParamDef, ParamType};

crate::declare_params! {
    /// `export`'s parameters, as its node's canonical JSON holds them.
    #[derive(Clone, Debug, serde::Deserialize)]
    pub struct ExportParams {
        /// the examples written (a crafted set writes its adversarial examples)
        #[serde(default)]
        data: Input = ParamDef::required(ParamType::Dataset),
        /// a model whose logits and predictions are written beside them, and its weights in PyTorch's layout
        #[serde(default)]
        model: Input = ParamDef::optional(ParamType::Model),
        /// examples per batch (bounds memory)
        batch: usize = EVAL_BATCH,
    }
}

/// The registry entry.
pub const KIND: Kind = Kind {
    spec: NodeKind {
        name: "export",
        category: Category::Export,
        version: 1,
        sources: &["src/kinds/export.rs", "src/exec/artifacts.rs", "src/nn/checkpoint.rs"],
        cached: true,
        doc: "examples, labels and (with a model) logits and predictions as safetensors for numpy and PyTorch (export-NAME.safetensors), and the model's weights as a PyTorch state_dict",
        params: ExportParams::PARAMS,
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
    let (data, shape, classes) = c.take_data(&mut bound, "data")?;
    let mut inputs = vec![("data", data)];
    if let Some((model, net)) = c.take_model(&mut bound, "model") {
        c.fits(&net, &shape, classes, bound.spans["model"], bound.spans["data"])?;
        inputs.push(("model", model));
    }
    c.push(at, bound.json, inputs);
    Some(Value::Export)
}

#[cfg(feature = "compute")]
fn run(x: &mut Executor<'_>, id: crate::check::ir::NodeId) -> Result<Artifact> {
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    let data = x.data(x.input(id, "data")?)?;
    let batch = params::<ExportParams>(&x.node(id).params)?.batch;
    let n = data.len();
    let mut shape = vec![n];
    shape.extend(&data.shape);
    let floats = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    let longs = |v: &mut dyn Iterator<Item = usize>| v.flat_map(|l| (l as i64).to_le_bytes()).collect::<Vec<u8>>();
    let mut tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
        ("images", Dtype::F32, shape, floats(&data.images)),
        ("labels", Dtype::I64, vec![n], longs(&mut data.labels.iter().map(|&l| l as usize))),
    ];
    let mut files = Vec::new();
    if let Some(model) = x.optional_input(id, "model") {
        let models = x.models(model)?;
        let bar = x.examples_progress(id, n as u64);
        let logits = crate::eval::logits_of(x.dev(), models.classifier(), &data, batch, &mut |done, _| {
            bar.set_position(done as u64)
        });
        bar.finish();
        let classes = logits.len() / n.max(1);
        let predictions = longs(&mut logits.chunks(classes.max(1)).map(crate::tensor::argmax));
        tensors.push(("logits", Dtype::F32, vec![n, classes], floats(&logits)));
        tensors.push(("predictions", Dtype::I64, vec![n], predictions));
        // One model (not an ensemble) whose layers all have PyTorch modules.
        if let [member] = models.members.as_slice() {
            if let Ok(weights) = member.to_torch_safetensors() {
                files.push((EXPORT_FILES[1], weights));
            }
        }
    }
    let views: Vec<(&str, TensorView)> = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| (*name, TensorView::new(*dtype, shape.clone(), bytes).expect("shape and bytes agree")))
        .collect();
    let bytes = safetensors::tensor::serialize(views, &None).map_err(|e| crate::Error::msg(format!("writing the export: {e:?}")))?;
    files.insert(0, (EXPORT_FILES[0], bytes));
    Ok(Artifact::Export(files))
}

fn estimate(sizes: &Sizes) -> Estimate {
    Estimate {
        // The file is built in memory beside the data.
        memory: scoring_rule(sizes).memory + 2.0 * sizes.data_bytes(),
        ..scoring_rule(sizes)
    }
}
