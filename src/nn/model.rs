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
//! column `u * pieces + p` is piece `p` of unit `u`. A `conv2d` layer stores one filter per
//! column, `weight` `[channels * kernel * kernel, filters]`, rows ordered by input channel,
//! then kernel row, then kernel column. An `rbf` layer stores its centres as
//! `weight` (`[in, units]`, one column per centre) and its log-precisions as `bias`. The
//! net itself is stored as JSON in
//! the safetensors metadata under `advpipe.net`.

use super::checkpoint::{self, Layout};
use super::layers::{LayerTape, NetSpec, Pass};
use crate::Error;
use dfdx::prelude::*;
use rand::Rng;
use std::collections::HashMap;

/// The device every model computes on: the CPU, or with the `cuda` feature the GPU.
#[cfg(not(feature = "cuda"))]
pub type Dev = Cpu;
/// The device every model computes on: the CPU, or with the `cuda` feature the GPU.
#[cfg(feature = "cuda")]
pub type Dev = Cuda;
/// A batch of activations, `(batch, features)`.
pub type Matrix<T = NoneTape> = Tensor<(usize, usize), f32, Dev, T>;
/// A bias vector.
pub type Vector<T = NoneTape> = Tensor<(usize,), f32, Dev, T>;

/// Which gradients a forward pass will be asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Needs {
    /// The gradient with respect to the model's input (attacks).
    pub input: bool,
    /// The gradients with respect to the parameters (training).
    pub params: bool,
}

impl Needs {
    /// Every gradient: what dfdx's composed ops compute.
    pub const ALL: Needs = Needs { input: true, params: true };
    /// Parameters only: a training step.
    pub const PARAMS: Needs = Needs {
        input: false,
        params: true,
    };
    /// The input only: crafting an attack.
    pub const INPUT: Needs = Needs {
        input: true,
        params: false,
    };
}

/// Whether stochastic layers (dropout) are active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Dropout on.
    Train,
    /// Dropout off: the deterministic network.
    Eval,
}

pub use super::affine::Affine;

/// A trained (or initialised) network.
#[derive(Clone, Debug)]
pub struct Model {
    /// The architecture.
    pub net: NetSpec,
    /// Parameters per layer, `None` for layers without any.
    pub params: Vec<Option<Affine>>,
    /// Each layer's input shape (batch excluded), for layers that look at space.
    inputs: Vec<Vec<usize>>,
}

impl Model {
    /// A model with weights drawn uniformly from `[-init, init]` and zero biases.
    pub fn init(dev: &Dev, net: &NetSpec, init: f64, rng: &mut impl Rng) -> Model {
        Model::init_with(dev, net, rng, |_| (init, false))
    }

    /// A model initialised as `fit`'s `init` says: uniform in ±`scale` (biases 0), or
    /// [`Model::init_fan_in`] when none is given.
    pub fn init_as(dev: &Dev, net: &NetSpec, scale: Option<f64>, rng: &mut impl Rng) -> Model {
        match scale {
            Some(scale) => Model::init(dev, net, scale, rng),
            None => Model::init_fan_in(dev, net, rng),
        }
    }

    /// A model with PyTorch's default initialisation for `nn.Linear` and `nn.Conv2d`: every
    /// layer's weights and biases uniform in ±1/sqrt(fan_in), fan_in being its weight's rows
    /// (inputs, or channels x kernel x kernel).
    pub fn init_fan_in(dev: &Dev, net: &NetSpec, rng: &mut impl Rng) -> Model {
        Model::init_with(dev, net, rng, |fan_in| (1.0 / (fan_in.max(1) as f64).sqrt(), true))
    }

