//! Fits that survive their process: a checkpoint at the end of an epoch holds everything
//! the rest of the fit depends on, so a fit resumed from it ends with the same bytes as one
//! that was never interrupted.
//!
//! What a stage's result depends on, and where the checkpoint keeps it: the parameters and
//! the optimizer state (velocities or Adam moments, the step count, the decayed learning
//! rate and the momentum), the shuffling stream and the order it last shuffled, the stream
//! the training attacks seed from, the epochs run with their records, the best epoch's
//! parameters for early stopping, the stage (first, refit or continue) with the finished
//! first stage's record, and the dropout stream. dfdx keeps that last one inside its device,
//! out of reach, but draws exactly one `u64` from it per dropout call: the checkpoint counts
//! the calls, and a resumed stage seeds a fresh device the same way and draws as many.
//!
//! A checkpoint file is `ADVFIT01`, the BLAKE3 digest of the rest, then a safetensors file
//! whose tensors are the parameters and optimizer state and whose metadata holds the rest
//! as JSON. Anything that does not check out is refused with a reason, never half-used.

use super::schema::EpochRecord;
use super::step::{State, Trainer};
use crate::nn::model::{f32s_from_le, f32s_to_le, Dev, Model};
use dfdx::prelude::*;
use dfdx::tensor::RandomU64;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

const MAGIC: &[u8; 8] = b"ADVFIT01";
/// More dropout draws than any real fit makes (a 1,000-epoch fit of 600 steps with PGD-10
/// training through three dropout layers makes about 2e7); replaying them takes seconds, so a
/// checkpoint claiming more is refused rather than replayed.
const MOST_DRAWS: u64 = 100_000_000;
const HEADER_KEY: &str = "advpipe.fit_checkpoint";

/// Which stage of a fit a checkpoint was taken in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The first stage, with early stopping.
    First,
    /// `after_stop: "refit"`: training again from scratch on train + valid.
    Refit,
    /// `after_stop: "continue"`: training on from the best model on train + valid.
    Continue,
}

/// The finished first stage, kept while a later stage runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FirstStage {
    /// Its epochs.
    pub history: Vec<EpochRecord>,
    /// The epoch it kept.
    pub best_epoch: usize,
    /// Whether early stopping ended it.
    pub stopped_early: bool,
}

/// A ChaCha stream's position: seed, stream and word.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RngState {
    seed: [u8; 32],
    stream: u64,
    word: u128,
}

impl RngState {
    /// Where `rng` is.
    pub fn of(rng: &ChaCha8Rng) -> RngState {
        RngState {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word: rng.get_word_pos(),
        }
    }
    /// A stream at that position.
    pub fn rng(&self) -> ChaCha8Rng {
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word);
        rng
    }
}

/// Everything of a stage but its tensors.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Header {
    stage: Stage,
    first: Option<FirstStage>,
    epoch: usize,
    history: Vec<EpochRecord>,
    best: Option<(f64, usize)>,
    lr: f64,
    momentum: f64,
    steps: i32,
    attack_rng: RngState,
    rng: RngState,
    dropout_draws: u64,
    order: Vec<usize>,
}

/// A stage at the end of one of its epochs, borrowed from the loop that runs it.
pub struct Position<'a> {
    /// Which stage.
    pub stage: Stage,
    /// The first stage's record, in a later stage.
    pub first: Option<&'a FirstStage>,
    /// Epochs done in this stage.
    pub epoch: usize,
    /// Their records.
    pub history: &'a [EpochRecord],
    /// The best validation error so far, its epoch and parameters.
    pub best: Option<(f64, usize, &'a Model)>,
    /// The model and its optimizer.
    pub trainer: &'a Trainer,
    /// The shuffling stream.
    pub rng: &'a ChaCha8Rng,
    /// Dropout masks drawn from the stage's device so far.
    pub dropout_draws: u64,
    /// The order of the examples after the last shuffle.
    pub order: &'a [usize],
}

