//! Attacks: the extension point. One file per attack, one line in [`ATTACKS`].
//!
//! An attack is a serde params struct with a `validate`, and an [`Attack`] impl whose
//! `perturb` turns a batch into its adversarial version using an [`AttackContext`]
//! (gradients of the attacker's objective, predictions, losses, a seeded random stream and
//! the clip range). The options every attack shares (clip policy, label source, target,
//! crafting mode) are [`Common`] and handled by [`Crafter`], so an attack file only says
//! what is its own. Attacks defined outside the crate join with [`register`].
//!
//! Adding one: see "Adding an attack" in the README.

pub mod apgd;
pub mod autoattack;
pub mod bim;
pub mod deepfool;
pub mod fab;
pub mod fgm;
pub mod fgsm;
pub mod gaussian_noise;
#[cfg(feature = "compute")]
mod last_pass;
pub mod mi_fgsm;
pub mod pgd;
pub mod random_sign;
pub mod square;
pub mod trades;
pub mod uniform_noise;
pub mod worst_case;

#[cfg(feature = "compute")]
use crate::nn::model::{Dev, Matrix, Mode};
#[cfg(feature = "compute")]
use crate::nn::Classifier;
use crate::params::{Default, ParamDef, ParamSpec, ParamType};
pub use crate::tensor::{argmax, l2_normalize_rows, project_l2, project_linf, sign, sign_step_linf};
#[cfg(feature = "compute")]
use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Every built-in attack. A new attack adds its `KIND` here.
pub const ATTACKS: &[AttackKind] = &[
    fgsm::KIND,
    fgm::KIND,
    random_sign::KIND,
    uniform_noise::KIND,
    gaussian_noise::KIND,
    bim::KIND,
    pgd::KIND,
    mi_fgsm::KIND,
    deepfool::KIND,
    apgd::KIND,
    square::KIND,
    fab::KIND,
    trades::KIND,
    worst_case::KIND,
    autoattack::KIND,
];

/// The version of what every attack shares (this file: the crafting loop, clip, labels,
/// targets, the objective's gradient): part of the key of every node that uses an attack.
pub const MACHINERY_VERSION: u32 = 1;

/// What an attack needs from the model it attacks.
#[cfg(feature = "compute")]
pub struct AttackContext<'a> {
    /// The model (or ensemble) under attack.
    pub model: Classifier<'a>,
    /// The device it lives on.
    pub dev: &'a Dev,
    /// A seeded stream for noise and random starts.
    pub rng: ChaCha8Rng,
    /// Dropout off (`Eval`) or on (`Train`) while taking gradients.
    pub mode: Mode,
    targeted: bool,
    clip: Option<[f32; 2]>,
    queries: std::cell::Cell<u64>,
    last_pass: last_pass::LastPass,
}

#[cfg(feature = "compute")]
impl<'a> AttackContext<'a> {
    /// An untargeted, unclipped context in evaluation mode.
    pub fn new(model: impl Into<Classifier<'a>>, dev: &'a Dev, seed: u64) -> Self {
        let rng = rand::SeedableRng::seed_from_u64(seed);
        AttackContext {
            model: model.into(),

            dev,
            rng,
            mode: Mode::Eval,
            targeted: false,
            clip: None,
            queries: std::cell::Cell::new(0),
            last_pass: last_pass::LastPass::default(),
        }
    }

    fn batch(&self, x: &[f32]) -> Matrix {
        let width = self.model.input_width();
        self.dev.tensor_from_vec(x.to_vec(), (x.len() / width, width))
    }

    /// Logits (dropout off), `rows * classes` values.
    pub fn logits(&self, x: &[f32]) -> Vec<f32> {
        if let Some(logits) = self.last_pass.recall(x) {
            return logits;
        }
        let logits = self.model.forward(self.batch(x)).as_vec();
        self.last_pass.remember(x, &logits);
        logits
    }

    /// Logits as a black-box attack sees them: [`Self::logits`], each row counted as one
    /// query of the model ([`Self::queries`]).
    pub fn scores(&self, x: &[f32]) -> Vec<f32> {
        let rows = x.len() / self.model.input_width();
        self.queries.set(self.queries.get() + rows as u64);
        self.logits(x)
    }

    /// How many rows [`Self::scores`] has scored since this context was made.
    pub fn queries(&self) -> u64 {
        self.queries.get()
    }

