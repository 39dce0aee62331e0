//! The top of a net: how its outputs become class probabilities, and the loss that goes
//! with it.
//!
//! `Softmax` (the default): probabilities are the softmax of the logits, the loss is
//! cross-entropy. `Sigmoid` (a net ending in `sigmoid_top`): every class has its own
//! probability `sigmoid(z_k)`, the loss is the binary cross-entropy summed over classes;
//! the paper's appendix A uses it to let a model say "none of these classes". `Rbf` (a net
//! ending in an `rbf` layer, section 7): the outputs `o_k = -beta_k ||x - c_k||^2` are
//! log-probabilities of independent class memberships, `p_k = exp(o_k)`, trained with the
//! same binary cross-entropy; far from every centre, every class is unlikely.

#[cfg(feature = "compute")]
use super::model::{Dev, Matrix};
#[cfg(feature = "compute")]
use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

/// How outputs become probabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Top {
    /// Mutually exclusive classes.
    Softmax,
    /// Independent per-class probabilities.
    Sigmoid,
    /// Independent per-class probabilities `exp(o_k)` from RBF outputs `o_k <= 0`.
    Rbf,
}

/// `log(1 - p)` is clamped here so that a class predicted with certainty costs a large but
/// finite loss.
const MIN_COMPLEMENT: f32 = 1e-7;

impl Top {
    #[cfg(feature = "compute")]
    fn one_hot(dev: &Dev, labels: &[usize], classes: usize) -> Matrix {
        let mut one_hot = vec![0.0f32; labels.len() * classes];
        for (row, &label) in labels.iter().enumerate() {
            one_hot[row * classes + label] = 1.0;
        }
        dev.tensor_from_vec(one_hot, (labels.len(), classes))
    }

    /// The batch's mean loss against integer labels, on the logits' tape.
    #[cfg(feature = "compute")]
    pub fn loss<T: Tape<f32, Dev>>(self, dev: &Dev, logits: Matrix<T>, labels: &[usize]) -> Tensor<(), f32, Dev, T> {
        let classes = logits.shape().1;
        let target = Self::one_hot(dev, labels, classes);
        match self {
            Top::Softmax => cross_entropy_with_logits_loss(logits, target),
            // dfdx averages over every element; the sum over classes is `classes` times that.
            Top::Sigmoid => binary_cross_entropy_with_logits_loss(logits, target) * classes as f32,
            Top::Rbf => {
                let rows = logits.shape().0 as f32;
                let others: Matrix = dev.tensor_from_vec(target.as_vec().iter().map(|t| 1.0 - t).collect(), (labels.len(), classes));
                let (o, tape) = logits.split_tape();
                let log_p_true = o.clone().put_tape(tape) * target;
                let log_p_false = (o.retaped::<T>().exp().negate() + 1.0).clamp(MIN_COMPLEMENT, 1.0).ln() * others;
                (log_p_true + log_p_false).sum::<(), Axes2<0, 1>>().negate() / rows
            }
        }
    }

    /// One example's loss, computed on the host from its row of logits.
    pub fn example_loss(self, row: &[f32], label: usize) -> f32 {
        match self {
            Top::Softmax => {
                let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let log_total = row.iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
                log_total + max - row[label]
            }
            // softplus(z) - y z, summed over classes.
            Top::Sigmoid => row
                .iter()
                .enumerate()
                .map(|(k, &z)| softplus(z) - if k == label { z } else { 0.0 })
                .sum(),
            Top::Rbf => row
                .iter()
                .enumerate()
                .map(|(k, &o)| {
                    if k == label {
                        -o
                    } else {
                        -(1.0 - o.exp()).clamp(MIN_COMPLEMENT, 1.0).ln()
                    }
                })
                .sum(),
        }
    }

    /// The probability of the most likely class.
    pub fn confidence(self, row: &[f32]) -> f32 {
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        match self {
            Top::Softmax => 1.0 / row.iter().map(|&l| (l - max).exp()).sum::<f32>(),
            Top::Sigmoid => 1.0 / (1.0 + (-max).exp()),
            Top::Rbf => max.exp(),
        }
    }
}

fn softplus(z: f32) -> f32 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use super::*;

    #[test]
    fn host_losses_match_the_tape() {
        let dev = Dev::default();
        let labels = [2, 0];
        for top in [Top::Softmax, Top::Sigmoid, Top::Rbf] {
            // RBF outputs are never positive.
            let logits: Vec<f32> = if top == Top::Rbf {
                vec![-0.5, -1.0, -2.0, -3.0, -0.1, -2.0]
            } else {
                vec![0.5, -1.0, 2.0, 3.0, 0.0, -2.0]
            };
            let m: Matrix = dev.tensor_from_vec(logits.clone(), (2, 3));
            let tape = top.loss(&dev, m, &labels).array();
            let host = (top.example_loss(&logits[..3], 2) + top.example_loss(&logits[3..], 0)) / 2.0;
            assert!((tape - host).abs() < 1e-5, "{top:?}: {tape} vs {host}");
        }
    }

    #[test]
    fn confidence_is_the_top_probability() {
        assert!((Top::Softmax.confidence(&[0.0, 0.0]) - 0.5).abs() < 1e-7);
        assert_eq!(Top::Softmax.confidence(&[1000.0, 0.0]), 1.0);
        assert!((Top::Sigmoid.confidence(&[0.0, -5.0]) - 0.5).abs() < 1e-7);
        assert!(Top::Sigmoid.confidence(&[-3.0, -4.0]) < 0.5, "a sigmoid top may give no class");
        assert!((Top::Rbf.confidence(&[-0.1, -4.0]) - (-0.1f32).exp()).abs() < 1e-7);
    }
}
