//! `rbf(units)`: radial basis units (the paper's section 7), output
//! `k = -exp(s_k) * ||x - c_k||^2`, a learned centre `c_k` and log-precision `s_k` per unit.
//!
//! As the last layer before the softmax, class `k`'s probability is proportional to
//! `exp(-beta_k ||x - c_k||^2)`: high only near a centre, so confident only on inputs that
//! look like training data. The centres are stored as `weight` (`[in, units]`, one column
//! per centre) and the log-precisions as `bias`.

#[cfg(feature = "compute")]
use super::Pass;
use super::{dense_weights, flat_input, Layer, UNITS};
#[cfg(feature = "compute")]
use crate::nn::model::{Dev, Matrix};
#[cfg(feature = "compute")]
use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

crate::declare_params! {
    /// `rbf`'s parameters.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Rbf {
        /// output width
        units: usize = UNITS,
    }
}

impl Layer for Rbf {
    const NAME: &'static str = "rbf";
    const DOC: &'static str = "radial basis units: -exp(s_k) * ||x - c_k||^2 (the paper's shallow RBF network is flatten >> rbf(10))";
    const VERSION: u32 = 1;
    const SOURCES: &'static [&'static str] = &[file!()];
    const PARAMS: &'static [crate::params::ParamSpec] = Rbf::PARAMS;

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        flat_input(input, "rbf").map(|_| vec![self.units])
    }

    fn weight_shape(&self, input: &[usize]) -> Result<Option<(usize, usize)>, String> {
        dense_weights(input, Some(self.units), &format!("{self:?}"))
    }

    fn max_norm_applies(&self) -> bool {
        false
    }

    /// Expanded as `||x||^2 - 2 x.c_k + ||c_k||^2` so that the cross term is one matmul.
    #[cfg(feature = "compute")]
    fn forward<T: Tape<f32, Dev> + Merge<T>>(&self, h: Matrix<T>, pass: &Pass<'_>) -> Matrix<T> {
        let p = pass.affine();
        let (n, units) = (h.shape().0, p.weight.shape().1);
        let (h, tape) = h.split_tape();
        // `x` is used twice: the first use carries the tape, the second starts an empty one
        // that the arithmetic below merges back in.
        let x_sq = h
            .clone()
            .put_tape(tape)
            .square()
            .sum::<(usize,), Axis<1>>()
            .broadcast_like::<(usize, usize), Axis<1>>(&(n, units));
        let cross = h.retaped::<T>().matmul(p.weight.retaped::<T>());
        let c_sq = p
            .weight
            .retaped::<T>()
            .square()
            .sum::<(usize,), Axis<0>>()
            .broadcast_like::<(usize, usize), Axis<0>>(&(n, units));
        let precision = p.bias.retaped::<T>().exp().broadcast_like::<(usize, usize), Axis<0>>(&(n, units));
        ((x_sq - cross * 2.0 + c_sq) * precision).negate()
    }
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use super::Rbf;
    use crate::nn::layers::{activations::Tanh, linear::Linear, testing::gradient_check};

    #[test]
    fn gradients_match_finite_differences() {
        gradient_check(vec![5], vec![Rbf { units: 3 }.into()]);
        gradient_check(vec![5], vec![Linear { units: 4 }.into(), Tanh {}.into(), Rbf { units: 3 }.into()]);
    }
}
