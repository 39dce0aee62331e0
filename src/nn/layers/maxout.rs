//! `maxout(units, pieces)` (Goodfellow et al. 2013): `units` outputs, each the max of
//! `pieces` affine pieces of a flat input. The worked example of a layer with weights.
//!
//! Its `units * pieces` weight columns are stored unit-major: column `u * pieces + p` is
//! piece `p` of unit `u`. The gradient goes to the first largest piece.

use super::{dense_weights, flat_input, Layer, UNITS};
#[cfg(feature = "compute")]
use super::{linear::dense, Pass};
#[cfg(feature = "compute")]
use crate::nn::model::{Dev, Matrix};
use crate::params::{Default, ParamDef, ParamType};
#[cfg(feature = "compute")]
use dfdx::prelude::{Merge, Tape};
use serde::{Deserialize, Serialize};

crate::declare_params! {
    /// `maxout`'s parameters.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Maxout {
        /// output width
        units: usize = UNITS,
        /// linear pieces per unit
        pieces: usize = ParamDef::or(ParamType::Int, Default::Int(5)).range(2.0, 64.0),
    }
}

impl Layer for Maxout {
    const NAME: &'static str = "maxout";
    const DOC: &'static str = "max over `pieces` affine pieces per unit";
    const VERSION: u32 = 1;
    const SOURCES: &'static [&'static str] = &[file!(), "src/nn/fused.rs"];
    const PARAMS: &'static [crate::params::ParamSpec] = Maxout::PARAMS;

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        flat_input(input, "maxout").map(|_| vec![self.units])
    }

    fn weight_shape(&self, input: &[usize]) -> Result<Option<(usize, usize)>, String> {
        dense_weights(input, self.units.checked_mul(self.pieces), &format!("{self:?}"))
    }

    fn columns_per_output(&self) -> usize {
        self.pieces
    }

    #[cfg(feature = "compute")]
    fn forward<T: Tape<f32, Dev> + Merge<T>>(&self, h: Matrix<T>, pass: &Pass<'_>) -> Matrix<T> {
        let pieces = dense(h, pass.affine(), pass.needs);
        #[cfg(not(feature = "cuda"))]
        return crate::nn::fused::maxout(pieces, self.units, self.pieces);
        #[cfg(feature = "cuda")]
        {
            use dfdx::prelude::*;
            let n = pieces.shape().0;
            pieces.reshape_like(&(n, self.units, self.pieces)).max::<(usize, usize), Axis<2>>()
        }
    }
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use super::*;
    use crate::nn::layers::{linear::Linear, testing::gradient_check, NetSpec};
    use crate::nn::Model;
    use dfdx::prelude::TensorFromVec;
    use rand::SeedableRng;

    #[test]
    fn gradients_match_finite_differences() {
        gradient_check(vec![5], vec![Maxout { units: 4, pieces: 3 }.into(), Linear { units: 3 }.into()]);
    }

    #[test]
    fn takes_the_max_piece_per_unit() {
        let dev = Dev::default();
        let net = NetSpec {
            input: vec![1],
            layers: vec![Maxout { units: 2, pieces: 2 }.into()],
        };
        let mut model = Model::init(&dev, &net, 0.0, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
        let p = model.params[0].as_mut().unwrap();
        p.weight_mut().copy_from(&[1.0, -1.0, 2.0, 3.0]);
        p.bias.copy_from(&[0.0, 0.5, 0.0, 0.0]);
        let y = model.forward(dev.tensor_from_vec(vec![2.0, -1.0], (2, 1))).as_vec();
        // x = 2: unit 0 = max(2, -1.5) = 2, unit 1 = max(4, 6) = 6; x = -1: max(-1, 1.5), max(-2, -3).
        assert_eq!(y, vec![2.0, 6.0, 1.5, -2.0]);
    }

    #[test]
    fn weights_that_overflow_are_an_error() {
        let e = Maxout {
            units: usize::MAX / 2,
            pieces: 3,
        }
        .weight_shape(&[4])
        .unwrap_err();
        assert!(e.contains("overflow"), "{e}");
    }
}
