//! Layers: their pipeline-language signatures, their serde form and shape inference.
//!
//! A layer is a config (`LayerSpec`, tagged JSON such as `{"layer": "linear", "units": 10}`)
//! plus the parameters a [`super::Model`] builds for it. [`LAYERS`] is the registry the
//! checker reads: adding a layer means a variant here, a line there, and its forward pass
//! in `model.rs`.

use crate::params::{Default, ParamSpec, ParamType};
use serde::{Deserialize, Serialize};

/// One layer of a net, as written in a pipeline and stored in a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "layer", rename_all = "snake_case")]
pub enum LayerSpec {
    /// Collapses all non-batch dimensions into one.
    Flatten,
    /// `x W + b`, `units` outputs.
    Linear {
        /// Output width.
        units: usize,
    },
    /// max(0, x).
    Relu,
    /// 1 / (1 + e^-x).
    Sigmoid,
    /// tanh(x).
    Tanh,
    /// Zeroes each value with probability `p` while training, scaling the rest by
    /// `1 / (1 - p)`; the identity when evaluating.
    Dropout {
        /// Drop probability.
        p: f64,
    },
    /// A radial basis function layer (the paper's section 7): output
    /// `k = -exp(s_k) * ||x - c_k||^2`, a learned centre `c_k` and log-precision `s_k` per unit.
    /// As the last layer before the softmax, class `k`'s probability is proportional to
    /// `exp(-beta_k ||x - c_k||^2)`: high only near a centre, so confident only on
    /// inputs that look like training data.
    Rbf {
        /// Output width (classes, when it is the top layer).
        units: usize,
    },
    /// 2-D convolution over `[channels, height, width]` inputs, no padding.
    Conv2d {
        /// Output channels.
        filters: usize,
        /// Side of the square kernel.
        kernel: usize,
        /// Step between positions.
        stride: usize,
    },
    /// Max over square windows of each channel.
    MaxPool {
        /// Side of the window.
        size: usize,
        /// Step between windows (default: the size, so windows do not overlap).
        stride: Option<usize>,
    },
    /// Marks the net's outputs as independent per-class sigmoid probabilities (see
    /// `nn::top`); must be the last layer.
    SigmoidTop,
    /// Goodfellow et al. 2013: `units` outputs, each the max of `pieces` linear pieces.
    Maxout {
        /// Output width.
        units: usize,
        /// Linear pieces per unit.
        pieces: usize,
    },
}

/// A layer kind's name, doc line and parameters.
pub struct LayerKind {
    /// Bumped whenever its forward pass, gradients or initialisation change; part of the
    /// key of every node whose net uses it (see `versions`).
    pub version: u32,
    /// The files holding its maths (beyond the shared [`NET_SOURCES`]).
    pub sources: &'static [&'static str],
    /// Name in the language.
    pub name: &'static str,
    /// One line for the reference.
    pub doc: &'static str,
    /// Its parameters, positional in this order.
    pub params: &'static [ParamSpec],
}

/// The version of what every layer shares: the net spec, shape inference, the forward loop,
/// initialisation and the checkpoint format.
pub const NET_VERSION: u32 = 1;
/// The files [`NET_VERSION`] covers.
pub const NET_SOURCES: &[&str] = &["src/nn/layers.rs", "src/nn/model.rs", "src/nn/classifier.rs", "src/nn/mod.rs"];

const ELEMENTWISE: &[&str] = &["src/nn/model.rs"];
const DENSE: &[&str] = &["src/nn/model.rs", "src/nn/fused.rs"];
const SPATIAL: &[&str] = &["src/nn/conv.rs"];

const UNITS: ParamSpec = ParamSpec::required("units", ParamType::Int, "output width").range(1.0, 65536.0);