    /// The predicted class of every row (dropout off).
    pub fn predict(&self, x: &[f32]) -> Vec<usize> {
        let logits = self.logits(x);
        let classes = logits.len() / (x.len() / self.model.input_width());
        logits.chunks(classes).map(argmax).collect()
    }

    /// The model's mean loss on the batch against `labels` (dropout off).
    pub fn loss(&self, x: &[f32], labels: &[usize]) -> f32 {
        self.per_example_loss(x, labels).iter().sum::<f32>() / labels.len() as f32
    }

    /// The model's loss on every row against its label (dropout off).
    pub fn per_example_loss(&self, x: &[f32], labels: &[usize]) -> Vec<f32> {
        let logits = self.logits(x);
        let classes = logits.len() / labels.len();
        logits
            .chunks(classes)
            .zip(labels)
            .map(|(row, &y)| self.model.top().example_loss(row, y))
            .collect()
    }

    /// The gradient of the model's mean loss against `labels` (cross-entropy for a softmax
    /// top) with respect to the input, in the crafting mode.
    pub fn input_gradient(&self, x: &[f32], labels: &[usize]) -> Vec<f32> {
        let batch = self.batch(x);
        let logits = self.model.forward_mode(batch.leaky_trace(), self.mode);
        if self.mode == Mode::Eval {
            self.last_pass.remember(x, &logits.as_vec());
        }
        let grads = self.model.top().loss(self.dev, logits, labels).backward();
        grads.get(&batch).as_vec()
    }

    /// The gradient with respect to the input of `sum over rows and classes k of
    /// weights[row * classes + k] * logit_k(row)`, in the crafting mode: per example, the
    /// slope of one output or of a difference of outputs (DeepFool's `f_k - f_y`, a margin
    /// loss). `weights` has one row of `classes` values per example.
    pub fn output_gradient(&self, x: &[f32], weights: &[f32]) -> Vec<f32> {
        let x = self.batch(x);
        let logits = self.model.forward_mode(x.leaky_trace(), self.mode);
        let shape = *logits.shape();
        let weights: Matrix = self.dev.tensor_from_vec(weights.to_vec(), shape);
        let grads = (logits * weights).sum::<(), Axes2<0, 1>>().backward();
        grads.get(&x).as_vec()
    }

    /// The input gradient of every row's logit `k`, for each of the `classes` classes (one
    /// backward pass per class): DeepFool's and FAB's linearisations of every boundary.
    pub fn class_gradients(&self, x: &[f32], classes: usize) -> Vec<Vec<f32>> {
        let rows = x.len() / self.model.input_width();
        (0..classes)
            .map(|k| {
                let mut weights = vec![0.0f32; rows * classes];
                (0..rows).for_each(|i| weights[i * classes + k] = 1.0);
                self.output_gradient(x, &weights)
            })
            .collect()
    }

    /// [`Self::output_gradient`] and the logits it was taken at, from one pass: `weights`
    /// gets the logits (`rows * classes`) and returns the weights, so a loss defined on the
    /// logits (DLR, a margin) costs one forward and one backward pass.
    pub fn logits_and_output_gradient(&self, x: &[f32], weights: impl FnOnce(&[f32]) -> Vec<f32>) -> (Vec<f32>, Vec<f32>) {
        let x = self.batch(x);
        let logits = self.model.forward_mode(x.leaky_trace(), self.mode);
        let shape = *logits.shape();
        let values = logits.as_vec();
        let weights: Matrix = self.dev.tensor_from_vec(weights(&values), shape);
        let grads = (logits * weights).sum::<(), Axes2<0, 1>>().backward();
        (values, grads.get(&x).as_vec())
    }

    /// [`Self::objective`] and [`Self::objective_gradient`] from one pass when dropout is off
    /// while crafting (with it on, the objective is still taken with dropout off, as
    /// `objective` does, which needs a pass of its own).
    pub fn objective_and_gradient(&self, x: &[f32], labels: &[usize]) -> (Vec<f32>, Vec<f32>) {
        if self.mode != Mode::Eval {
            return (self.objective(x, labels), self.objective_gradient(x, labels));
        }
        let batch = self.batch(x);
        let logits = self.model.forward_mode(batch.leaky_trace(), self.mode);
        let values = logits.as_vec();
        self.last_pass.remember(x, &values);
        let top = self.model.top();
        let mut gradient = top.loss(self.dev, logits, labels).backward().get(&batch).as_vec();
        let sign = if self.targeted { -1.0 } else { 1.0 };
        if self.targeted {
            gradient.iter_mut().for_each(|v| *v = -*v);
        }
        let classes = values.len() / labels.len();
        let objective = values
            .chunks(classes)
            .zip(labels)
            .map(|(row, &y)| sign * top.example_loss(row, y))
            .collect();
        (objective, gradient)
    }

