//! Datasets: the in-memory form every node computes on, and where the images come from.
//!
//! [`idx`] reads the IDX format (plain or `.gz`); [`mnist`] locates MNIST's four files in
//! the data folder and, when they are missing, fetches and verifies them.

pub mod arrays;
pub mod idx;
pub mod mnist;
pub mod source;

use crate::params::{Default, ParamDef, ParamType};
use serde::Deserialize;

/// Labelled examples, pixels scaled to [0, 1], one row per example.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `len() * width()` pixel values, row-major.
    pub images: Vec<f32>,
    /// One class index per example.
    pub labels: Vec<u8>,
    /// The shape of one example, e.g. `[1, 28, 28]`.
    pub shape: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
}

impl Dataset {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Values per example.
    pub fn width(&self) -> usize {
        self.shape.iter().product()
    }
    /// This dataset followed by `other` (same shape and classes).
    pub fn concat(&self, other: &Dataset) -> crate::error::Result<Dataset> {
        if self.shape != other.shape || self.classes != other.classes {
            return Err(crate::error::Error::msg("cannot join datasets of different shapes or classes"));
        }
        let mut joined = self.clone();
        joined.images.extend_from_slice(&other.images);
        joined.labels.extend_from_slice(&other.labels);
        Ok(joined)
    }

    /// The pixels of examples `start..end`.
    pub fn images_of(&self, range: std::ops::Range<usize>) -> &[f32] {
        let w = self.width();
        &self.images[range.start * w..range.end * w]
    }
}

crate::declare_params! {
    /// The `mnist(...)` node's parameters.
    #[derive(Clone, Debug, Deserialize)]
    pub struct MnistParams {
        /// which file pair: 60,000 train or 10,000 test
        split: String = ParamDef::required(ParamType::Choice(&["train", "test"])),
        /// examples dropped from the front
        skip: usize = ParamDef::or(ParamType::Int, Default::Int(0)).range(0.0, 60000.0),
        /// examples kept after skip (default: all)
        take: Option<usize> = ParamDef::optional(ParamType::Int).range(1.0, 60000.0),
        /// keep only these digits, e.g. [3, 7], relabelled 0, 1, ... (default: all)
        #[serde(default)]
        classes: Option<Vec<usize>> = ParamDef::optional(ParamType::Classes),
    }
}

/// `n` samples of N(0, I) with the given shape, all labelled 0: inputs that belong to no
/// class (the paper's appendix A feeds them to models to count "rubbish" predictions).
pub fn gaussian(n: usize, shape: &[usize], classes: usize, seed: u64) -> crate::Result<Dataset> {
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let len = shape
        .iter()
        .try_fold(n, |total, &d| total.checked_mul(d))
        .ok_or_else(|| crate::Error::msg("the noise set's size overflows"))?;
    let mut images = try_buffer(len)?;
    images.extend((0..len).map(|_| -> f32 { StandardNormal.sample(&mut rng) }));
    Ok(Dataset {
        images,
        labels: vec![0; n],
        shape: shape.to_vec(),
        classes,
    })
}

/// An empty buffer for `len` values, or an error instead of an abort when memory is short.
pub fn try_buffer(len: usize) -> crate::Result<Vec<f32>> {
    let mut buffer = Vec::new();
    buffer.try_reserve_exact(len).map_err(|_| {
        crate::Error::msg(format!(
            "cannot allocate {} for a dataset: not enough memory",
            crate::files::human_bytes((len as u64).saturating_mul(4))
        ))
    })?;
    Ok(buffer)
}