    /// Weights uniform in ±bound for each layer, `bound_of(fan_in)` giving the bound and
    /// whether biases are drawn the same way (else they are 0); a layer's weights are drawn
    /// before its biases.
    fn init_with(dev: &Dev, net: &NetSpec, rng: &mut impl Rng, bound_of: impl Fn(usize) -> (f64, bool)) -> Model {
        let mut shape = net.input.clone();
        let mut params = Vec::with_capacity(net.layers.len());
        let mut inputs = Vec::with_capacity(net.layers.len());
        for layer in &net.layers {
            inputs.push(shape.clone());
            let weights = layer.weight_shape(&shape).expect("nets are shape-checked before they are built");
            params.push(weights.map(|(fan_in, out)| {
                let (bound, biases_too) = bound_of(fan_in);
                let w: Vec<f32> = (0..fan_in * out).map(|_| rng.gen_range(-bound..=bound) as f32).collect();
                let bias = if biases_too {
                    let b: Vec<f32> = (0..out).map(|_| rng.gen_range(-bound..=bound) as f32).collect();
                    dev.tensor_from_vec(b, (out,))
                } else {
                    dev.zeros_like(&(out,))
                };
                Affine::new(dev.tensor_from_vec(w, (fan_in, out)), bias)
            }));
            shape = layer.output_shape(&shape).expect("nets are shape-checked before they are built");
        }
        Model {
            net: net.clone(),
            params,
            inputs,
        }
    }

    /// Input width (product of the input shape).
    pub fn input_width(&self) -> usize {
        self.net.input.iter().product()
    }

    /// Logits for a batch, in evaluation mode (dropout off).
    pub fn forward<T: LayerTape>(&self, x: Matrix<T>) -> Matrix<T> {
        self.forward_mode(x, Mode::Eval)
    }

    /// Logits for a batch. Parameters join `x`'s tape, so with an `OwnedTape` the backward
    /// pass reaches both the input and every parameter. In [`Mode::Train`], dropout draws
    /// from the device's random stream.
    pub fn forward_mode<T: LayerTape>(&self, x: Matrix<T>, mode: Mode) -> Matrix<T> {
        self.forward_with(x, mode, Needs::ALL)
    }

    /// [`Model::forward_mode`] for a backward pass that will read only the gradients `needs`
    /// names: dense layers then skip the rest (a training step has no use for the input
    /// batch's gradient, an attack none for the weights').
    pub fn forward_with<T: LayerTape>(&self, x: Matrix<T>, mode: Mode, needs: Needs) -> Matrix<T> {
        let mut h = x;
        // Whether some layer before this one has parameters being trained: then this layer's
        // input gradient carries theirs.
        let mut trained_below = false;
        let mut i = 0;
        while i < self.net.layers.len() {
            let (layer, params, input) = (&self.net.layers[i], &self.params[i], &self.inputs[i]);
            let layer_needs = Needs {
                input: needs.input || (needs.params && trained_below),
                params: needs.params,
            };
            trained_below |= params.is_some();
            #[cfg(not(feature = "cuda"))]
            if let (Some(run), Some(params)) = (super::fusion::find(&self.net.layers[i..], input), params) {
                h = run.forward(h, params, layer_needs);
                i += run.layers();
                continue;
            }
            let pass = Pass {
                params: params.as_ref(),
                input,
                mode,
                needs: layer_needs,
            };
            h = layer.forward(h, &pass);
            i += 1;
        }
        h
    }

