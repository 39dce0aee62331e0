//! Runs of layers that one fused CPU kernel computes, found as a model runs its forward pass.
//!
//! A conv net's `conv2d >> relu >> max_pool` is computed by `fused_conv::conv_relu_pool`: the
//! convolution's output, the largest activation of the net, then stays in a per-example
//! buffer instead of crossing memory four times as a batch (ReLU forward and backward,
//! pooling forward and backward). The run gives the same bits, values and gradients, as
//! its layers one by one (`fused_conv`'s tests), so fusing changes no result and no key;
//! the layers keep their own kernels for every other neighbour. A new fusion is a variant of
//! [`Run`] and a case in [`find`].

use super::conv::Window;
use super::fused_conv;
use super::layers::{activations::Relu, conv2d::Conv2d, max_pool::MaxPool, LayerSpec, LayerTape};
use super::model::{Affine, Matrix, Needs};

/// A run of layers with one fused kernel.
pub enum Run {
    /// `conv2d >> relu >> max_pool`.
    ConvReluPool {
        /// The convolution's window.
        conv: Window,
        /// The pooling's window, over the convolution's output.
        pool: Window,
    },
}

impl Run {
    /// How many layers it stands for.
    pub fn layers(&self) -> usize {
        match self {
            Run::ConvReluPool { .. } => 3,
        }
    }

    /// The run's output for a batch `h`, with the first layer's parameters `params` and the
    /// gradients `needs` of that first layer.
    pub fn forward<T: LayerTape>(&self, h: Matrix<T>, params: &Affine, needs: Needs) -> Matrix<T> {
        match self {
            Run::ConvReluPool { conv, pool } => fused_conv::conv_relu_pool(h, conv, params, pool, needs),
        }
    }
}

/// The fused run that starts `layers`, whose first takes an input of shape `input`, if any.
pub fn find(layers: &[LayerSpec], input: &[usize]) -> Option<Run> {
    let [conv, relu, pool, ..] = layers else {
        return None;
    };
    let (conv, pool) = (conv.get::<Conv2d>()?, pool.get::<MaxPool>()?);
    relu.get::<Relu>()?;
    let conv = conv.window(input).ok()?;
    let (height, width) = conv.output().ok()?;
    let filters = layers[0].output_shape(input).ok()?[0];
    let pool = pool.window(&[filters, height, width]).ok()?;
    pool.output().ok()?;
    Some(Run::ConvReluPool { conv, pool })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::{flatten::Flatten, linear::Linear, Pass};
    use crate::nn::model::{Dev, Mode};
    use crate::nn::{Model, NetSpec};
    use dfdx::prelude::*;
    use rand::{Rng, SeedableRng};

    /// A model's forward pass, which fuses `conv2d >> relu >> max_pool`, against the same
    /// layers run one by one: the same logits and gradients to the bit.
    #[test]
    fn a_model_with_a_fused_run_gives_the_bits_of_its_layers_one_by_one() {
        let dev = Dev::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let conv = |filters: usize| -> LayerSpec {
            serde_json::from_str(&format!(
                r#"{{"layer": "conv2d", "filters": {filters}, "kernel": 3, "stride": 1, "padding": 1}}"#
            ))
            .unwrap()
        };
        let net = NetSpec {
            input: vec![2, 8, 8],
            layers: vec![
                conv(3),
                Relu {}.into(),
                MaxPool { size: 2, stride: None }.into(),
                conv(4),
                Relu {}.into(),
                MaxPool { size: 2, stride: None }.into(),
                Flatten {}.into(),
                Linear { units: 5 }.into(),
            ],
        };
        let model = Model::init_fan_in(&dev, &net, &mut rng);
        let x: Vec<f32> = (0..6 * 128).map(|_| rng.gen_range(0.0..1.0)).collect();
        let x: Tensor<(usize, usize), f32, Dev> = dev.tensor_from_vec(x, (6, 128));
        assert!(find(&net.layers, &net.input).is_some() && find(&net.layers[1..], &[3, 8, 8]).is_none());
        let one_by_one = {
            let (mut h, mut shape) = (x.clone().leaky_trace(), net.input.clone());
            for (layer, params) in net.layers.iter().zip(&model.params) {
                let pass = Pass {
                    params: params.as_ref(),
                    input: &shape,
                    mode: Mode::Eval,
                    needs: Needs::ALL,
                };
                h = layer.forward(h, &pass);
                shape = layer.output_shape(&shape).unwrap();
            }
            h
        };
        let fused = model.forward_with(x.clone().leaky_trace(), Mode::Eval, Needs::ALL);
        assert_eq!(fused.as_vec(), one_by_one.as_vec());
        let gradients = |y: Matrix<OwnedTape<f32, Dev>>| {
            let grads = y.square().sum().backward();
            let mut all = vec![grads.get(&x).as_vec()];
            for p in model.params.iter().flatten() {
                all.push(grads.get(p.weight()).as_vec());
                all.push(grads.get(&p.bias).as_vec());
            }
            all
        };
        assert_eq!(gradients(fused), gradients(one_by_one));
    }
}
