//! What attacks and evaluations query: one model, or an ensemble of models.
//!
//! An ensemble combines its members' logits into logits of its own by its rule (see
//! [`super::combine`]; by default the log of the mean softmax probability), so softmax,
//! cross-entropy and input gradients treat it like any model.

use super::combine::Combine;
use super::layers::LayerTape;
use super::model::{Matrix, Mode, Model, Needs};
use dfdx::prelude::*;
use std::sync::Arc;

/// A model or an ensemble, borrowed.
#[derive(Clone, Copy)]
pub enum Classifier<'a> {
    /// One model.
    Single(&'a Model),
    /// Members and how they are combined.
    Ensemble(&'a [Arc<Model>], Combine),
}

impl<'a> From<&'a Model> for Classifier<'a> {
    fn from(m: &'a Model) -> Self {
        Classifier::Single(m)
    }
}

impl Classifier<'_> {
    /// How its outputs become probabilities (ensembles are of softmax models).
    pub fn top(&self) -> super::Top {
        match self {
            Classifier::Single(m) => m.net.top(),
            Classifier::Ensemble(..) => super::Top::Softmax,
        }
    }

    /// Values per example.
    pub fn input_width(&self) -> usize {
        match self {
            Classifier::Single(m) => m.input_width(),
            Classifier::Ensemble(ms, _) => ms[0].input_width(),
        }
    }

    /// One example's shape (channels, height, width for images).
    pub fn input_shape(&self) -> &[usize] {
        match self {
            Classifier::Single(m) => &m.net.input,
            Classifier::Ensemble(ms, _) => &ms[0].net.input,
        }
    }

    /// Logits (an ensemble's by its combination rule), recording on `x`'s tape for the
    /// input's gradient only (a classifier is attacked, not trained).
    pub fn forward_mode<T: LayerTape>(&self, x: Matrix<T>, mode: Mode) -> Matrix<T> {
        match self {
            Classifier::Single(m) => m.forward_with(x, mode, Needs::INPUT),
            Classifier::Ensemble(members, combine) => {
                let (x, tape) = x.split_tape();
                let mut tape = Some(tape);
                let outputs: Vec<Matrix<T>> = members
                    .iter()
                    .map(|m| {
                        // The first member carries the input's tape; the others start empty
                        // tapes on the same tensor, and stacking merges them all.
                        let xi = match tape.take() {
                            Some(t) => x.clone().put_tape(t),
                            None => x.clone().retaped::<T>(),
                        };
                        m.forward_with(xi, mode, Needs::INPUT)
                    })
                    .collect();
                combine.combine(outputs)
            }
        }
    }

    /// Logits in evaluation mode.
    pub fn forward<T: LayerTape>(&self, x: Matrix<T>) -> Matrix<T> {
        self.forward_mode(x, Mode::Eval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::linear::Linear;
    use crate::nn::model::Dev;
    use crate::nn::NetSpec;
    use rand::SeedableRng;

    #[test]
    fn an_ensemble_predicts_the_mean_probability_and_its_gradient_flows() {
        let dev = Dev::default();
        let net = NetSpec {
            input: vec![4],
            layers: vec![Linear { units: 3 }.into()],
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let members: Vec<Arc<Model>> = (0..3).map(|_| Arc::new(Model::init(&dev, &net, 1.0, &mut rng))).collect();
        let x = vec![0.1, 0.5, 0.9, 0.3, 0.2, 0.4, 0.6, 0.8];
        let batch = || -> Matrix { dev.tensor_from_vec(x.clone(), (2, 4)) };
        let ens = Classifier::Ensemble(&members, Combine::MeanProbabilities).forward(batch()).as_vec();
        let mut mean = vec![0.0f32; 6];
        for m in &members {
            let p = m.forward(batch()).softmax::<Axis<1>>().as_vec();
            mean.iter_mut().zip(p).for_each(|(a, b)| *a += b / 3.0);
        }
        for (e, m) in ens.iter().zip(&mean) {
            assert!((e.exp() - m).abs() < 1e-6, "{} vs {m}", e.exp());
        }
        // The input gradient reaches through every member.
        let xt = batch();
        let out = Classifier::Ensemble(&members, Combine::MeanProbabilities).forward(xt.leaky_trace());
        let first_class: Matrix = dev.tensor_from_vec(vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0], (2, 3));
        let g = (out * first_class).sum::<(), Axes2<0, 1>>().backward().get(&xt).as_vec();

        let h = 1e-3f32;
        for i in 0..8 {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += h;
            down[i] -= h;
            let f = |v: Vec<f32>| {
                let o = Classifier::Ensemble(&members, Combine::MeanProbabilities)
                    .forward(dev.tensor_from_vec(v, (2, 4)))
                    .as_vec();
                o[0] + o[3]
            };
            let numeric = (f(up) - f(down)) / (2.0 * h);
            assert!((numeric - g[i]).abs() < 2e-2, "input {i}: {numeric} vs {}", g[i]);
        }
    }
}
