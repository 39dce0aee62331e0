//! `pgd(eps: 0.3, norm: "linf", steps: 40)`: projected gradient descent (Madry et al. 2018)
//! in the L-infinity or L2 ball. From a random start in the ball (`start: "random"`) or the
//! clean input, take `steps` steps of `step_size` (sign of the gradient for L-infinity,
//! the L2-normalised gradient for L2), projecting onto the ball and the clip range after
//! each. With `restarts > 1`, every example keeps the restart with the highest objective.
//!
//! ```text
//! attack pgd40 = pgd(eps: 0.3, steps: 40, step_size: 0.01, restarts: 5)
//! attack pgd_l2 = pgd(eps: 2.0, norm: "l2")
//! ```

#[cfg(feature = "compute")]
use super::AttackContext;
use super::{
    default_step_size, l2_normalize_rows, params_from, project_l2, project_linf, sign_step_linf, Attack, AttackKind, STEPS, STEP_SIZE,
};
use crate::params::{Default, ParamDef, ParamType};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Deserialize;

/// The registry entry.
pub const KIND: AttackKind = AttackKind {
    version: 1,
    source: file!(),
    name: "pgd",
    doc: "projected gradient descent in the L-inf or L2 ball, random start, restarts",
    params: Pgd::PARAMS,
    build,
};

/// The ball.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    /// max |d_i| <= eps
    Linf,
    /// ||d||_2 <= eps
    L2,
}

/// Where each restart begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// A uniformly drawn point of the ball (L-inf), or a random direction at a random radius (L2).
    Random,
    /// The clean input.
    Clean,
}

crate::declare_params! {
    /// PGD's parameters.
    #[derive(Clone, Debug, Deserialize)]
    pub struct Pgd {
        /// radius of the ball
        eps: f32 = ParamDef::required(ParamType::Number).range(0.0, 100.0),
        /// which ball
        norm: Norm = ParamDef::or(ParamType::Choice(&["linf", "l2"]), Default::Str("linf")),
        /// iterations
        steps: usize = STEPS,
        /// size of each step (default 2.5 * eps / steps)
        step_size: Option<f32> = STEP_SIZE,
        /// start at a random point of the ball, or at x
        start: Start = ParamDef::or(ParamType::Choice(&["random", "clean"]), Default::Str("random")),
        /// independent runs; each example keeps its best
        restarts: usize = ParamDef::or(ParamType::Int, Default::Int(1)).range(1.0, 1000.0),
    }
}

fn build(json: &serde_json::Value) -> Result<Box<dyn Attack>, String> {
    Ok(Box::new(params_from::<Pgd>(json)?))
}

impl Pgd {
    fn project(&self, adv: &mut [f32], x: &[f32], width: usize) {
        match self.norm {
            Norm::Linf => project_linf(adv, x, self.eps),
            Norm::L2 => project_l2(adv, x, self.eps, width),
        }
    }

    #[cfg(feature = "compute")]
    fn run(&self, ctx: &mut AttackContext, x: &[f32], labels: &[usize]) -> Vec<f32> {
        let width = ctx.model.input_width();
        let alpha = self.step_size.unwrap_or_else(|| default_step_size(self.eps, self.steps));
        let mut adv = x.to_vec();
        if self.start == Start::Random && self.eps > 0.0 {
            match self.norm {
                Norm::Linf => adv.iter_mut().for_each(|a| *a += ctx.rng.gen_range(-self.eps..=self.eps)),
                Norm::L2 => {
                    let mut d: Vec<f32> = (0..x.len()).map(|_| StandardNormal.sample(&mut ctx.rng)).collect();
                    l2_normalize_rows(&mut d, width);
                    for (row, a) in d.chunks(width).zip(adv.chunks_mut(width)) {
                        let radius = self.eps * ctx.rng.gen::<f32>();
                        a.iter_mut().zip(row).for_each(|(ai, di)| *ai += radius * di);
                    }
                }
            }
            ctx.clip(&mut adv);
        }
        for _ in 0..self.steps {
            let mut g = ctx.objective_gradient(&adv, labels);
            match self.norm {
                Norm::Linf => sign_step_linf(&mut adv, &g, x, alpha, self.eps, ctx.clip_range()),
                Norm::L2 => {
                    l2_normalize_rows(&mut g, width);
                    adv.iter_mut().zip(&g).for_each(|(a, gi)| *a += alpha * gi);
                    self.project(&mut adv, x, width);
                    ctx.clip(&mut adv);
                }
            }
        }
        adv
    }
}

#[cfg(feature = "compute")]
impl Attack for Pgd {
    fn perturb(&self, ctx: &mut AttackContext, x: &[f32], labels: &[usize]) -> Vec<f32> {
        let width = ctx.model.input_width();
        let mut best = self.run(ctx, x, labels);
        let mut best_objective = ctx.objective(&best, labels);
        for _ in 1..self.restarts {
            let candidate = self.run(ctx, x, labels);
            let objective = ctx.objective(&candidate, labels);
            super::keep_better_rows(&mut best, &mut best_objective, &candidate, &objective, width);
        }
        best
    }
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use crate::attacks::testing::{craft, model_and_batch};
    use crate::attacks::AttackContext;
    use serde_json::json;

    #[test]
    fn more_restarts_never_lower_the_loss_of_any_example() {
        let (dev, model, x, y) = model_and_batch();
        let ctx = AttackContext::new(&model, &dev, 0);
        let base = json!({"attack": "pgd", "eps": 0.2, "norm": "linf", "steps": 3, "step_size": null, "start": "random", "clip": null});
        let one = craft(
            json!({"restarts": 1})
                .as_object()
                .unwrap()
                .iter()
                .fold(base.clone(), |mut b, (k, v)| {
                    b[k] = v.clone();
                    b
                }),
            &model,
            &dev,
            &x,
            &y,
        );
        let four = craft(
            json!({"restarts": 4}).as_object().unwrap().iter().fold(base, |mut b, (k, v)| {
                b[k] = v.clone();
                b
            }),
            &model,
            &dev,
            &x,
            &y,
        );
        let (l1, l4) = (ctx.per_example_loss(&one, &y), ctx.per_example_loss(&four, &y));
        for (a, b) in l1.iter().zip(&l4) {
            assert!(b >= a, "restart 1 is the same stream, so 4 restarts include it: {a} vs {b}");
        }
    }
}