    /// Whether the labels an attack is given are targets (to move towards) rather than the
    /// labels to move away from.
    pub fn is_targeted(&self) -> bool {
        self.targeted
    }

    /// The direction that helps the attacker: the loss gradient for an untargeted attack,
    /// its negative for a targeted one (whose `labels` are then the targets).
    pub fn objective_gradient(&self, x: &[f32], labels: &[usize]) -> Vec<f32> {
        let mut g = self.input_gradient(x, labels);
        if self.targeted {
            g.iter_mut().for_each(|v| *v = -*v);
        }
        g
    }

    /// The attacker's objective per row: the loss, or minus the loss to the target.
    pub fn objective(&self, x: &[f32], labels: &[usize]) -> Vec<f32> {
        let sign = if self.targeted { -1.0 } else { 1.0 };
        self.per_example_loss(x, labels).into_iter().map(|l| sign * l).collect()
    }

    /// The clip range of the attack being crafted (`None`: unclipped).
    pub fn clip_range(&self) -> Option<[f32; 2]> {
        self.clip
    }

    /// Clamps to the clip range, if there is one (iterative attacks call it every step).
    pub fn clip(&self, x: &mut [f32]) {
        if let Some([lo, hi]) = self.clip {
            x.iter_mut().for_each(|v| *v = v.clamp(lo, hi));
        }
    }
}

/// An attack, built from validated parameters.
#[cfg(feature = "compute")]
pub trait Attack: Send + Sync {
    /// The adversarial version of the batch `x` (rows of the model's input width), given
    /// the labels of the objective (true, predicted, or target labels). The final clip is
    /// applied afterwards by [`Crafter`].
    fn perturb(&self, ctx: &mut AttackContext, x: &[f32], labels: &[usize]) -> Vec<f32>;

    /// How a term of `fit`'s loss made of this attack scores its batch: with the model's own
    /// loss against the labels (`false`, every attack but one), or with the KL divergence
    /// from the model's prediction on the clean batch (`true`: TRADES).
    fn is_divergence_term(&self) -> bool {
        false
    }
}

/// Without `compute` an attack is only built to validate its parameters.
#[cfg(not(feature = "compute"))]
pub trait Attack: Send + Sync {}
#[cfg(not(feature = "compute"))]
impl<T: Send + Sync> Attack for T {}

/// Which labels the gradient is taken against (the paper leaves it open).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelSource {
    /// The dataset's labels.
    True,
    /// The model's own predictions (avoids "label leaking").
    Predicted,
}

/// Untargeted, or which class to push every example towards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Increase the loss of the label.
    None,
    /// Decrease the loss of the class the model finds least likely.
    LeastLikely,
    /// Decrease the loss of `target_class`.
    Class,
}

/// Dropout while crafting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CraftMode {
    /// Dropout off.
    Eval,
    /// Dropout on, as during training.
    Train,
}

/// Options every attack takes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Common {
    /// Clamp adversarial inputs to `[lo, hi]`, or not at all (`None`).
    pub clip: Option<[f32; 2]>,
    /// The labels the loss is taken against.
    pub labels: LabelSource,
    /// Targeted or not.
    pub target: Target,
    /// The class of `target: "class"`.
    pub target_class: Option<usize>,
    /// Dropout while crafting.
    pub mode: CraftMode,
}

/// The defaults of [`COMMON_PARAMS`], for attack JSON written by hand (benches, plugins).
impl std::default::Default for Common {
    fn default() -> Self {
        Common {
            clip: Some([0.0, 1.0]),
            labels: LabelSource::True,
            target: Target::None,
            target_class: None,
            mode: CraftMode::Eval,
        }
    }
}

