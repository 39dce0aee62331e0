//! `gaussian_noise(sigma: 0.1)`: a noise control, `x + n`, `n ~ N(0, sigma^2)` per pixel.
//! It has no hard budget: `sigma` is the standard deviation.

#[cfg(feature = "compute")]
use super::AttackContext;
use super::{params_from, Attack, AttackKind};
use crate::params::{ParamDef, ParamType};
use rand_distr::{Distribution, Normal};
use serde::Deserialize;

/// The registry entry.
pub const KIND: AttackKind = AttackKind {
    version: 1,
    source: file!(),
    name: "gaussian_noise",
    doc: "control: x + N(0, sigma^2) per pixel",
    params: GaussianNoise::PARAMS,
    build,
};

crate::declare_params! {
    /// The Gaussian-noise control's parameters.
    #[derive(Clone, Debug, Deserialize)]
    pub struct GaussianNoise {
        /// standard deviation of the noise
        sigma: f32 = ParamDef::required(ParamType::Number).range(0.0, 10.0),
    }
}

fn build(json: &serde_json::Value) -> Result<Box<dyn Attack>, String> {
    Ok(Box::new(params_from::<GaussianNoise>(json)?))
}

#[cfg(feature = "compute")]
impl Attack for GaussianNoise {
    fn perturb(&self, ctx: &mut AttackContext, x: &[f32], _labels: &[usize]) -> Vec<f32> {
        let normal = Normal::new(0.0, self.sigma).expect("sigma is checked to be in [0, 10]");
        x.iter().map(|&v| v + normal.sample(&mut ctx.rng)).collect()
    }
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use crate::attacks::testing::{craft, model_and_batch};
    use serde_json::json;

    #[test]
    fn noise_has_the_requested_spread_and_zero_is_identity() {
        let (dev, model, _, _) = model_and_batch();
        let x = vec![0.5f32; 6 * 400];
        let y = vec![0; 400];
        let adv = craft(
            json!({"attack": "gaussian_noise", "sigma": 0.1, "clip": null}),
            &model,
            &dev,
            &x,
            &y,
        );
        let var = adv.iter().map(|v| (v - 0.5) * (v - 0.5)).sum::<f32>() / adv.len() as f32;
        assert!((var.sqrt() - 0.1).abs() < 0.01, "{}", var.sqrt());
        assert_eq!(craft(json!({"attack": "gaussian_noise", "sigma": 0.0}), &model, &dev, &x, &y), x);
    }
}
