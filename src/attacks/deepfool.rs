//! `deepfool(norm: "l2", steps: 50, overshoot: 0.02)`: DeepFool (Moosavi-Dezfooli, Fawzi &
//! Frossard, "DeepFool: a simple and accurate method to fool deep neural networks", CVPR
//! 2016), a minimal-perturbation attack: no budget, it moves each example just across the
//! nearest decision boundary of the model linearised where it stands.
//!
//! Per step and per example still classified as its label `y`: for every other class `k`,
//! `w_k = grad f_k - grad f_y` and `f'_k = f_k - f_y` (logits); the nearest linearised
//! boundary is `l = argmin_k |f'_k| / ||w_k||_q` (`q` the dual norm: 2 for L2, 1 for
//! L-infinity), and the step that reaches it is `(|f'_l| + 1e-4) / ||w_l||_2^2 * w_l` (L2)
//! or `(|f'_l| + 1e-4) / ||w_l||_1 * sign(w_l)` (L-infinity). Steps accumulate into `r`;
//! the adversarial input is `x + (1 + overshoot) r`, clipped, and an example stops once the
//! model's class is no longer `y` (the paper's defaults: 50 steps, overshoot 0.02). Report its
//! perturbations' size with `evaluate`'s `l2_median`, `linf_median` and friends.
//!
//! ```text
//! eval df = evaluate(mx, test, attack: deepfool(norm: "l2"))
//! row "median L2 to the boundary" value: df.l2_median
//! ```
//!
//! It is untargeted (`target` must stay "none"); `labels: "predicted"` starts from the
//! model's own class, as the paper does.

#[cfg(feature = "compute")]
use super::AttackContext;
use super::{params_from, Attack, AttackKind};
use crate::params::{Default, ParamDef, ParamType};
use serde::Deserialize;

/// The registry entry.
pub const KIND: AttackKind = AttackKind {
    version: 1,
    source: file!(),
    name: "deepfool",
    doc: "DeepFool: the smallest step across the nearest linearised boundary, repeated (L2 or L-inf)",
    params: DeepFool::PARAMS,
    build,
};

/// The norm the steps minimise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    /// Euclidean steps.
    L2,
    /// Steps along sign vectors.
    Linf,
}

crate::declare_params! {
    /// DeepFool's parameters.
    #[derive(Clone, Debug, Deserialize)]
    pub struct DeepFool {
        /// the norm each step minimises
        norm: Norm = ParamDef::or(ParamType::Choice(&["l2", "linf"]), Default::Str("l2")),
        /// most linearisation steps per example
        steps: usize = ParamDef::or(ParamType::Int, Default::Int(50)).range(1.0, 1000.0),
        /// factor (1 + overshoot) on the accumulated step, to end past the boundary
        overshoot: f32 = ParamDef::or(ParamType::Number, Default::Number(0.02)).range(0.0, 1.0),
    }
}

fn build(json: &serde_json::Value) -> Result<Box<dyn Attack>, String> {
    if super::asks_for_a_target(json) {
        return Err("deepfool is untargeted: leave `target` at \"none\"".into());
    }
    Ok(Box::new(params_from::<DeepFool>(json)?))
}

/// Added to the distance to the boundary so that a step lands on its far side.
#[cfg(feature = "compute")]
const PAST: f32 = 1e-4;