/// The parameters every attack takes, appended to its own by the checker.
pub const COMMON_PARAMS: &[ParamSpec] = &[
    ParamSpec::with_default(
        "clip",
        ParamType::ClipRange,
        Default::Range(0.0, 1.0),
        "clamp adversarial inputs to [lo, hi], or \"none\"",
    ),
    ParamSpec::with_default(
        "labels",
        ParamType::Choice(&["true", "predicted"]),
        Default::Str("true"),
        "labels the gradient is taken against",
    ),
    ParamSpec::with_default(
        "target",
        ParamType::Choice(&["none", "least_likely", "class"]),
        Default::Str("none"),
        "untargeted, or push towards the least likely class or target_class",
    ),
    ParamSpec::with_default("target_class", ParamType::Int, Default::Optional, "the class of target: \"class\"").range(0.0, 100000.0),
    ParamSpec::with_default(
        "mode",
        ParamType::Choice(&["eval", "train"]),
        Default::Str("eval"),
        "dropout off (eval) or on (train) while crafting",
    ),
];

/// A registered attack kind.
pub struct AttackKind {
    /// Bumped whenever its perturbations change for the same parameters; part of the key of
    /// every node that uses it (see `versions`).
    pub version: u32,
    /// Its source file (`file!()`), whose changes `tests/code_versions.rs` watches.
    pub source: &'static str,
    /// Its name in the language.
    pub name: &'static str,
    /// One line for the reference.
    pub doc: &'static str,
    /// Its own parameters (without [`COMMON_PARAMS`]).
    pub params: &'static [ParamSpec],
    /// Builds it from checked parameters (a JSON object), running its `validate`.
    pub build: fn(&serde_json::Value) -> Result<Box<dyn Attack>, String>,
}

static REGISTERED: std::sync::RwLock<Vec<&'static AttackKind>> = std::sync::RwLock::new(Vec::new());

/// Adds an attack defined outside this crate (a plugin, or a test) to the registry, for the
/// rest of the process. A name an attack or layer already has is refused (node kinds, which
/// sit above attacks, refuse attacks' names when they register).
pub fn register(kind: &'static AttackKind) -> Result<(), String> {
    if find(kind.name).is_some() || crate::nn::layers::find(kind.name).is_some() {
        return Err(format!("an attack or layer named `{}` already exists", kind.name));
    }
    REGISTERED.write().unwrap_or_else(|e| e.into_inner()).push(kind);
    Ok(())
}

/// Every attack kind: the built-in [`ATTACKS`], then the [`register`]ed ones.
pub fn all() -> Vec<&'static AttackKind> {
    let registered = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
    ATTACKS.iter().chain(registered.iter().copied()).collect()
}

/// Looks an attack kind up by name (the built-in ones without taking the registry's lock:
/// keys look up every node's attacks).
pub fn find(name: &str) -> Option<&'static AttackKind> {
    if let Some(builtin) = ATTACKS.iter().find(|a| a.name == name) {
        return Some(builtin);
    }
    let registered = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
    registered.iter().copied().find(|a| a.name == name)
}

/// Whether checked attack JSON asks for a target (`target` other than "none"): what the
/// attacks that choose their own targets, or none, refuse in their `build`.
pub fn asks_for_a_target(json: &serde_json::Value) -> bool {
    json.get("target").and_then(|t| t.as_str()).is_some_and(|t| t != "none")
}

/// Deserializes an attack's params struct from checked JSON.
pub fn params_from<P: serde::de::DeserializeOwned>(json: &serde_json::Value) -> Result<P, String> {
    serde_json::from_value(json.clone()).map_err(|e| e.to_string())
}

/// A ready-to-use attack: the kind's implementation plus the shared options.
pub struct Crafter {
    attack: Box<dyn Attack>,
    kind: &'static AttackKind,
    /// The shared options.
    pub common: Common,
}

impl Crafter {
    /// Builds from the checked JSON form `{"attack": name, ...params}`, validating both the
    /// attack's own parameters and the shared ones.
    pub fn from_json(json: &serde_json::Value) -> Result<Crafter, String> {
        let name = json.get("attack").and_then(|n| n.as_str()).ok_or("attack JSON without a name")?;
        let kind = find(name).ok_or_else(|| format!("unknown attack {name}"))?;
        let common: Common = params_from(json)?;
        if (common.target == Target::Class) != common.target_class.is_some() {
            return Err("target: \"class\" and target_class go together".into());
        }
        Ok(Crafter {
            attack: (kind.build)(json)?,
            kind,
            common,
        })
    }

