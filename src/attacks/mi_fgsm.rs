//! `mi_fgsm(eps: 0.25, steps: 10, decay: 1.0)`: momentum iterative FGSM (Dong et al. 2018):
//! `g <- decay * g + grad / ||grad||_1` per example, then a sign step of `step_size`,
//! projected onto the L-infinity ball and the clip range.

#[cfg(feature = "compute")]
use super::AttackContext;
use super::{default_step_size, params_from, project_linf, sign, Attack, AttackKind, EPS, STEPS, STEP_SIZE};
use crate::params::{Default, ParamDef, ParamType};
use serde::Deserialize;

/// The registry entry.
pub const KIND: AttackKind = AttackKind {
    version: 1,
    source: file!(),
    name: "mi_fgsm",
    doc: "momentum iterative FGSM",
    params: MiFgsm::PARAMS,
    build,
};

crate::declare_params! {
    /// MI-FGSM's parameters.
    #[derive(Clone, Debug, Deserialize)]
    pub struct MiFgsm {
        /// size of the perturbation budget
        eps: f32 = EPS,
        /// iterations
        steps: usize = STEPS,
        /// size of each step (default 2.5 * eps / steps)
        step_size: Option<f32> = STEP_SIZE,
        /// momentum decay factor
        decay: f32 = ParamDef::or(ParamType::Number, Default::Number(1.0)).range(0.0, 10.0),
    }
}

fn build(json: &serde_json::Value) -> Result<Box<dyn Attack>, String> {
    Ok(Box::new(params_from::<MiFgsm>(json)?))
}

#[cfg(feature = "compute")]
impl Attack for MiFgsm {
    fn perturb(&self, ctx: &mut AttackContext, x: &[f32], labels: &[usize]) -> Vec<f32> {
        let alpha = self.step_size.unwrap_or_else(|| default_step_size(self.eps, self.steps));
        let width = ctx.model.input_width();
        let mut adv = x.to_vec();
        let mut momentum = vec![0.0f32; x.len()];
        for _ in 0..self.steps {
            let g = ctx.objective_gradient(&adv, labels);
            for ((m, grad), _) in momentum.chunks_mut(width).zip(g.chunks(width)).zip(0..) {
                let l1 = grad.iter().map(|v| v.abs()).sum::<f32>().max(1e-12);
                m.iter_mut().zip(grad).for_each(|(mi, gi)| *mi = self.decay * *mi + gi / l1);
            }
            adv.iter_mut().zip(&momentum).for_each(|(a, m)| *a += alpha * sign(*m));
            project_linf(&mut adv, x, self.eps);
            ctx.clip(&mut adv);
        }
        adv
    }
}
