//! `fit`'s tests: learning, early stopping and refit, determinism, divergence, the loss
//! mixture, sigmoid tops and L1 decay.

use super::Optimizer;
use super::*;
use crate::attacks::AttackContext;
use crate::data::Dataset;
use crate::nn::layers::NetSpec;
use crate::nn::model::{Dev, Matrix, Model};
use dfdx::prelude::*;
use rand::SeedableRng;

#[cfg(test)]
mod fit_tests {
    use super::*;
    use crate::nn::layers::{dropout::Dropout, linear::Linear};

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
            layers: vec![Linear { units: 2 }.into()],
        }
    }

    fn params(seed: u64) -> FitParams {
        FitParams {
            init: Some(0.05),
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
            layers: vec![Dropout { p: 0.5, scale: None }.into(), Linear { units: 2 }.into()],
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
        let w = model.params[0].as_ref().unwrap().weight().as_vec();
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

    #[test]
    fn continue_starts_from_the_best_model_at_its_schedule_and_stops_at_the_training_objective() {
        let (train, valid) = (blobs(60, 3), blobs(200, 4));
        let p = FitParams {
            epochs: 40,
            patience: Some(3),
            lr: 2.0,
            lr_decay: 1.001,
            momentum_end: Some(0.9),
            momentum_epochs: 10,
            after_stop: AfterStop::Continue,
            ..params(1)
        };
        let (model, s) = fit(&linear(), &train, Some(&valid), &p, &mut quiet()).unwrap();
        let reached = &s.history[s.best_epoch - 1];
        assert_eq!(s.target_objective, Some(reached.loss));
        let stage = &s.refit_history;
        assert!(!stage.is_empty() && stage.len() <= p.epochs);
        assert_eq!(stage[0].momentum, reached.momentum, "the momentum stays where the schedule had it");
        assert!(stage.iter().all(|r| r.momentum == reached.momentum));
        assert!(stage[0].lr < reached.lr, "the rate keeps decaying from where it was");
        let last = stage.last().unwrap();
        let matched = last.valid_objective.unwrap() <= reached.loss;
        assert!(matched || stage.len() == p.epochs, "it stops at the match or at the epoch budget");
        assert!(
            stage[..stage.len() - 1].iter().all(|r| r.valid_objective.unwrap() > reached.loss),
            "and not before"
        );
        // It continued from the best model rather than starting afresh: one epoch of it moves
        // the validation objective far less than a fresh net's first epoch does.
        let (_, fresh) = fit(
            &linear(),
            &train.concat(&valid).unwrap(),
            None,
            &FitParams { epochs: 1, ..p.clone() },
            &mut quiet(),
        )
        .unwrap();
        assert!(
            stage[0].loss < fresh.history[0].loss,
            "{} vs {}",
            stage[0].loss,
            fresh.history[0].loss
        );
        // Deterministic per seed, like every fit.
        let (again, s2) = fit(&linear(), &train, Some(&valid), &p, &mut quiet()).unwrap();
        assert_eq!(again.named_tensors(), model.named_tensors());
        assert_eq!(s2, s);
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
mod trades_tests {
    use super::*;
    use crate::attacks::testing::model_and_batch;
    use crate::attacks::trades::{kl_rows, softmax_rows};
    use rand::Rng;
    use serde_json::json;

    #[test]
    fn the_divergence_and_its_gradients_in_both_predictions() {
        let dev = Dev::default();
        let (clean, perturbed) = (vec![0.3f32, -1.0, 2.0, 0.5, 0.5, -0.2], vec![1.0f32, 0.0, -0.5, 0.2, 0.9, 0.1]);
        let (p_t, q_t): (Matrix, Matrix) = (
            dev.tensor_from_vec(clean.clone(), (2, 3)),
            dev.tensor_from_vec(perturbed.clone(), (2, 3)),
        );
        let kl = super::step::divergence(p_t.leaky_trace(), q_t.leaky_trace());
        let by_rows = kl_rows(&clean, &perturbed, 3);
        assert!((kl.array() - (by_rows[0] + by_rows[1]) / 2.0).abs() < 1e-6);
        let grads = kl.backward();
        let (p, q) = (softmax_rows(&clean, 3), softmax_rows(&perturbed, 3));
        // d/dz_q = (q - p) / rows; d/dz_p = p (log p - log q - KL_row) / rows.
        for (i, g) in grads.get(&q_t).as_vec().iter().enumerate() {
            assert!((g - (q[i] - p[i]) / 2.0).abs() < 1e-6, "perturbed {i}");
        }
        for (i, g) in grads.get(&p_t).as_vec().iter().enumerate() {
            let expected = p[i] * (p[i].ln() - q[i].ln() - by_rows[i / 3]) / 2.0;
            assert!((g - expected).abs() < 1e-6, "clean {i}: {g} vs {expected}");
        }
    }

    #[test]
    fn a_trades_term_scores_the_divergence_from_the_clean_prediction() {
        let (dev, model, x, y) = model_and_batch();
        let trades = json!({"attack": "trades", "eps": 0.1, "steps": 5, "step_size": null, "clip": [0.0, 1.0], "labels": "true", "target": "none", "target_class": null, "mode": "eval"});
        let p = FitParams {
            loss: vec![
                LossTerm { weight: 1.0, attack: None },
                LossTerm {
                    weight: 6.0,
                    attack: Some(trades.clone()),
                },
            ],
            ..FitParams::sgd(1, 4, 0.1, 0.0, 0)
        };
        let mut trainer = Trainer::new(&dev, model.clone(), &p).unwrap();
        // The step crafts with the seed its attack stream gives next: craft the same by hand.
        let seed: u64 = trainer.attack_rng.clone().gen();
        let adv = crate::attacks::Crafter::from_json(&trades)
            .unwrap()
            .craft(&mut AttackContext::new(&model, &dev, seed), &x, &y);
        let ctx = AttackContext::new(&model, &dev, 0);
        let kl = kl_rows(&ctx.logits(&x), &ctx.logits(&adv), 3);
        let by_hand = ctx.loss(&x, &y) as f64 + 6.0 * kl.iter().sum::<f32>() as f64 / 4.0;
        assert!(kl.iter().all(|&d| d > 0.0));
        let stepped = trainer.step(&dev, x.clone(), &y);
        assert!((stepped - by_hand).abs() < 1e-5, "{stepped} vs {by_hand}");
    }
}

#[cfg(test)]
mod top_tests {
    use super::*;
    use crate::nn::layers::{linear::Linear, sigmoid_top::SigmoidTop};

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
            layers: vec![Linear { units: 2 }.into(), SigmoidTop {}.into()],
        };
        assert_eq!(net.top(), crate::nn::Top::Sigmoid);
        let p = FitParams {
            init: Some(0.05),
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
            assert!((p - d - 0.1 * crate::tensor::sign(*b)).abs() < 1e-6);
        }
        assert_eq!(plain[1..], decayed[1..], "only the first layer's weights decay");
    }
}

#[cfg(test)]
mod resume_tests {
    //! A fit resumed from any of its checkpoints ends exactly where the uninterrupted fit
    //! ends: the same parameters, bit for bit, and the same record.
    use super::*;
    use crate::nn::layers::{dropout::Dropout, linear::Linear, maxout::Maxout};
    use std::time::Duration;

    fn blobs(n: usize, seed: u64) -> Dataset {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let c = i % 3;
            for d in 0..4 {
                let centre = if d % 3 == c { 0.7 } else { 0.3 };
                images.push(centre + rand::Rng::gen_range(&mut rng, -0.3..0.3f32));
            }
            labels.push(c as u8);
        }
        Dataset {
            images,
            labels,
            shape: vec![4],
            classes: 3,
        }
    }

    fn net() -> NetSpec {
        NetSpec {
            input: vec![4],
            layers: vec![
                Dropout { p: 0.2, scale: Some(1.0) }.into(),
                Maxout { units: 6, pieces: 2 }.into(),
                Dropout { p: 0.5, scale: None }.into(),
                Linear { units: 3 }.into(),
            ],
        }
    }

    /// Every checkpoint the fit takes (one per epoch), and its result.
    fn checkpoints(p: &FitParams, data: &Dataset, valid: &Dataset) -> (Vec<Vec<u8>>, Model, FitSummary) {
        let mut saved = Vec::new();
        let mut save = |bytes: Vec<u8>| {
            saved.push(bytes);
            Ok(())
        };
        let mut rejected = |why: String| panic!("rejected: {why}");
        let mut ck = Checkpoints::new(None, Duration::ZERO, &mut save, &mut rejected);
        let (model, summary) = fit_resumable(&net(), data, Some(valid), p, &mut |_| {}, &mut ck).unwrap();
        (saved, model, summary)
    }

    fn resumed(bytes: &[u8], p: &FitParams, data: &Dataset, valid: &Dataset) -> (Model, FitSummary) {
        let (mut save, mut rejected) = (|_: Vec<u8>| Ok(()), |why: String| panic!("rejected: {why}"));
        let saved = resume::Saved::decode(bytes).unwrap();
        let mut ck = Checkpoints::new(Some(saved), Duration::ZERO, &mut save, &mut rejected);
        fit_resumable(&net(), data, Some(valid), p, &mut |_| {}, &mut ck).unwrap()
    }

    fn check_every_resume(p: FitParams, stages: &[resume::Stage]) {
        check_every_resume_on(p, stages, blobs(60, 2))
    }

    fn check_every_resume_on(p: FitParams, stages: &[resume::Stage], valid: Dataset) {
        let data = blobs(120, 1);
        let (saved, model, summary) = checkpoints(&p, &data, &valid);
        let seen: Vec<resume::Stage> = saved.iter().map(|b| resume::Saved::decode(b).unwrap().stage()).collect();
        for stage in stages {
            assert!(seen.contains(stage), "no checkpoint in the {stage:?} stage: {seen:?}");
        }
        for (i, bytes) in saved.iter().enumerate() {
            let (again, again_summary) = resumed(bytes, &p, &data, &valid);
            assert_eq!(
                again.named_tensors(),
                model.named_tensors(),
                "resumed from checkpoint {i} ({:?})",
                seen[i]
            );
            assert_eq!(again_summary, summary, "resumed from checkpoint {i}");
        }
    }

    fn recipe() -> FitParams {
        FitParams {
            epochs: 12,
            patience: Some(3),
            lr: 0.5,
            lr_decay: 1.001,
            momentum_end: Some(0.8),
            momentum_epochs: 5,
            max_norm: Some(1.5),
            init: Some(0.3),
            batch: 16,
            loss: vec![
                LossTerm { weight: 0.5, attack: None },
                LossTerm {
                    weight: 0.3,
                    attack: Some(serde_json::json!({"attack": "fgsm", "eps": 0.1, "mode": "train"})),
                },
                // Draws from the stream the training attacks are seeded from.
                LossTerm {
                    weight: 0.2,
                    attack: Some(serde_json::json!({"attack": "random_sign", "eps": 0.1, "seed": 4})),
                },
            ],
            ..FitParams::sgd(12, 16, 0.5, 0.5, 9)
        }
    }

    #[test]
    fn the_first_stage_and_a_refit_resume_bit_identically() {
        check_every_resume(
            FitParams {
                after_stop: AfterStop::Refit,
                ..recipe()
            },
            &[resume::Stage::First, resume::Stage::Refit],
        );
    }

    #[test]
    fn the_continue_stage_and_adam_resume_bit_identically() {
        // Validation labels the nets cannot learn: the continue stage never reaches its
        // target and runs its whole budget, taking a checkpoint every epoch.
        let mut unlearnable = blobs(60, 2);
        unlearnable.labels.iter_mut().for_each(|l| *l = (*l + 1) % 3);
        check_every_resume_on(
            FitParams {
                after_stop: AfterStop::Continue,
                ..recipe()
            },
            &[resume::Stage::First, resume::Stage::Continue],
            unlearnable,
        );
        check_every_resume(
            FitParams {
                optimizer: Optimizer::Adam,
                lr: 0.01,
                ..recipe()
            },
            &[resume::Stage::First],
        );
    }

    #[test]
    fn a_damaged_or_foreign_checkpoint_is_refused_with_a_reason() {
        let (data, valid) = (blobs(120, 1), blobs(60, 2));
        let p = recipe();
        let (saved, model, _) = checkpoints(&p, &data, &valid);
        let mut flipped = saved[1].clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(resume::Saved::decode(&flipped).unwrap_err().contains("digest"));
        assert!(resume::Saved::decode(b"not a checkpoint").is_err());
        // A checkpoint of another net is refused, and the fit starts over to the same end.
        let other = NetSpec {
            input: vec![4],
            layers: vec![Linear { units: 3 }.into()],
        };
        let mut foreign = Vec::new();
        let mut save = |b: Vec<u8>| {
            foreign.push(b);
            Ok(())
        };
        let mut ignore = |_: String| {};
        let mut ck = Checkpoints::new(None, Duration::ZERO, &mut save, &mut ignore);
        fit_resumable(&other, &data, Some(&valid), &p, &mut |_| {}, &mut ck).unwrap();
        let mut reasons = Vec::new();
        let (mut save, mut rejected) = (|_: Vec<u8>| Ok(()), |why: String| reasons.push(why));
        let mut ck = Checkpoints::new(
            Some(resume::Saved::decode(&foreign[0]).unwrap()),
            Duration::ZERO,
            &mut save,
            &mut rejected,
        );
        let (again, _) = fit_resumable(&net(), &data, Some(&valid), &p, &mut |_| {}, &mut ck).unwrap();
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].contains("no tensor") || reasons[0].contains("values"), "{reasons:?}");
        assert_eq!(again.named_tensors(), model.named_tensors());
        // A checkpoint of the same net on other data (another number of examples) is refused.
        let mut reasons = Vec::new();
        let (mut save, mut rejected) = (|_: Vec<u8>| Ok(()), |why: String| reasons.push(why));
        let mut ck = Checkpoints::new(
            Some(resume::Saved::decode(&saved[1]).unwrap()),
            Duration::ZERO,
            &mut save,
            &mut rejected,
        );
        fit_resumable(&net(), &blobs(90, 1), Some(&valid), &p, &mut |_| {}, &mut ck).unwrap();
        assert!(reasons.len() == 1 && reasons[0].contains("example order"), "{reasons:?}");
    }
}
