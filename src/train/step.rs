//! One training step: the optimizer state of a model, the step on a batch (the loss
//! mixture, crafting its adversarial terms inside the step, L1 decay, SGD with momentum or
//! Adam) and max-norm clipping of each unit's incoming weights.

use super::schema::{FitParams, Optimizer};
use crate::attacks::{AttackContext, Crafter};
use crate::error::{Error, Result};
use crate::nn::model::{Affine, Dev, Matrix, Mode, Model, Needs, Vector};
use dfdx::prelude::*;
use rand::{Rng, SeedableRng};

/// Per-layer optimizer state.
pub(super) enum State {
    Sgd {
        vw: Matrix,
        vb: Vector,
    },
    Adam {
        m: Vec<f32>,
        v: Vec<f32>,
        mb: Vec<f32>,
        vb: Vec<f32>,
    },
}

/// One model and its optimizer state.
pub struct Trainer {
    /// The model being trained.
    pub model: Model,
    pub(super) state: Vec<Option<State>>,
    /// Current learning rate.
    pub lr: f64,
    /// Current momentum (SGD).
    pub momentum: f64,
    lr_decay: f64,
    lr_min: f64,
    max_norm: Option<f64>,
    l1: f64,
    pub(super) steps: i32,
    mixture: Vec<(f32, Option<Crafter>)>,
    pub(super) attack_rng: rand_chacha::ChaCha8Rng,
}

/// How a term of the loss mixture scores its batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TermLoss {
    /// The model's own loss against the labels (cross-entropy for a softmax top).
    Model,
    /// TRADES: `KL(p(x) || p(x'))` between the softmax of the clean and the term's outputs.
    Divergence,
}

/// The mean over rows of `KL(softmax(clean) || softmax(perturbed))`.
pub(super) fn divergence<T: Tape<f32, Dev> + Merge<T>>(clean: Matrix<T>, perturbed: Matrix<T>) -> Tensor<(), f32, Dev, T> {
    let rows = clean.shape().0 as f32;
    let (log_p, tape) = clean.log_softmax::<Axis<1>>().split_tape();
    let p = log_p.clone().put_tape(tape).exp();
    let gap = log_p.retaped::<T>() - perturbed.log_softmax::<Axis<1>>();
    (p * gap).sum::<(), Axes2<0, 1>>() / rows
}

impl Trainer {
    /// Starts from `model` with zero optimizer state; fails if a loss term's attack is invalid.
    pub fn new(dev: &Dev, model: Model, p: &FitParams) -> Result<Trainer> {
        let state = model
            .params
            .iter()
            .map(|a| {
                a.as_ref().map(|a| match p.optimizer {
                    Optimizer::Sgd => State::Sgd {
                        vw: dev.zeros_like(a.weight().shape()),
                        vb: dev.zeros_like(a.bias.shape()),
                    },
                    Optimizer::Adam => {
                        let (nw, nb) = (a.weight().shape().num_elements(), a.bias.shape().0);
                        State::Adam {
                            m: vec![0.0; nw],
                            v: vec![0.0; nw],
                            mb: vec![0.0; nb],
                            vb: vec![0.0; nb],
                        }
                    }
                })
            })
            .collect();
        let mut mixture = Vec::with_capacity(p.loss.len());
        for term in &p.loss {
            let crafter = match &term.attack {
                Some(json) => Some(Crafter::from_json(json).map_err(|e| Error::msg(format!("training attack: {e}")))?),
                None => None,
            };
            mixture.push((term.weight as f32, crafter));
        }
        Ok(Trainer {
            model,
            state,
            lr: p.lr,
            momentum: p.momentum,
            lr_decay: p.lr_decay,
            lr_min: p.lr_min,
            max_norm: p.max_norm,
            l1: p.l1,
            steps: 0,
            mixture,
            attack_rng: rand_chacha::ChaCha8Rng::seed_from_u64(p.seed ^ 0xadd5_eed5),
        })
    }

