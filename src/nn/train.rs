//! Training (`fit`): minibatch SGD with momentum (or Adam) on the softmax cross-entropy,
//! with the knobs of the paper's maxout recipe (pylearn2's `mnist_pi.yaml`).
//!
//! The optimizers are ours, not dfdx's: dfdx's need compile-time shapes. Each step traces
//! the parameters on a fresh tape, takes the gradients and updates in place. Per epoch:
//! momentum ramps linearly from `momentum` to `momentum_end` by epoch `momentum_epochs`;
//! after every update the learning rate is *divided* by `lr_decay` down to `lr_min`; after
//! every update each weight column (one unit's incoming weights) is rescaled to norm at
//! most `max_norm`. With a validation set, the validation error is recorded every epoch and
//! training stops when it has not improved for `patience` epochs; the result is then the
//! best epoch's parameters, or (`after_stop: "refit"`) a fresh run on train + valid for
//! the best epoch count.
//!
//! Everything random (initial weights, the order of examples, dropout masks) comes from
//! the node's seed, so a seed fixes the result bit for bit on one machine.

use super::layers::NetSpec;
use super::model::{Affine, Dev, Matrix, Mode, Model, Needs, Vector};
use crate::attacks::{AttackContext, Crafter};
use crate::data::Dataset;
use crate::error::{Error, Result};
use dfdx::prelude::*;
use rand::seq::SliceRandom;
use rand::Rng;

use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Optimizer {
    /// `v <- momentum * v - lr * g; w <- w + v`
    Sgd,
    /// Kingma & Ba (2015), beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8.
    Adam,
}

impl Optimizer {
    /// The version and source files of each update rule: part of the key of every `fit`
    /// that uses it (see `versions`). Bump a version when its updates change.
    pub const VERSIONS: &'static [(&'static str, u32, &'static [&'static str])] = &[
        ("sgd", 1, &["src/nn/train.rs", "src/nn/fused.rs"]),
        ("adam", 1, &["src/nn/train.rs"]),
    ];
}

/// What `fit` returns when early stopping ends training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterStop {
    /// The parameters of the epoch with the lowest validation error.
    Best,
    /// Train again from scratch on train + valid for the best epoch count.
    Refit,
}

/// The `fit(...)` node's parameters (the net and data travel separately).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FitParams {
    /// Most passes over the training data.
    pub epochs: usize,
    /// Examples per step.
    pub batch: usize,
    /// Update rule.
    pub optimizer: Optimizer,
    /// Initial learning rate.
    pub lr: f64,
    /// The learning rate is divided by this after every update (1 = constant).
    pub lr_decay: f64,
    /// Floor of the decayed learning rate.
    pub lr_min: f64,
    /// Momentum at epoch 1 (SGD only).
    pub momentum: f64,
    /// Momentum reached at `momentum_epochs` (default: `momentum`).
    pub momentum_end: Option<f64>,
    /// The epoch at which the ramp reaches `momentum_end`.
    pub momentum_epochs: usize,
    /// Largest allowed norm of a unit's incoming weight vector (none: unconstrained).
    pub max_norm: Option<f64>,
    /// L1 weight decay on the first layer's weights: `l1 * sign(w)` joins their gradient
    /// (section 5's linear analogue of adversarial training).
    #[serde(default)]
    pub l1: f64,
    /// Initial weights are uniform in `[-init, init]`.
    pub init: f64,
    /// Seed of initialisation, shuffling and dropout.
    pub seed: u64,
    /// Epochs without validation improvement before stopping (needs a validation set).
    pub patience: Option<usize>,
    /// What to return after early stopping.
    pub after_stop: AfterStop,
    /// The objective: a weighted sum of the clean loss and attacks' losses.
    pub loss: Vec<LossTerm>,
    /// Measure validation error under this attack (JSON form), if given.
    pub valid_attack: Option<serde_json::Value>,
}

/// One term of the training objective: `weight * J(x')` with `x'` the clean batch or the
/// attack's version of it, crafted against the current parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossTerm {
    /// Its weight.
    pub weight: f64,
    /// The attack (JSON form), or `None` for the clean loss.
    pub attack: Option<serde_json::Value>,
}

