//! `max_pool(size, stride)`: the max over square windows of each channel of a
//! `[channels, height, width]` input; windows do not overlap unless `stride < size`.

use super::Layer;
#[cfg(feature = "compute")]
use super::Pass;
use crate::nn::conv::Window;
#[cfg(feature = "compute")]
use crate::nn::model::{Dev, Matrix};
use crate::params::{Default, ParamDef, ParamType};
#[cfg(feature = "compute")]
use dfdx::prelude::{Merge, Tape};
use serde::{Deserialize, Serialize};

crate::declare_params! {
    /// `max_pool`'s parameters.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct MaxPool {
        /// side of the window
        size: usize = ParamDef::or(ParamType::Int, Default::Int(2)).range(1.0, 64.0),
        /// step between windows (default: size)
        stride: Option<usize> = ParamDef::optional(ParamType::Int).range(1.0, 64.0),
    }
}

impl MaxPool {
    /// Its window over an input of shape `input`, or why it does not fit.
    pub(crate) fn window(&self, input: &[usize]) -> Result<Window, String> {
        Window::over(input, self.size, self.stride.unwrap_or(self.size), 0, "max_pool")
    }
}

impl Layer for MaxPool {
    const NAME: &'static str = "max_pool";
    const DOC: &'static str = "max over square windows of each channel";
    // 2: the fused kernel, whose gradient goes to the first largest value of a window only.
    const VERSION: u32 = 2;
    const SOURCES: &'static [&'static str] = &[file!(), "src/nn/conv.rs", "src/nn/fused_conv.rs", "src/nn/fusion.rs"];
    const PARAMS: &'static [crate::params::ParamSpec] = MaxPool::PARAMS;

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        self.window(input)?.output().map(|(h, w)| vec![input[0], h, w])
    }

    #[cfg(feature = "compute")]
    fn forward<T: Tape<f32, Dev> + Merge<T>>(&self, h: Matrix<T>, pass: &Pass<'_>) -> Matrix<T> {
        let window = self.window(pass.input).expect("shape-checked");
        #[cfg(not(feature = "cuda"))]
        return crate::nn::fused_conv::max_pool(h, &window);
        #[cfg(feature = "cuda")]
        crate::nn::conv::max_pool(h, &window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stride_defaults_to_the_size() {
        assert_eq!(MaxPool { size: 2, stride: None }.output_shape(&[3, 6, 6]).unwrap(), vec![3, 3, 3]);
        assert_eq!(
            MaxPool { size: 2, stride: Some(1) }.output_shape(&[3, 6, 6]).unwrap(),
            vec![3, 5, 5]
        );
    }
}
