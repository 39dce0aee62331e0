//! The epoch loop and the stages of `fit`: the first stage with early stopping, then a
//! refit from scratch or the toolkit's continue stage (see the module above), each taking
//! checkpoints at the end of its epochs and able to resume from one (see `resume`).

use super::resume::{FirstStage, Position, Saved, Stage};
use super::schema::*;
use super::step::Trainer;
use crate::attacks::Crafter;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::layers::dropout;
use crate::nn::layers::NetSpec;
use crate::nn::model::{Dev, Model};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::time::{Duration, Instant};

/// One pass over `data` in a fresh random order: the steps, then a check that the
/// parameters are still finite. Returns the mean training objective of its steps.
#[allow(clippy::too_many_arguments)]
fn run_epoch(
    trainer: &mut Trainer,
    dev: &Dev,
    data: &Dataset,
    order: &mut [usize],
    rng: &mut rand_chacha::ChaCha8Rng,
    batch: usize,
    epoch: usize,
    progress: Progress,
) -> Result<f64> {
    let steps = data.len().div_ceil(batch);
    order.shuffle(rng);
    let mut loss_sum = 0.0;
    for (step, chunk) in order.chunks(batch).enumerate() {
        let (x, labels) = batch_of(data, chunk);
        let loss = trainer.step(dev, x, &labels);
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
    Ok(loss_sum / steps as f64)
}

/// The examples `rows` of `data`: their pixels, one row after another, and their labels.
fn batch_of(data: &Dataset, rows: &[usize]) -> (Vec<f32>, Vec<usize>) {
    let mut x = Vec::with_capacity(rows.len() * data.width());
    for &i in rows {
        x.extend_from_slice(data.images_of(i..i + 1));
    }
    (x, rows.iter().map(|&i| data.labels[i] as usize).collect())
}

/// Where a fit keeps its checkpoints, and the one it resumes from.
pub struct Checkpoints<'a> {
    /// A checkpoint of this fit to carry on from.
    pub resume: Option<Saved>,
    /// Receives a checkpoint's bytes (to store them); a failure fails the fit.
    pub save: &'a mut dyn FnMut(Vec<u8>) -> Result<()>,
    /// The least time between two checkpoints.
    pub every: Duration,
    /// Told why a checkpoint could not be used (the fit then starts over).
    pub rejected: &'a mut dyn FnMut(String),
    last: Instant,
}

impl<'a> Checkpoints<'a> {
    /// Checkpoints that go to `save` at most every `every`, resuming from `resume`.
    pub fn new(
        resume: Option<Saved>,
        every: Duration,
        save: &'a mut dyn FnMut(Vec<u8>) -> Result<()>,
        rejected: &'a mut dyn FnMut(String),
    ) -> Checkpoints<'a> {
        Checkpoints {
            resume,
            save,
            every,
            rejected,
            last: Instant::now(),
        }
    }

    /// Saves the position if the last checkpoint is old enough.
    fn offer(&mut self, position: Position) -> Result<()> {
        if self.last.elapsed() >= self.every {
            (self.save)(position.encode())?;
            self.last = Instant::now();
        }
        Ok(())
    }
}

/// The first stage or a refit: `epochs` epochs, or fewer when early stopping ends it.
struct Phase<'a> {
    net: &'a NetSpec,
    data: &'a Dataset,
    valid: Option<&'a Dataset>,
    p: &'a FitParams,
    epochs: usize,
    stage: Stage,
    first: Option<&'a FirstStage>,
}

