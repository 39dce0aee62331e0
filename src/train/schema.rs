//! What `fit` takes and gives: its parameters (the `fit` node's canonical JSON, read by
//! serde), the optimizers and their versions, and the training record.

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
        ("sgd", 1, &["src/train/step.rs", "src/nn/fused.rs", "src/tensor.rs"]),
        ("adam", 1, &["src/train/step.rs"]),
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
