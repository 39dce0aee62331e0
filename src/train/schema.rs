//! What `fit` takes and gives: its parameters (the `fit` node's canonical JSON, read by
//! serde), the optimizers and their versions, and the training record.

use crate::params::{Default, Input, ParamDef, ParamType};
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
    /// pylearn2's second stage (`mnist_pi_continued.yaml`): continue from the best model on
    /// train + valid, starting at the learning rate and momentum the schedule had reached
    /// (the rate still decays, the momentum stays), until the objective on the validation
    /// examples falls to the best epoch's training objective, or for at most `epochs`.
    Continue,
}

crate::declare_params! {
    /// The `fit(...)` node's parameters, declared once: the language's signature (name, type,
    /// default, range, doc) and the struct its canonical JSON is read into. The same struct
    /// is the training record kept with the model (the inputs are not part of it).
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct FitParams {
        /// the architecture
        #[serde(default, skip_serializing)]
        net: Input = ParamDef::required(ParamType::Net),
        /// the training set
        #[serde(default, skip_serializing)]
        data: Input = ParamDef::required(ParamType::Dataset),
        /// training objective: clean (default), an attack, or a weighted sum such as 0.5 * clean + 0.5 * fgsm25
        loss: Vec<LossTerm> = ParamDef::optional(ParamType::Loss),
        /// validation set: its error is recorded every epoch
        #[serde(default, skip_serializing)]
        valid: Input = ParamDef::optional(ParamType::Dataset),
        /// measure validation error under this attack (early stopping on adversarial error)
        valid_attack: Option<serde_json::Value> = ParamDef::optional(ParamType::Attack),
        /// most passes over the training set
        epochs: usize = ParamDef::or(ParamType::Int, Default::Int(10)).range(1.0, 100000.0),
        /// examples per step
        batch: usize = ParamDef::or(ParamType::Int, Default::Int(100)).range(1.0, 100000.0),
        /// update rule
        optimizer: Optimizer = ParamDef::or(ParamType::Choice(&["sgd", "adam"]), Default::Str("sgd")),
        /// initial learning rate
        lr: f64 = ParamDef::or(ParamType::Number, Default::Number(0.1)).range(1e-9, 100.0),
        /// divide the learning rate by this after every update
        lr_decay: f64 = ParamDef::or(ParamType::Number, Default::Number(1.0)).range(1.0, 2.0),
        /// floor of the decayed learning rate
        lr_min: f64 = ParamDef::or(ParamType::Number, Default::Number(0.0)).range(0.0, 100.0),
        /// momentum at epoch 1 (sgd)
        momentum: f64 = ParamDef::or(ParamType::Number, Default::Number(0.5)).range(0.0, 0.999),
        /// momentum reached at momentum_epochs (default: momentum)
        momentum_end: Option<f64> = ParamDef::optional(ParamType::Number).range(0.0, 0.999),
        /// epoch at which the linear ramp reaches momentum_end
        momentum_epochs: usize = ParamDef::or(ParamType::Int, Default::Int(1)).range(1.0, 100000.0),
        /// largest norm of a unit's incoming weights (default: none)
        max_norm: Option<f64> = ParamDef::optional(ParamType::Number).range(1e-6, 1000.0),
        /// initial weights uniform in [-init, init], biases 0 (default: PyTorch's, weights and biases uniform in ±1/sqrt(fan_in); the paper's maxout recipe is init: 0.005)
        init: Option<f64> = ParamDef::optional(ParamType::Number).range(0.0, 10.0),
        /// L1 weight decay on the first layer's weights (section 5)
        #[serde(default)]
        l1: f64 = ParamDef::or(ParamType::Number, Default::Number(0.0)).range(0.0, 1.0),
        /// initialisation, shuffling and dropout seed (default: the file's seed)
        seed: u64 = ParamDef::optional(ParamType::Int).range(0.0, 9.0e15),
        /// stop after this many epochs without validation improvement (needs valid)
        patience: Option<usize> = ParamDef::optional(ParamType::Int).range(1.0, 100000.0),
        /// after early stopping: keep the best epoch, refit on train + valid for that many epochs, or continue from it on train + valid until the validation objective falls to its training objective
        after_stop: AfterStop = ParamDef::or(ParamType::Choice(&["best", "refit", "continue"]), Default::Str("best")),
    }
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
            net: Input,
            data: Input,
            valid: Input,
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
            init: Some(0.005),
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
    /// The training objective on the validation examples after the epoch (the continue
    /// stage's stopping channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_objective: Option<f64>,
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
    /// Epochs of the refit or continue stage on train + valid, when there was one.
    pub refit_history: Vec<EpochRecord>,
    /// The continue stage's target: the best epoch's training objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_objective: Option<f64>,
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
