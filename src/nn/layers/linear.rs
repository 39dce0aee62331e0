//! `linear(units)`: the affine map `x W + b` to `units` outputs, on a flat input.
//!
//! On the CPU it runs the fused kernel (`nn::fused`), which differentiates only what the
//! backward pass will read; on other devices dfdx's composed ops.

#[cfg(feature = "compute")]
use super::Pass;
use super::{dense_weights, flat_input, Layer, UNITS};
#[cfg(feature = "compute")]
use crate::nn::model::{Affine, Dev, Matrix, Needs};
#[cfg(feature = "compute")]
use dfdx::prelude::{Merge, Tape};
use serde::{Deserialize, Serialize};

crate::declare_params! {
    /// `linear`'s parameters.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Linear {
        /// output width
        units: usize = UNITS,
    }
}

impl Layer for Linear {
    const NAME: &'static str = "linear";
    const DOC: &'static str = "affine map to `units` outputs";
    const VERSION: u32 = 1;
    const SOURCES: &'static [&'static str] = &[file!(), "src/nn/fused.rs"];
    const PARAMS: &'static [crate::params::ParamSpec] = Linear::PARAMS;

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        flat_input(input, "linear").map(|_| vec![self.units])
    }

    fn weight_shape(&self, input: &[usize]) -> Result<Option<(usize, usize)>, String> {
        dense_weights(input, Some(self.units), &format!("{self:?}"))
    }

    #[cfg(feature = "compute")]
    fn forward<T: Tape<f32, Dev> + Merge<T>>(&self, h: Matrix<T>, pass: &Pass<'_>) -> Matrix<T> {
        dense(h, pass.affine(), pass.needs)
    }
}

/// `h W + b`: the fused CPU kernel, or dfdx's composed ops (which compute every gradient)
/// on other devices.
#[cfg(feature = "compute")]
pub fn dense<T: Tape<f32, Dev> + Merge<T>>(h: Matrix<T>, p: &Affine, needs: Needs) -> Matrix<T> {
    #[cfg(not(feature = "cuda"))]
    return crate::nn::fused::affine(h, p, needs);
    #[cfg(feature = "cuda")]
    {
        use dfdx::prelude::*;
        let _ = needs;
        let n = h.shape().0;
        let out = p.weight().shape().1;
        h.matmul(p.weight().retaped::<T>()) + p.bias.retaped::<T>().broadcast_like::<(usize, usize), Axis<0>>(&(n, out))
    }
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use super::*;
    use crate::nn::layers::testing::gradient_check;

    #[test]
    fn gradients_match_finite_differences() {
        gradient_check(vec![5], vec![Linear { units: 3 }.into()]);
    }

    #[test]
    fn needs_a_flat_input() {
        let e = Linear { units: 3 }.output_shape(&[1, 28, 28]).unwrap_err();
        assert!(e.contains("add `flatten` before it"), "{e}");
        assert_eq!(Linear { units: 3 }.weight_shape(&[784]).unwrap(), Some((784, 3)));
    }
}