impl FitParams {
    /// Plain SGD with the given basics and every recipe knob off.
    pub fn sgd(epochs: usize, batch: usize, lr: f64, momentum: f64, seed: u64) -> FitParams {
        FitParams {
            epochs,
            batch,
            optimizer: Optimizer::Sgd,
            lr,
            lr_decay: 1.0,
            lr_min: 0.0,
            momentum,
            momentum_end: None,
            momentum_epochs: 1,
            max_norm: None,
            l1: 0.0,
            init: 0.005,
            seed,
            patience: None,
            after_stop: AfterStop::Best,
            loss: vec![LossTerm { weight: 1.0, attack: None }],
            valid_attack: None,
        }
    }

    /// The momentum used during `epoch` (1-based).
    pub fn momentum_at(&self, epoch: usize) -> f64 {
        let end = self.momentum_end.unwrap_or(self.momentum);
        let ramp = self.momentum_epochs.max(2) - 1;
        let t = ((epoch.max(1) - 1) as f64 / ramp as f64).min(1.0);
        self.momentum + (end - self.momentum) * t
    }
}

/// One epoch's record, kept in the model artifact (the training curve).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub loss: f64,
    /// Error on the validation set after the epoch, when there is one.
    pub valid_error: Option<f64>,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Momentum used in the epoch.
    pub momentum: f64,
}

/// How training ended, recorded with the model.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FitSummary {
    /// Every epoch run (of the first phase, when refitting).
    pub history: Vec<EpochRecord>,
    /// The epoch whose parameters (or count) were kept.
    pub best_epoch: usize,
    /// Whether early stopping ended training before `epochs`.
    pub stopped_early: bool,
    /// Epochs of the refit on train + valid, when there was one.
    pub refit_history: Vec<EpochRecord>,
}

/// What `fit` reports while it trains.
pub enum FitEvent<'a> {
    /// A step finished: epoch, step, steps per epoch, the epoch's running mean loss.
    Step(usize, usize, usize, f64),
    /// An epoch finished (with its validation error, if there is a validation set).
    Epoch(&'a EpochRecord),
}

/// Receives [`FitEvent`]s.
pub type Progress<'a> = &'a mut dyn FnMut(FitEvent);

/// Per-layer optimizer state.
enum State {
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
    state: Vec<Option<State>>,
    /// Current learning rate.
    pub lr: f64,
    /// Current momentum (SGD).
    pub momentum: f64,
    lr_decay: f64,
    lr_min: f64,
    max_norm: Option<f64>,
    l1: f64,
    steps: i32,
    mixture: Vec<(f32, Option<Crafter>)>,
    attack_rng: rand_chacha::ChaCha8Rng,
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
                        vw: dev.zeros_like(a.weight.shape()),
                        vb: dev.zeros_like(a.bias.shape()),
                    },
                    Optimizer::Adam => {
                        let (nw, nb) = (a.weight.shape().num_elements(), a.bias.shape().0);
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

    /// One step on a batch (`labels.len()` rows of `x`), dropout on: every term of the
    /// objective is evaluated (attacks crafted against the current parameters and held
    /// constant), their weighted sum is differentiated, and the parameters updated. Returns
    /// the objective before the update; a non-finite one is returned without updating.
    pub fn step(&mut self, dev: &Dev, x: Vec<f32>, labels: &[usize]) -> f64 {
        let width = self.model.input_width();
        let rows = labels.len();
        let mut batches = Vec::with_capacity(self.mixture.len());
        for (weight, crafter) in &self.mixture {
            let input = match crafter {
                None => x.clone(),
                Some(crafter) => {
                    let mut ctx = AttackContext::new(&self.model, dev, self.attack_rng.gen());
                    crafter.craft(&mut ctx, &x, labels)
                }
            };
            batches.push((*weight, input));
        }
        let mut total: Option<Tensor<(), f32, Dev, OwnedTape<f32, Dev>>> = None;
        for (weight, input) in batches {
            let input: Matrix = dev.tensor_from_vec(input, (rows, width));
            let logits = self
                .model
                .forward_with(input.retaped::<OwnedTape<f32, Dev>>(), Mode::Train, Needs::PARAMS);
            let term = self.model.net.top().loss(dev, logits, labels) * weight;
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
            match state {
                State::Sgd { vw, vb } => sgd_step(dev, &mut grads, params, (vw, vb), self.momentum as f32, self.lr as f32, l1),
                State::Adam { m, v, mb, vb } => {
                    let (gw, gb) = decayed_gradients(dev, &grads, params, l1);
                    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
                    let step_size = (self.lr as f32) * (1.0 - b2.powi(self.steps)).sqrt() / (1.0 - b1.powi(self.steps));
                    let adam = |w: &mut Vec<f32>, g: &[f32], m: &mut [f32], v: &mut [f32]| {
                        for i in 0..w.len() {
                            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                            w[i] -= step_size * m[i] / (v[i].sqrt() + eps);
                        }
                    };
                    let mut w = params.weight.as_vec();
                    adam(&mut w, &gw.as_vec(), m, v);
                    params.weight.copy_from(&w);
                    let mut b = params.bias.as_vec();
                    adam(&mut b, &gb.as_vec(), mb, vb);
                    params.bias.copy_from(&b);
                }
            }
            // Max-norm bounds weight vectors; an RBF layer's "weights" are centres, which it leaves alone.
            if let (Some(limit), false) = (self.max_norm, matches!(layer, crate::nn::LayerSpec::Rbf { .. })) {
                clip_column_norms(&mut params.weight, limit as f32);
            }
        }
        self.lr = (self.lr / self.lr_decay).max(self.lr_min);
        loss_value
    }
}

