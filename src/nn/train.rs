//! Training (`fit`): minibatch SGD with momentum on the softmax cross-entropy.
//!
//! The optimizer is ours, not dfdx's: dfdx's optimizers need compile-time shapes. Each step
//! traces the parameters on a fresh tape, takes the gradients and applies
//! `v <- momentum * v - lr * g; w <- w + v` in place. Everything random (initial weights,
//! the order of examples) comes from one ChaCha stream seeded by the node's seed, so a
//! seed fixes the result bit for bit on one machine.

use super::layers::NetSpec;
use super::model::{Dev, Matrix, Model, Vector};
use crate::data::Dataset;
use crate::error::{Error, Result};
use dfdx::prelude::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// The `fit(...)` node's parameters (the net and data travel separately).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FitParams {
    /// Passes over the training data.
    pub epochs: usize,
    /// Examples per step.
    pub batch: usize,
    /// Learning rate.
    pub lr: f64,
    /// Momentum coefficient.
    pub momentum: f64,
    /// Initial weights are uniform in `[-init, init]`.
    pub init: f64,
    /// Seed of initialisation and shuffling.
    pub seed: u64,
}

/// One epoch's record, kept in the model artifact.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub loss: f64,
}

/// Called after every step with (epoch, step, steps per epoch, running mean loss).
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize, usize, f64);

/// SGD with momentum over one model's parameters: `v <- momentum * v - lr * g; w <- w + v`.
pub struct Sgd {
    /// The model being trained.
    pub model: Model,
    /// Per layer with parameters: the weight and bias velocities.
    velocity: Vec<Option<(Matrix, Vector)>>,
    lr: f64,
    momentum: f64,
}

impl Sgd {
    /// Starts from `model` with zero velocity.
    pub fn new(dev: &Dev, model: Model, lr: f64, momentum: f64) -> Sgd {
        let velocity = model
            .params
            .iter()
            .map(|a| {
                a.as_ref().map(|a| {
                    (
                        dev.zeros_like(a.weight.shape()),
                        dev.zeros_like(a.bias.shape()),
                    )
                })
            })
            .collect();
        Sgd {
            model,
            velocity,
            lr,
            momentum,
        }
    }

    /// One step on a batch (`labels.len()` rows of `x`); returns the batch's mean loss
    /// before the update. A non-finite loss is returned without updating.
    pub fn step(&mut self, dev: &Dev, x: Vec<f32>, labels: &[usize]) -> f64 {
        let width = self.model.input_width();
        let x: Matrix = dev.tensor_from_vec(x, (labels.len(), width));
        let logits = self.model.forward(x.retaped::<OwnedTape<f32, Dev>>());
        let classes = logits.shape().1;
        let loss = cross_entropy(dev, logits, labels, classes);
        let loss_value = loss.array() as f64;
        if !loss_value.is_finite() {
            return loss_value;
        }
        let grads = loss.backward();
        for (params, vel) in self.model.params.iter_mut().zip(self.velocity.iter_mut()) {
            if let (Some(params), Some((vw, vb))) = (params, vel) {
                vw.axpy(self.momentum, &grads.get(&params.weight), -self.lr);
                vb.axpy(self.momentum, &grads.get(&params.bias), -self.lr);
                params.weight.axpy(1.0, vw, 1.0);
                params.bias.axpy(1.0, vb, 1.0);
            }
        }
        loss_value
    }
}

/// Trains `net` on `data`. Fails if the loss stops being finite, naming the epoch.
pub fn fit(
    dev: &Dev,
    net: &NetSpec,
    data: &Dataset,
    p: &FitParams,
    progress: Progress,
) -> Result<(Model, Vec<EpochRecord>)> {
    if data.is_empty() {
        return Err(Error::msg("the training set is empty"));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.seed);
    let mut sgd = Sgd::new(
        dev,
        Model::init(dev, net, p.init, &mut rng),
        p.lr,
        p.momentum,
    );
    let mut order: Vec<usize> = (0..data.len()).collect();
    let steps = data.len().div_ceil(p.batch);
    let mut history = Vec::with_capacity(p.epochs);
    for epoch in 1..=p.epochs {
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        for (step, chunk) in order.chunks(p.batch).enumerate() {
            let mut x = Vec::with_capacity(chunk.len() * data.width());
            for &i in chunk {
                x.extend_from_slice(data.images_of(i..i + 1));
            }
            let labels: Vec<usize> = chunk.iter().map(|&i| data.labels[i] as usize).collect();
            let loss = sgd.step(dev, x, &labels);
            if !loss.is_finite() {
                return Err(Error::msg(format!("training diverged: the loss became {loss} in epoch {epoch}, step {}; try a smaller lr", step + 1)));
            }
            loss_sum += loss;
            progress(epoch, step + 1, steps, loss_sum / (step + 1) as f64);
        }
        history.push(EpochRecord {
            epoch,
            loss: loss_sum / steps as f64,
        });
    }
    Ok((sgd.model, history))
}

/// Mean softmax cross-entropy of `logits` against integer labels.
pub fn cross_entropy<T: Tape<f32, Dev>>(
    dev: &Dev,
    logits: Matrix<T>,
    labels: &[usize],
    classes: usize,
) -> Tensor<(), f32, Dev, T> {
    let mut one_hot = vec![0.0f32; labels.len() * classes];
    for (row, &label) in labels.iter().enumerate() {
        one_hot[row * classes + label] = 1.0;
    }
    let target = dev.tensor_from_vec(one_hot, (labels.len(), classes));
    cross_entropy_with_logits_loss(logits, target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::LayerSpec;

    fn blobs() -> Dataset {
        // Two separable classes in 2-D.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for i in 0..200 {
            let c = i % 2;
            let centre = if c == 0 { 0.25 } else { 0.75 };
            images.push(centre + rand::Rng::gen_range(&mut rng, -0.2..0.2f32));
            images.push(centre + rand::Rng::gen_range(&mut rng, -0.2..0.2f32));
            labels.push(c as u8);
        }
        Dataset {
            images,
            labels,
            shape: vec![2],
            classes: 2,
        }
    }

    fn params(seed: u64) -> FitParams {
        FitParams {
            epochs: 20,
            batch: 20,
            lr: 0.5,
            momentum: 0.5,
            init: 0.05,
            seed,
        }
    }

    #[test]
    fn fit_learns_and_is_deterministic() {
        let dev = Dev::default();
        let net = NetSpec {
            input: vec![2],
            layers: vec![LayerSpec::Linear { units: 2 }],
        };
        let data = blobs();
        let (a, hist) = fit(&dev, &net, &data, &params(1), &mut |_, _, _, _| {}).unwrap();
        assert!(hist.last().unwrap().loss < hist[0].loss * 0.5, "{hist:?}");
        let (b, _) = fit(&dev, &net, &data, &params(1), &mut |_, _, _, _| {}).unwrap();
        assert_eq!(a.named_tensors(), b.named_tensors());
        let (c, _) = fit(&dev, &net, &data, &params(2), &mut |_, _, _, _| {}).unwrap();
        assert_ne!(a.named_tensors(), c.named_tensors());
    }

    #[test]
    fn divergence_is_an_error_naming_the_epoch() {
        let dev = Dev::default();
        let net = NetSpec {
            input: vec![2],
            layers: vec![LayerSpec::Linear { units: 2 }],
        };
        let mut data = blobs();
        data.images[0] = f32::NAN;
        let err = fit(&dev, &net, &data, &params(1), &mut |_, _, _, _| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("diverged") && err.contains("epoch 1"), "{err}");
    }
}
