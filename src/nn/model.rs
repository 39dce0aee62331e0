//! A model: a [`NetSpec`] plus its parameter tensors, the forward pass on dfdx, and the
//! safetensors checkpoint format.
//!
//! Activations are `(batch, features)` matrices; layers that care about the spatial shape
//! reshape internally, so `flatten` costs nothing. The forward pass is generic over dfdx's
//! tape: with `NoneTape` it only computes, with `OwnedTape` it records the backward pass
//! (parameter gradients for training, input gradients for attacks).
//!
//! Checkpoint tensor names: `layers.{i}.weight` with shape `[in, out]` (the transpose of
//! PyTorch's `Linear.weight`) and `layers.{i}.bias` with shape `[out]`, f32, where `i` is
//! the layer's index in the net. Maxout stores its `units * pieces` columns unit-major:
//! column `u * pieces + p` is piece `p` of unit `u`. The net itself is stored as JSON in
//! the safetensors metadata under `advpipe.net`.

use super::layers::{LayerSpec, NetSpec};
use crate::Error;
use dfdx::prelude::*;
use rand::Rng;
use std::collections::HashMap;

/// The CPU device every model computes on.
pub type Dev = Cpu;
/// A batch of activations, `(batch, features)`.
pub type Matrix<T = NoneTape> = Tensor<(usize, usize), f32, Dev, T>;
/// A bias vector.
pub type Vector<T = NoneTape> = Tensor<(usize,), f32, Dev, T>;

/// Whether stochastic layers (dropout) are active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Dropout on.
    Train,
    /// Dropout off: the deterministic network.
    Eval,
}

/// The parameters of one layer that has any.
#[derive(Clone, Debug)]
pub struct Affine {
    /// `[in, out]`
    pub weight: Matrix,
    /// `[out]`
    pub bias: Vector,
}

/// A trained (or initialised) network.
#[derive(Clone, Debug)]
pub struct Model {
    /// The architecture.
    pub net: NetSpec,
    /// Parameters per layer, `None` for layers without any.
    pub params: Vec<Option<Affine>>,
}

impl Model {
    /// A model with weights drawn uniformly from `[-init, init]` and zero biases.
    pub fn init(dev: &Dev, net: &NetSpec, init: f64, rng: &mut impl Rng) -> Model {
        let mut shape = net.input.clone();
        let mut params = Vec::with_capacity(net.layers.len());
        for layer in &net.layers {
            let fan_in: usize = shape.iter().product();
            let fan_out = match layer {
                LayerSpec::Linear { units } => Some(*units),
                LayerSpec::Maxout { units, pieces } => Some(units * pieces),
                _ => None,
            };
            params.push(fan_out.map(|out| {
                let w: Vec<f32> = (0..fan_in * out).map(|_| rng.gen_range(-init..=init) as f32).collect();
                Affine {
                    weight: dev.tensor_from_vec(w, (fan_in, out)),
                    bias: dev.zeros_like(&(out,)),
                }
            }));
            shape = layer.output_shape(&shape).expect("nets are shape-checked before they are built");
        }
        Model { net: net.clone(), params }
    }

    /// Input width (product of the input shape).
    pub fn input_width(&self) -> usize {
        self.net.input.iter().product()
    }

    /// Logits for a batch, in evaluation mode (dropout off).
    pub fn forward<T: Tape<f32, Dev> + Merge<T>>(&self, x: Matrix<T>) -> Matrix<T> {
        self.forward_mode(x, Mode::Eval)
    }

    /// Logits for a batch. Parameters join `x`'s tape, so with an `OwnedTape` the backward
    /// pass reaches both the input and every parameter. In [`Mode::Train`], dropout draws
    /// from the device's random stream.
    pub fn forward_mode<T: Tape<f32, Dev> + Merge<T>>(&self, x: Matrix<T>, mode: Mode) -> Matrix<T> {
        let mut h = x;
        for (layer, params) in self.net.layers.iter().zip(&self.params) {
            h = match (layer, params) {
                (LayerSpec::Flatten | LayerSpec::SigmoidTop, _) => h,
                (LayerSpec::Dropout { p }, _) if mode == Mode::Train && *p > 0.0 => h.dropout(*p),
                (LayerSpec::Dropout { .. }, _) => h,
                (LayerSpec::Relu, _) => h.relu(),
                (LayerSpec::Sigmoid, _) => h.sigmoid(),
                (LayerSpec::Tanh, _) => h.tanh(),
                (LayerSpec::Linear { .. }, Some(p)) => affine(h, p),
                (LayerSpec::Maxout { units, pieces }, Some(p)) => {
                    let n = h.shape().0;
                    affine(h, p).reshape_like(&(n, *units, *pieces)).max::<(usize, usize), Axis<2>>()
                }
                (l, None) => unreachable!("layer {l:?} built without parameters"),
            };
        }
        h
    }

