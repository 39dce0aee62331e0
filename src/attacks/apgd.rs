//! `apgd(eps: 0.3, loss: "ce", steps: 100)`: Auto-PGD (Croce & Hein, "Reliable evaluation of
//! adversarial robustness with an ensemble of diverse parameter-free attacks", ICML 2020),
//! the first attack of AutoAttack: PGD with momentum whose step size needs no tuning.
//!
//! From a random point of the ball, `x1 = P(x0 + eta * s(grad))` and then
//! `z = P(xk + eta * s(grad f(xk)))`, `x(k+1) = P(xk + 0.75 (z - xk) + 0.25 (xk - x(k-1)))`
//! (`s` the sign for L-infinity, the L2-normalised gradient for L2; `P` projects onto the
//! ball and the clip range). `eta` starts at `2 eps` and is halved at the checkpoints
//! `w_j ~ p_j steps`, `p0 = 0, p1 = 0.22, p(j+1) = p_j + max(p_j - p(j-1) - 0.03, 0.06)`,
//! for each example where fewer than 75% of the steps since the last checkpoint raised its
//! objective, or where neither `eta` nor the best objective changed since then; that example
//! then restarts from its best point. Every example returns the best point it reached.
//!
//! `loss: "ce"` is the cross-entropy (targeted attacks decrease the target's); `loss: "dlr"`
//! the difference-of-logits ratio `-(z_y - max_(i != y) z_i) / (z_pi1 - z_pi3)` (sorted
//! logits), untargeted, invariant to shifting and scaling the logits, which is what makes it
//! hard to mask. Needs at least 3 classes.
//!
//! `loss: "dlr_targeted"` is AutoAttack's APGD-T: for each of the `targets` classes the model
//! finds most likely after its top one on the clean input (the 2nd, 3rd, ... largest logit),
//! one run of `-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)` towards that class `t`; an
//! example keeps the first run that makes the model misclassify it, otherwise the point with
//! the largest margin `max_(i != y) z_i - z_y` of all runs; each run attacks only the
//! examples the runs before it left standing. AutoAttack's defaults are 9 targets and 100
//! steps, one restart each. With fewer than 4 classes the missing sorted logits are the
//! smallest one. Untargeted from the outside (`target` stays "none": the
//! targets are its own).
//!
//! ```text
//! attack apgd_ce  = apgd(eps: 0.3)
//! attack apgd_dlr = apgd(eps: 0.3, loss: "dlr", restarts: 1)
//! attack apgd_t   = apgd(eps: 0.3, loss: "dlr_targeted", targets: 9)
//! ```

pub use super::pgd::Norm;
#[cfg(feature = "compute")]
use super::AttackContext;
#[cfg(feature = "compute")]
use super::{descending, l2_normalize_rows, project_l2, project_linf, sign};
use super::{params_from, Attack, AttackKind};
use crate::params::{Default, ParamDef, ParamType};
#[cfg(feature = "compute")]
use rand::Rng;
use serde::Deserialize;

/// The registry entry.
pub const KIND: AttackKind = AttackKind {
    version: 4,
    source: file!(),
    name: "apgd",
    doc: "Auto-PGD (Croce & Hein 2020): momentum, step size halved at checkpoints, CE, DLR or targeted DLR (APGD-T)",
    params: Apgd::PARAMS,
    build,
};

/// What the attack raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Cross-entropy (the model's own loss).
    Ce,
    /// Difference of logits ratio.
    Dlr,
    /// AutoAttack's targeted difference of logits ratio, over several target classes.
    DlrTargeted,
}

crate::declare_params! {
    /// APGD's parameters.
    #[derive(Clone, Debug, Deserialize)]
    pub struct Apgd {
        /// radius of the ball
        eps: f32 = ParamDef::required(ParamType::Number).range(0.0, 100.0),
        /// which ball
        norm: Norm = ParamDef::or(ParamType::Choice(&["linf", "l2"]), Default::Str("linf")),
        /// the objective: cross-entropy ("ce"), the difference of logits ratio ("dlr"), or its targeted form over `targets` classes ("dlr_targeted", APGD-T)
        loss: Loss = ParamDef::or(ParamType::Choice(&["ce", "dlr", "dlr_targeted"]), Default::Str("ce")),
        /// iterations (the paper's 100)
        steps: usize = ParamDef::or(ParamType::Int, Default::Int(100)).range(1.0, 10000.0),
        /// independent runs from random starts; each example keeps its best
        restarts: usize = ParamDef::or(ParamType::Int, Default::Int(1)).range(1.0, 1000.0),
        /// loss "dlr_targeted": how many of the most likely other classes to target in turn (AutoAttack's 9)
        targets: usize = ParamDef::or(ParamType::Int, Default::Int(9)).range(1.0, 1000.0),
    }
}