impl Position<'_> {
    /// The checkpoint's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let t = self.trainer;
        let header = Header {
            stage: self.stage,
            first: self.first.cloned(),
            epoch: self.epoch,
            history: self.history.to_vec(),
            best: self.best.map(|(e, epoch, _)| (e, epoch)),
            lr: t.lr,
            momentum: t.momentum,
            steps: t.steps,
            attack_rng: RngState::of(&t.attack_rng),
            rng: RngState::of(self.rng),
            dropout_draws: self.dropout_draws,
            order: self.order.to_vec(),
        };
        let mut tensors: Vec<(String, Vec<f32>)> = Vec::new();
        push_params(&mut tensors, "model", &t.model);
        if let Some((_, _, best)) = self.best {
            push_params(&mut tensors, "best", best);
        }
        for (i, state) in t.state.iter().enumerate() {
            match state {
                Some(State::Sgd { vw, vb }) => {
                    tensors.push((format!("opt.{i}.vw"), vw.as_vec()));
                    tensors.push((format!("opt.{i}.vb"), vb.as_vec()));
                }
                Some(State::Adam { m, v, mb, vb }) => {
                    for (name, values) in [("m", m), ("v", v), ("mb", mb), ("vb", vb)] {
                        tensors.push((format!("opt.{i}.{name}"), values.clone()));
                    }
                }
                None => {}
            }
        }
        let bytes: Vec<(String, usize, Vec<u8>)> = tensors.into_iter().map(|(n, v)| (n, v.len(), f32s_to_le(&v))).collect();
        let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
            .iter()
            .map(|(name, len, data)| {
                let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![*len], data)
                    .expect("length and bytes agree by construction");
                (name.clone(), view)
            })
            .collect();
        let meta = HashMap::from([(HEADER_KEY.to_string(), serde_json::to_string(&header).expect("headers serialize"))]);
        let body = safetensors::serialize(views, &Some(meta)).expect("in-memory safetensors serialize");
        let mut out = Vec::with_capacity(8 + 32 + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(blake3::hash(&body).as_bytes());
        out.extend_from_slice(&body);
        out
    }
}

fn push_params(tensors: &mut Vec<(String, Vec<f32>)>, prefix: &str, model: &Model) {
    for (i, p) in model.params.iter().enumerate() {
        if let Some(p) = p {
            tensors.push((format!("{prefix}.{i}.w"), p.weight().as_vec()));
            tensors.push((format!("{prefix}.{i}.b"), p.bias.as_vec()));
        }
    }
}

/// A checked checkpoint, ready to resume from.
#[derive(Debug)]
pub struct Saved {
    header: Header,
    tensors: HashMap<String, Vec<f32>>,
}

/// Where a resumed stage carries on.
pub struct Restored {
    /// Epochs done.
    pub epoch: usize,
    /// Their records.
    pub history: Vec<EpochRecord>,
    /// The best validation error so far, its epoch and parameters.
    pub best: Option<(f64, usize, Model)>,
    /// The shuffling stream.
    pub rng: ChaCha8Rng,
    /// The example order after the last shuffle.
    pub order: Vec<usize>,
    /// Dropout masks drawn so far (the device has been advanced past them).
    pub dropout_draws: u64,
}

