//! 2-D convolution and max-pooling on stable Rust, from dfdx's differentiable `gather`.
//!
//! dfdx 0.13's own conv2d and pool2d need a nightly compiler. Here both are built from
//! index tensors: `gather` picks every receptive field out of the flat input (its
//! backward scatters gradients back), then a matmul applies the filters, or a `max` pools
//! each window. Any stride; convolution may zero-pad the input (a padded position gathers
//! from one zero column appended to the input, whose gradient is dropped). Activations stay
//! `(batch, c * h * w)`, channel-major.

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
    /// Zeros added on every side of each channel.
    pub padding: usize,
}

impl Window {
    /// A `size` x `size` window moving by `stride` over `input` (`[c, h, w]`) padded with
    /// `padding` zeros on every side, or why `what` cannot take that input.
    pub fn over(input: &[usize], size: usize, stride: usize, padding: usize, what: &str) -> Result<Window, String> {
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
            padding,
        })
    }

    /// Output height and width, or why the window does not fit.
    pub fn output(&self) -> Result<(usize, usize), String> {
        let (height, width) = (self.height + 2 * self.padding, self.width + 2 * self.padding);
        if self.size == 0 || self.stride == 0 || self.size > height || self.size > width {
            let padded = if self.padding > 0 {
                format!(" (padded by {} to {height}x{width})", self.padding)
            } else {
                String::new()
            };
            return Err(format!(
                "a {0}x{0} window does not fit a {1}x{2} input{padded}",
                self.size, self.height, self.width
            ));
        }
        Ok(((height - self.size) / self.stride + 1, (width - self.size) / self.stride + 1))
    }

    /// Flat input offset of channel `c`, window at output `(oy, ox)`, element `(ky, kx)`;
    /// a position in the padding is the zero column after the input (`c * h * w`).
    fn offset(&self, c: usize, oy: usize, ox: usize, ky: usize, kx: usize) -> usize {
        let (y, x) = (oy * self.stride + ky, ox * self.stride + kx);
        let (p, h, w) = (self.padding, self.height, self.width);
        if y < p || x < p || y - p >= h || x - p >= w {
            return self.channels * h * w;
        }
        c * h * w + (y - p) * w + x - p
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
    let x = if window.padding > 0 {
        let zeros: Matrix = x.device().zeros_like(&(n, 1));
        (x, zeros.retaped::<T>()).concat_along(Axis::<1>)
    } else {
        x
    };
    let cols = gather_rows(x, &window.conv_indices()).reshape_like(&(n * oh * ow, field));
    let y = cols.matmul(weight.retaped::<T>())
        + bias
            .retaped::<T>()
            .broadcast_like::<(usize, usize), Axis<0>>(&(n * oh * ow, filters));
    y.reshape_like(&(n, oh * ow, filters))
        .permute::<(usize, usize, usize), Axes3<0, 2, 1>>()
        .reshape_like(&(n, filters * oh * ow))
}

/// Max-pooling each channel (no padding); output `(batch, c * oh * ow)`.
#[cfg(feature = "compute")]
pub fn max_pool<T: Tape<f32, Dev>>(x: Matrix<T>, window: &Window) -> Matrix<T> {
    assert_eq!(window.padding, 0, "max_pool pads nothing");
    let n = x.shape().0;
    let (oh, ow) = window.output().expect("checked when the net was built");
    let positions = window.channels * oh * ow;
    gather_rows(x, &window.pool_indices())
        .reshape_like(&(n, positions, window.size * window.size))
        .max::<(usize, usize), Axis<2>>()
}