    /// The attack's name in the language.
    pub fn name(&self) -> &'static str {
        self.kind.name
    }

    /// See [`Attack::is_divergence_term`].
    #[cfg(feature = "compute")]
    pub fn is_divergence_term(&self) -> bool {
        self.attack.is_divergence_term()
    }

    /// Adversarial versions of the rows of `x`, whose dataset labels are `labels`.
    #[cfg(feature = "compute")]
    pub fn craft(&self, ctx: &mut AttackContext, x: &[f32], labels: &[usize]) -> Vec<f32> {
        let objective_labels: Vec<usize> = match (self.common.target, self.common.labels) {
            (Target::None, LabelSource::True) => labels.to_vec(),
            (Target::None, LabelSource::Predicted) => ctx.predict(x),
            (Target::Class, _) => vec![self.common.target_class.expect("validated"); labels.len()],
            (Target::LeastLikely, _) => {
                let logits = ctx.logits(x);
                let classes = logits.len() / labels.len();
                logits
                    .chunks(classes)
                    .map(|row| argmax(&row.iter().map(|v| -v).collect::<Vec<_>>()))
                    .collect()
            }
        };
        // Saved and put back, so that an attack made of attacks (`worst_case`) keeps its
        // own settings while its components craft with theirs.
        let outer = (ctx.targeted, ctx.clip, ctx.mode);
        ctx.targeted = self.common.target != Target::None;
        ctx.clip = self.common.clip;
        ctx.mode = match self.common.mode {
            CraftMode::Eval => Mode::Eval,
            CraftMode::Train => Mode::Train,
        };
        let mut adv = self.attack.perturb(ctx, x, &objective_labels);
        ctx.clip(&mut adv);
        (ctx.targeted, ctx.clip, ctx.mode) = outer;
        adv
    }
}

/// Restarts: every row of `candidate` whose objective beats the best so far replaces it
/// (rows `width` values wide).
pub fn keep_better_rows(best: &mut [f32], best_objective: &mut [f32], candidate: &[f32], objective: &[f32], width: usize) {
    for (row, (&new, old)) in objective.iter().zip(best_objective.iter_mut()).enumerate() {
        if new > *old {
            *old = new;
            best[row * width..(row + 1) * width].copy_from_slice(&candidate[row * width..(row + 1) * width]);
        }
    }
}

/// The largest logit of a class other than `y` (the runner-up an untargeted attack pushes up).
pub fn largest_other(logits: &[f32], y: usize) -> f32 {
    logits
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != y)
        .map(|(_, &v)| v)
        .fold(f32::NEG_INFINITY, f32::max)
}

/// The classes of one row of logits, largest logit first (APGD-T's and FAB-T's targets are
/// the 2nd, 3rd, ... of the clean input).
pub fn descending(z: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..z.len()).collect();
    order.sort_by(|&a, &b| z[b].total_cmp(&z[a]));
    order
}

/// The step size iterative attacks use when none is given: 2.5 * eps / steps (Madry et
/// al. 2018), so the iterates can cross the whole ball.
pub fn default_step_size(eps: f32, steps: usize) -> f32 {
    2.5 * eps / steps.max(1) as f32
}

/// Definitions the attacks share (each field keeps its own doc line).
pub(crate) const EPS: ParamDef = ParamDef::required(ParamType::Number).range(0.0, 1.0);
pub(crate) const STEPS: ParamDef = ParamDef::or(ParamType::Int, Default::Int(10)).range(1.0, 10000.0);
pub(crate) const STEP_SIZE: ParamDef = ParamDef::optional(ParamType::Number).range(0.0, 1.0);

#[cfg(all(test, feature = "compute"))]
pub(crate) mod testing {
    //! A small model and batch the attack tests share, and checks every attack must pass.
    use super::*;
    use crate::nn::layers::{activations::Tanh, linear::Linear};
    use crate::nn::{Dev, Model, NetSpec};
    use rand::{Rng, SeedableRng};

