//! `sigmoid_top`: marks the net's outputs as independent per-class sigmoid probabilities,
//! trained with binary cross-entropy (see `nn::top`); the last layer only. It computes
//! nothing itself: the top turns the logits into probabilities and losses.

use super::Layer;
#[cfg(feature = "compute")]
use super::Pass;
#[cfg(feature = "compute")]
use crate::nn::model::{Dev, Matrix};
#[cfg(feature = "compute")]
use dfdx::prelude::{Merge, Tape};
use serde::{Deserialize, Serialize};

crate::declare_params! {
    /// `sigmoid_top` has no parameters.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct SigmoidTop {}
}

impl Layer for SigmoidTop {
    const NAME: &'static str = "sigmoid_top";
    const DOC: &'static str = "independent per-class sigmoid outputs, trained with binary cross-entropy; last layer only";
    const VERSION: u32 = 1;
    const SOURCES: &'static [&'static str] = &[file!(), "src/nn/top.rs"];
    const PARAMS: &'static [crate::params::ParamSpec] = SigmoidTop::PARAMS;

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        Ok(input.to_vec())
    }

    #[cfg(feature = "compute")]
    fn forward<T: Tape<f32, Dev> + Merge<T>>(&self, h: Matrix<T>, _: &Pass<'_>) -> Matrix<T> {
        h
    }
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use super::*;
    use crate::nn::layers::{linear::Linear, testing::gradient_check};

    #[test]
    fn gradients_of_the_sigmoid_loss_match_finite_differences() {
        gradient_check(vec![5], vec![Linear { units: 3 }.into(), SigmoidTop {}.into()]);
    }
}