/// The mean over each window of each channel: `(batch, channels * oh * ow)`.
#[cfg(feature = "compute")]
pub fn avg_pool<T: Tape<f32, Dev>>(x: Matrix<T>, window: &Window) -> Matrix<T> {
    assert_eq!(window.padding, 0, "avg_pool pads nothing");
    let n = x.shape().0;
    let (oh, ow) = window.output().expect("checked when the net was built");
    let positions = window.channels * oh * ow;
    gather_rows(x, &window.pool_indices())
        .reshape_like(&(n, positions, window.size * window.size))
        .mean::<(usize, usize), Axis<2>>()
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use super::*;

    #[test]
    fn average_pooling_matches_a_direct_loop_and_spreads_its_gradient() {
        let dev = Dev::default();
        let w = Window {
            channels: 2,
            height: 4,
            width: 4,
            size: 2,
            stride: 2,
            padding: 0,
        };
        let x: Vec<f32> = (0..32).map(|i| ((i * 7) % 11) as f32).collect();
        let input: Matrix = dev.tensor_from_vec(x.clone(), (1, 32));
        let out = avg_pool(input.leaky_trace(), &w);
        let mut expected = Vec::new();
        for c in 0..2 {
            for oy in 0..2 {
                for ox in 0..2 {
                    let at = |y: usize, x_: usize| x[c * 16 + (2 * oy + y) * 4 + 2 * ox + x_];
                    expected.push((at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4.0);
                }
            }
        }
        assert_eq!(out.as_vec(), expected);
        let grads = out.sum::<(), Axes2<0, 1>>().backward();
        assert!(grads.get(&input).as_vec().iter().all(|g| (g - 0.25).abs() < 1e-7));
    }

    #[test]
    fn conv_matches_a_direct_loop() {
        let dev = Dev::default();
        let w = Window {
            channels: 2,
            height: 4,
            width: 5,
            size: 3,
            stride: 1,
            padding: 0,
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
    fn padded_conv_matches_a_direct_loop_over_a_zero_border() {
        let dev = Dev::default();
        let (c, h, w, k, stride, pad, filters) = (2, 4, 5, 3, 2, 1, 3);
        let win = Window {
            channels: c,
            height: h,
            width: w,
            size: k,
            stride,
            padding: pad,
        };
        let (oh, ow) = win.output().unwrap();
        assert_eq!((oh, ow), (2, 3), "(4 + 2 - 3) / 2 + 1, (5 + 2 - 3) / 2 + 1");
        let x: Vec<f32> = (0..2 * c * h * w).map(|i| ((i * 7) % 11) as f32 / 11.0 - 0.3).collect();
        let weight: Vec<f32> = (0..c * k * k * filters).map(|i| ((i * 5) % 13) as f32 / 13.0 - 0.5).collect();
        let bias = vec![0.1, -0.2, 0.3];
        let out = conv2d(
            dev.tensor_from_vec(x.clone(), (2, c * h * w)),
            &win,
            &dev.tensor_from_vec(weight.clone(), (c * k * k, filters)),
            &dev.tensor_from_vec(bias.clone(), (filters,)),
        )
        .as_vec();
        let at = |b: usize, ch: usize, y: isize, xx: isize| -> f32 {
            if y < 0 || xx < 0 || y >= h as isize || xx >= w as isize {
                0.0
            } else {
                x[b * c * h * w + ch * h * w + y as usize * w + xx as usize]
            }
        };
        for b in 0..2 {
            for f in 0..filters {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = bias[f];
                        for ch in 0..c {
                            for ky in 0..k {
                                for kx in 0..k {
                                    let y = (oy * stride + ky) as isize - pad as isize;
                                    let xx = (ox * stride + kx) as isize - pad as isize;
                                    acc += at(b, ch, y, xx) * weight[(ch * k * k + ky * k + kx) * filters + f];
                                }
                            }
                        }
                        let got = out[b * filters * oh * ow + f * oh * ow + oy * ow + ox];
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
            padding: 0,
        };
        let x: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let out = max_pool(dev.tensor_from_vec(x, (1, 16)), &w).as_vec();
        assert_eq!(out, vec![5.0, 7.0, 13.0, 15.0]);
        assert!(Window {
            channels: 1,
            height: 2,
            width: 2,
            size: 3,
            stride: 1,
            padding: 0,
        }
        .output()
        .is_err());
    }
}