/// A layer's weight and bias gradients, copied out of `grads`, with `l1 * sign(w)` added to
/// the weights'.
fn decayed_gradients(dev: &Dev, grads: &Gradients<f32, Dev>, p: &Affine, l1: f32) -> (Matrix, Vector) {
    let (gw, gb) = (grads.get(&p.weight), grads.get(&p.bias));
    if l1 == 0.0 {
        return (gw, gb);
    }
    let decayed: Vec<f32> = gw
        .as_vec()
        .iter()
        .zip(p.weight.as_vec())
        .map(|(g, w)| g + l1 * crate::attacks::sign(w))
        .collect();
    (dev.tensor_from_vec(decayed, *gw.shape()), gb)
}

/// One SGD-with-momentum step of a layer: `v = momentum v - lr (g + l1 sign(w))`, `w += v`.
/// On the CPU in one pass that reads the gradients where dfdx left them.
fn sgd_step(
    dev: &Dev,
    grads: &mut Gradients<f32, Dev>,
    p: &mut Affine,
    (vw, vb): (&mut Matrix, &mut Vector),
    momentum: f32,
    lr: f32,
    l1: f32,
) {
    #[cfg(not(feature = "cuda"))]
    {
        use super::fused::{sgd_momentum, values_mut};
        let _ = dev;
        let gw = grads.get_or_alloc_mut(&p.weight).expect("CPU gradients allocate");
        sgd_momentum(values_mut(&mut p.weight), values_mut(vw), gw, momentum, lr, l1);
        let gb = grads.get_or_alloc_mut(&p.bias).expect("CPU gradients allocate");
        sgd_momentum(values_mut(&mut p.bias), values_mut(vb), gb, momentum, lr, 0.0);
    }
    #[cfg(feature = "cuda")]
    {
        let (gw, gb) = decayed_gradients(dev, grads, p, l1);
        vw.axpy(momentum, &gw, -lr);
        vb.axpy(momentum, &gb, -lr);
        p.weight.axpy(1.0, vw, 1.0);
        p.bias.axpy(1.0, vb, 1.0);
    }
}