    /// The objective's inputs for a batch: each term's weight, its batch (the clean one or an
    /// attack's, crafted against the current parameters) and how it is scored.
    fn terms(&mut self, dev: &Dev, x: &[f32], labels: &[usize]) -> Vec<(f32, Vec<f32>, TermLoss)> {
        let mut batches = Vec::with_capacity(self.mixture.len());
        for (weight, crafter) in &self.mixture {
            let (input, loss) = match crafter {
                None => (x.to_vec(), TermLoss::Model),
                Some(crafter) => {
                    let mut ctx = AttackContext::new(&self.model, dev, self.attack_rng.gen());
                    let loss = if crafter.is_divergence_term() {
                        TermLoss::Divergence
                    } else {
                        TermLoss::Model
                    };
                    (crafter.craft(&mut ctx, x, labels), loss)
                }
            };
            batches.push((*weight, input, loss));
        }
        batches
    }

    /// The training objective on a batch, as a step computes it (dropout on, attacks crafted
    /// against the current parameters), without updating anything.
    pub fn objective(&mut self, dev: &Dev, x: Vec<f32>, labels: &[usize]) -> f64 {
        let width = self.model.input_width();
        let mut total = 0.0;
        for (weight, input, loss) in self.terms(dev, &x, labels) {
            let input: Matrix = dev.tensor_from_vec(input, (labels.len(), width));
            let logits = self.model.forward_mode(input, Mode::Train);
            let term = match loss {
                TermLoss::Model => self.model.net.top().loss(dev, logits, labels).array(),
                TermLoss::Divergence => {
                    let clean = self
                        .model
                        .forward_mode(dev.tensor_from_vec(x.clone(), (labels.len(), width)), Mode::Train);
                    divergence(clean, logits).array()
                }
            };
            total += weight as f64 * term as f64;
        }
        total
    }

    /// One step on a batch (`labels.len()` rows of `x`), dropout on: every term of the
    /// objective is evaluated (attacks crafted against the current parameters and held
    /// constant), their weighted sum is differentiated, and the parameters updated. Returns
    /// the objective before the update; a non-finite one is returned without updating.
    pub fn step(&mut self, dev: &Dev, x: Vec<f32>, labels: &[usize]) -> f64 {
        let width = self.model.input_width();
        let rows = labels.len();
        let batches = self.terms(dev, &x, labels);
        let mut total: Option<Tensor<(), f32, Dev, OwnedTape<f32, Dev>>> = None;
        for (weight, input, loss) in batches {
            let input: Matrix = dev.tensor_from_vec(input, (rows, width));
            let logits = self
                .model
                .forward_with(input.retaped::<OwnedTape<f32, Dev>>(), Mode::Train, Needs::PARAMS);
            let term = match loss {
                TermLoss::Model => self.model.net.top().loss(dev, logits, labels) * weight,
                TermLoss::Divergence => {
                    // TRADES differentiates through the clean prediction too.
                    let clean: Matrix = dev.tensor_from_vec(x.clone(), (rows, width));
                    let clean = self
                        .model
                        .forward_with(clean.retaped::<OwnedTape<f32, Dev>>(), Mode::Train, Needs::PARAMS);
                    divergence(clean, logits) * weight
                }
            };
            total = Some(match total {
                None => term,
                Some(sum) => sum + term,
            });
        }
        let loss = total.expect("a fit has at least one loss term");
        let loss_value = loss.array() as f64;
        if !loss_value.is_finite() {
            return loss_value;
        }
        let mut grads = loss.backward();
        self.steps += 1;
        // Only the first layer with parameters gets the L1 term.
        let mut first = true;
        for ((params, state), layer) in self.model.params.iter_mut().zip(self.state.iter_mut()).zip(&self.model.net.layers) {
            let (Some(params), Some(state)) = (params, state) else {
                continue;
            };
            let l1 = if std::mem::take(&mut first) { self.l1 as f32 } else { 0.0 };
            // Max-norm bounds weight vectors; an RBF layer's "weights" are centres, which it leaves alone.
            let max_norm = self.max_norm.filter(|_| layer.max_norm_applies()).map(|l| l as f32);
            match state {
                State::Sgd { vw, vb } => {
                    sgd_step(
                        dev,
                        &mut grads,
                        params,
                        (vw, vb),
                        self.momentum as f32,
                        self.lr as f32,
                        l1,
                        max_norm,
                    );
                    continue;
                }
                State::Adam { m, v, mb, vb } => {
                    let (b1, b2, _) = ADAM;
                    let step_size = (self.lr as f32) * (1.0 - b2.powi(self.steps)).sqrt() / (1.0 - b1.powi(self.steps));
                    adam_step(dev, &mut grads, params, (m, v, mb, vb), step_size, l1);
                }
            }
            if let Some(limit) = max_norm {
                clip_column_norms(params.weight_mut(), limit);
            }
        }
        self.lr = (self.lr / self.lr_decay).max(self.lr_min);
        loss_value
    }
}