#[cfg(feature = "compute")]
impl Attack for DeepFool {
    fn perturb(&self, ctx: &mut AttackContext, x: &[f32], labels: &[usize]) -> Vec<f32> {
        let width = ctx.model.input_width();
        let rows = labels.len();
        let mut r = vec![0.0f32; x.len()];
        let adversarial = |r: &[f32], ctx: &AttackContext| -> Vec<f32> {
            let mut adv: Vec<f32> = x.iter().zip(r).map(|(xi, ri)| xi + (1.0 + self.overshoot) * ri).collect();
            ctx.clip(&mut adv);
            adv
        };
        for _ in 0..self.steps {
            let adv = adversarial(&r, ctx);
            let logits = ctx.logits(&adv);
            let classes = logits.len() / rows;
            let active: Vec<usize> = (0..rows)
                .filter(|&i| crate::tensor::argmax(&logits[i * classes..(i + 1) * classes]) == labels[i])
                .collect();
            if active.is_empty() {
                break;
            }
            let batch = crate::tensor::gather_rows(&adv, &active, width);
            let gradients = ctx.class_gradients(&batch, classes);
            for (a, &i) in active.iter().enumerate() {
                let y = labels[i];
                let row = &logits[i * classes..(i + 1) * classes];
                let grad_y = &gradients[y][a * width..(a + 1) * width];
                // The nearest linearised boundary: its class and `w_l = grad f_l - grad f_y`.
                let mut best: Option<(f32, usize, Vec<f32>)> = None;
                for k in (0..classes).filter(|&k| k != y) {
                    let w: Vec<f32> = gradients[k][a * width..(a + 1) * width]
                        .iter()
                        .zip(grad_y)
                        .map(|(gk, gy)| gk - gy)
                        .collect();
                    let dual = match self.norm {
                        Norm::L2 => w.iter().map(|v| v * v).sum::<f32>().sqrt(),
                        Norm::Linf => w.iter().map(|v| v.abs()).sum::<f32>(),
                    };
                    let distance = (row[k] - row[y]).abs() / dual.max(f32::MIN_POSITIVE);
                    if best.as_ref().is_none_or(|(d, _, _)| distance < *d) {
                        best = Some((distance, k, w));
                    }
                }
                let Some((_, l, w)) = best else { continue };
                let gap = (row[l] - row[y]).abs() + PAST;
                let step = &mut r[i * width..(i + 1) * width];
                match self.norm {
                    Norm::L2 => {
                        let sq = w.iter().map(|v| v * v).sum::<f32>().max(f32::MIN_POSITIVE);
                        step.iter_mut().zip(&w).for_each(|(s, v)| *s += gap / sq * v);
                    }
                    Norm::Linf => {
                        let l1 = w.iter().map(|v| v.abs()).sum::<f32>().max(f32::MIN_POSITIVE);
                        step.iter_mut().zip(&w).for_each(|(s, v)| *s += gap / l1 * v.signum());
                    }
                }
            }
        }
        adversarial(&r, ctx)
    }
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use crate::attacks::testing::{convex_model_and_batch, craft, model_and_batch};
    use crate::attacks::AttackContext;
    use serde_json::json;

    #[test]
    fn it_fools_every_example_and_on_a_linear_model_takes_the_shortest_l2_step() {
        let (dev, model, x, _) = convex_model_and_batch();
        // Start from the model's own classes, as the paper does.
        let ctx = AttackContext::new(&model, &dev, 0);
        let y = ctx.predict(&x);
        let adv = craft(
            json!({"attack": "deepfool", "norm": "l2", "steps": 50, "overshoot": 0.02, "clip": null}),
            &model,
            &dev,
            &x,
            &y,
        );
        assert_eq!(
            ctx.predict(&adv).iter().zip(&y).filter(|(a, b)| a == b).count(),
            0,
            "every example is fooled"
        );
        // Softmax regression is linear: the smallest L2 step to another class is the smallest
        // over k of |f_k - f_y| / ||w_k - w_y||, and DeepFool takes it in one step (plus the
        // overshoot).
        let w = model.params[0].as_ref().expect("a linear layer").weight().as_vec();
        let (inputs, classes) = (6, 3);
        let logits = ctx.logits(&x);
        for (i, (a, c)) in adv.chunks(inputs).zip(x.chunks(inputs)).enumerate() {
            let yi = y[i];
            let nearest = (0..classes)
                .filter(|&k| k != yi)
                .map(|k| {
                    let dw: f32 = (0..inputs)
                        .map(|j| (w[j * classes + k] - w[j * classes + yi]).powi(2))
                        .sum::<f32>()
                        .sqrt();
                    (logits[i * classes + k] - logits[i * classes + yi]).abs() / dw
                })
                .fold(f32::INFINITY, f32::min);
            let moved = a.iter().zip(c).map(|(p, q)| (p - q) * (p - q)).sum::<f32>().sqrt();
            assert!(
                moved >= nearest && moved <= nearest * 1.03 + 1e-3,
                "example {i}: moved {moved}, boundary at {nearest}"
            );
        }
    }

    #[test]
    fn the_linf_form_fools_too_and_an_example_already_wrong_stays_put() {
        let (dev, model, x, _) = model_and_batch();
        let ctx = AttackContext::new(&model, &dev, 0);
        let mut y = ctx.predict(&x);
        // The first example's label is not its class: it is already fooled.
        y[0] = (y[0] + 1) % 3;
        let adv = craft(
            json!({"attack": "deepfool", "norm": "linf", "steps": 50, "overshoot": 0.02, "clip": null}),
            &model,
            &dev,
            &x,
            &y,
        );
        assert_eq!(&adv[..6], &x[..6], "nothing to do for an example already misclassified");
        let after = ctx.predict(&adv);
        assert!((1..4).all(|i| after[i] != y[i]), "{after:?} vs {y:?}");
    }

    #[test]
    fn a_target_is_refused() {
        let json = json!({"attack": "deepfool", "norm": "l2", "steps": 50, "overshoot": 0.02, "clip": [0.0, 1.0], "labels": "true", "target": "least_likely", "target_class": null, "mode": "eval"});
        let Err(why) = crate::attacks::Crafter::from_json(&json) else {
            panic!("a targeted deepfool was built")
        };
        assert!(why.contains("untargeted"), "{why}");
    }
}