    /// Every parameter tensor under its checkpoint name.
    pub fn named_tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut out = Vec::new();
        for (i, p) in self.params.iter().enumerate() {
            if let Some(p) = p {
                let (r, c) = *p.weight().shape();
                out.push((format!("layers.{i}.weight"), vec![r, c], p.weight().as_vec()));
                out.push((format!("layers.{i}.bias"), vec![c], p.bias.as_vec()));
            }
        }
        out
    }

    /// The checkpoint as safetensors bytes, with the net (and any extra metadata) in the header.
    pub fn to_safetensors(&self, extra: &[(&str, String)]) -> Result<Vec<u8>, Error> {
        let mut meta: HashMap<String, String> = extra.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        meta.insert("advpipe.net".into(), serde_json::to_string(&self.net).expect("nets serialize"));
        serialize_f32(self.named_tensors(), Some(meta))
    }

    /// The parameters as a PyTorch `nn.Sequential`'s `state_dict` (`{i}.weight` in PyTorch's
    /// shape, `{i}.bias`), for `torch.nn.Module.load_state_dict` after
    /// `safetensors.torch.load_file`; an error names a layer PyTorch has no module for.
    pub fn to_torch_safetensors(&self) -> Result<Vec<u8>, Error> {
        let wants = checkpoint::wanted(&self.net, Layout::Torch, "").map_err(Error::msg)?;
        let tensors = wants
            .into_iter()
            .zip(self.named_tensors())
            .map(|(want, (_, _, values))| {
                let values = match want.transposed {
                    Some((rows, columns)) => checkpoint::transpose(&values, rows, columns),
                    None => values,
                };
                (want.name, want.shape, values)
            })
            .collect();
        serialize_f32(tensors, None)
    }

    /// Reads a checkpoint written by [`Model::to_safetensors`].
    pub fn from_safetensors(dev: &Dev, bytes: &[u8]) -> Result<Model, Error> {
        let bad = |what: String| Error::msg(format!("not an advpipe checkpoint: {what}"));
        let (_, header) = ::safetensors::SafeTensors::read_metadata(bytes).map_err(|e| bad(describe(&e)))?;
        let net_json = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("advpipe.net"))
            .ok_or_else(|| bad("no advpipe.net metadata".into()))?;
        let net: NetSpec = serde_json::from_str(net_json).map_err(|e| bad(e.to_string()))?;
        // The net comes from the file, not from a checked pipeline: check it before building.
        if net.input.is_empty() || net.input.contains(&0) {
            return Err(bad(format!("its net's input shape {:?} is empty", net.input)));
        }
        net.output_shape()
            .map_err(|(i, why)| bad(format!("its net does not fit together at layer {i}: {why}")))?;
        Model::from_safetensors_for(dev, bytes, &net)
    }

    /// Reads the parameters of `net` from safetensors bytes with advpipe's tensor names
    /// (written by advpipe or by any other tool), checking every tensor's dtype and shape.
    pub fn from_safetensors_for(dev: &Dev, bytes: &[u8], net: &NetSpec) -> Result<Model, Error> {
        Model::from_safetensors_as(dev, bytes, net, Layout::Advpipe, "")
    }

    /// Reads the parameters of `net` from safetensors bytes in `layout` (advpipe's names, or
    /// a PyTorch `nn.Sequential`'s `state_dict` with `prefix` before its indices), checking
    /// every tensor's dtype and shape; the error lists what the net needs and what the file
    /// holds.
    pub fn from_safetensors_as(dev: &Dev, bytes: &[u8], net: &NetSpec, layout: Layout, prefix: &str) -> Result<Model, Error> {
        let bad = |what: String| Error::msg(format!("checkpoint does not fit the net: {what}"));
        let st = ::safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(describe(&e)))?;
        // Every tensor is checked against the shape the net needs before the model is built,
        // so a net far larger than the file is refused, never allocated.
        let wants = checkpoint::wanted(net, layout, prefix).map_err(bad)?;
        let found = st
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                let dtype = format!("{:?}", view.dtype());
                (
                    name,
                    checkpoint::Found {
                        dtype,
                        shape: view.shape().to_vec(),
                    },
                )
            })
            .collect();
        if let Some(problem) = checkpoint::mismatch(&found, &wants, layout) {
            return Err(bad(problem));
        }
        let mut values = Vec::with_capacity(wants.len());
        for want in &wants {
            let view = st.tensor(&want.name).map_err(|e| bad(format!("{}: {}", want.name, describe(&e))))?;
            let data = f32s_from_le(view.data());
            if let Some(at) = data.iter().position(|v| !v.is_finite()) {
                return Err(bad(format!(
                    "{} holds {} at index {at}; a checkpoint's values must be finite",
                    want.name, data[at]
                )));
            }
            values.push(match want.transposed {
                Some((rows, columns)) => checkpoint::untranspose(&data, rows, columns),
                None => data,
            });
        }
        let mut model = Model::init(dev, net, 0.0, &mut rand::rngs::mock::StepRng::new(0, 0));
        let mut values = values.into_iter();
        for p in model.params.iter_mut().flatten() {
            p.weight_mut()
                .copy_from(&values.next().expect("a weight per layer with parameters"));
            p.bias.copy_from(&values.next().expect("a bias per layer with parameters"));
        }
        Ok(model)
    }
}