/// Rescales every column of `w` (`[in, out]`: one unit's incoming weights) whose L2 norm
/// exceeds `limit` down to norm `limit`, as pylearn2's `max_col_norm` does.
pub fn clip_column_norms(w: &mut Matrix, limit: f32) {
    let cols = w.shape().1;
    #[cfg(not(feature = "cuda"))]
    clip_columns(super::fused::values_mut(w), cols, limit);
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

/// Runs `epochs` epochs (or until early stopping) on `data`.
fn train_phase(
    net: &NetSpec,
    data: &Dataset,
    valid: Option<&Dataset>,
    p: &FitParams,
    epochs: usize,
    progress: Progress,
) -> Result<(Model, Vec<EpochRecord>, usize, bool)> {
    if data.is_empty() {
        return Err(Error::msg("the training set is empty"));
    }
    // The device's stream drives dropout; seeding it per fit makes masks reproducible.
    let dev = Dev::seed_from_u64(p.seed);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.seed);
    let mut trainer = Trainer::new(&dev, Model::init(&dev, net, p.init, &mut rng), p)?;
    let valid_attack = match &p.valid_attack {
        Some(json) => Some(Crafter::from_json(json).map_err(|e| Error::msg(format!("validation attack: {e}")))?),
        None => None,
    };
    let mut order: Vec<usize> = (0..data.len()).collect();
    let steps = data.len().div_ceil(p.batch);
    let mut history = Vec::with_capacity(epochs);
    let mut best: Option<(f64, usize, Model)> = None;
    for epoch in 1..=epochs {
        trainer.momentum = p.momentum_at(epoch);
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        for (step, chunk) in order.chunks(p.batch).enumerate() {
            let mut x = Vec::with_capacity(chunk.len() * data.width());
            for &i in chunk {
                x.extend_from_slice(data.images_of(i..i + 1));
            }
            let labels: Vec<usize> = chunk.iter().map(|&i| data.labels[i] as usize).collect();
            let loss = trainer.step(&dev, x, &labels);
            if !loss.is_finite() {
                return Err(Error::msg(format!(
                    "training diverged: the loss became {loss} in epoch {epoch}, step {}; try a smaller lr",
                    step + 1
                )));
            }
            loss_sum += loss;
            progress(FitEvent::Step(epoch, step + 1, steps, loss_sum / (step + 1) as f64));
        }
        if trainer
            .model
            .named_tensors()
            .iter()
            .any(|(_, _, values)| values.iter().any(|v| !v.is_finite()))
        {
            return Err(Error::msg(format!(
                "training diverged: the parameters became non-finite in epoch {epoch}; try a smaller lr"
            )));
        }
        let valid_error =
            valid.map(|v| crate::eval::evaluate(&dev, &trainer.model, v, valid_attack.as_ref(), p.seed, 1000, &mut |_, _| {}).error);

        history.push(EpochRecord {
            epoch,
            loss: loss_sum / steps as f64,
            valid_error,
            lr: trainer.lr,
            momentum: trainer.momentum,
        });
        progress(FitEvent::Epoch(history.last().expect("just pushed")));
        if let Some(err) = valid_error {
            if best.as_ref().is_none_or(|(b, _, _)| err < *b) {
                best = Some((err, epoch, trainer.model.clone()));
            }
            let best_epoch = best.as_ref().map_or(epoch, |b| b.1);
            if p.patience.is_some_and(|patience| epoch - best_epoch >= patience) {
                let (_, best_epoch, model) = best.expect("set above");
                return Ok((model, history, best_epoch, true));
            }
        }
    }
    match best {
        Some((_, best_epoch, model)) if p.patience.is_some() => Ok((model, history, best_epoch, false)),
        _ => Ok((trainer.model, history, epochs, false)),
    }
}