fn build(json: &serde_json::Value) -> Result<Box<dyn Attack>, String> {
    let apgd = params_from::<Apgd>(json)?;
    let targeted = super::asks_for_a_target(json);
    if apgd.loss == Loss::Dlr && targeted {
        return Err("the DLR loss here is untargeted: use loss: \"ce\" for a targeted APGD, or loss: \"dlr_targeted\" (APGD-T)".into());
    }
    if apgd.loss == Loss::DlrTargeted && targeted {
        return Err("loss: \"dlr_targeted\" chooses its own targets (the most likely other classes): leave target at \"none\"".into());
    }
    Ok(Box::new(apgd))
}

/// The step-size checkpoints `w_j` for `steps` iterations, counted in whole steps as the
/// authors' implementation does: the first after `0.22 steps`, then intervals shrinking by
/// `0.03 steps` down to `0.06 steps` (the paper's `p_j` up to rounding).
pub fn checkpoints(steps: usize) -> Vec<usize> {
    let at_least_one = |share: f64| ((share * steps as f64) as usize).max(1);
    let (shrink, shortest) = (at_least_one(0.03), at_least_one(0.06));
    let mut interval = at_least_one(0.22);
    let mut at = interval;
    let mut out = Vec::new();
    while at <= steps {
        out.push(at);
        interval = interval.saturating_sub(shrink).max(shortest);
        at += interval;
    }
    out
}

/// Momentum: the share of the new step in each update.
#[cfg(feature = "compute")]
const ALPHA: f32 = 0.75;
/// Below this share of improving steps between two checkpoints, the step size halves.
#[cfg(feature = "compute")]
const RHO: f32 = 0.75;

#[cfg(feature = "compute")]
impl Apgd {
    fn project(&self, adv: &mut [f32], x: &[f32], width: usize, ctx: &AttackContext) {
        match self.norm {
            Norm::Linf => project_linf(adv, x, self.eps),
            Norm::L2 => project_l2(adv, x, self.eps, width),
        }
        ctx.clip(adv);
    }

    /// The objective of every row and its input gradient (`targets`: one class per row, for
    /// the targeted DLR loss).
    fn objective_and_gradient(&self, ctx: &AttackContext, x: &[f32], labels: &[usize], targets: &[usize]) -> (Vec<f32>, Vec<f32>) {
        if self.loss == Loss::Ce {
            return ctx.objective_and_gradient(x, labels);
        }
        let mut values = Vec::with_capacity(labels.len());
        let (_, gradient) = ctx.logits_and_output_gradient(x, |logits| {
            let classes = logits.len() / labels.len();
            let mut weights = vec![0.0f32; logits.len()];
            for (i, (z, &y)) in logits.chunks(classes).zip(labels).enumerate() {
                let (value, slope) = match self.loss {
                    Loss::DlrTargeted => dlr_targeted(z, y, targets[i]),
                    _ => dlr(z, y),
                };
                values.push(value);
                weights[i * classes..(i + 1) * classes].copy_from_slice(&slope);
            }
            weights
        });
        (values, gradient)
    }