/// Adam's decay rates and its denominator's epsilon.
pub const ADAM: (f32, f32, f32) = (0.9, 0.999, 1e-8);

/// One Adam step in place: with `g` the gradient (plus `l1 sign(w)` when `l1` is not 0),
/// `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g g`, `w -= step_size m / (sqrt(v) + eps)`.
/// The elements are split across threads; each one's arithmetic is that of the one loop it
/// replaces (which copied weights and gradients out and back), so results are the same bits.
pub fn adam(w: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], step_size: f32, l1: f32) {
    use rayon::prelude::*;
    assert!(w.len() == m.len() && w.len() == v.len() && w.len() == g.len());
    let (b1, b2, eps) = ADAM;
    let chunk = 16 * 1024;
    w.par_chunks_mut(chunk)
        .zip(m.par_chunks_mut(chunk))
        .zip(v.par_chunks_mut(chunk))
        .zip(g.par_chunks(chunk))
        .for_each(|(((w, m), v), g)| {
            for i in 0..w.len() {
                let g = if l1 == 0.0 { g[i] } else { g[i] + l1 * crate::tensor::sign(w[i]) };
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                w[i] -= step_size * m[i] / (v[i].sqrt() + eps);
            }
        });
}

/// One Adam step of a layer (see [`adam`]); on the CPU in place, where dfdx left the
/// gradients.
fn adam_step(
    dev: &Dev,
    grads: &mut Gradients<f32, Dev>,
    p: &mut Affine,
    (m, v, mb, vb): (&mut [f32], &mut [f32], &mut [f32], &mut [f32]),
    step_size: f32,
    l1: f32,
) {
    #[cfg(not(feature = "cuda"))]
    {
        use crate::nn::fused::values_mut;
        let _ = dev;
        let gw = grads.get_or_alloc_mut(p.weight()).expect("CPU gradients allocate");
        adam(values_mut(p.weight_mut()), m, v, gw, step_size, l1);
        let gb = grads.get_or_alloc_mut(&p.bias).expect("CPU gradients allocate");
        adam(values_mut(&mut p.bias), mb, vb, gb, step_size, 0.0);
    }
    #[cfg(feature = "cuda")]
    {
        let (gw, gb) = decayed_gradients(dev, grads, p, l1);
        let mut w = p.weight().as_vec();
        adam(&mut w, m, v, &gw.as_vec(), step_size, 0.0);
        p.weight_mut().copy_from(&w);
        let mut b = p.bias.as_vec();
        adam(&mut b, mb, vb, &gb.as_vec(), step_size, 0.0);
        p.bias.copy_from(&b);
    }
}

/// A layer's weight and bias gradients, copied out of `grads`, with `l1 * sign(w)` added to
/// the weights'.
#[cfg(feature = "cuda")]
fn decayed_gradients(dev: &Dev, grads: &Gradients<f32, Dev>, p: &Affine, l1: f32) -> (Matrix, Vector) {
    let (gw, gb) = (grads.get(p.weight()), grads.get(&p.bias));
    if l1 == 0.0 {
        return (gw, gb);
    }
    let decayed: Vec<f32> = gw
        .as_vec()
        .iter()
        .zip(p.weight().as_vec())
        .map(|(g, w)| g + l1 * crate::tensor::sign(w))
        .collect();
    (dev.tensor_from_vec(decayed, *gw.shape()), gb)
}

