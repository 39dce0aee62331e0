//! `fgm(eps: 1.5)`: the fast gradient method with an L2 budget (Miyato et al. 2016):
//! `x_adv = x + eps * g / ||g||_2`, each example's gradient normalised on its own.
//!
//! ```text
//! attack l2 = fgm(eps: 1.5, clip: "none")
//! ```

#[cfg(feature = "compute")]
use super::AttackContext;
use super::{l2_normalize_rows, params_from, Attack, AttackKind};
use crate::params::{ParamDef, ParamType};
use serde::Deserialize;

/// The registry entry.
pub const KIND: AttackKind = AttackKind {
    version: 1,
    source: file!(),
    name: "fgm",
    doc: "fast gradient method, L2: x + eps * g / ||g||",
    params: Fgm::PARAMS,
    build,
};

crate::declare_params! {
    /// FGM's own parameters.
    #[derive(Clone, Debug, Deserialize)]
    pub struct Fgm {
        /// L2 length of the step
        eps: f32 = ParamDef::required(ParamType::Number).range(0.0, 100.0),
    }
}

fn build(json: &serde_json::Value) -> Result<Box<dyn Attack>, String> {
    Ok(Box::new(params_from::<Fgm>(json)?))
}

#[cfg(feature = "compute")]
impl Attack for Fgm {
    fn perturb(&self, ctx: &mut AttackContext, x: &[f32], labels: &[usize]) -> Vec<f32> {
        let mut g = ctx.objective_gradient(x, labels);
        l2_normalize_rows(&mut g, ctx.model.input_width());
        x.iter().zip(&g).map(|(&xi, &gi)| xi + self.eps * gi).collect()
    }
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use crate::attacks::testing::{craft, model_and_batch, norms};
    use serde_json::json;

    #[test]
    fn every_example_moves_exactly_eps_in_l2() {
        let (dev, model, x, y) = model_and_batch();
        let adv = craft(json!({"attack": "fgm", "eps": 0.3, "clip": null}), &model, &dev, &x, &y);
        for (a, c) in adv.chunks(6).zip(x.chunks(6)) {
            let n = a.iter().zip(c).map(|(p, q)| (p - q) * (p - q)).sum::<f32>().sqrt();
            assert!((n - 0.3).abs() < 1e-5, "{n}");
        }
        assert!(norms(&adv, &x, 6).1 <= 0.3 + 1e-5);
    }
}
