//! `fgsm(eps: 0.25)`: the fast gradient sign method (Goodfellow, Shlens & Szegedy 2015).
//!
//! `x_adv = x + eps * sign(grad_x J(x, y))`, then the shared clip policy (default `[0, 1]`).
//! `sign(0) = 0`: a pixel with no gradient is left alone.
//!
//! ```text
//! attack fgsm25 = fgsm(eps: 0.25)
//! attack leaky  = fgsm(eps: 0.1, labels: "predicted", clip: "none")
//! ```

#[cfg(feature = "compute")]
use super::AttackContext;
use super::{params_from, sign, Attack, AttackKind, EPS};
use serde::Deserialize;

/// The registry entry.
pub const KIND: AttackKind = AttackKind {
    version: 1,
    source: file!(),
    name: "fgsm",
    doc: "fast gradient sign method: x + eps * sign(grad_x J)",
    params: Fgsm::PARAMS,
    build,
};

crate::declare_params! {
    /// FGSM's own parameters.
    #[derive(Clone, Debug, Deserialize)]
    pub struct Fgsm {
        /// size of the perturbation budget
        eps: f32 = EPS,
    }
}

impl Fgsm {
    fn validate(self) -> Result<Self, String> {
        if self.eps.is_finite() && self.eps >= 0.0 {
            Ok(self)
        } else {
            Err(format!("eps must be a non-negative number, found {}", self.eps))
        }
    }
}

fn build(json: &serde_json::Value) -> Result<Box<dyn Attack>, String> {
    Ok(Box::new(params_from::<Fgsm>(json)?.validate()?))
}

#[cfg(feature = "compute")]
impl Attack for Fgsm {
    fn perturb(&self, ctx: &mut AttackContext, x: &[f32], labels: &[usize]) -> Vec<f32> {
        let grad = ctx.objective_gradient(x, labels);
        x.iter().zip(&grad).map(|(&xi, &gi)| xi + self.eps * sign(gi)).collect()
    }
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use super::*;
    use crate::attacks::testing::{craft, model_and_batch};
    use serde_json::json;

    #[test]
    fn step_is_exactly_eps_times_sign_of_the_gradient() {
        let (dev, model, x, y) = model_and_batch();
        let mut ctx = AttackContext::new(&model, &dev, 0);
        let grad = ctx.input_gradient(&x, &y);
        let adv = Fgsm { eps: 0.1 }.perturb(&mut ctx, &x, &y);
        for i in 0..x.len() {
            assert_eq!(adv[i], x[i] + 0.1 * sign(grad[i]));
            assert!(grad[i] != 0.0, "the test model should have no dead pixels");
        }
    }

    #[test]
    fn clip_none_lets_values_out() {
        let (dev, model, x, y) = model_and_batch();
        let free = craft(json!({"attack": "fgsm", "eps": 0.9, "clip": null}), &model, &dev, &x, &y);
        assert!(free.iter().any(|v| !(0.0..=1.0).contains(v)));
    }

    #[test]
    fn input_gradient_agrees_with_finite_differences() {
        let (dev, model, x, y) = model_and_batch();
        let ctx = AttackContext::new(&model, &dev, 0);
        let grad = ctx.input_gradient(&x, &y);
        let h = 1e-2f32;
        for i in 0..x.len() {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += h;
            down[i] -= h;
            let numeric = (ctx.loss(&up, &y) - ctx.loss(&down, &y)) / (2.0 * h);
            assert!(
                (numeric - grad[i]).abs() <= 2e-3 + 0.02 * grad[i].abs(),
                "pixel {i}: numeric {numeric}, analytic {}",
                grad[i]
            );
        }
    }

    #[test]
    fn predicted_labels_are_used_when_asked() {
        let (dev, model, x, y) = model_and_batch();
        let mut ctx = AttackContext::new(&model, &dev, 0);
        let predicted = ctx.predict(&x);
        let by_prediction = craft(
            json!({"attack": "fgsm", "eps": 0.05, "clip": null, "labels": "predicted"}),
            &model,
            &dev,
            &x,
            &y,
        );
        assert_eq!(by_prediction, Fgsm { eps: 0.05 }.perturb(&mut ctx, &x, &predicted));
    }

    #[test]
    fn validate_rejects_negative_eps() {
        assert!(build(&json!({"eps": -0.1})).is_err());
    }
}