    /// APGD-T: one run per target class, each example keeping the first run that fools the
    /// model, else the point with the largest margin over its label.
    fn targeted_runs(&self, ctx: &mut AttackContext, x: &[f32], labels: &[usize]) -> Vec<f32> {
        let width = ctx.model.input_width();
        let clean_logits = ctx.logits(x);
        let classes = clean_logits.len() / labels.len();
        let ranked: Vec<Vec<usize>> = clean_logits.chunks(classes).map(descending).collect();
        let mut best = x.to_vec();
        let mut best_margin = margins(&clean_logits, labels);
        let mut fooled: Vec<bool> = best_margin.iter().map(|&m| m > 0.0).collect();
        // `k` is a rank (the k-th likeliest class of each row), not a position in one list.
        #[allow(clippy::needless_range_loop)]
        for k in 1..=self.targets.min(classes - 1) {
            if fooled.iter().all(|&f| f) {
                break;
            }
            for _ in 0..self.restarts {
                // Only the examples no run has fooled yet are attacked again (as AutoAttack
                // does): a fooled example keeps its first success whatever later runs find.
                let standing: Vec<usize> = (0..labels.len()).filter(|&r| !fooled[r]).collect();
                if standing.is_empty() {
                    break;
                }
                let rows_x = crate::tensor::gather_rows(x, &standing, width);
                let rows_y: Vec<usize> = standing.iter().map(|&r| labels[r]).collect();
                let targets: Vec<usize> = standing.iter().map(|&r| ranked[r][k]).collect();
                let (run, _) = self.run(ctx, &rows_x, &rows_y, &targets);
                let margin = margins(&ctx.logits(&run), &rows_y);
                for (a, &r) in standing.iter().enumerate() {
                    if margin[a] > best_margin[r] {
                        best_margin[r] = margin[a];
                        fooled[r] = margin[a] > 0.0;
                        best[r * width..(r + 1) * width].copy_from_slice(&run[a * width..(a + 1) * width]);
                    }
                }
            }
        }
        best
    }

    /// One run from a random start: every row's best point and objective.
    fn run(&self, ctx: &mut AttackContext, x: &[f32], labels: &[usize], targets: &[usize]) -> (Vec<f32>, Vec<f32>) {
        let width = ctx.model.input_width();
        let rows = labels.len();
        let step = |g: &mut Vec<f32>| match self.norm {
            Norm::Linf => g.iter_mut().for_each(|v| *v = sign(*v)),
            Norm::L2 => l2_normalize_rows(g, width),
        };
        // The reference implementation's start: a random point on the ball's surface.
        let mut current = x.to_vec();
        for row in current.chunks_mut(width) {
            let mut d: Vec<f32> = (0..width).map(|_| ctx.rng.gen_range(-1.0f32..=1.0)).collect();
            let scale = match self.norm {
                Norm::Linf => d.iter().fold(0.0f32, |m, v| m.max(v.abs())),
                Norm::L2 => d.iter().map(|v| v * v).sum::<f32>().sqrt(),
            };
            d.iter_mut().for_each(|v| *v *= self.eps / scale.max(f32::MIN_POSITIVE));
            row.iter_mut().zip(&d).for_each(|(a, di)| *a += di);
        }
        self.project(&mut current, x, width, ctx);
        let mut eta = vec![2.0 * self.eps; rows];
        let (mut value, mut grad) = self.objective_and_gradient(ctx, &current, labels, targets);
        let (mut best, mut best_value) = (current.clone(), value.clone());
        let mut previous = current.clone();
        let marks = checkpoints(self.steps);
        let mut last_mark = 0usize;
        let mut improved = vec![0usize; rows];
        let mut eta_at_mark = eta.clone();
        let mut best_at_mark = best_value.clone();
        for k in 0..self.steps {
            step(&mut grad);
            let mut next: Vec<f32> = current
                .iter()
                .zip(&grad)
                .enumerate()
                .map(|(j, (c, g))| c + eta[j / width] * g)
                .collect();
            self.project(&mut next, x, width, ctx);
            if k > 0 {
                // Momentum: x(k+1) = P(xk + a (z - xk) + (1 - a)(xk - x(k-1))).
                for j in 0..next.len() {
                    next[j] = current[j] + ALPHA * (next[j] - current[j]) + (1.0 - ALPHA) * (current[j] - previous[j]);
                }
                self.project(&mut next, x, width, ctx);
            }
            let (next_value, next_grad) = self.objective_and_gradient(ctx, &next, labels, targets);
            for r in 0..rows {
                improved[r] += (next_value[r] > value[r]) as usize;
                if next_value[r] > best_value[r] {
                    best_value[r] = next_value[r];
                    best[r * width..(r + 1) * width].copy_from_slice(&next[r * width..(r + 1) * width]);
                }
            }
            previous = std::mem::replace(&mut current, next);
            (value, grad) = (next_value, next_grad);
            let done = k + 1;
            if marks.contains(&done) {
                let since = (done - last_mark) as f32;
                let mut restarted = false;
                for r in 0..rows {
                    let few_improved = (improved[r] as f32) < RHO * since;
                    let stuck = eta[r] == eta_at_mark[r] && best_value[r] == best_at_mark[r];
                    if few_improved || stuck {
                        eta[r] /= 2.0;
                        let span = r * width..(r + 1) * width;
                        current[span.clone()].copy_from_slice(&best[span.clone()]);
                        previous[span.clone()].copy_from_slice(&best[span]);
                        restarted = true;
                    }
                    improved[r] = 0;
                }
                eta_at_mark = eta.clone();
                best_at_mark = best_value.clone();
                last_mark = done;
                if restarted {
                    (value, grad) = self.objective_and_gradient(ctx, &current, labels, targets);
                }
            }
        }
        (best, best_value)
    }
}