/// Every layer the language knows. `input(shape)` starts a stack and is handled by the checker.
pub const LAYERS: &[LayerKind] = &[
    LayerKind {
        version: 1,
        sources: ELEMENTWISE,
        name: "flatten",
        doc: "collapse [c, h, w] into one dimension",
        params: &[],
    },
    LayerKind {
        version: 1,
        sources: DENSE,
        name: "linear",
        doc: "affine map to `units` outputs",
        params: &[UNITS],
    },
    LayerKind {
        version: 1,
        sources: ELEMENTWISE,
        name: "relu",
        doc: "max(0, x)",
        params: &[],
    },
    LayerKind {
        version: 1,
        sources: ELEMENTWISE,
        name: "sigmoid",
        doc: "logistic sigmoid",
        params: &[],
    },
    LayerKind {
        version: 1,
        sources: ELEMENTWISE,
        name: "tanh",
        doc: "hyperbolic tangent",
        params: &[],
    },
    LayerKind {
        version: 1,
        sources: SPATIAL,
        name: "conv2d",
        doc: "2-D convolution, no padding: [c, h, w] -> [filters, (h - kernel) / stride + 1, ...]",
        params: &[
            ParamSpec::required("filters", ParamType::Int, "output channels").range(1.0, 65536.0),
            ParamSpec::with_default("kernel", ParamType::Int, Default::Int(3), "side of the square kernel").range(1.0, 64.0),
            ParamSpec::with_default("stride", ParamType::Int, Default::Int(1), "step between positions").range(1.0, 64.0),
        ],
    },
    LayerKind {
        version: 1,
        sources: SPATIAL,
        name: "max_pool",
        doc: "max over square windows of each channel",
        params: &[
            ParamSpec::with_default("size", ParamType::Int, Default::Int(2), "side of the window").range(1.0, 64.0),
            ParamSpec::with_default("stride", ParamType::Int, Default::Optional, "step between windows (default: size)").range(1.0, 64.0),
        ],
    },
    LayerKind {
        version: 1,
        sources: ELEMENTWISE,
        name: "rbf",
        doc: "radial basis units: -exp(s_k) * ||x - c_k||^2 (the paper's shallow RBF network is flatten >> rbf(10))",
        params: &[UNITS],
    },
    LayerKind {
        version: 1,
        sources: &["src/nn/top.rs"],
        name: "sigmoid_top",
        doc: "independent per-class sigmoid outputs, trained with binary cross-entropy; last layer only",
        params: &[],
    },
    LayerKind {
        version: 1,
        sources: ELEMENTWISE,
        name: "dropout",
        doc: "drop each value with probability p while training",
        params: &[ParamSpec::required("p", ParamType::Number, "drop probability (pylearn2's include_prob .8 is p = 0.2)").range(0.0, 0.95)],
    },
    LayerKind {
        version: 1,
        sources: DENSE,
        name: "maxout",
        doc: "max over `pieces` affine pieces per unit",
        params: &[
            UNITS,
            ParamSpec::with_default("pieces", ParamType::Int, Default::Int(5), "linear pieces per unit").range(2.0, 64.0),
        ],
    },
];

impl LayerSpec {
    /// The sliding window of a `conv2d` or `max_pool` layer over `input` (`[c, h, w]`).
    pub fn window(&self, input: &[usize], what: &str) -> Result<super::conv::Window, String> {
        let [channels, height, width] = input else {
            return Err(format!(
                "{what} needs a [channels, height, width] input, found {}",
                show_shape(input)
            ));
        };
        let (size, stride) = match self {
            LayerSpec::Conv2d { kernel, stride, .. } => (*kernel, *stride),
            LayerSpec::MaxPool { size, stride } => (*size, stride.unwrap_or(*size)),
            other => unreachable!("{other:?} has no window"),
        };
        Ok(super::conv::Window {
            channels: *channels,
            height: *height,
            width: *width,
            size,
            stride,
        })
    }