/// Trains `net` on `data`, validating on `valid` when given. Fails if the loss stops being
/// finite, naming the epoch.
pub fn fit(net: &NetSpec, data: &Dataset, valid: Option<&Dataset>, p: &FitParams, progress: Progress) -> Result<(Model, FitSummary)> {
    let (model, history, best_epoch, stopped_early) = train_phase(net, data, valid, p, p.epochs, progress)?;
    match (valid, p.patience, p.after_stop) {
        (Some(valid), Some(_), AfterStop::Refit) => {
            let all = data.concat(valid)?;
            let refit = FitParams {
                patience: None,
                ..p.clone()
            };
            let (model, refit_history, _, _) = train_phase(net, &all, None, &refit, best_epoch, progress)?;
            Ok((
                model,
                FitSummary {
                    history,
                    best_epoch,
                    stopped_early,
                    refit_history,
                },
            ))
        }
        _ => Ok((
            model,
            FitSummary {
                history,
                best_epoch,
                stopped_early,
                refit_history: vec![],
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::LayerSpec;

    fn blobs(n: usize, seed: u64) -> Dataset {
        // Two overlapping classes in 2-D.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let c = i % 2;
            let centre = if c == 0 { 0.35 } else { 0.65 };
            images.push(centre + rand::Rng::gen_range(&mut rng, -0.3..0.3f32));
            images.push(centre + rand::Rng::gen_range(&mut rng, -0.3..0.3f32));
            labels.push(c as u8);
        }
        Dataset {
            images,
            labels,
            shape: vec![2],
            classes: 2,
        }
    }

    fn linear() -> NetSpec {
        NetSpec {
            input: vec![2],
            layers: vec![LayerSpec::Linear { units: 2 }],
        }
    }

    fn params(seed: u64) -> FitParams {
        FitParams {
            init: 0.05,
            ..FitParams::sgd(20, 20, 0.5, 0.5, seed)
        }
    }

    fn quiet() -> impl FnMut(FitEvent) {
        |_| {}
    }

    #[test]
    fn fit_learns_and_is_deterministic() {
        let data = blobs(200, 3);
        let (a, s) = fit(&linear(), &data, None, &params(1), &mut quiet()).unwrap();
        assert!(s.history.last().unwrap().loss < s.history[0].loss * 0.8, "{:?}", s.history);
        let (b, _) = fit(&linear(), &data, None, &params(1), &mut quiet()).unwrap();
        assert_eq!(a.named_tensors(), b.named_tensors());
        let (c, _) = fit(&linear(), &data, None, &params(2), &mut quiet()).unwrap();
        assert_ne!(a.named_tensors(), c.named_tensors());
    }

    #[test]
    fn dropout_training_is_deterministic_per_seed() {
        let net = NetSpec {
            input: vec![2],
            layers: vec![LayerSpec::Dropout { p: 0.5 }, LayerSpec::Linear { units: 2 }],
        };
        let data = blobs(100, 3);
        let (a, _) = fit(&net, &data, None, &params(4), &mut quiet()).unwrap();
        let (b, _) = fit(&net, &data, None, &params(4), &mut quiet()).unwrap();
        assert_eq!(a.named_tensors(), b.named_tensors());
        let (plain, _) = fit(&linear(), &data, None, &params(4), &mut quiet()).unwrap();
        assert_ne!(a.named_tensors()[0].2, plain.named_tensors()[0].2, "dropout changed the updates");
    }

    #[test]
    fn divergence_is_an_error_naming_the_epoch() {
        let mut data = blobs(200, 3);
        data.images[0] = f32::NAN;
        let err = fit(&linear(), &data, None, &params(1), &mut quiet()).unwrap_err().to_string();
        assert!(err.contains("diverged") && err.contains("epoch 1"), "{err}");
    }

    #[test]
    fn momentum_ramps_linearly_then_holds() {
        let p = FitParams {
            momentum_end: Some(0.7),
            momentum_epochs: 250,
            ..FitParams::sgd(1, 1, 0.1, 0.5, 0)
        };
        assert_eq!(p.momentum_at(1), 0.5);
        assert!((p.momentum_at(125) - (0.5 + 0.2 * 124.0 / 249.0)).abs() < 1e-12);
        assert!((p.momentum_at(250) - 0.7).abs() < 1e-12);
        assert!((p.momentum_at(400) - 0.7).abs() < 1e-12);
    }

    #[test]
    fn learning_rate_is_divided_after_every_update_down_to_the_floor() {
        let data = blobs(100, 3);
        let p = FitParams {
            lr_decay: 2.0,
            lr_min: 0.01,
            ..params(1)
        };
        let dev = Dev::default();
        let mut t = Trainer::new(
            &dev,
            Model::init(&dev, &linear(), 0.1, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0)),
            &p,
        )
        .unwrap();

        let labels: Vec<usize> = data.labels[..10].iter().map(|&l| l as usize).collect();
        t.step(&dev, data.images_of(0..10).to_vec(), &labels);
        assert_eq!(t.lr, 0.25);
        for _ in 0..10 {
            t.step(&dev, data.images_of(0..10).to_vec(), &labels);
        }
        assert_eq!(t.lr, 0.01);
    }

    #[test]
    fn max_norm_bounds_every_column() {
        let dev = Dev::default();
        let mut w: Matrix = dev.tensor_from_vec(vec![3.0, 0.1, 4.0, 0.1], (2, 2));
        clip_column_norms(&mut w, 1.0);
        let v = w.as_vec();
        assert!(
            ((v[0] * v[0] + v[2] * v[2]).sqrt() - 1.0).abs() < 1e-6,
            "long column scaled to the limit"
        );
        assert_eq!((v[1], v[3]), (0.1, 0.1), "short column untouched");
        let data = blobs(200, 3);
        let p = FitParams {
            max_norm: Some(0.5),
            lr: 5.0,
            ..params(1)
        };
        let (model, _) = fit(&linear(), &data, None, &p, &mut quiet()).unwrap();
        let w = model.params[0].as_ref().unwrap().weight.as_vec();
        for col in 0..2 {
            assert!((w[col] * w[col] + w[2 + col] * w[2 + col]).sqrt() <= 0.5 + 1e-5);
        }
    }

    #[test]
    fn adam_learns() {
        let data = blobs(200, 3);
        let p = FitParams {
            optimizer: Optimizer::Adam,
            lr: 0.05,
            ..params(1)
        };
        let (_, s) = fit(&linear(), &data, None, &p, &mut quiet()).unwrap();
        assert!(s.history.last().unwrap().loss < s.history[0].loss * 0.8, "{:?}", s.history);
    }

    #[test]
    fn early_stopping_keeps_the_best_epoch_and_refit_trains_that_long_on_everything() {
        let (train, valid) = (blobs(60, 3), blobs(200, 4));
        let p = FitParams {
            epochs: 60,
            patience: Some(3),
            lr: 2.0,
            ..params(1)
        };
        let (model, s) = fit(&linear(), &train, Some(&valid), &p, &mut quiet()).unwrap();
        let errors: Vec<f64> = s.history.iter().map(|h| h.valid_error.unwrap()).collect();
        let best = errors.iter().cloned().fold(f64::INFINITY, f64::min);
        assert_eq!(errors[s.best_epoch - 1], best);
        assert_eq!(
            errors.iter().position(|&e| e == best).unwrap() + 1,
            s.best_epoch,
            "the first best epoch wins ties"
        );
        if s.stopped_early {
            assert_eq!(s.history.len(), s.best_epoch + 3);
        }
        let dev = Dev::default();
        assert_eq!(crate::eval::evaluate(&dev, &model, &valid, None, 0, 50, &mut |_, _| {}).error, best);

        let refit = FitParams {
            after_stop: AfterStop::Refit,
            ..p
        };
        let (_, r) = fit(&linear(), &train, Some(&valid), &refit, &mut quiet()).unwrap();
        assert_eq!(r.refit_history.len(), r.best_epoch);
    }
}

#[cfg(test)]
mod mixture_tests {
    use super::*;
    use crate::attacks::testing::model_and_batch;
    use serde_json::json;

    fn fgsm_json(eps: f64) -> serde_json::Value {
        json!({"attack": "fgsm", "eps": eps, "clip": null, "labels": "true", "target": "none", "target_class": null, "mode": "eval"})
    }

    #[test]
    fn the_mixture_loss_equals_the_hand_computed_value() {
        let (dev, model, x, y) = model_and_batch();
        let ctx = AttackContext::new(&model, &dev, 0);
        let adv = crate::attacks::Crafter::from_json(&fgsm_json(0.1))
            .unwrap()
            .craft(&mut AttackContext::new(&model, &dev, 0), &x, &y);
        let by_hand = 0.3 * ctx.loss(&x, &y) as f64 + 0.7 * ctx.loss(&adv, &y) as f64;
        let p = FitParams {
            loss: vec![
                LossTerm { weight: 0.3, attack: None },
                LossTerm {
                    weight: 0.7,
                    attack: Some(fgsm_json(0.1)),
                },
            ],
            ..FitParams::sgd(1, 4, 0.1, 0.0, 0)
        };
        let mut trainer = Trainer::new(&dev, model.clone(), &p).unwrap();
        let stepped = trainer.step(&dev, x.clone(), &y);
        assert!((stepped - by_hand).abs() < 1e-5, "{stepped} vs {by_hand}");
    }

    #[test]
    fn the_mixture_gradient_is_the_weighted_sum_of_the_terms_gradients() {
        // With lr 1 and no momentum, one step moves the weights by minus the gradient: the
        // mixture's move equals 0.5 * (clean move) + 0.5 * (adversarial-only move).
        let (dev, model, x, y) = model_and_batch();
        let moved = |loss: Vec<LossTerm>| {
            let p = FitParams {
                loss,
                ..FitParams::sgd(1, 4, 1.0, 0.0, 0)
            };
            let mut t = Trainer::new(&dev, model.clone(), &p).unwrap();
            t.step(&dev, x.clone(), &y);
            let before = model.named_tensors();
            t.model
                .named_tensors()
                .iter()
                .zip(before)
                .flat_map(|(a, b)| a.2.iter().zip(b.2).map(|(p, q)| p - q).collect::<Vec<_>>())
                .collect::<Vec<f32>>()
        };
        let clean = moved(vec![LossTerm { weight: 1.0, attack: None }]);
        let adv = moved(vec![LossTerm {
            weight: 1.0,
            attack: Some(fgsm_json(0.1)),
        }]);
        let mix = moved(vec![
            LossTerm { weight: 0.5, attack: None },
            LossTerm {
                weight: 0.5,
                attack: Some(fgsm_json(0.1)),
            },
        ]);
        for ((m, c), a) in mix.iter().zip(&clean).zip(&adv) {
            assert!((m - 0.5 * (c + a)).abs() < 1e-5, "{m} vs {}", 0.5 * (c + a));
        }
    }
}

#[cfg(test)]
mod top_tests {
    use super::*;
    use crate::nn::layers::LayerSpec;

    #[test]
    fn a_sigmoid_top_trains_with_binary_cross_entropy() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (mut images, mut labels) = (vec![], vec![]);
        for i in 0..200 {
            let c = i % 2;
            let centre = if c == 0 { 0.3 } else { 0.7 };
            images.push(centre + rand::Rng::gen_range(&mut rng, -0.2..0.2f32));
            images.push(centre + rand::Rng::gen_range(&mut rng, -0.2..0.2f32));
            labels.push(c as u8);
        }
        let data = Dataset {
            images,
            labels,
            shape: vec![2],
            classes: 2,
        };
        let net = NetSpec {
            input: vec![2],
            layers: vec![LayerSpec::Linear { units: 2 }, LayerSpec::SigmoidTop],
        };
        assert_eq!(net.top(), crate::nn::Top::Sigmoid);
        let p = FitParams {
            init: 0.05,
            ..FitParams::sgd(30, 20, 1.0, 0.5, 1)
        };
        let (model, s) = fit(&net, &data, None, &p, &mut |_| {}).unwrap();
        assert!(s.history.last().unwrap().loss < s.history[0].loss * 0.7, "{:?}", s.history);
        let error = crate::eval::evaluate(&Dev::default(), &model, &data, None, 0, 50, &mut |_, _| {}).error;
        assert!(error < 0.1, "{error}");
    }
}

#[cfg(test)]
mod l1_tests {
    use super::*;
    use crate::attacks::testing::model_and_batch;

    #[test]
    fn l1_adds_l1_times_sign_of_the_first_layers_weights_to_its_gradient() {
        let (dev, model, x, y) = model_and_batch();
        let step = |l1: f64| {
            let p = FitParams {
                l1,
                ..FitParams::sgd(1, 4, 1.0, 0.0, 0)
            };
            let mut t = Trainer::new(&dev, model.clone(), &p).unwrap();
            t.step(&dev, x.clone(), &y);
            t.model.named_tensors()
        };
        let (plain, decayed) = (step(0.0), step(0.1));
        let before = model.named_tensors();
        // With lr 1 and no momentum the difference is exactly the extra gradient.
        for ((p, d), b) in plain[0].2.iter().zip(&decayed[0].2).zip(&before[0].2) {
            assert!((p - d - 0.1 * crate::attacks::sign(*b)).abs() < 1e-6);
        }
        assert_eq!(plain[1..], decayed[1..], "only the first layer's weights decay");
    }
}
