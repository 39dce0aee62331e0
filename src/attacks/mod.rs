//! Attacks: the extension point. One file per attack, one line in [`ATTACKS`].
//!
//! An attack is a serde params struct with a `validate`, and an [`Attack`] impl whose
//! `perturb` turns a batch into its adversarial version using an [`AttackContext`] (input
//! gradients, predictions). The options every attack shares, the clip policy and the label
//! source, are [`Common`] and handled here, so an attack file only says what is its own.
//!
//! Adding one: see "Adding an attack" in the README.

pub mod fgsm;

use crate::nn::model::{Dev, Matrix, Model};
use crate::nn::train::cross_entropy;
use crate::params::{Default, ParamSpec, ParamType};
use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

/// What an attack needs from the model it attacks.
pub struct AttackContext<'a> {
    /// The model under attack.
    pub model: &'a Model,
    /// The device it lives on.
    pub dev: &'a Dev,
}

impl AttackContext<'_> {
    fn batch(&self, x: &[f32]) -> Matrix {
        let width = self.model.input_width();
        self.dev
            .tensor_from_vec(x.to_vec(), (x.len() / width, width))
    }

    /// Logits, `rows * classes` values.
    pub fn logits(&self, x: &[f32]) -> Vec<f32> {
        self.model.forward(self.batch(x)).as_vec()
    }

    /// The predicted class of every row.
    pub fn predict(&self, x: &[f32]) -> Vec<usize> {
        let logits = self.logits(x);
        let classes = logits.len() / (x.len() / self.model.input_width());
        logits.chunks(classes).map(argmax).collect()
    }

    /// Mean cross-entropy of the batch against `labels`.
    pub fn loss(&self, x: &[f32], labels: &[usize]) -> f32 {
        let logits = self.model.forward(self.batch(x));
        let classes = logits.shape().1;
        cross_entropy(self.dev, logits, labels, classes).array()
    }

    /// The gradient of the mean cross-entropy with respect to the input, one value per pixel.
    pub fn input_gradient(&self, x: &[f32], labels: &[usize]) -> Vec<f32> {
        let x = self.batch(x);
        let logits = self.model.forward(x.leaky_trace());
        let classes = logits.shape().1;
        let grads = cross_entropy(self.dev, logits, labels, classes).backward();
        grads.get(&x).as_vec()
    }
}

/// The index of the largest value (the first, on ties).
pub fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
}

/// An attack, built from validated parameters.
pub trait Attack: Send + Sync {
    /// The adversarial version of the batch `x` (rows of the model's input width), given the
    /// labels whose loss it should increase. Clipping is applied afterwards by [`Crafter`].
    fn perturb(&self, ctx: &AttackContext, x: &[f32], labels: &[usize]) -> Vec<f32>;
}

/// Which labels the gradient is taken against (the paper leaves it open).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelSource {
    /// The dataset's labels.
    True,
    /// The model's own predictions (avoids "label leaking").
    Predicted,
}

/// Options every attack takes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Common {
    /// Clamp adversarial inputs to `[lo, hi]`, or not at all (`None`).
    pub clip: Option<[f32; 2]>,
    /// The labels the loss is taken against.
    pub labels: LabelSource,
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
];

/// A registered attack kind.
pub struct AttackKind {
    /// Its name in the language.
    pub name: &'static str,
    /// One line for the reference.
    pub doc: &'static str,
    /// Its own parameters (without [`COMMON_PARAMS`]).
    pub params: &'static [ParamSpec],
    /// Builds it from checked parameters (a JSON object), running its `validate`.
    pub build: fn(&serde_json::Value) -> Result<Box<dyn Attack>, String>,
}

/// Every attack the language knows.
pub const ATTACKS: &[AttackKind] = &[fgsm::KIND];

/// Looks an attack kind up by name.
pub fn find(name: &str) -> Option<&'static AttackKind> {
    ATTACKS.iter().find(|a| a.name == name)
}

/// Deserializes an attack's params struct from checked JSON.
pub fn params_from<P: serde::de::DeserializeOwned>(json: &serde_json::Value) -> Result<P, String> {
    serde_json::from_value(json.clone()).map_err(|e| e.to_string())
}

/// A ready-to-use attack: the kind's implementation plus the shared options.
pub struct Crafter {
    attack: Box<dyn Attack>,
    /// The shared options.
    pub common: Common,
}

impl Crafter {
    /// Builds from the checked JSON form `{"attack": name, ...params}`.
    pub fn from_json(json: &serde_json::Value) -> Result<Crafter, String> {
        let name = json
            .get("attack")
            .and_then(|n| n.as_str())
            .ok_or("attack JSON without a name")?;
        let kind = find(name).ok_or_else(|| format!("unknown attack {name}"))?;
        Ok(Crafter {
            attack: (kind.build)(json)?,
            common: params_from(json)?,
        })
    }

    /// Adversarial versions of the rows of `x`, whose dataset labels are `labels`.
    pub fn craft(&self, ctx: &AttackContext, x: &[f32], labels: &[usize]) -> Vec<f32> {
        let predicted;
        let labels = match self.common.labels {
            LabelSource::True => labels,
            LabelSource::Predicted => {
                predicted = ctx.predict(x);
                &predicted
            }
        };
        let mut adv = self.attack.perturb(ctx, x, labels);
        if let Some([lo, hi]) = self.common.clip {
            adv.iter_mut().for_each(|v| *v = v.clamp(lo, hi));
        }
        adv
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A small model and batch the attack tests share.
    use crate::nn::{layers::LayerSpec, Dev, Model, NetSpec};
    use rand::{Rng, SeedableRng};

    /// A 6-input, 3-class net with a hidden tanh layer, and a batch of 4 rows in [0, 1].
    pub fn model_and_batch() -> (Dev, Model, Vec<f32>, Vec<usize>) {
        let dev = Dev::default();
        let net = NetSpec {
            input: vec![6],
            layers: vec![
                LayerSpec::Linear { units: 5 },
                LayerSpec::Tanh,
                LayerSpec::Linear { units: 3 },
            ],
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let model = Model::init(&dev, &net, 1.0, &mut rng);
        let x: Vec<f32> = (0..24).map(|_| rng.gen_range(0.0..1.0)).collect();
        (dev, model, x, vec![0, 1, 2, 1])
    }
}