/// The DLR loss of one row of logits `z` with label `y`, and its slope in every logit.
#[cfg(feature = "compute")]
fn dlr(z: &[f32], y: usize) -> (f32, Vec<f32>) {
    let order = descending(z);
    let other = order.iter().copied().find(|&i| i != y).expect("at least two classes");
    let (first, third) = (order[0], order[2.min(z.len() - 1)]);
    let margin = z[y] - z[other];
    let spread = z[first] - z[third] + 1e-12;
    let mut slope = vec![0.0f32; z.len()];
    slope[y] -= 1.0 / spread;
    slope[other] += 1.0 / spread;
    slope[first] += margin / (spread * spread);
    slope[third] -= margin / (spread * spread);
    (-margin / spread, slope)
}

/// The targeted DLR loss `-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)` of one row (AutoAttack's
/// APGD-T) and its slope in every logit.
#[cfg(feature = "compute")]
fn dlr_targeted(z: &[f32], y: usize, t: usize) -> (f32, Vec<f32>) {
    let order = descending(z);
    let (first, third, fourth) = (order[0], order[2.min(z.len() - 1)], order[3.min(z.len() - 1)]);
    let margin = z[y] - z[t];
    let spread = z[first] - 0.5 * (z[third] + z[fourth]) + 1e-12;
    let mut slope = vec![0.0f32; z.len()];
    slope[y] -= 1.0 / spread;
    slope[t] += 1.0 / spread;
    let by_spread = margin / (spread * spread);
    slope[first] += by_spread;
    slope[third] -= 0.5 * by_spread;
    slope[fourth] -= 0.5 * by_spread;
    (-margin / spread, slope)
}

/// Per row, `max_(i != y) z_i - z_y`: positive where the model does not predict `y`.
#[cfg(feature = "compute")]
fn margins(logits: &[f32], labels: &[usize]) -> Vec<f32> {
    let classes = logits.len() / labels.len();
    logits
        .chunks(classes)
        .zip(labels)
        .map(|(z, &y)| super::largest_other(z, y) - z[y])
        .collect()
}

#[cfg(feature = "compute")]
impl Attack for Apgd {
    fn perturb(&self, ctx: &mut AttackContext, x: &[f32], labels: &[usize]) -> Vec<f32> {
        if self.eps == 0.0 {
            return x.to_vec();
        }
        if self.loss == Loss::DlrTargeted {
            return self.targeted_runs(ctx, x, labels);
        }
        let width = ctx.model.input_width();
        let (mut best, mut best_value) = self.run(ctx, x, labels, labels);
        for _ in 1..self.restarts {
            let (candidate, value) = self.run(ctx, x, labels, labels);
            super::keep_better_rows(&mut best, &mut best_value, &candidate, &value, width);
        }
        best
    }
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use super::{checkpoints, dlr, dlr_targeted, margins};
    use crate::attacks::testing::{craft, model_and_batch};
    use crate::attacks::AttackContext;
    use serde_json::json;