/// One SGD-with-momentum step of a layer: `v = momentum v - lr (g + l1 sign(w))`, `w += v`,
/// then max-norm when `max_norm` is set. On the CPU in one pass that reads the gradients
/// where dfdx left them, the weights' columns split across threads, adding up the column
/// norms max-norm needs on the way.
#[allow(clippy::too_many_arguments)]
fn sgd_step(
    dev: &Dev,
    grads: &mut Gradients<f32, Dev>,
    p: &mut Affine,
    (vw, vb): (&mut Matrix, &mut Vector),
    momentum: f32,
    lr: f32,
    l1: f32,
    max_norm: Option<f32>,
) {
    #[cfg(not(feature = "cuda"))]
    {
        use crate::nn::fused::{sgd_momentum, sgd_momentum_matrix, values_mut};
        let _ = dev;
        let cols = p.weight().shape().1;
        let mut norms = max_norm.map(|_| vec![0.0f32; cols]);
        let gw = grads.get_or_alloc_mut(p.weight()).expect("CPU gradients allocate");
        let w = values_mut(p.weight_mut());
        sgd_momentum_matrix(w, values_mut(vw), gw, cols, momentum, lr, l1, norms.as_deref_mut());
        if let (Some(limit), Some(norms)) = (max_norm, &norms) {
            scale_columns(w, cols, norms, limit);
        }
        let gb = grads.get_or_alloc_mut(&p.bias).expect("CPU gradients allocate");
        sgd_momentum(values_mut(&mut p.bias), values_mut(vb), gb, momentum, lr, 0.0);
    }
    #[cfg(feature = "cuda")]
    {
        let (gw, gb) = decayed_gradients(dev, grads, p, l1);
        vw.axpy(momentum, &gw, -lr);
        vb.axpy(momentum, &gb, -lr);
        p.weight_mut().axpy(1.0, vw, 1.0);
        p.bias.axpy(1.0, vb, 1.0);
        if let Some(limit) = max_norm {
            clip_column_norms(p.weight_mut(), limit);
        }
    }
}

/// Rescales every column of `w` (`[in, out]`: one unit's incoming weights) whose L2 norm
/// exceeds `limit` down to norm `limit`, as pylearn2's `max_col_norm` does.
pub fn clip_column_norms(w: &mut Matrix, limit: f32) {
    let cols = w.shape().1;
    #[cfg(not(feature = "cuda"))]
    clip_columns(crate::nn::fused::values_mut(w), cols, limit);
    #[cfg(feature = "cuda")]
    {
        let mut values = w.as_vec();
        if clip_columns(&mut values, cols, limit) {
            w.copy_from(&values);
        }
    }
}

/// [`clip_column_norms`] on row-major values; whether any column was rescaled.
fn clip_columns(values: &mut [f32], cols: usize, limit: f32) -> bool {
    let mut norms = vec![0.0f32; cols];
    for row in values.chunks(cols) {
        for (n, v) in norms.iter_mut().zip(row) {
            *n += v * v;
        }
    }
    scale_columns(values, cols, &norms, limit)
}

/// Rescales the columns whose squared norm (`norms`) exceeds `limit`² to norm `limit`;
/// whether any was.
fn scale_columns(values: &mut [f32], cols: usize, norms: &[f32], limit: f32) -> bool {
    let scale: Vec<f32> = norms
        .iter()
        .map(|n| if n.sqrt() > limit { limit / n.sqrt() } else { 1.0 })
        .collect();
    if scale.iter().all(|&s| s == 1.0) {
        return false;
    }
    for row in values.chunks_mut(cols) {
        for (v, s) in row.iter_mut().zip(&scale) {
            *v *= s;
        }
    }
    true
}

#[cfg(test)]
mod adam_tests {
    use super::*;

    #[test]
    fn adam_matches_the_update_rule_on_every_thread_split() {
        let n = 40_000; // several of the update's chunks
        let w0: Vec<f32> = (0..n).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
        let g: Vec<f32> = (0..n).map(|i| ((i % 5) as f32 - 2.0) * 0.01).collect();
        let (m0, v0) = (vec![0.01f32; n], vec![0.001f32; n]);
        for l1 in [0.0f32, 0.5] {
            let (mut w, mut m, mut v) = (w0.clone(), m0.clone(), v0.clone());
            adam(&mut w, &mut m, &mut v, &g, 0.1, l1);
            let (b1, b2, eps) = ADAM;
            for i in 0..n {
                let gi = if l1 == 0.0 { g[i] } else { g[i] + l1 * crate::tensor::sign(w0[i]) };
                let mi = b1 * m0[i] + (1.0 - b1) * gi;
                let vi = b2 * v0[i] + (1.0 - b2) * gi * gi;
                assert_eq!((m[i], v[i]), (mi, vi), "at {i}");
                assert_eq!(w[i], w0[i] - 0.1 * mi / (vi.sqrt() + eps), "at {i}");
            }
        }
    }
}