/// Named f32 tensors as safetensors bytes with sorted header keys.
fn serialize_f32(tensors: Vec<(String, Vec<usize>, Vec<f32>)>, meta: Option<HashMap<String, String>>) -> Result<Vec<u8>, Error> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, shape, data)| (name, shape, f32s_to_le(&data)))
        .collect();
    let views: Vec<(String, ::safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(name, shape, data)| {
            let view = ::safetensors::tensor::TensorView::new(::safetensors::Dtype::F32, shape.clone(), data)
                .expect("shape and byte length agree by construction");
            (name.clone(), view)
        })
        .collect();
    let bytes = ::safetensors::serialize(views, &meta).map_err(|e| Error::msg(format!("writing safetensors: {}", describe(&e))))?;
    Ok(canonical_header(bytes))
}

/// A safetensors error in words (the crate's own `Display` prints the variant's name).
fn describe(e: &::safetensors::SafeTensorError) -> String {
    use ::safetensors::SafeTensorError as E;
    match e {
        E::InvalidHeader => "the header is not UTF-8 text".into(),
        E::InvalidHeaderStart => "the header does not start with `{`: not a safetensors file".into(),
        E::InvalidHeaderDeserialization | E::JsonError(_) => "the header is not valid safetensors JSON".into(),
        E::HeaderTooLarge => "the header is larger than safetensors allows (100 MB)".into(),
        E::HeaderTooSmall => "the file is shorter than a safetensors header (8 bytes)".into(),
        E::InvalidHeaderLength => "the header length runs past the end of the file".into(),
        E::TensorNotFound(name) => format!("no tensor named {name}"),
        E::TensorInvalidInfo => "a tensor's shape, dtype and offsets disagree".into(),
        E::InvalidOffset(name) => format!("the offsets of tensor {name} are invalid"),
        E::IoError(io) => format!("I/O error: {io}"),
        E::InvalidTensorView(dtype, shape, len) => format!("{len} bytes do not hold a {dtype:?} tensor of shape {shape:?}"),
        E::MetadataIncompleteBuffer => "the tensors do not cover the data part of the file".into(),
        E::ValidationOverflow => "a tensor's shape overflows when multiplied out".into(),
    }
}

/// Rewrites a safetensors file's JSON header with sorted keys (safetensors writes its
/// metadata map in hash order), so the same model always gives the same bytes.
fn canonical_header(bytes: Vec<u8>) -> Vec<u8> {
    let Some(len) = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize) else {
        return bytes;
    };
    let Some(Ok(header)) = bytes.get(8..8 + len).map(serde_json::from_slice::<serde_json::Value>) else {
        return bytes;
    };
    // serde_json's maps are sorted by key (no `preserve_order` feature).
    let mut text = serde_json::to_vec(&header).expect("JSON values serialize");
    // safetensors pads the header with spaces so the data starts 8-byte aligned.
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - len);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + len..]);
    out
}