    #[test]
    fn checkpoints_follow_the_paper() {
        // p = 0.22, 0.41, 0.57, 0.7, 0.8, 0.87, 0.93, 0.99 for 100 steps (Croce & Hein 2020).
        assert_eq!(checkpoints(100), vec![22, 41, 57, 70, 80, 87, 93, 99]);
        assert_eq!(checkpoints(10), vec![2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(checkpoints(1), vec![1]);
    }

    #[test]
    fn the_dlr_slope_matches_finite_differences() {
        let z = [0.3f32, 2.0, -1.0, 1.2, 0.7];
        for y in 0..z.len() {
            let (_, slope) = dlr(&z, y);
            for k in 0..z.len() {
                let h = 1e-3;
                let (mut up, mut down) = (z, z);
                up[k] += h;
                down[k] -= h;
                let numeric = (dlr(&up, y).0 - dlr(&down, y).0) / (2.0 * h);
                assert!((numeric - slope[k]).abs() < 2e-3, "y {y}, k {k}: {numeric} vs {}", slope[k]);
            }
        }
        // Shifting or scaling the logits does not change it.
        let shifted: Vec<f32> = z.iter().map(|v| 3.0 * v + 5.0).collect();
        assert!((dlr(&z, 1).0 - dlr(&shifted, 1).0).abs() < 1e-5);
    }

    #[test]
    fn apgd_beats_pgd_with_a_bad_step_size_and_dlr_raises_its_own_loss() {
        let (dev, model, x, y) = model_and_batch();
        let ctx = AttackContext::new(&model, &dev, 0);
        let apgd = craft(
            json!({"attack": "apgd", "eps": 0.1, "norm": "linf", "loss": "ce", "steps": 20, "restarts": 1, "targets": 9, "clip": null}),
            &model,
            &dev,
            &x,
            &y,
        );
        // PGD with a step size far too small for its 20 steps.
        let pgd = craft(
            json!({"attack": "pgd", "eps": 0.1, "norm": "linf", "steps": 20, "step_size": 0.0005, "start": "clean", "restarts": 1, "clip": null}),
            &model,
            &dev,
            &x,
            &y,
        );
        assert!(ctx.loss(&apgd, &y) > ctx.loss(&pgd, &y), "APGD adapts its step size");
        let on_dlr = craft(
            json!({"attack": "apgd", "eps": 0.1, "norm": "linf", "loss": "dlr", "steps": 20, "restarts": 1, "targets": 9, "clip": null}),
            &model,
            &dev,
            &x,
            &y,
        );
        let dlr_of = |v: &[f32]| -> f32 {
            let logits = ctx.logits(v);
            logits.chunks(3).zip(&y).map(|(z, &t)| dlr(z, t).0).sum()
        };
        assert!(dlr_of(&on_dlr) > dlr_of(&x), "DLR goes up");
    }

    #[test]
    fn the_targeted_dlr_slope_matches_finite_differences() {
        let z = [0.3f32, 2.0, -1.0, 1.2, 0.7, -0.4];
        for (y, t) in [(0, 1), (1, 3), (3, 2), (5, 4), (2, 0)] {
            let (_, slope) = dlr_targeted(&z, y, t);
            for k in 0..z.len() {
                let h = 1e-3;
                let (mut up, mut down) = (z, z);
                up[k] += h;
                down[k] -= h;
                let numeric = (dlr_targeted(&up, y, t).0 - dlr_targeted(&down, y, t).0) / (2.0 * h);
                assert!((numeric - slope[k]).abs() < 2e-3, "y {y}, t {t}, k {k}: {numeric} vs {}", slope[k]);
            }
        }
        let shifted: Vec<f32> = z.iter().map(|v| 2.0 * v - 1.0).collect();
        assert!((dlr_targeted(&z, 1, 3).0 - dlr_targeted(&shifted, 1, 3).0).abs() < 1e-5);
    }

    #[test]
    fn apgd_t_never_leaves_an_example_worse_than_clean_and_fools_at_a_large_eps() {
        let (dev, model, x, y) = model_and_batch();
        let ctx = AttackContext::new(&model, &dev, 0);
        let attack = |eps: f64| {
            craft(
                json!({"attack": "apgd", "eps": eps, "norm": "linf", "loss": "dlr_targeted", "steps": 20, "restarts": 1, "targets": 2, "clip": null}),
                &model,
                &dev,
                &x,
                &y,
            )
        };
        let clean = margins(&ctx.logits(&x), &y);
        let small = margins(&ctx.logits(&attack(0.02)), &y);
        assert!(small.iter().zip(&clean).all(|(a, c)| a >= c), "{small:?} vs {clean:?}");
        let large = margins(&ctx.logits(&attack(1.0)), &y);
        assert!(large.iter().all(|&m| m > 0.0), "every example fooled at eps 1: {large:?}");
    }

    #[test]
    fn dlr_is_untargeted() {
        let json = json!({"attack": "apgd", "eps": 0.1, "norm": "linf", "loss": "dlr", "steps": 10, "restarts": 1, "targets": 9, "clip": [0.0, 1.0], "labels": "true", "target": "least_likely", "target_class": null, "mode": "eval"});
        let Err(why) = crate::attacks::Crafter::from_json(&json) else {
            panic!("a targeted DLR was built")
        };
        assert!(why.contains("untargeted"), "{why}");
    }
}