impl Phase<'_> {
    /// The stage's device, streams and trainer, fresh.
    fn start(&self) -> Result<(Dev, rand_chacha::ChaCha8Rng, Trainer)> {
        // The device's stream drives dropout; seeding it per fit makes masks reproducible.
        let dev = Dev::seed_from_u64(self.p.seed);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.p.seed);
        let trainer = Trainer::new(&dev, Model::init_as(&dev, self.net, self.p.init, &mut rng), self.p)?;
        Ok((dev, rng, trainer))
    }

    fn run(&self, resume: Option<&Saved>, ck: &mut Checkpoints, progress: Progress) -> Result<(Model, Vec<EpochRecord>, usize, bool)> {
        let p = self.p;
        if self.data.is_empty() {
            return Err(Error::msg("the training set is empty"));
        }
        let (dev, mut rng, mut trainer) = self.start()?;
        let valid_attack = match &p.valid_attack {
            Some(json) => Some(Crafter::from_json(json).map_err(|e| Error::msg(format!("validation attack: {e}")))?),
            None => None,
        };
        let mut order: Vec<usize> = (0..self.data.len()).collect();
        let mut history = Vec::with_capacity(self.epochs);
        let mut best: Option<(f64, usize, Model)> = None;
        let (mut epoch, mut draws) = (0, 0);
        if let Some(saved) = resume {
            let at = saved.restore(&dev, &mut trainer, self.data.len()).map_err(Error::msg)?;
            (epoch, history, best, rng, order, draws) = (at.epoch, at.history, at.best, at.rng, at.order, at.dropout_draws);
        }
        // Masks drawn before this stage started (or resumed), and since.
        let counted_from = dropout::draws();
        loop {
            let best_epoch = best.as_ref().map(|b| b.1);
            if let (Some(patience), Some(best_epoch)) = (p.patience, best_epoch) {
                if epoch - best_epoch >= patience {
                    let (_, best_epoch, model) = best.expect("a best epoch");
                    return Ok((model, history, best_epoch, true));
                }
            }
            if epoch == self.epochs {
                break;
            }
            epoch += 1;
            trainer.momentum = p.momentum_at(epoch);
            let loss = run_epoch(&mut trainer, &dev, self.data, &mut order, &mut rng, p.batch, epoch, progress)?;
            let valid_error = self
                .valid
                .map(|v| crate::eval::evaluate(&dev, &trainer.model, v, valid_attack.as_ref(), p.seed, 1000, &mut |_, _| {}).error);
            history.push(EpochRecord {
                epoch,
                loss,
                valid_error,
                valid_objective: None,
                lr: trainer.lr,
                momentum: trainer.momentum,
            });
            progress(FitEvent::Epoch(history.last().expect("just pushed")));
            if let Some(err) = valid_error {
                if best.as_ref().is_none_or(|(b, _, _)| err < *b) {
                    best = Some((err, epoch, trainer.model.clone()));
                }
            }
            if epoch < self.epochs {
                ck.offer(Position {
                    stage: self.stage,
                    first: self.first,
                    epoch,
                    history: &history,
                    best: best.as_ref().map(|(e, n, m)| (*e, *n, m)),
                    trainer: &trainer,
                    rng: &rng,
                    dropout_draws: draws + (dropout::draws() - counted_from),
                    order: &order,
                })?;
            }
        }
        match best {
            Some((_, best_epoch, model)) if p.patience.is_some() => Ok((model, history, best_epoch, false)),
            _ => Ok((trainer.model, history, self.epochs, false)),
        }
    }
}

/// Trains `net` on `data`, validating on `valid` when given. Fails if the loss stops being
/// finite, naming the epoch.
pub fn fit(net: &NetSpec, data: &Dataset, valid: Option<&Dataset>, p: &FitParams, progress: Progress) -> Result<(Model, FitSummary)> {
    let (mut save, mut rejected) = (|_: Vec<u8>| Ok(()), |_: String| {});
    let mut ck = Checkpoints::new(None, Duration::MAX, &mut save, &mut rejected);
    fit_resumable(net, data, valid, p, progress, &mut ck)
}

/// [`fit`], taking checkpoints and resuming from `ck.resume` when it fits; the result is the
/// same, bit for bit, whether or not the fit was interrupted.
pub fn fit_resumable(
    net: &NetSpec,
    data: &Dataset,
    valid: Option<&Dataset>,
    p: &FitParams,
    progress: Progress,
    ck: &mut Checkpoints,
) -> Result<(Model, FitSummary)> {
    let mut resume = ck.resume.take();
    if let Some(saved) = &resume {
        let examples = match saved.stage() {
            Stage::First => data.len(),
            Stage::Refit | Stage::Continue => data.len() + valid.map_or(0, Dataset::len),
        };
        if let Err(why) = usable(saved, net, p, valid.is_some(), examples) {
            (ck.rejected)(why);
            resume = None;
        }
    }
    let first_phase = Phase {
        net,
        data,
        valid,
        p,
        epochs: p.epochs,
        stage: Stage::First,
        first: None,
    };
    let (model, first) = match resume.as_ref().map(|s| (s.stage(), s.first())) {
        Some((Stage::First, _)) | None => {
            let (model, history, best_epoch, stopped_early) =
                first_phase.run(resume.as_ref().filter(|s| s.stage() == Stage::First), ck, progress)?;
            (
                Some(model),
                FirstStage {
                    history,
                    best_epoch,
                    stopped_early,
                },
            )
        }
        // A later stage's checkpoint holds its own model: the first stage is not run again.
        Some((_, first)) => (None, first.expect("checked by usable").clone()),
    };
    let later = resume.as_ref().filter(|s| s.stage() != Stage::First);
    let summary = |refit_history, target_objective| FitSummary {
        history: first.history.clone(),
        best_epoch: first.best_epoch,
        stopped_early: first.stopped_early,
        refit_history,
        target_objective,
    };
    match (valid, p.patience, p.after_stop) {
        (Some(valid), Some(_), AfterStop::Refit) => {
            let all = data.concat(valid)?;
            let refit = FitParams {
                patience: None,
                ..p.clone()
            };
            let phase = Phase {
                data: &all,
                valid: None,
                p: &refit,
                epochs: first.best_epoch,
                stage: Stage::Refit,
                first: Some(&first),
                ..first_phase
            };
            let (model, refit_history, _, _) = phase.run(later, ck, progress)?;
            Ok((model, summary(refit_history, None)))
        }
        (Some(valid), Some(_), AfterStop::Continue) => {
            let reached = &first.history[first.best_epoch - 1];
            let start = match model {
                Some(model) => model,
                None => Model::init(&Dev::default(), net, 0.0, &mut rand::rngs::mock::StepRng::new(0, 0)),
            };
            let all = data.concat(valid)?;
            let (model, continued) = continue_stage(start, &all, valid, p, &first, later, ck, progress)?;
            Ok((model, summary(continued, Some(reached.loss))))
        }
        _ => Ok((
            model.expect("a first-stage checkpoint is only resumed into the first stage"),
            summary(vec![], None),
        )),
    }
}