/// f32 values as the little-endian bytes safetensors stores.
pub fn f32s_to_le(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The f32 values in little-endian bytes (a trailing partial value is ignored).
pub fn f32s_from_le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fan_in_initialisation_scales_by_each_layer_inputs() {
        use rand::SeedableRng;
        let dev = Dev::default();
        let net: NetSpec = serde_json::from_value(serde_json::json!({
            "input": [1, 8, 8],
            "layers": [{"layer": "conv2d", "filters": 4, "kernel": 3, "stride": 1}, {"layer": "flatten"}, {"layer": "linear", "units": 10}]
        }))
        .unwrap();
        let model = Model::init_fan_in(&dev, &net, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
        for (p, fan_in) in model.params.iter().flatten().zip([9.0f32, 144.0]) {
            let bound = 1.0 / fan_in.sqrt();
            for values in [p.weight().as_vec(), p.bias.as_vec()] {
                assert!(values.iter().all(|v| v.abs() <= bound), "within ±1/sqrt({fan_in})");
                // Spread over the range, not stuck near zero.
                assert!(values.iter().any(|v| v.abs() > 0.5 * bound));
            }
        }
    }
    use crate::nn::layers::{activations::Tanh, flatten::Flatten, linear::Linear, maxout::Maxout};
    use rand::SeedableRng;

    fn tiny() -> (Dev, Model) {
        let dev = Dev::default();
        let net = NetSpec {
            input: vec![1, 2, 3],
            layers: vec![
                Flatten {}.into(),
                Maxout { units: 4, pieces: 3 }.into(),
                Tanh {}.into(),
                Linear { units: 3 }.into(),
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
    fn checkpoints_are_byte_identical_whatever_the_metadata_order() {
        let (_, model) = tiny();
        let extra: Vec<(&str, String)> = (0..12).map(|i| (["a", "b", "c", "d", "e", "f"][i % 6], i.to_string())).collect();
        let first = model.to_safetensors(&extra[..6]).unwrap();
        for _ in 0..20 {
            assert_eq!(model.to_safetensors(&extra[..6]).unwrap(), first);
        }
        let header = u64::from_le_bytes(first[..8].try_into().unwrap());
        assert_eq!(header % 8, 0, "data stays 8-byte aligned");
    }

    #[test]
    fn non_finite_and_foreign_checkpoints_are_refused_in_words() {
        let (dev, mut model) = tiny();
        let mut w = model.params[1].as_ref().unwrap().weight().as_vec();
        w[5] = f32::NAN;
        model.params[1].as_mut().unwrap().weight_mut().copy_from(&w);
        let e = Model::from_safetensors(&dev, &model.to_safetensors(&[]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("layers.1.weight holds NaN at index 5"), "{e}");
        let e = Model::from_safetensors(&dev, b"12345678 not a header").unwrap_err().to_string();
        assert!(
            e.contains("header") && !e.contains("HeaderTooLarge") && !e.contains("InvalidHeader"),
            "{e}"
        );
        let e = Model::from_safetensors(&dev, b"\x05\0\0\0\0\0\0\0hello").unwrap_err().to_string();
        assert!(e.contains("does not start with `{`"), "{e}");
    }

    #[test]
    fn a_checkpoint_whose_net_does_not_fit_together_is_refused() {
        // Found by the `checkpoint` fuzz target: a net in the metadata that was never
        // shape-checked (`linear` straight after a [1, 2] input) panicked while building.
        let dev = Dev::default();
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/seeds/checkpoint/crash-net-not-shape-checked"
        ))
        .unwrap();
        let e = Model::from_safetensors(&dev, &bytes).unwrap_err().to_string();
        assert!(e.contains("does not fit together at layer 0"), "{e}");
        // A net far larger than its file is refused before anything is allocated.
        let (_, model) = tiny();
        let mut huge = model.net.clone();
        huge.layers[1] = Maxout { units: 1 << 30, pieces: 3 }.into();
        let e = Model::from_safetensors_for(&dev, &model.to_safetensors(&[]).unwrap(), &huge)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`layers.1.weight` is F32 [6, 12], the net needs F32 [6, 3221225472]"),
            "{e}"
        );
    }

    proptest::proptest! {
        #[test]
        fn reading_any_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let dev = Dev::default();
            let _ = Model::from_safetensors(&dev, &bytes);
        }
    }
}
