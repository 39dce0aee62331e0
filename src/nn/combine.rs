//! How an ensemble's members become one classifier (`ensemble(models, combine: ...)`). The
//! paper (section 9) does not say how its ensemble of 12 maxout nets combined them, so the
//! usual rules are all here:
//!
//! - `"mean_probabilities"` (the default): the mean of the members' softmax probabilities;
//!   its logits are the log of that mean (a log-sum-exp of the members' log-softmaxes minus
//!   `ln k`), so an attack on the ensemble follows the mean probability's gradient.
//! - `"mean_logits"`: the mean of the members' logits (a softmax of it is the normalised
//!   geometric mean of their probabilities).
//! - `"vote"`: each member votes for its most likely class; the ensemble's probability of a
//!   class is its share of the votes, ties broken by the mean probability. A vote has no
//!   gradient, so an attack on a voting ensemble takes the mean probability's (the
//!   straight-through rule: the vote's values, the mean's gradient).

#[cfg(feature = "compute")]
use super::layers::LayerTape;
#[cfg(feature = "compute")]
use super::model::Matrix;
#[cfg(feature = "compute")]
use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

/// An ensemble's combination rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// Mean softmax probability.
    #[default]
    MeanProbabilities,
    /// Mean logits.
    MeanLogits,
    /// Majority vote.
    Vote,
}

impl Combine {
    /// The rules' names in the language, in declaration order.
    pub const NAMES: &'static [&'static str] = &["mean_probabilities", "mean_logits", "vote"];
}

/// How much of the mean probability a vote share carries, to break ties without moving any
/// share by more than this.
#[cfg(feature = "compute")]
const TIE_BREAK: f32 = 1e-6;

#[cfg(feature = "compute")]
impl Combine {
    /// The ensemble's logits from its members' logits (each `[batch, classes]`, on tapes that
    /// merge into the result's).
    pub fn combine<T: LayerTape>(self, members: Vec<Matrix<T>>) -> Matrix<T> {
        let k = members.len() as f32;
        match self {
            Combine::MeanProbabilities => mean_probability(members),
            Combine::MeanLogits => members.stack().sum::<(usize, usize), Axis<0>>() / k,
            Combine::Vote => {
                let (n, classes) = *members[0].shape();
                let mut votes = vec![0.0f32; n * classes];
                for m in &members {
                    for (row, logits) in m.as_vec().chunks(classes).enumerate() {
                        votes[row * classes + argmax(logits)] += 1.0 / k;
                    }
                }
                let mean = mean_probability(members);
                let mean_log = mean.as_vec();
                let shift: Vec<f32> = votes
                    .iter()
                    .zip(&mean_log)
                    .map(|(&share, &log_p)| (share + TIE_BREAK * log_p.exp()).ln() - log_p)
                    .collect();
                let shift = mean.device().tensor_from_vec(shift, (n, classes));
                mean + shift.retaped::<T>()
            }
        }
    }
}

/// `ln(mean_k softmax(z_k))`.
#[cfg(feature = "compute")]
fn mean_probability<T: LayerTape>(members: Vec<Matrix<T>>) -> Matrix<T> {
    let k = members.len() as f32;
    let log_p: Vec<Matrix<T>> = members.into_iter().map(|z| z.log_softmax::<Axis<1>>()).collect();
    log_p.stack().logsumexp::<(usize, usize), Axis<0>>() - k.ln()
}

/// The first index of the largest value.
#[cfg(feature = "compute")]
fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best })
        .0
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use super::*;
    use crate::nn::model::Dev;

    fn logits(dev: &Dev, rows: &[[f32; 3]]) -> Matrix {
        dev.tensor_from_vec(rows.iter().flatten().copied().collect(), (rows.len(), 3))
    }

    /// Three members, two examples: on the first, two members say class 0 and one (very
    /// sure) says class 2; on the second, each member picks another class.
    fn members(dev: &Dev) -> Vec<Matrix> {
        vec![
            logits(dev, &[[1.0, 0.0, 0.0], [3.0, 0.0, 0.0]]),
            logits(dev, &[[1.0, 0.5, 0.0], [0.0, 1.0, 0.0]]),
            logits(dev, &[[0.0, 0.0, 9.0], [0.0, 0.0, 2.0]]),
        ]
    }

    #[test]
    fn mean_logits_average_the_logits() {
        let dev = Dev::default();
        let out = Combine::MeanLogits.combine(members(&dev)).as_vec();
        let want = [2.0 / 3.0, 0.5 / 3.0, 3.0, 1.0, 1.0 / 3.0, 2.0 / 3.0];
        out.iter().zip(want).for_each(|(o, w)| assert!((o - w).abs() < 1e-6, "{out:?}"));
    }

    #[test]
    fn a_vote_is_the_share_of_votes_ties_broken_by_the_mean_probability() {
        let dev = Dev::default();
        let p = Combine::Vote.combine(members(&dev)).exp().as_vec();
        // Two of three members vote 0, though the mean probability favours class 2.
        assert!((p[0] - 2.0 / 3.0).abs() < 1e-5 && (p[2] - 1.0 / 3.0).abs() < 1e-5, "{p:?}");
        let mean = Combine::MeanProbabilities.combine(members(&dev)).as_vec();
        assert!(mean[2] > mean[0], "the mean probability prefers the confident member");
        // A three-way tie goes to the class of the largest mean probability (member 1's
        // class 0, with logit 3).
        let second = &p[3..];
        assert!(second[0] > second[1] && second[0] > second[2], "{second:?}");
        second.iter().for_each(|&s| assert!((s - 1.0 / 3.0).abs() < 1e-5));
    }

    #[test]
    fn a_vote_takes_the_gradient_of_the_mean_probability() {
        let dev = Dev::default();
        let gradient = |combine: Combine| {
            let x: Matrix = dev.tensor_from_vec(vec![0.3, -0.2, 0.1], (1, 3));
            let (plain, tape) = x.leaky_trace().split_tape();
            let mut tape = Some(tape);
            let scale: Matrix = dev.tensor_from_vec(vec![1.0, 2.0, -1.0], (1, 3));
            let members: Vec<Matrix<OwnedTape<f32, Dev>>> = (0..3)
                .map(|i| {
                    let xi = match tape.take() {
                        Some(t) => plain.clone().put_tape(t),
                        None => plain.clone().retaped(),
                    };
                    let shift: Matrix = dev.tensor_from_vec(vec![i as f32, 0.0, -(i as f32)], (1, 3));
                    xi * scale.clone() + shift
                })
                .collect();
            let first_class: Matrix = dev.tensor_from_vec(vec![1.0, 0.0, 0.0], (1, 3));
            let out = combine.combine(members);
            (out * first_class).sum::<(), Axes2<0, 1>>().backward().get(&x).as_vec()
        };
        assert_eq!(gradient(Combine::Vote), gradient(Combine::MeanProbabilities));
    }
}