impl Saved {
    /// Reads a checkpoint's bytes, checking the digest, the format and the header.
    pub fn decode(bytes: &[u8]) -> Result<Saved, String> {
        let body = match bytes.strip_prefix(MAGIC.as_slice()) {
            Some(rest) if rest.len() >= 32 => &rest[32..],
            _ => return Err("not an advpipe fit checkpoint (or one of another format)".into()),
        };
        if blake3::hash(body).as_bytes() != &bytes[8..40] {
            return Err("its digest does not match its contents".into());
        }
        let (_, meta) = safetensors::SafeTensors::read_metadata(body).map_err(|e| format!("unreadable tensors: {e:?}"))?;
        let header_json = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get(HEADER_KEY))
            .ok_or("no checkpoint header")?;
        let header: Header = serde_json::from_str(header_json).map_err(|e| format!("unreadable header: {e}"))?;
        let st = safetensors::SafeTensors::deserialize(body).map_err(|e| format!("unreadable tensors: {e:?}"))?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(format!("tensor {name} is not f32"));
            }
            tensors.insert(name, f32s_from_le(view.data()));
        }
        Ok(Saved { header, tensors })
    }

    /// The stage it was taken in.
    pub fn stage(&self) -> Stage {
        self.header.stage
    }

    /// Epochs its stage had done.
    pub fn epoch(&self) -> usize {
        self.header.epoch
    }

    /// The finished first stage, for a later stage's checkpoint.
    pub fn first(&self) -> Option<&FirstStage> {
        self.header.first.as_ref()
    }

    /// Puts `trainer` (built for the same net, optimizer and parameters, on `examples`
    /// training examples) and `dev` (seeded as the stage seeds it) where the checkpoint was;
    /// fails if the checkpoint does not fit them (`trainer` may then be half-restored:
    /// [`Saved::check`] first).
    pub fn restore(&self, dev: &Dev, trainer: &mut Trainer, examples: usize) -> Result<Restored, String> {
        let restored = self.load_into(trainer, examples)?;
        for _ in 0..restored.dropout_draws {
            dev.random_u64();
        }
        Ok(restored)
    }

    /// Whether [`Saved::restore`] would succeed on `trainer`, which it uses up; the dropout
    /// stream is not replayed.
    pub fn check(&self, trainer: &mut Trainer, examples: usize) -> Result<(), String> {
        self.load_into(trainer, examples).map(|_| ())
    }

    /// Everything [`Saved::restore`] does but advance the device.
    fn load_into(&self, trainer: &mut Trainer, examples: usize) -> Result<Restored, String> {
        let h = &self.header;
        let mut seen = vec![false; examples];
        let permutation = h.order.len() == examples && h.order.iter().all(|&i| i < examples && !std::mem::replace(&mut seen[i], true));
        if !permutation {
            return Err(format!("its example order is not an order of this fit's {examples} examples"));
        }
        if h.dropout_draws > MOST_DRAWS {
            return Err(format!("it claims {} dropout draws, more than any fit makes", h.dropout_draws));
        }
        self.copy_params("model", &mut trainer.model)?;
        let best = match h.best {
            Some((err, epoch)) => {
                let mut model = trainer.model.clone();
                self.copy_params("best", &mut model)?;
                Some((err, epoch, model))
            }
            None => None,
        };
        for (i, state) in trainer.state.iter_mut().enumerate() {
            match state {
                Some(State::Sgd { vw, vb }) => {
                    vw.copy_from(self.tensor(&format!("opt.{i}.vw"), vw.shape().num_elements())?);
                    vb.copy_from(self.tensor(&format!("opt.{i}.vb"), vb.shape().num_elements())?);
                }
                Some(State::Adam { m, v, mb, vb }) => {
                    for (name, values) in [("m", m), ("v", v), ("mb", mb), ("vb", vb)] {
                        let saved = self.tensor(&format!("opt.{i}.{name}"), values.len())?;
                        values.copy_from_slice(saved);
                    }
                }
                None => {}
            }
        }
        trainer.lr = h.lr;
        trainer.momentum = h.momentum;
        trainer.steps = h.steps;
        trainer.attack_rng = h.attack_rng.rng();
        Ok(Restored {
            epoch: h.epoch,
            history: h.history.clone(),
            best,
            rng: h.rng.rng(),
            order: h.order.clone(),
            dropout_draws: h.dropout_draws,
        })
    }

    fn tensor(&self, name: &str, len: usize) -> Result<&[f32], String> {
        match self.tensors.get(name) {
            Some(values) if values.len() == len => Ok(values),
            Some(values) => Err(format!("{name} holds {} values, the fit needs {len}", values.len())),
            None => Err(format!("no tensor {name}")),
        }
    }

    fn copy_params(&self, prefix: &str, model: &mut Model) -> Result<(), String> {
        for (i, p) in model.params.iter_mut().enumerate() {
            if let Some(p) = p {
                let len = p.weight().shape().num_elements();
                p.weight_mut().copy_from(self.tensor(&format!("{prefix}.{i}.w"), len)?);
                p.bias.copy_from(self.tensor(&format!("{prefix}.{i}.b"), p.bias.shape().0)?);
            }
        }
        Ok(())
    }
}
