//! Datasets: the in-memory form every node computes on, and where the images come from.
//!
//! [`idx`] reads the IDX format (plain or `.gz`); [`mnist`] locates MNIST's four files in
//! the data folder and, when they are missing, fetches and verifies them.

pub mod idx;
pub mod mnist;

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

/// The `mnist(...)` node's parameters.
#[derive(Clone, Debug, Deserialize)]
pub struct MnistParams {
    /// `"train"` (60,000) or `"test"` (10,000).
    pub split: String,
    /// Examples to drop from the front.
    pub skip: usize,
    /// How many to keep after `skip` (all when absent).
    pub take: Option<usize>,
    /// Keep only these digits, relabelled 0, 1, ... in this order (all ten when absent).
    #[serde(default)]
    pub classes: Option<Vec<usize>>,
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
