//! `uniform_noise(eps: 0.25)`: the paper's control (section 6): `x + u`, `u ~ U(-eps, eps)`
//! independently per pixel.

#[cfg(feature = "compute")]
use super::AttackContext;
use super::{params_from, Attack, AttackKind, EPS};
use rand::Rng;
use serde::Deserialize;

/// The registry entry.
pub const KIND: AttackKind = AttackKind {
    version: 1,
    source: file!(),
    name: "uniform_noise",
    doc: "control: x + U(-eps, eps) per pixel",
    params: UniformNoise::PARAMS,
    build,
};

crate::declare_params! {
    /// The uniform-noise control's parameters.
    #[derive(Clone, Debug, Deserialize)]
    pub struct UniformNoise {
        /// size of the perturbation budget
        eps: f32 = EPS,
    }
}

fn build(json: &serde_json::Value) -> Result<Box<dyn Attack>, String> {
    Ok(Box::new(params_from::<UniformNoise>(json)?))
}

#[cfg(feature = "compute")]
impl Attack for UniformNoise {
    fn perturb(&self, ctx: &mut AttackContext, x: &[f32], _labels: &[usize]) -> Vec<f32> {
        if self.eps == 0.0 {
            return x.to_vec();
        }
        x.iter().map(|&v| v + ctx.rng.gen_range(-self.eps..=self.eps)).collect()
    }
}