    /// A 6-input, 3-class net with a hidden tanh layer, and a batch of 4 rows in [0, 1].
    pub fn model_and_batch() -> (Dev, Model, Vec<f32>, Vec<usize>) {
        let dev = Dev::default();
        let net = NetSpec {
            input: vec![6],
            layers: vec![Linear { units: 5 }.into(), Tanh {}.into(), Linear { units: 3 }.into()],
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let model = Model::init(&dev, &net, 1.0, &mut rng);
        let x: Vec<f32> = (0..24).map(|_| rng.gen_range(0.0..1.0)).collect();
        (dev, model, x, vec![0, 1, 2, 1])
    }

    /// A softmax regression (the loss is convex in the input), its batch and labels.
    pub fn convex_model_and_batch() -> (Dev, Model, Vec<f32>, Vec<usize>) {
        let dev = Dev::default();
        let net = NetSpec {
            input: vec![6],
            layers: vec![Linear { units: 3 }.into()],
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let model = Model::init(&dev, &net, 1.0, &mut rng);
        let x: Vec<f32> = (0..24).map(|_| rng.gen_range(0.2..0.8)).collect();
        (dev, model, x, vec![0, 1, 2, 1])
    }

    /// Crafts with an attack given as JSON parameters (common options defaulted).
    pub fn craft(mut json: serde_json::Value, model: &Model, dev: &Dev, x: &[f32], y: &[usize]) -> Vec<f32> {
        let defaults = serde_json::json!({"clip": [0.0, 1.0], "labels": "true", "target": "none", "target_class": null, "mode": "eval"});
        for (k, v) in defaults.as_object().unwrap() {
            if json.get(k).is_none() {
                json[k] = v.clone();
            }
        }
        let crafter = Crafter::from_json(&json).unwrap();
        crafter.craft(&mut AttackContext::new(model, dev, 0), x, y)
    }

    /// Largest |a - b| per row, and largest L2 norm of a row of a - b.
    pub fn norms(a: &[f32], b: &[f32], width: usize) -> (f32, f32) {
        let d: Vec<f32> = a.iter().zip(b).map(|(p, q)| p - q).collect();
        let linf = d.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let l2 = d
            .chunks(width)
            .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt())
            .fold(0.0, f32::max);
        (linf, l2)
    }
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::nn::Top;
    use serde_json::json;

    /// Every built-in attack, with a budget of `eps` and its norm.
    fn every_attack(eps: f64) -> Vec<(serde_json::Value, &'static str)> {
        vec![
            (json!({"attack": "fgsm", "eps": eps}), "linf"),
            (json!({"attack": "fgm", "eps": eps}), "l2"),
            (json!({"attack": "random_sign", "eps": eps}), "linf"),
            (json!({"attack": "uniform_noise", "eps": eps}), "linf"),
            (json!({"attack": "bim", "eps": eps, "steps": 5, "step_size": null}), "linf"),
            (
                json!({"attack": "pgd", "eps": eps, "norm": "linf", "steps": 5, "step_size": null, "start": "random", "restarts": 2}),
                "linf",
            ),
            (
                json!({"attack": "pgd", "eps": eps, "norm": "l2", "steps": 5, "step_size": null, "start": "random", "restarts": 1}),
                "l2",
            ),
            (
                json!({"attack": "mi_fgsm", "eps": eps, "steps": 5, "step_size": null, "decay": 1.0}),
                "linf",
            ),
            (
                json!({"attack": "apgd", "eps": eps, "norm": "linf", "loss": "ce", "steps": 10, "restarts": 1, "targets": 9}),
                "linf",
            ),
            (
                json!({"attack": "apgd", "eps": eps, "norm": "l2", "loss": "dlr", "steps": 10, "restarts": 2, "targets": 9}),
                "l2",
            ),
            (
                json!({"attack": "apgd", "eps": eps, "norm": "linf", "loss": "dlr_targeted", "steps": 10, "restarts": 1, "targets": 2}),
                "linf",
            ),
            (
                json!({"attack": "square", "eps": eps, "norm": "linf", "queries": 30, "p_init": 0.8}),
                "linf",
            ),
            (
                json!({"attack": "square", "eps": eps, "norm": "l2", "queries": 30, "p_init": 0.8}),
                "l2",
            ),
            (json!({"attack": "trades", "eps": eps, "steps": 5, "step_size": null}), "linf"),
        ]
    }

    #[test]
    fn every_attack_is_registered_and_tested_here() {
        let tested: std::collections::BTreeSet<String> = every_attack(0.1)
            .iter()
            .map(|(j, _)| j["attack"].as_str().unwrap().to_string())
            .collect();
        for kind in ATTACKS {
            // Minimal-perturbation attacks have no budget to hold: they are in
            // `minimal_attacks()` below.
            let minimal = minimal_attacks().iter().any(|j| j["attack"] == kind.name);
            let composite = composite_attacks(0.1).iter().any(|j| j["attack"] == kind.name);
            assert!(
                tested.contains(kind.name) || kind.name == "gaussian_noise" || minimal || composite,
                "{} is not in every_attack(), minimal_attacks() or composite_attacks()",
                kind.name
            );
        }
    }

    #[test]
    fn eps_zero_is_the_identity_for_every_attack() {
        let (dev, model, x, y) = model_and_batch();
        for (params, _) in every_attack(0.0) {
            assert_eq!(craft(params.clone(), &model, &dev, &x, &y), x, "{params}");
        }
    }

    #[test]
    fn the_norm_budget_holds_for_every_attack() {
        let (dev, model, x, y) = model_and_batch();
        let eps = 0.1f32;
        for (mut params, norm) in every_attack(eps as f64) {
            params["clip"] = serde_json::Value::Null;
            let adv = craft(params.clone(), &model, &dev, &x, &y);
            let (linf, l2) = norms(&adv, &x, 6);
            let used = if norm == "linf" { linf } else { l2 };
            assert!(used <= eps * (1.0 + 1e-5), "{params}: {norm} = {used}");
            assert!(used >= eps * 0.5, "{params} barely moved: {used}");
        }
    }

    #[test]
    fn one_pass_objective_and_gradient_equal_the_two_passes() {
        let (dev, model, x, y) = model_and_batch();
        for targeted in [false, true] {
            let mut ctx = AttackContext::new(&model, &dev, 0);
            ctx.targeted = targeted;
            let (objective, gradient) = ctx.objective_and_gradient(&x, &y);
            let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(p, q)| (p - q).abs() <= 1e-5 * (1.0 + q.abs()));
            assert!(close(&objective, &ctx.objective(&x, &y)), "targeted {targeted}");
            assert!(close(&gradient, &ctx.objective_gradient(&x, &y)), "targeted {targeted}");
            let weights: Vec<f32> = (0..12).map(|i| (i % 3) as f32 - 1.0).collect();
            let (logits, g) = ctx.logits_and_output_gradient(&x, |_| weights.clone());
            assert!(close(&logits, &ctx.logits(&x)) && close(&g, &ctx.output_gradient(&x, &weights)));
        }
    }