    /// Every parameter tensor under its checkpoint name.
    pub fn named_tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut out = Vec::new();
        for (i, p) in self.params.iter().enumerate() {
            if let Some(p) = p {
                let (r, c) = *p.weight.shape();
                out.push((format!("layers.{i}.weight"), vec![r, c], p.weight.as_vec()));
                out.push((format!("layers.{i}.bias"), vec![c], p.bias.as_vec()));
            }
        }
        out
    }

    /// The checkpoint as safetensors bytes, with the net (and any extra metadata) in the header.
    pub fn to_safetensors(&self, extra: &[(&str, String)]) -> Result<Vec<u8>, Error> {
        let tensors = self.named_tensors();
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
            .into_iter()
            .map(|(name, shape, data)| (name, shape, data.iter().flat_map(|v| v.to_le_bytes()).collect()))
            .collect();
        let views: Vec<(String, ::safetensors::tensor::TensorView)> = bytes
            .iter()
            .map(|(name, shape, data)| {
                let view = ::safetensors::tensor::TensorView::new(::safetensors::Dtype::F32, shape.clone(), data)
                    .expect("shape and byte length agree by construction");
                (name.clone(), view)
            })
            .collect();
        let mut meta: HashMap<String, String> = extra.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        meta.insert("advpipe.net".into(), serde_json::to_string(&self.net).expect("nets serialize"));
        ::safetensors::serialize(views, &Some(meta)).map_err(|e| Error::msg(format!("writing safetensors: {e}")))
    }

    /// Reads a checkpoint written by [`Model::to_safetensors`].
    pub fn from_safetensors(dev: &Dev, bytes: &[u8]) -> Result<Model, Error> {
        let bad = |what: String| Error::msg(format!("not an advpipe checkpoint: {what}"));
        let (_, header) = ::safetensors::SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
        let net_json = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("advpipe.net"))
            .ok_or_else(|| bad("no advpipe.net metadata".into()))?;
        let net: NetSpec = serde_json::from_str(net_json).map_err(|e| bad(e.to_string()))?;
        let st = ::safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
        let mut model = Model::init(dev, &net, 0.0, &mut rand::rngs::mock::StepRng::new(0, 0));
        for (i, p) in model.params.iter_mut().enumerate() {
            if let Some(p) = p {
                for (suffix, expect_len) in [("weight", p.weight.shape().num_elements()), ("bias", p.bias.shape().0)] {
                    let name = format!("layers.{i}.{suffix}");
                    let view = st.tensor(&name).map_err(|e| bad(format!("{name}: {e}")))?;
                    if view.dtype() != ::safetensors::Dtype::F32 || view.data().len() != expect_len * 4 {
                        return Err(bad(format!("{name} has the wrong dtype or size")));
                    }
                    let values: Vec<f32> = view
                        .data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    if suffix == "weight" {
                        p.weight.copy_from(&values);
                    } else {
                        p.bias.copy_from(&values);
                    }
                }
            }
        }
        Ok(model)
    }
}

fn affine<T: Tape<f32, Dev> + Merge<T>>(h: Matrix<T>, p: &Affine) -> Matrix<T> {
    let n = h.shape().0;
    let out = p.weight.shape().1;
    h.matmul(p.weight.retaped::<T>()) + p.bias.retaped::<T>().broadcast_like::<(usize, usize), Axis<0>>(&(n, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn tiny() -> (Dev, Model) {
        let dev = Dev::default();
        let net = NetSpec {
            input: vec![1, 2, 3],
            layers: vec![
                LayerSpec::Flatten,
                LayerSpec::Maxout { units: 4, pieces: 3 },
                LayerSpec::Tanh,
                LayerSpec::Linear { units: 3 },
            ],
        };
        let model = Model::init(&dev, &net, 0.5, &mut rand_chacha::ChaCha8Rng::seed_from_u64(7));
        (dev, model)
    }

    #[test]
    fn checkpoint_round_trip_is_bit_identical() {
        let (dev, model) = tiny();
        let bytes = model.to_safetensors(&[("advpipe.seed", "7".into())]).unwrap();
        let back = Model::from_safetensors(&dev, &bytes).unwrap();
        assert_eq!(back.net, model.net);
        assert_eq!(back.named_tensors(), model.named_tensors());
    }

    #[test]
    fn maxout_takes_the_max_piece_per_unit() {
        let dev = Dev::default();
        let net = NetSpec {
            input: vec![1],
            layers: vec![LayerSpec::Maxout { units: 2, pieces: 2 }],
        };
        let mut model = Model::init(&dev, &net, 0.0, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
        let p = model.params[0].as_mut().unwrap();
        p.weight.copy_from(&[1.0, -1.0, 2.0, 3.0]);
        p.bias.copy_from(&[0.0, 0.5, 0.0, 0.0]);
        let y = model.forward(dev.tensor_from_vec(vec![2.0, -1.0], (2, 1))).as_vec();
        // x = 2: unit 0 = max(2, -1.5) = 2, unit 1 = max(4, 6) = 6; x = -1: max(-1, 1.5), max(-2, -3).
        assert_eq!(y, vec![2.0, 6.0, 1.5, -2.0]);
    }
}
