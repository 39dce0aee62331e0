//! Artifacts in memory and their files in the cache.
//!
//! A model is `model.safetensors` (see `nn::model` for tensor names) plus `training.json`
//! (parameters, the training curve, best epoch, wall time); an evaluation is `metrics.json`.

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval::Metrics;
use crate::nn::train::{FitParams, FitSummary};
use crate::nn::{Dev, Model};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A node's output.
// One value per node: the size difference between variants costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
pub enum Artifact {

    /// A loaded dataset (never stored).
    Data(Arc<Dataset>),
    /// A trained model and how it was trained.
    Model {
        model: Arc<Model>,
        params: FitParams,
        summary: FitSummary,
    },
    /// An evaluation's metrics.
    Metrics(Metrics),
}

#[derive(Serialize, Deserialize)]
struct TrainingRecord {
    params: FitParams,
    summary: FitSummary,
    seconds: f64,
}

impl Artifact {
    /// The metrics, if this is an evaluation.
    pub fn metrics(&self) -> Option<&Metrics> {
        match self {
            Artifact::Metrics(m) => Some(m),
            _ => None,
        }
    }

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
            Artifact::Data(_) => Err(Error::msg("datasets are not cached")),
        }
    }

    /// Reads back what [`Artifact::encode`] wrote for a node of `kind`.
    pub fn decode(kind: &str, dev: &Dev, files: &BTreeMap<String, Vec<u8>>) -> Result<Artifact> {
        let file = |name: &str| files.get(name).ok_or_else(|| Error::msg(format!("{name} missing")));
        match kind {
            "fit" => {
                let model = Model::from_safetensors(dev, file("model.safetensors")?)?;
                let record: TrainingRecord = serde_json::from_slice(file("training.json")?).map_err(|e| Error::msg(e.to_string()))?;
                Ok(Artifact::Model {
                    model: Arc::new(model),
                    params: record.params,
                    summary: record.summary,
                })
            }
            "evaluate" => Ok(Artifact::Metrics(
                serde_json::from_slice(file("metrics.json")?).map_err(|e| Error::msg(e.to_string()))?,
            )),
            other => Err(Error::msg(format!("{other} nodes are not cached"))),
        }
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| Error::msg(e.to_string()))
}