    /// Attacks without a budget, which move each example as far as it takes.
    fn minimal_attacks() -> Vec<serde_json::Value> {
        vec![
            json!({"attack": "deepfool", "norm": "l2", "steps": 50, "overshoot": 0.02}),
            json!({"attack": "deepfool", "norm": "linf", "steps": 50, "overshoot": 0.02}),
            json!({"attack": "fab", "norm": "linf", "eps": null, "steps": 20, "restarts": 1, "targets": 0, "alpha_max": 0.1, "eta": 1.05, "beta": 0.9}),
            json!({"attack": "fab", "norm": "l2", "eps": null, "steps": 20, "restarts": 2, "targets": 2, "alpha_max": 0.1, "eta": 1.05, "beta": 0.9}),
        ]
    }

    /// Attacks made of attacks: they return an example clean unless a component breaks it,
    /// so they hold their components' budgets without always using them.
    fn composite_attacks(eps: f64) -> Vec<serde_json::Value> {
        let component = |name: &str| json!({"attack": name, "eps": eps, "clip": [0.0, 1.0], "labels": "true", "target": "none", "target_class": null, "mode": "eval"});
        vec![
            json!({"attack": "worst_case", "attacks": [component("fgsm"), component("random_sign")]}),
            json!({"attack": "autoattack", "eps": eps, "norm": "linf", "version": "standard"}),
            json!({"attack": "autoattack", "eps": eps, "norm": "l2", "version": "standard"}),
        ]
    }

    #[test]
    fn composite_attacks_hold_their_budgets_and_clip() {
        let (dev, model, x, y) = model_and_batch();
        for params in composite_attacks(0.0) {
            assert_eq!(craft(params.clone(), &model, &dev, &x, &y), x, "{params}");
        }
        for eps in [0.1f32, 0.6] {
            for params in composite_attacks(eps as f64) {
                let adv = craft(params.clone(), &model, &dev, &x, &y);
                assert!(adv.iter().all(|v| (0.0..=1.0).contains(v)), "{params}");
                assert!(norms(&adv, &x, 6).0 <= eps * (1.0 + 1e-5), "{params}");
            }
        }
    }

    #[test]
    fn minimal_attacks_clip_and_raise_the_loss() {
        let (dev, model, x, y) = model_and_batch();
        let ctx = AttackContext::new(&model, &dev, 0);
        for params in minimal_attacks() {
            let adv = craft(params.clone(), &model, &dev, &x, &y);
            assert!(adv.iter().all(|v| (0.0..=1.0).contains(v)), "{params}");
            assert!(ctx.loss(&adv, &y) > ctx.loss(&x, &y), "{params}");
        }
    }

