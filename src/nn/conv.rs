//! 2-D convolution and max-pooling on stable Rust, from dfdx's differentiable `gather`.
//!
//! dfdx 0.13's own conv2d and pool2d need a nightly compiler. Here both are built from
//! index tensors: `gather` picks every receptive field out of the flat input (its
//! backward scatters gradients back), then a matmul applies the filters, or a `max` pools
//! each window. No padding; any stride. Activations stay `(batch, c * h * w)`, channel-major.

#[cfg(feature = "compute")]
use super::model::{Dev, Matrix, Vector};
#[cfg(feature = "compute")]
use dfdx::prelude::*;

/// The geometry of a sliding window over `[channels, height, width]` inputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// Input channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Window side.
    pub size: usize,
    /// Step between windows.
    pub stride: usize,
}

impl Window {
    /// A `size` x `size` window moving by `stride` over `input` (`[c, h, w]`), or why
    /// `what` cannot take that input.
    pub fn over(input: &[usize], size: usize, stride: usize, what: &str) -> Result<Window, String> {
        let [channels, height, width] = input else {
            return Err(format!(
                "{what} needs a [channels, height, width] input, found {}",
                super::layers::show_shape(input)
            ));
        };
        Ok(Window {
            channels: *channels,
            height: *height,
            width: *width,
            size,
            stride,
        })
    }

    /// Output height and width, or why the window does not fit.
    pub fn output(&self) -> Result<(usize, usize), String> {
        if self.size == 0 || self.stride == 0 || self.size > self.height || self.size > self.width {
            return Err(format!(
                "a {0}x{0} window does not fit a {1}x{2} input",
                self.size, self.height, self.width
            ));
        }
        Ok((
            (self.height - self.size) / self.stride + 1,
            (self.width - self.size) / self.stride + 1,
        ))
    }

    /// Flat input offset of channel `c`, window at output `(oy, ox)`, element `(ky, kx)`.
    fn offset(&self, c: usize, oy: usize, ox: usize, ky: usize, kx: usize) -> usize {
        c * self.height * self.width + (oy * self.stride + ky) * self.width + ox * self.stride + kx
    }

    /// For convolution: per output position, the whole receptive field over all channels
    /// (channel, then row, then column), positions in row-major order.
    #[cfg(feature = "compute")]
    fn conv_indices(&self) -> Vec<usize> {
        let (oh, ow) = self.output().expect("checked when the net was built");
        let mut idx = Vec::with_capacity(oh * ow * self.channels * self.size * self.size);
        for oy in 0..oh {
            for ox in 0..ow {
                for c in 0..self.channels {
                    for ky in 0..self.size {
                        for kx in 0..self.size {
                            idx.push(self.offset(c, oy, ox, ky, kx));
                        }
                    }
                }
            }
        }
        idx
    }

    /// For pooling: per channel and output position, its window.
    #[cfg(feature = "compute")]
    fn pool_indices(&self) -> Vec<usize> {
        let (oh, ow) = self.output().expect("checked when the net was built");
        let mut idx = Vec::with_capacity(self.channels * oh * ow * self.size * self.size);
        for c in 0..self.channels {
            for oy in 0..oh {
                for ox in 0..ow {
                    for ky in 0..self.size {
                        for kx in 0..self.size {
                            idx.push(self.offset(c, oy, ox, ky, kx));
                        }
                    }
                }
            }
        }
        idx
    }
}

/// Every row of `x` gathered at the same offsets.
#[cfg(feature = "compute")]
fn gather_rows<T: Tape<f32, Dev>>(x: Matrix<T>, offsets: &[usize]) -> Matrix<T> {
    let n = x.shape().0;
    let idx: Vec<usize> = (0..n).flat_map(|_| offsets.iter().copied()).collect();
    let idx = x.device().tensor_from_vec(idx, (n, offsets.len()));
    x.gather(idx)
}

/// Convolution with `weight` `[c * size * size, filters]` (one column per filter) and
/// `bias` `[filters]`; output `(batch, filters * oh * ow)`.
#[cfg(feature = "compute")]
pub fn conv2d<T: Tape<f32, Dev> + Merge<T>>(x: Matrix<T>, window: &Window, weight: &Matrix, bias: &Vector) -> Matrix<T> {
    let n = x.shape().0;
    let (oh, ow) = window.output().expect("checked when the net was built");
    let (field, filters) = *weight.shape();
    let cols = gather_rows(x, &window.conv_indices()).reshape_like(&(n * oh * ow, field));
    let y = cols.matmul(weight.retaped::<T>())
        + bias
            .retaped::<T>()
            .broadcast_like::<(usize, usize), Axis<0>>(&(n * oh * ow, filters));
    y.reshape_like(&(n, oh * ow, filters))
        .permute::<(usize, usize, usize), Axes3<0, 2, 1>>()
        .reshape_like(&(n, filters * oh * ow))
}

/// Max-pooling each channel; output `(batch, c * oh * ow)`.
#[cfg(feature = "compute")]
pub fn max_pool<T: Tape<f32, Dev>>(x: Matrix<T>, window: &Window) -> Matrix<T> {
    let n = x.shape().0;
    let (oh, ow) = window.output().expect("checked when the net was built");
    let positions = window.channels * oh * ow;
    gather_rows(x, &window.pool_indices())
        .reshape_like(&(n, positions, window.size * window.size))
        .max::<(usize, usize), Axis<2>>()
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use super::*;

    #[test]
    fn conv_matches_a_direct_loop() {
        let dev = Dev::default();
        let w = Window {
            channels: 2,
            height: 4,
            width: 5,
            size: 3,
            stride: 1,
        };
        let (oh, ow) = w.output().unwrap();
        let x: Vec<f32> = (0..2 * 2 * 4 * 5).map(|i| ((i * 7) % 11) as f32 / 11.0).collect();
        let weight: Vec<f32> = (0..2 * 9 * 3).map(|i| ((i * 5) % 13) as f32 / 13.0 - 0.5).collect();
        let bias = vec![0.1, -0.2, 0.3];
        let out = conv2d(
            dev.tensor_from_vec(x.clone(), (2, 40)),
            &w,
            &dev.tensor_from_vec(weight.clone(), (18, 3)),
            &dev.tensor_from_vec(bias.clone(), (3,)),
        )
        .as_vec();
        for b in 0..2 {
            for f in 0..3 {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = bias[f];
                        for c in 0..2 {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    acc += x[b * 40 + c * 20 + (oy + ky) * 5 + ox + kx] * weight[(c * 9 + ky * 3 + kx) * 3 + f];
                                }
                            }
                        }
                        let got = out[b * 3 * oh * ow + f * oh * ow + oy * ow + ox];
                        assert!((got - acc).abs() < 1e-5, "b{b} f{f} ({oy},{ox}): {got} vs {acc}");
                    }
                }
            }
        }
    }

    #[test]
    fn max_pool_takes_each_window_max() {
        let dev = Dev::default();
        let w = Window {
            channels: 1,
            height: 4,
            width: 4,
            size: 2,
            stride: 2,
        };
        let x: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let out = max_pool(dev.tensor_from_vec(x, (1, 16)), &w).as_vec();
        assert_eq!(out, vec![5.0, 7.0, 13.0, 15.0]);
        assert!(Window {
            channels: 1,
            height: 2,
            width: 2,
            size: 3,
            stride: 1
        }
        .output()
        .is_err());
    }
}