/// Why `saved` cannot resume this fit, if it cannot: its stage must be one this fit runs,
/// and its tensors must fit a trainer for this net and optimizer.
fn usable(saved: &Saved, net: &NetSpec, p: &FitParams, has_valid: bool, examples: usize) -> std::result::Result<(), String> {
    let staged = has_valid && p.patience.is_some();
    match (saved.stage(), saved.first(), p.after_stop) {
        (Stage::First, _, _) => {}
        (Stage::Refit, Some(f), AfterStop::Refit) | (Stage::Continue, Some(f), AfterStop::Continue) if staged => {
            if f.best_epoch == 0 || f.best_epoch > f.history.len() {
                return Err("its first stage's best epoch is not one of its epochs".into());
            }
        }
        (stage, _, _) => return Err(format!("it was taken in a {stage:?} stage, which this fit does not run")),
    }
    if saved.epoch() > p.epochs {
        return Err(format!("it is at epoch {}, past this fit's {}", saved.epoch(), p.epochs));
    }
    let dev = Dev::default();
    let mut trainer =
        Trainer::new(&dev, Model::init(&dev, net, 0.0, &mut rand::rngs::mock::StepRng::new(0, 0)), p).map_err(|e| e.to_string())?;
    saved.check(&mut trainer, examples)
}

/// pylearn2's second stage (`mnist_pi_continued.yaml`): from the best model of the first
/// stage, train on `all` (train + valid) starting at the learning rate and momentum the first
/// stage had reached at its best epoch (the rate keeps decaying, the momentum stays, the
/// velocity starts at zero as in a fresh SGD), until the training objective measured on the
/// `valid` examples falls to the best epoch's training objective (its `MatchChannel`), or
/// for at most `p.epochs` epochs. The first stage's objective is the mean over the epoch's
/// steps, which pylearn2's monitor measured after the epoch instead.
#[allow(clippy::too_many_arguments)]
fn continue_stage(
    model: Model,
    all: &Dataset,
    valid: &Dataset,
    p: &FitParams,
    first: &FirstStage,
    resume: Option<&Saved>,
    ck: &mut Checkpoints,
    progress: Progress,
) -> Result<(Model, Vec<EpochRecord>)> {
    let reached = &first.history[first.best_epoch - 1];
    // Streams of its own: the first stage's shuffling and dropout are not resumed.
    let seed = p.seed ^ 0x00c0_de57_a9e2;
    let dev = Dev::seed_from_u64(seed);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut trainer = Trainer::new(&dev, model, p)?;
    trainer.lr = reached.lr;
    trainer.momentum = reached.momentum;
    let mut order: Vec<usize> = (0..all.len()).collect();
    let held_out: Vec<usize> = (0..valid.len()).collect();
    let mut history = Vec::new();
    let (mut epoch, mut draws) = (0, 0);
    if let Some(saved) = resume {
        let at = saved.restore(&dev, &mut trainer, all.len()).map_err(Error::msg)?;
        (epoch, history, rng, order, draws) = (at.epoch, at.history, at.rng, at.order, at.dropout_draws);
    }
    // Masks drawn before this stage started (or resumed), and since.
    let counted_from = dropout::draws();
    let matched = |history: &[EpochRecord]| history.last().and_then(|r| r.valid_objective).is_some_and(|o| o <= reached.loss);
    while epoch < p.epochs && !matched(&history) {
        epoch += 1;
        let loss = run_epoch(&mut trainer, &dev, all, &mut order, &mut rng, p.batch, epoch, progress)?;
        let mut objective = 0.0;
        for chunk in held_out.chunks(p.batch) {
            let (x, labels) = batch_of(valid, chunk);
            objective += trainer.objective(&dev, x, &labels) * chunk.len() as f64;
        }
        let objective = objective / valid.len() as f64;
        history.push(EpochRecord {
            epoch,
            loss,
            valid_error: None,
            valid_objective: Some(objective),
            lr: trainer.lr,
            momentum: trainer.momentum,
        });
        progress(FitEvent::Epoch(history.last().expect("just pushed")));
        if epoch < p.epochs && !matched(&history) {
            ck.offer(Position {
                stage: Stage::Continue,
                first: Some(first),
                epoch,
                history: &history,
                best: None,
                trainer: &trainer,
                rng: &rng,
                dropout_draws: draws + (dropout::draws() - counted_from),
                order: &order,
            })?;
        }
    }
    Ok((trainer.model, history))
}
