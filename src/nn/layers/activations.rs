//! The element-wise activations `relu`, `sigmoid` and `tanh`: one value in, one value out,
//! any input shape, no parameters. Each is a layer of its own (its own struct, version and
//! registry line); they share this file because they differ only in the op they call. ReLU,
//! the conv nets' activation, runs a fused CPU kernel (`nn::fused_conv::relu`, the same values
//! and gradients as dfdx's op); the others are dfdx's ops.

use super::Layer;
#[cfg(feature = "compute")]
use super::Pass;
#[cfg(feature = "compute")]
use crate::nn::model::{Dev, Matrix};
#[cfg(feature = "compute")]
use dfdx::prelude::{Merge, Tape};
use serde::{Deserialize, Serialize};

/// Declares an element-wise activation layer: its struct, name, doc line, version and op.
macro_rules! activation {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $line:literal, version $version:literal, sources $sources:expr, $op:expr) => {
        crate::declare_params! {
            $(#[$doc])*
            #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
            pub struct $ty {}
        }

        impl Layer for $ty {
            const NAME: &'static str = $name;
            const DOC: &'static str = $line;
            const VERSION: u32 = $version;
            const SOURCES: &'static [&'static str] = $sources;
            const PARAMS: &'static [crate::params::ParamSpec] = $ty::PARAMS;

            fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
                Ok(input.to_vec())
            }

            #[cfg(feature = "compute")]
            fn forward<T: Tape<f32, Dev> + Merge<T>>(&self, h: Matrix<T>, _: &Pass<'_>) -> Matrix<T> {
                $op(h)
            }
        }
    };
}

activation!(
    /// `relu`: max(0, x).
    Relu, "relu", "max(0, x)", version 1, sources &[file!(), "src/nn/fused_conv.rs", "src/nn/fusion.rs"], relu
);
activation!(
    /// `sigmoid`: 1 / (1 + e^-x).
    Sigmoid, "sigmoid", "logistic sigmoid", version 1, sources &[file!()], |h: Matrix<T>| h.sigmoid()
);
activation!(
    /// `tanh`: the hyperbolic tangent.
    Tanh, "tanh", "hyperbolic tangent", version 1, sources &[file!()], |h: Matrix<T>| h.tanh()
);

/// ReLU: the fused kernel on the CPU, dfdx's op on other devices.
#[cfg(feature = "compute")]
fn relu<T: Tape<f32, Dev>>(h: Matrix<T>) -> Matrix<T> {
    #[cfg(not(feature = "cuda"))]
    return crate::nn::fused_conv::relu(h);
    #[cfg(feature = "cuda")]
    h.relu()
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use super::*;
    use crate::nn::layers::{linear::Linear, testing::gradient_check};

    #[test]
    fn gradients_match_finite_differences() {
        for activation in [Relu {}.into(), Sigmoid {}.into(), Tanh {}.into()] {
            gradient_check(vec![5], vec![Linear { units: 4 }.into(), activation, Linear { units: 3 }.into()]);
        }
    }
}
