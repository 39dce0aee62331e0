//! Artifacts in memory and their files in the cache.
//!
//! A model is `model.safetensors` (see `nn::model` for tensor names) plus `training.json`
//! (parameters, the training curve, best epoch, wall time); a crafted example set is
//! `examples.safetensors` (`images`: f32 `[n, ...shape]`, `labels`: u8 `[n]`, the number
//! of classes in the metadata under `advpipe.classes`); an evaluation is `metrics.json`
//! (metric name -> value).

use crate::check::kinds::NodeKind;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval::MetricMap;
use crate::nn::model::{f32s_from_le, f32s_to_le};
use crate::nn::{Dev, Model};
use crate::params::Category;
use crate::train::{FitParams, FitSummary};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A node's output.
// One value per node: the size difference between variants costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
pub enum Artifact {
    /// A dataset: read, sampled or crafted.
    Data(Arc<Dataset>),
    /// A trained model and how it was trained.
    Model {
        /// The model.
        model: Arc<Model>,
        /// How it was trained.
        params: FitParams,
        /// The training curve and where it stopped.
        summary: FitSummary,
    },
    /// Models not trained here: a loaded checkpoint (one member, `ensemble: None`) or an
    /// ensemble's members.
    Models {
        /// The models.
        members: Vec<Arc<Model>>,
        /// How they are combined, for an ensemble.
        ensemble: Option<crate::nn::Combine>,
    },
    /// An evaluation's metrics.
    Metrics(MetricMap),
    /// Examples for the report.
    Examples(crate::eval::ExampleSet),
    /// First-layer weights for the report.
    Figure(crate::eval::weights::WeightsFigure),
    /// Files for other tools, by their name in the cache entry (one of [`EXPORT_FILES`]);
    /// the report copies them into the results folder.
    Export(Vec<(&'static str, Vec<u8>)>),
}

/// The files an `export` node stores: the tensors, and the model as a PyTorch state_dict.
pub const EXPORT_FILES: [&str; 2] = ["export.safetensors", "model.torch.safetensors"];

#[derive(Serialize, Deserialize)]
struct TrainingRecord {
    params: FitParams,
    summary: FitSummary,
    seconds: f64,
}

impl Artifact {
    /// The files to store.
    pub fn encode(&self, seconds: f64) -> Result<Vec<(&'static str, Vec<u8>)>> {
        match self {
            Artifact::Model { model, params, summary } => {
                let weights = model.to_safetensors(&[("advpipe.seed", params.seed.to_string())])?;
                let record = TrainingRecord {
                    params: params.clone(),
                    summary: summary.clone(),
                    seconds,
                };
                Ok(vec![("model.safetensors", weights), ("training.json", to_json(&record)?)])
            }
            Artifact::Metrics(m) => Ok(vec![("metrics.json", to_json(m)?)]),
            Artifact::Examples(e) => Ok(vec![("examples.json", to_json(e)?)]),
            Artifact::Figure(f) => Ok(vec![("figure.json", to_json(f)?)]),
            Artifact::Export(files) => Ok(files.clone()),
            Artifact::Data(d) => Ok(vec![("examples.safetensors", encode_dataset(d)?)]),
            Artifact::Models { .. } => Err(Error::msg("loaded models and ensembles are not cached")),
        }
    }

    /// Reads back what [`Artifact::encode`] wrote for a node of `kind`.
    pub fn decode(kind: &NodeKind, dev: &Dev, files: &BTreeMap<String, Vec<u8>>) -> Result<Artifact> {
        let file = |name: &str| files.get(name).ok_or_else(|| Error::msg(format!("{name} missing")));
        match kind.category {
            Category::Model => {
                let model = Model::from_safetensors(dev, file("model.safetensors")?)?;
                let record: TrainingRecord = serde_json::from_slice(file("training.json")?).map_err(|e| Error::msg(e.to_string()))?;
                Ok(Artifact::Model {
                    model: Arc::new(model),
                    params: record.params,
                    summary: record.summary,
                })
            }
            Category::Eval => Ok(Artifact::Metrics(
                serde_json::from_slice(file("metrics.json")?).map_err(|e| Error::msg(e.to_string()))?,
            )),
            Category::Examples => Ok(Artifact::Examples(
                serde_json::from_slice(file("examples.json")?).map_err(|e| Error::msg(e.to_string()))?,
            )),
            Category::Figure => Ok(Artifact::Figure(
                serde_json::from_slice(file("figure.json")?).map_err(|e| Error::msg(e.to_string()))?,
            )),
            Category::Data => Ok(Artifact::Data(Arc::new(decode_dataset(file("examples.safetensors")?)?))),
            Category::Export => {
                file(EXPORT_FILES[0])?;
                let stored = EXPORT_FILES.iter().filter_map(|n| Some((*n, files.get(*n)?.clone()))).collect();
                Ok(Artifact::Export(stored))
            }
            other => Err(Error::msg(format!("{} nodes are not cached", other.word()))),
        }
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| Error::msg(e.to_string()))
}

fn encode_dataset(d: &Dataset) -> Result<Vec<u8>> {
    use ::safetensors::{tensor::TensorView, Dtype};
    let images = f32s_to_le(&d.images);
    let mut shape = vec![d.len()];
    shape.extend(&d.shape);
    let views = vec![
        (
            "images".to_string(),
            TensorView::new(Dtype::F32, shape, &images).map_err(|e| Error::msg(format!("{e:?}")))?,
        ),
        (
            "labels".to_string(),
            TensorView::new(Dtype::U8, vec![d.len()], &d.labels).map_err(|e| Error::msg(format!("{e:?}")))?,
        ),
    ];
    let meta = HashMap::from([("advpipe.classes".to_string(), d.classes.to_string())]);
    ::safetensors::serialize(views, &Some(meta)).map_err(|e| Error::msg(format!("writing safetensors: {e}")))
}

fn decode_dataset(bytes: &[u8]) -> Result<Dataset> {
    let bad = |what: String| Error::msg(format!("not an advpipe example set: {what}"));
    let (_, header) = ::safetensors::SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
    let classes = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get("advpipe.classes"))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no advpipe.classes".into()))?;
    let st = ::safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
    let images = st.tensor("images").map_err(|e| bad(e.to_string()))?;
    let labels = st.tensor("labels").map_err(|e| bad(e.to_string()))?;
    Ok(Dataset {
        images: f32s_from_le(images.data()),
        labels: labels.data().to_vec(),
        shape: images.shape()[1..].to_vec(),
        classes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_sets_round_trip_exactly() {
        let d = Dataset {
            images: vec![0.1, -2.5, f32::MIN_POSITIVE, 1.0],
            labels: vec![3, 7],
            shape: vec![1, 2],
            classes: 10,
        };
        assert_eq!(decode_dataset(&encode_dataset(&d).unwrap()).unwrap(), d);
    }
}
