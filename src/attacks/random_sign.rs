//! `random_sign(eps: 0.25)`: the paper's control (section 6): `x + eps * s` with each `s`
//! an independent fair coin in {-1, +1}. Same L-infinity size as FGSM, no gradient.

#[cfg(feature = "compute")]
use super::AttackContext;
use super::{params_from, Attack, AttackKind, EPS};
use rand::Rng;
use serde::Deserialize;

/// The registry entry.
pub const KIND: AttackKind = AttackKind {
    version: 1,
    source: file!(),
    name: "random_sign",
    doc: "control: x + eps * (random +-1 per pixel)",
    params: RandomSign::PARAMS,
    build,
};

crate::declare_params! {
    /// The random-sign control's parameters.
    #[derive(Clone, Debug, Deserialize)]
    pub struct RandomSign {
        /// size of the perturbation budget
        eps: f32 = EPS,
    }
}

fn build(json: &serde_json::Value) -> Result<Box<dyn Attack>, String> {
    Ok(Box::new(params_from::<RandomSign>(json)?))
}

#[cfg(feature = "compute")]
impl Attack for RandomSign {
    fn perturb(&self, ctx: &mut AttackContext, x: &[f32], _labels: &[usize]) -> Vec<f32> {
        x.iter()
            .map(|&v| v + if ctx.rng.gen::<bool>() { self.eps } else { -self.eps })
            .collect()
    }
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use crate::attacks::testing::{craft, model_and_batch};
    use serde_json::json;

    #[test]
    fn every_pixel_moves_by_exactly_eps_both_ways() {
        let (dev, model, x, y) = model_and_batch();
        let adv = craft(json!({"attack": "random_sign", "eps": 0.125, "clip": null}), &model, &dev, &x, &y);
        let d: Vec<f32> = adv.iter().zip(&x).map(|(a, b)| a - b).collect();
        assert!(d.iter().all(|v| (v.abs() - 0.125).abs() < 1e-6));
        assert!(d.iter().any(|v| *v > 0.0) && d.iter().any(|v| *v < 0.0));
    }
}
