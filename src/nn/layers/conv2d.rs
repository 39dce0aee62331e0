//! `conv2d(filters, kernel, stride, padding)`: 2-D convolution over `[channels, height,
//! width]` inputs, zero-padded by `padding` on every side (0 by default):
//! `[c, h, w] -> [filters, (h + 2 padding - kernel) / stride + 1, ...]`; `padding: 1` with a
//! 3x3 kernel keeps the size, as PyTorch's `Conv2d(..., padding=1)` does.
//!
//! The kernel is `nn::fused_conv` on the CPU (im2col + gemm per example) and `nn::conv`
//! (dfdx's gather + matmul) on other devices. One filter per weight column,
//! `weight` `[channels * kernel * kernel, filters]`, rows ordered by input channel, then
//! kernel row, then kernel column.

#[cfg(feature = "compute")]
use super::Pass;
use super::{show_shape, Layer};
use crate::nn::conv::Window;
#[cfg(feature = "compute")]
use crate::nn::model::{Dev, Matrix};
use crate::params::{Default, ParamDef, ParamType};
#[cfg(feature = "compute")]
use dfdx::prelude::{Merge, Tape};
use serde::{Deserialize, Serialize};

crate::declare_params! {
    /// `conv2d`'s parameters.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Conv2d {
        /// output channels
        filters: usize = ParamDef::required(ParamType::Int).range(1.0, 65536.0),
        /// side of the square kernel
        kernel: usize = ParamDef::or(ParamType::Int, Default::Int(3)).range(1.0, 64.0),
        /// step between positions
        stride: usize = ParamDef::or(ParamType::Int, Default::Int(1)).range(1.0, 64.0),
        /// zeros added on every side of each channel
        #[serde(default, skip_serializing_if = "is_zero")]
        padding: usize = ParamDef::or(ParamType::Int, Default::Int(0)).range(0.0, 64.0),
    }
}

/// Nets written before `padding` existed hash and store as they did.
fn is_zero(padding: &usize) -> bool {
    *padding == 0
}

impl Conv2d {
    /// Its window over an input of shape `input`, or why it does not fit.
    pub(crate) fn window(&self, input: &[usize]) -> Result<Window, String> {
        Window::over(input, self.kernel, self.stride, self.padding, "conv2d")
    }
}

impl Layer for Conv2d {
    const NAME: &'static str = "conv2d";
    const DOC: &'static str = "2-D convolution: [c, h, w] -> [filters, (h + 2 padding - kernel) / stride + 1, ...]";
    // 2: the fused kernel (its sums run in another order).
    const VERSION: u32 = 2;
    const SOURCES: &'static [&'static str] = &[
        file!(),
        "src/nn/conv.rs",
        "src/nn/fused_conv.rs",
        "src/nn/fused.rs",
        "src/nn/fusion.rs",
    ];
    const PARAMS: &'static [crate::params::ParamSpec] = Conv2d::PARAMS;

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        self.window(input)?.output().map(|(h, w)| vec![self.filters, h, w])
    }

    fn weight_shape(&self, input: &[usize]) -> Result<Option<(usize, usize)>, String> {
        let overflow = || format!("the weights of a {self:?} layer on {} overflow", show_shape(input));
        let rows = input
            .first()
            .and_then(|c| c.checked_mul(self.kernel.checked_mul(self.kernel)?))
            .ok_or_else(overflow)?;
        rows.checked_mul(self.filters).ok_or_else(overflow)?;
        Ok(Some((rows, self.filters)))
    }

    /// `nn.Conv2d`'s `[filters, channels, kernel, kernel]`: its rows flatten in the order
    /// advpipe's weight rows take (channel, kernel row, kernel column).
    fn torch_weight_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        Some(vec![self.filters, *input.first()?, self.kernel, self.kernel])
    }

    #[cfg(feature = "compute")]
    fn forward<T: Tape<f32, Dev> + Merge<T>>(&self, h: Matrix<T>, pass: &Pass<'_>) -> Matrix<T> {
        let window = self.window(pass.input).expect("shape-checked");
        let p = pass.affine();
        #[cfg(not(feature = "cuda"))]
        return crate::nn::fused_conv::conv2d(h, &window, p, pass.needs);
        #[cfg(feature = "cuda")]
        crate::nn::conv::conv2d(h, &window, p.weight(), &p.bias)
    }
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use super::*;
    use crate::nn::layers::{activations::Tanh, flatten::Flatten, linear::Linear, max_pool::MaxPool, testing::gradient_check};

    #[test]
    fn gradients_match_finite_differences() {
        gradient_check(
            vec![2, 6, 6],
            vec![
                Conv2d {
                    filters: 3,
                    kernel: 3,
                    stride: 1,
                    padding: 0,
                }
                .into(),
                Tanh {}.into(),
                MaxPool { size: 2, stride: None }.into(),
                Flatten {}.into(),
                Linear { units: 3 }.into(),
            ],
        );
        gradient_check(
            vec![1, 7, 7],
            vec![
                Conv2d {
                    filters: 2,
                    kernel: 3,
                    stride: 2,
                    padding: 0,
                }
                .into(),
                Flatten {}.into(),
                Linear { units: 3 }.into(),
            ],
        );
        // Padded: the zero border's column gets a gradient that is dropped, the input's are right.
        gradient_check(
            vec![2, 5, 5],
            vec![
                Conv2d {
                    filters: 2,
                    kernel: 3,
                    stride: 2,
                    padding: 1,
                }
                .into(),
                Tanh {}.into(),
                Flatten {}.into(),
                Linear { units: 3 }.into(),
            ],
        );
    }

    #[test]
    fn shapes_follow_kernel_and_stride() {
        assert_eq!(
            Conv2d {
                filters: 4,
                kernel: 3,
                stride: 2,
                padding: 0,
            }
            .output_shape(&[1, 7, 7])
            .unwrap(),
            vec![4, 3, 3]
        );
        let same = Conv2d {
            filters: 4,
            kernel: 3,
            stride: 1,
            padding: 1,
        };
        assert_eq!(same.output_shape(&[1, 28, 28]).unwrap(), vec![4, 28, 28]);
        assert_eq!(
            serde_json::to_string(&crate::nn::layers::LayerSpec::from(same)).unwrap(),
            r#"{"layer":"conv2d","filters":4,"kernel":3,"stride":1,"padding":1}"#
        );
        let unpadded = Conv2d {
            filters: 4,
            kernel: 3,
            stride: 1,
            padding: 0,
        };
        assert_eq!(
            serde_json::to_string(&crate::nn::layers::LayerSpec::from(unpadded)).unwrap(),
            r#"{"layer":"conv2d","filters":4,"kernel":3,"stride":1}"#
        );
        assert!(Conv2d {
            filters: 4,
            kernel: 3,
            stride: 1,
            padding: 0,
        }
        .output_shape(&[49])
        .is_err());
    }
}
