//! `dropout(p)`: while training, zeroes each value with probability `p` and scales the
//! rest by `1 / (1 - p)` (inverted dropout); the identity when evaluating.

use super::{Layer, Pass};
use crate::nn::model::{Dev, Matrix, Mode};
use crate::params::{ParamDef, ParamType};
use dfdx::prelude::{Merge, Tape};
use serde::{Deserialize, Serialize};

crate::declare_params! {
    /// `dropout`'s parameters.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Dropout {
        /// drop probability (pylearn2's include_prob .8 is p = 0.2)
        p: f64 = ParamDef::required(ParamType::Number).range(0.0, 0.95),
    }
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

    fn forward<T: Tape<f32, Dev> + Merge<T>>(&self, h: Matrix<T>, pass: &Pass<'_>) -> Matrix<T> {
        if pass.mode == Mode::Train && self.p > 0.0 {
            h.dropout(self.p)
        } else {
            h
        }
    }
}

#[cfg(test)]
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
            layers: vec![Dropout { p: 0.25 }.into()],
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
}
