//! The epoch loop and the stages of `fit`: the first stage with early stopping, then a
//! refit from scratch or the toolkit's continue stage (see the module above).

use super::schema::*;
use super::step::Trainer;
use crate::attacks::Crafter;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::layers::NetSpec;
use crate::nn::model::{Dev, Model};
use rand::seq::SliceRandom;
use rand::SeedableRng;

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
    let mut history = Vec::with_capacity(epochs);
    let mut best: Option<(f64, usize, Model)> = None;
    for epoch in 1..=epochs {
        trainer.momentum = p.momentum_at(epoch);
        let loss = run_epoch(&mut trainer, &dev, data, &mut order, &mut rng, p.batch, epoch, progress)?;
        let valid_error =
            valid.map(|v| crate::eval::evaluate(&dev, &trainer.model, v, valid_attack.as_ref(), p.seed, 1000, &mut |_, _| {}).error);

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
    let summary = |refit_history, target_objective| FitSummary {
        history: history.clone(),
        best_epoch,
        stopped_early,
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
            let (model, refit_history, _, _) = train_phase(net, &all, None, &refit, best_epoch, progress)?;
            Ok((model, summary(refit_history, None)))
        }
        (Some(valid), Some(_), AfterStop::Continue) => {
            let reached = &history[best_epoch - 1];
            let (model, continued) = continue_stage(model, &data.concat(valid)?, valid, p, reached, progress)?;
            Ok((model, summary(continued, Some(reached.loss))))
        }
        _ => Ok((model, summary(vec![], None))),
    }
}

/// pylearn2's second stage (`mnist_pi_continued.yaml`): from the best model of the first
/// stage, train on `all` (train + valid) starting at the learning rate and momentum the first
/// stage had `reached` at its best epoch (the rate keeps decaying, the momentum stays, the
/// velocity starts at zero as in a fresh SGD), until the training objective measured on the
/// `valid` examples falls to the best epoch's training objective (its `MatchChannel`), or
/// for at most `p.epochs` epochs. The first stage's objective is the mean over the epoch's
/// steps, which pylearn2's monitor measured after the epoch instead.
fn continue_stage(
    model: Model,
    all: &Dataset,
    valid: &Dataset,
    p: &FitParams,
    reached: &EpochRecord,
    progress: Progress,
) -> Result<(Model, Vec<EpochRecord>)> {
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
    for epoch in 1..=p.epochs {
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
        if objective <= reached.loss {
            break;
        }
    }
    Ok((trainer.model, history))
}
