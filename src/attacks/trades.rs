//! `trades(eps: 0.3, steps: 40, step_size: 0.01)`: the inner maximisation of TRADES (Zhang
//! et al., "Theoretically principled trade-off between robustness and accuracy", ICML 2019):
//! the point of the L-inf ball where the model's prediction is furthest, in KL divergence,
//! from its prediction on the clean example.
//!
//! From `x' = x + 0.001 n` (`n ~ N(0, I)`), `steps` times `x' = P(x' + step_size *
//! sign(grad_x' KL(p(x) || p(x'))))` (`p` the softmax of the model's outputs, `p(x)` taken
//! once, with dropout off; `P` projects onto the ball and the clip range). It needs no label:
//! the clean prediction is the reference. The authors' MNIST setting is eps .3, 40 steps of
//! .01 (CIFAR-10: 8/255, 10 steps of 2/255); the default step is 2.5 eps / steps.
//!
//! As a term of `fit`'s loss it is the TRADES objective: the term's loss is
//! `KL(p(x) || p(x'))` (gradients through both predictions), not the cross-entropy that every
//! other attack term takes, so `loss: clean + 6 * trades(eps: 0.3)` is TRADES with `beta = 6`.
//! As an attack in `evaluate` it is a label-free PGD on the KL.
//!
//! ```text
//! model tr = fit(net, train, loss: clean + 6 * trades(eps: 0.3, steps: 40, step_size: 0.01))
//! ```

#[cfg(feature = "compute")]
use super::AttackContext;
use super::{params_from, project_linf, sign, Attack, AttackKind, EPS, STEP_SIZE};
use crate::params::{Default, ParamDef, ParamType};
#[cfg(feature = "compute")]
use rand_distr::Distribution;
use serde::Deserialize;

/// The registry entry.
pub const KIND: AttackKind = AttackKind {
    version: 1,
    source: file!(),
    name: "trades",
    doc: "TRADES' inner maximisation: PGD on KL(p(x) || p(x')); as a fit loss term, that KL (Zhang et al. 2019)",
    params: Trades::PARAMS,
    build,
};

crate::declare_params! {
    /// TRADES' attack parameters.
    #[derive(Clone, Debug, Deserialize)]
    pub struct Trades {
        /// radius of the L-inf ball
        eps: f32 = EPS,
        /// ascent steps (the authors' 40 on MNIST, 10 on CIFAR-10)
        steps: usize = ParamDef::or(ParamType::Int, Default::Int(10)).range(1.0, 10000.0),
        /// size of each step (default 2.5 eps / steps)
        step_size: Option<f32> = STEP_SIZE,
    }
}

fn build(json: &serde_json::Value) -> Result<Box<dyn Attack>, String> {
    if super::asks_for_a_target(json) {
        return Err("trades moves away from the clean prediction, not towards a class: leave `target` at \"none\"".into());
    }
    Ok(Box::new(params_from::<Trades>(json)?))
}

/// The softmax of every row of `logits` (`classes` wide).
pub fn softmax_rows(logits: &[f32], classes: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(logits.len());
    for row in logits.chunks(classes) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
        let total: f32 = exp.iter().sum();
        out.extend(exp.iter().map(|e| e / total));
    }
    out
}

/// `KL(p || q)` of every row, from the two rows of logits.
pub fn kl_rows(p_logits: &[f32], q_logits: &[f32], classes: usize) -> Vec<f32> {
    let (p, q) = (softmax_rows(p_logits, classes), softmax_rows(q_logits, classes));
    p.chunks(classes)
        .zip(q.chunks(classes))
        .map(|(p, q)| {
            p.iter()
                .zip(q)
                .map(|(pi, qi)| if *pi > 0.0 { pi * (pi.ln() - qi.max(1e-30).ln()) } else { 0.0 })
                .sum()
        })
        .collect()
}

#[cfg(feature = "compute")]
impl Attack for Trades {
    fn perturb(&self, ctx: &mut AttackContext, x: &[f32], labels: &[usize]) -> Vec<f32> {
        let rows = labels.len();
        let clean = ctx.logits(x);
        let classes = clean.len() / rows;
        let p = softmax_rows(&clean, classes);
        let step = self.step_size.unwrap_or_else(|| super::default_step_size(self.eps, self.steps));
        let normal = rand_distr::Normal::new(0.0f32, 0.001).expect("a valid deviation");
        let mut adv: Vec<f32> = x.iter().map(|v| v + normal.sample(&mut ctx.rng)).collect();
        project_linf(&mut adv, x, self.eps);
        ctx.clip(&mut adv);
        for _ in 0..self.steps {
            // d KL(p || softmax(z)) / dz = softmax(z) - p, per row.
            let (_, gradient) = ctx.logits_and_output_gradient(&adv, |logits| {
                softmax_rows(logits, classes).iter().zip(&p).map(|(q, p)| q - p).collect()
            });
            adv.iter_mut().zip(&gradient).for_each(|(a, g)| *a += step * sign(*g));
            project_linf(&mut adv, x, self.eps);
            ctx.clip(&mut adv);
        }
        adv
    }

    fn is_divergence_term(&self) -> bool {
        true
    }
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use super::*;
    use crate::attacks::testing::{craft, model_and_batch, norms};
    use serde_json::json;

    fn trades(eps: f64) -> serde_json::Value {
        json!({"attack": "trades", "eps": eps, "steps": 10, "step_size": null})
    }

    #[test]
    fn it_raises_the_divergence_from_the_clean_prediction_within_the_ball() {
        let (dev, model, x, y) = model_and_batch();
        let ctx = AttackContext::new(&model, &dev, 0);
        let adv = craft(trades(0.1), &model, &dev, &x, &y);
        assert!(norms(&adv, &x, 6).0 <= 0.1 + 1e-6);
        let (clean, moved) = (ctx.logits(&x), ctx.logits(&adv));
        let kl = kl_rows(&clean, &moved, 3);
        assert!(kl.iter().all(|&d| d > 1e-4), "{kl:?}");
        // Random signs of the same size move it less.
        let noise = craft(json!({"attack": "random_sign", "eps": 0.1}), &model, &dev, &x, &y);
        let random = kl_rows(&clean, &ctx.logits(&noise), 3);
        assert!(kl.iter().sum::<f32>() > random.iter().sum::<f32>(), "{kl:?} {random:?}");
    }

    #[test]
    fn kl_is_zero_on_itself_and_matches_its_definition() {
        let a = [1.0f32, 2.0, 0.5, -1.0, 0.0, 3.0];
        assert!(kl_rows(&a, &a, 3).iter().all(|d| d.abs() < 1e-6));
        let b = [0.0f32, 0.0, 0.0, 0.0, 0.0, 0.0];
        let p = softmax_rows(&a[..3], 3);
        let expected: f32 = p.iter().map(|pi| pi * (pi.ln() - (1.0f32 / 3.0).ln())).sum();
        assert!((kl_rows(&a, &b, 3)[0] - expected).abs() < 1e-6);
    }
}
