//! `bim(eps: 0.25, steps: 10)`: the basic iterative method (Kurakin et al. 2017): FGSM
//! steps of `step_size`, each followed by projection onto the L-infinity ball of radius
//! `eps` around the clean input and by the clip range.
//!
//! ```text
//! attack bim10 = bim(eps: 0.1, steps: 10, step_size: 0.02)
//! ```

#[cfg(feature = "compute")]
use super::AttackContext;
use super::{default_step_size, params_from, sign_step_linf, Attack, AttackKind, EPS, STEPS, STEP_SIZE};
use serde::Deserialize;

/// The registry entry.
pub const KIND: AttackKind = AttackKind {
    version: 1,
    source: file!(),
    name: "bim",
    doc: "basic iterative method: repeated FGSM steps, projected",
    params: Bim::PARAMS,
    build,
};

crate::declare_params! {
    /// BIM's parameters.
    #[derive(Clone, Debug, Deserialize)]
    pub struct Bim {
        /// size of the perturbation budget
        eps: f32 = EPS,
        /// iterations
        steps: usize = STEPS,
        /// size of each step (default 2.5 * eps / steps)
        step_size: Option<f32> = STEP_SIZE,
    }
}

fn build(json: &serde_json::Value) -> Result<Box<dyn Attack>, String> {
    Ok(Box::new(params_from::<Bim>(json)?))
}

#[cfg(feature = "compute")]
impl Attack for Bim {
    fn perturb(&self, ctx: &mut AttackContext, x: &[f32], labels: &[usize]) -> Vec<f32> {
        let alpha = self.step_size.unwrap_or_else(|| default_step_size(self.eps, self.steps));
        let mut adv = x.to_vec();
        for _ in 0..self.steps {
            let g = ctx.objective_gradient(&adv, labels);
            sign_step_linf(&mut adv, &g, x, alpha, self.eps, ctx.clip_range());
        }
        adv
    }
}
