//! `dropout(p, scale)`: while training, zeroes each value with probability `p` and
//! multiplies the rest by `scale`, by default `1 / (1 - p)` (inverted dropout, which keeps
//! each value's expectation); the identity when evaluating, whatever the scale.
//!
//! pylearn2's `Dropout` cost, which the paper's maxout recipe used, keeps the pixels with
//! probability .8 and does **not** rescale them (`input_scales: {'h0': 1.}`), while the
//! inputs of later layers are kept with .5 and scaled by 2:
//!
//! ```text
//! net maxout = input([1, 28, 28]) >> flatten >> dropout(0.2, scale: 1)
//!              >> maxout(240, pieces: 5) >> dropout(0.5) >> maxout(240, pieces: 5)
//!              >> dropout(0.5) >> linear(10)
//! ```

use super::Layer;
#[cfg(feature = "compute")]
use super::Pass;
#[cfg(feature = "compute")]
use crate::nn::model::{Dev, Matrix, Mode};
use crate::params::{ParamDef, ParamType};
#[cfg(feature = "compute")]
use dfdx::prelude::{Merge, Tape};
use serde::{Deserialize, Serialize};

crate::declare_params! {
    /// `dropout`'s parameters.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Dropout {
        /// drop probability (pylearn2's include_prob .8 is p = 0.2)
        p: f64 = ParamDef::required(ParamType::Number).range(0.0, 0.95),
        /// factor on the kept values while training (default: 1 / (1 - p); pylearn2's input_scales)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scale: Option<f64> = ParamDef::optional(ParamType::Number).range(0.0, 100.0),
    }
}

#[cfg(feature = "compute")]
thread_local! {
    static DRAWS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many masks this thread has drawn. dfdx's dropout takes one `u64` from its device's
/// random stream per call, so a fit that counts them can put a fresh device's stream back
/// where an interrupted one was (see `train::resume`).
#[cfg(feature = "compute")]
pub fn draws() -> u64 {
    DRAWS.with(|d| d.get())
}

impl Layer for Dropout {
    const NAME: &'static str = "dropout";
    const DOC: &'static str = "drop each value with probability p while training";
    const VERSION: u32 = 1;
    const SOURCES: &'static [&'static str] = &[file!()];
    const PARAMS: &'static [crate::params::ParamSpec] = Dropout::PARAMS;

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        Ok(input.to_vec())
    }

    #[cfg(feature = "compute")]
    fn forward<T: Tape<f32, Dev> + Merge<T>>(&self, h: Matrix<T>, pass: &Pass<'_>) -> Matrix<T> {
        if pass.mode != Mode::Train || (self.p == 0.0 && self.scale.is_none()) {
            return h;
        }
        // dfdx's dropout scales the kept values by 1 / (1 - p); another scale is a factor on that.
        let factor = match self.scale {
            Some(scale) if scale != 1.0 / (1.0 - self.p) => Some((scale * (1.0 - self.p)) as f32),
            _ => None,
        };
        if self.p == 0.0 {
            return match factor {
                Some(factor) => h * factor,
                None => h,
            };
        }
        DRAWS.with(|d| d.set(d.get() + 1));
        #[cfg(not(feature = "cuda"))]
        return crate::nn::fused::dropout(h, self.p, factor);
        #[cfg(feature = "cuda")]
        match factor {
            Some(factor) => h.dropout(self.p) * factor,
            None => h.dropout(self.p),
        }
    }
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use super::*;
    use crate::nn::layers::NetSpec;
    use crate::nn::Model;
    use dfdx::prelude::TensorFromVec;
    use rand::SeedableRng;

    #[test]
    fn is_the_identity_when_evaluating_and_scales_when_training() {
        let dev = Dev::seed_from_u64(3);
        let net = NetSpec {
            input: vec![1000],
            layers: vec![Dropout { p: 0.25, scale: None }.into()],
        };
        let model = Model::init(&dev, &net, 0.0, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
        let x: Matrix = dev.tensor_from_vec(vec![1.0; 1000], (1, 1000));
        assert_eq!(model.forward(x.clone()).as_vec(), vec![1.0; 1000]);
        let kept = model.forward_mode(x, Mode::Train).as_vec();
        let zeros = kept.iter().filter(|&&v| v == 0.0).count();
        assert!((200..300).contains(&zeros), "{zeros} of 1000 dropped at p = 0.25");
        assert!(
            kept.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6),
            "survivors scaled by 1 / (1 - p)"
        );
    }

    #[test]
    fn an_explicit_scale_multiplies_the_kept_values_and_only_while_training() {
        let dev = Dev::seed_from_u64(5);
        for (p, scale) in [(0.2, 1.0), (0.5, 2.0), (0.0, 3.0)] {
            let net = NetSpec {
                input: vec![1000],
                layers: vec![Dropout { p, scale: Some(scale) }.into()],
            };
            let model = Model::init(&dev, &net, 0.0, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
            let x: Matrix = dev.tensor_from_vec(vec![1.0; 1000], (1, 1000));
            assert_eq!(model.forward(x.clone()).as_vec(), vec![1.0; 1000], "evaluation ignores the scale");
            let kept = model.forward_mode(x, Mode::Train).as_vec();
            assert!(
                kept.iter().all(|&v| v == 0.0 || (v - scale as f32).abs() < 1e-6),
                "p {p}: kept values are scaled by {scale}"
            );
            let zeros = kept.iter().filter(|&&v| v == 0.0).count() as f64 / 1000.0;
            assert!((zeros - p).abs() < 0.05, "p {p}: {zeros} dropped");
        }
    }

    #[test]
    fn the_default_scale_is_not_written_so_existing_nets_keep_their_keys() {
        let layer: crate::nn::layers::LayerSpec = Dropout { p: 0.2, scale: None }.into();
        assert_eq!(serde_json::to_string(&layer).unwrap(), r#"{"layer":"dropout","p":0.2}"#);
        let unscaled: crate::nn::layers::LayerSpec = Dropout { p: 0.2, scale: Some(1.0) }.into();
        assert_eq!(
            serde_json::to_string(&unscaled).unwrap(),
            r#"{"layer":"dropout","p":0.2,"scale":1.0}"#
        );
    }
}