    #[test]
    fn clipping_holds_for_every_attack() {
        let (dev, model, x, y) = model_and_batch();
        for (params, _) in every_attack(0.6) {
            let adv = craft(params.clone(), &model, &dev, &x, &y);
            assert!(adv.iter().all(|v| (0.0..=1.0).contains(v)), "{params}");
        }
    }

    #[test]
    fn gradient_attacks_increase_the_loss() {
        let (dev, model, x, y) = model_and_batch();
        let ctx = AttackContext::new(&model, &dev, 0);
        let clean = ctx.loss(&x, &y);
        for (params, _) in every_attack(0.05) {
            let name = params["attack"].as_str().unwrap().to_string();
            // Noise raises no loss; TRADES raises the divergence from the clean prediction.
            if ["random_sign", "uniform_noise", "trades"].contains(&name.as_str()) {
                continue;
            }
            let adv = craft(params, &model, &dev, &x, &y);
            assert!(ctx.loss(&adv, &y) > clean, "{name}");
        }
    }

    #[test]
    fn targeted_attacks_raise_the_target_probability() {
        let (dev, model, x, y) = model_and_batch();
        let ctx = AttackContext::new(&model, &dev, 0);
        let target = vec![2; 4];
        for attack in ["fgsm", "bim", "pgd", "mi_fgsm"] {
            let params = json!({"attack": attack, "eps": 0.1, "steps": 5, "step_size": null, "norm": "linf", "start": "clean", "restarts": 1, "decay": 1.0, "target": "class", "target_class": 2});
            let adv = craft(params, &model, &dev, &x, &y);
            assert!(ctx.loss(&adv, &target) < ctx.loss(&x, &target), "{attack}");
        }
        let ll = craft(
            json!({"attack": "fgsm", "eps": 0.1, "target": "least_likely"}),
            &model,
            &dev,
            &x,
            &y,
        );
        let logits = ctx.logits(&x);
        let least: Vec<usize> = logits
            .chunks(3)
            .map(|r| argmax(&r.iter().map(|v| -v).collect::<Vec<_>>()))
            .collect();
        assert!(ctx.loss(&ll, &least) < ctx.loss(&x, &least));
    }

    #[test]
    fn pgd_reaches_at_least_fgsm_loss_on_a_convex_model() {
        let (dev, model, x, y) = convex_model_and_batch();
        let ctx = AttackContext::new(&model, &dev, 0);
        let fgsm = craft(json!({"attack": "fgsm", "eps": 0.1, "clip": null}), &model, &dev, &x, &y);
        let pgd = craft(
            json!({"attack": "pgd", "eps": 0.1, "norm": "linf", "steps": 20, "step_size": null, "start": "clean", "restarts": 1, "clip": null}),
            &model,
            &dev,
            &x,
            &y,
        );
        assert!(ctx.loss(&pgd, &y) >= ctx.loss(&fgsm, &y) - 1e-6);
    }

    #[test]
    fn target_class_is_validated() {
        let bad =
            json!({"attack": "fgsm", "eps": 0.1, "clip": null, "labels": "true", "target": "class", "target_class": null, "mode": "eval"});
        assert!(Crafter::from_json(&bad).is_err());
    }

    #[test]
    fn per_example_loss_matches_the_tape() {
        let (dev, model, x, y) = model_and_batch();
        let ctx = AttackContext::new(&model, &dev, 0);
        let logits = model.forward(dev.tensor_from_vec(x.clone(), (4, 6)));
        let tape_loss = Top::Softmax.loss(&dev, logits, &y).array();
        assert!((ctx.loss(&x, &y) - tape_loss).abs() < 1e-5);
    }
}

#[cfg(test)]
mod default_tests {
    use super::*;

    #[test]
    fn common_defaults_agree_with_the_declared_parameters() {
        let mut json = serde_json::Map::new();
        for p in COMMON_PARAMS {
            json.insert(p.name.into(), p.default_json().unwrap_or(serde_json::Value::Null));
        }
        let declared: Common = serde_json::from_value(serde_json::Value::Object(json)).unwrap();
        assert_eq!(declared, Common::default());
        assert_eq!(serde_json::from_value::<Common>(serde_json::json!({})).unwrap(), Common::default());
    }
}