    /// The shape of this layer's weight matrix, `(rows, columns)`, for an input of shape
    /// `input` (its bias has `columns` values); `Ok(None)` for layers without parameters, an
    /// error if the size overflows. Initialisation, checkpoints and estimates all ask here.
    pub fn weight_shape(&self, input: &[usize]) -> Result<Option<(usize, usize)>, String> {
        let overflow = || format!("the weights of a {self:?} layer on {} overflow", show_shape(input));
        let columns = match self {
            LayerSpec::Conv2d { filters, .. } => *filters,
            LayerSpec::Linear { units } | LayerSpec::Rbf { units } => *units,
            LayerSpec::Maxout { units, pieces } => units.checked_mul(*pieces).ok_or_else(overflow)?,
            _ => return Ok(None),
        };
        let rows = match self {
            LayerSpec::Conv2d { kernel, .. } => input
                .first()
                .and_then(|c| c.checked_mul(kernel.checked_mul(*kernel)?))
                .ok_or_else(overflow)?,
            _ => input.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(overflow)?,
        };
        rows.checked_mul(columns).ok_or_else(overflow)?;
        Ok(Some((rows, columns)))
    }

    /// The shape this layer produces from `input` (batch dimension excluded), or why it cannot.
    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let flat = |what: &str| -> Result<usize, String> {
            match input {
                [n] => Ok(*n),
                _ => Err(format!(
                    "{what} needs a flat input, found {}; add `flatten` before it",
                    show_shape(input)
                )),
            }
        };
        match self {
            LayerSpec::Flatten => input
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d))
                .map(|n| vec![n])
                .ok_or_else(|| format!("flatten of {} overflows", show_shape(input))),
            LayerSpec::Linear { units } => flat("linear").map(|_| vec![*units]),
            LayerSpec::Maxout { units, .. } => flat("maxout").map(|_| vec![*units]),
            LayerSpec::Rbf { units } => flat("rbf").map(|_| vec![*units]),
            LayerSpec::Conv2d { filters, kernel, stride } => {
                let window = self.window(input, "conv2d")?;
                debug_assert_eq!((window.size, window.stride), (*kernel, *stride));
                window.output().map(|(h, w)| vec![*filters, h, w])
            }
            LayerSpec::MaxPool { .. } => {
                let window = self.window(input, "max_pool")?;
                window.output().map(|(h, w)| vec![input[0], h, w])
            }
            LayerSpec::Relu | LayerSpec::Sigmoid | LayerSpec::Tanh | LayerSpec::Dropout { .. } | LayerSpec::SigmoidTop => {
                Ok(input.to_vec())
            }
        }
    }
}

/// A net: its input shape and its layers. The canonical form that cache keys hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetSpec {
    /// Input shape, batch dimension excluded.
    pub input: Vec<usize>,
    /// Layers in order.
    pub layers: Vec<LayerSpec>,
}

impl NetSpec {
    /// How the outputs become probabilities: a net ending in `sigmoid_top` has independent
    /// sigmoid outputs, any other a softmax.
    pub fn top(&self) -> super::Top {
        match self.layers.last() {
            Some(LayerSpec::SigmoidTop) => super::Top::Sigmoid,
            Some(LayerSpec::Rbf { .. }) => super::Top::Rbf,
            _ => super::Top::Softmax,
        }
    }

    /// The output shape, or the first layer whose input does not fit.
    pub fn output_shape(&self) -> Result<Vec<usize>, (usize, String)> {
        self.layers
            .iter()
            .enumerate()
            .try_fold(self.input.clone(), |shape, (i, l)| l.output_shape(&shape).map_err(|e| (i, e)))
    }
}

/// `[1, 28, 28]`
pub fn show_shape(shape: &[usize]) -> String {
    format!("[{}]", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_flow_through_the_stack() {
        let net = NetSpec {
            input: vec![1, 28, 28],
            layers: vec![LayerSpec::Flatten, LayerSpec::Linear { units: 10 }],
        };
        assert_eq!(net.output_shape().unwrap(), vec![10]);
        let bad = NetSpec {
            input: vec![1, 28, 28],
            layers: vec![LayerSpec::Linear { units: 10 }],
        };
        assert_eq!(bad.output_shape().unwrap_err().0, 0);
    }

    #[test]
    fn serde_form_is_tagged() {
        let l: LayerSpec = serde_json::from_str(r#"{"layer":"maxout","units":240,"pieces":5}"#).unwrap();
        assert_eq!(l, LayerSpec::Maxout { units: 240, pieces: 5 });
    }
}
