//! Layers: the extension point for nets. One file per layer, one line in [`LAYERS`].
//!
//! A layer file declares its parameters with [`crate::declare_params!`] (the struct is the
//! layer's config, stored in checkpoints as tagged JSON such as
//! `{"layer": "linear", "units": 10}`) and implements [`Layer`]: its name, doc line,
//! version and source files, shape inference, the size of its weights and its forward
//! pass. A net is a [`NetSpec`]: an input shape and a list of [`LayerSpec`]s, each one
//! layer behind a shared pointer. Layers defined outside the crate join with [`register`].
//!
//! Adding one: see "Adding a layer" in the README; `maxout.rs` is the worked example.

pub mod activations;
pub mod avg_pool;
pub mod conv2d;
pub mod dropout;
pub mod flatten;
pub mod linear;
pub mod max_pool;
pub mod maxout;
pub mod rbf;
pub mod sigmoid_top;

#[cfg(feature = "compute")]
use super::model::{Affine, Dev, Matrix, Mode, Needs};
use crate::params::{ParamDef, ParamSpec, ParamType};
#[cfg(feature = "compute")]
use dfdx::prelude::{Merge, NoneTape, OwnedTape, Tape};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

/// Every built-in layer, in the order the reference lists them. A new layer adds a line.
pub const LAYERS: &[LayerKind] = &[
    LayerKind::of::<flatten::Flatten>(),
    LayerKind::of::<linear::Linear>(),
    LayerKind::of::<activations::Relu>(),
    LayerKind::of::<activations::Sigmoid>(),
    LayerKind::of::<activations::Tanh>(),
    LayerKind::of::<conv2d::Conv2d>(),
    LayerKind::of::<max_pool::MaxPool>(),
    LayerKind::of::<avg_pool::AvgPool>(),
    LayerKind::of::<rbf::Rbf>(),
    LayerKind::of::<sigmoid_top::SigmoidTop>(),
    LayerKind::of::<dropout::Dropout>(),
    LayerKind::of::<maxout::Maxout>(),
];

/// The version of what every layer shares: the net spec, the layer registry, the forward
/// loop, initialisation and the checkpoint format.
pub const NET_VERSION: u32 = 1;
/// The files [`NET_VERSION`] covers.
pub const NET_SOURCES: &[&str] = &[
    "src/nn/layers/mod.rs",
    "src/nn/model.rs",
    "src/nn/affine.rs",
    "src/nn/classifier.rs",
    "src/nn/mod.rs",
];

/// `units` of the layers whose output width is a parameter.
pub const UNITS: ParamDef = ParamDef::required(ParamType::Int).range(1.0, 65536.0);

/// What a layer file implements.
pub trait Layer: Clone + Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Its name in the language and in checkpoints.
    const NAME: &'static str;
    /// One line for the reference.
    const DOC: &'static str;
    /// Bumped whenever its forward pass, gradients or initialisation change; part of the
    /// key of every node whose net uses it (see `versions`).
    const VERSION: u32;
    /// The files holding its maths (its own, `file!()`, and any kernels it calls), whose
    /// changes `tests/code_versions.rs` watches.
    const SOURCES: &'static [&'static str];
    /// Its parameters, positional in this order (the `PARAMS` of its `declare_params!`).
    const PARAMS: &'static [ParamSpec];

    /// The shape it produces from `input` (batch dimension excluded), or why it cannot.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String>;

    /// Its weight matrix's `(rows, columns)` for an input of shape `input` (its bias has
    /// `columns` values); `Ok(None)` for a layer without parameters, an error if the size
    /// overflows. Initialisation, checkpoints and estimates all ask here.
    fn weight_shape(&self, _input: &[usize]) -> Result<Option<(usize, usize)>, String> {
        Ok(None)
    }

    /// Weight columns per output value (maxout's pieces); the backward pass keeps as many
    /// values per output.
    fn columns_per_output(&self) -> usize {
        1
    }

    /// The shape PyTorch gives this layer's weight (`load(..., layout: "torch")`): advpipe's
    /// `[rows, columns]` weight is that tensor flattened to `[columns, rows]`, transposed.
    /// The default is `nn.Linear`'s `[out, in]`; `None` for a layer with parameters that
    /// PyTorch has no module for.
    fn torch_weight_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        let (rows, columns) = self.weight_shape(input).ok()??;
        Some(vec![columns, rows])
    }

    /// Whether `fit`'s `max_norm` bounds its weight columns (an RBF layer's are centres).
    fn max_norm_applies(&self) -> bool {
        true
    }

    /// Its output for a batch `h`. Parameters join `h`'s tape, so with an `OwnedTape` the
    /// backward pass reaches both the input and the parameters.
    #[cfg(feature = "compute")]
    fn forward<T: Tape<f32, Dev> + Merge<T>>(&self, h: Matrix<T>, pass: &Pass<'_>) -> Matrix<T>;
}

#[cfg(feature = "compute")]
/// What a layer's forward pass is given besides its input.
pub struct Pass<'a> {
    /// Its parameters, for a layer whose [`Layer::weight_shape`] has any.
    pub params: Option<&'a Affine>,
    /// Its input's shape (batch excluded), for layers that look at space.
    pub input: &'a [usize],
    /// Dropout on or off.
    pub mode: Mode,
    /// The gradients the backward pass will read: dense layers skip the rest.
    pub needs: Needs,
}

#[cfg(feature = "compute")]
impl Pass<'_> {
    /// The parameters of a layer that has them.
    pub fn affine(&self) -> &Affine {
        self.params.expect("a layer with weights is built with parameters")
    }
}

/// A layer's registry entry.
pub struct LayerKind {
    /// Name in the language.
    pub name: &'static str,
    /// One line for the reference.
    pub doc: &'static str,
    /// See [`Layer::VERSION`].
    pub version: u32,
    /// See [`Layer::SOURCES`].
    pub sources: &'static [&'static str],
    /// Its parameters, positional in this order.
    pub params: &'static [ParamSpec],
    /// Builds the layer from its checked parameters (a JSON object).
    pub build: fn(serde_json::Value) -> Result<LayerSpec, String>,
}

impl LayerKind {
    /// The entry of the layer `L`.
    pub const fn of<L: Layer>() -> LayerKind {
        LayerKind {
            name: L::NAME,
            doc: L::DOC,
            version: L::VERSION,
            sources: L::SOURCES,
            params: L::PARAMS,
            build: build::<L>,
        }
    }
}

fn build<L: Layer>(json: serde_json::Value) -> Result<LayerSpec, String> {
    serde_json::from_value::<L>(json)
        .map(LayerSpec::new)
        .map_err(|e| format!("{}: {e}", L::NAME))
}

static REGISTERED: std::sync::RwLock<Vec<&'static LayerKind>> = std::sync::RwLock::new(Vec::new());

/// Adds a layer defined outside this crate (a plugin, or a test) for the rest of the
/// process. A name a layer or attack already has is refused (node kinds, which sit above
/// layers, refuse layers' names when they register).
pub fn register(kind: &'static LayerKind) -> Result<(), String> {
    if find(kind.name).is_some() || crate::attacks::find(kind.name).is_some() {
        return Err(format!("a layer or attack named `{}` already exists", kind.name));
    }
    REGISTERED.write().unwrap_or_else(|e| e.into_inner()).push(kind);
    Ok(())
}

/// Every layer: the built-in [`LAYERS`], then the [`register`]ed ones.
pub fn all() -> Vec<&'static LayerKind> {
    let registered = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
    LAYERS.iter().chain(registered.iter().copied()).collect()
}

/// Looks a layer up by name (the built-in ones without taking the registry's lock).
pub fn find(name: &str) -> Option<&'static LayerKind> {
    if let Some(builtin) = LAYERS.iter().find(|l| l.name == name) {
        return Some(builtin);
    }
    let registered = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
    registered.iter().copied().find(|l| l.name == name)
}

/// One layer of a net, whatever its kind. Its serde form is the layer's parameters tagged
/// with its name, `{"layer": "maxout", "units": 240, "pieces": 5}`, fields in declaration
/// order (checkpoints store it byte for byte).
#[derive(Clone)]
pub struct LayerSpec(Arc<dyn AnyLayer>);

impl LayerSpec {
    /// Wraps a layer.
    pub fn new<L: Layer>(layer: L) -> LayerSpec {
        LayerSpec(Arc::new(layer))
    }
    /// Its name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
    /// The layer, if it is an `L`.
    pub fn get<L: Layer>(&self) -> Option<&L> {
        self.0.as_any().downcast_ref::<L>()
    }
    /// Whether it is an `L`.
    pub fn is<L: Layer>(&self) -> bool {
        self.get::<L>().is_some()
    }
    /// See [`Layer::output_shape`].
    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        self.0.output_shape(input)
    }
    /// See [`Layer::weight_shape`].
    pub fn weight_shape(&self, input: &[usize]) -> Result<Option<(usize, usize)>, String> {
        self.0.weight_shape(input)
    }
    /// See [`Layer::columns_per_output`].
    pub fn columns_per_output(&self) -> usize {
        self.0.columns_per_output()
    }
    /// See [`Layer::torch_weight_shape`].
    pub fn torch_weight_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        self.0.torch_weight_shape(input)
    }
    /// See [`Layer::max_norm_applies`].
    pub fn max_norm_applies(&self) -> bool {
        self.0.max_norm_applies()
    }
    #[cfg(feature = "compute")]
    /// See [`Layer::forward`].
    pub fn forward<T: LayerTape>(&self, h: Matrix<T>, pass: &Pass<'_>) -> Matrix<T> {
        T::forward(self, h, pass)
    }
}

impl<L: Layer> From<L> for LayerSpec {
    fn from(layer: L) -> LayerSpec {
        LayerSpec::new(layer)
    }
}

impl PartialEq for LayerSpec {
    fn eq(&self, other: &LayerSpec) -> bool {
        self.name() == other.name() && self.0.tagged_json() == other.0.tagged_json()
    }
}

impl Debug for LayerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for LayerSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw = serde_json::value::RawValue::from_string(self.0.tagged_json()).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for LayerSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut json = serde_json::Value::deserialize(d)?;
        let name = match json.as_object_mut().and_then(|m| m.remove("layer")) {
            Some(serde_json::Value::String(name)) => name,
            _ => return Err(D::Error::custom("a layer is an object with a \"layer\" name")),
        };
        let kind = find(&name).ok_or_else(|| {
            let known: Vec<&str> = all().iter().map(|l| l.name).collect();
            D::Error::custom(format!("unknown layer `{name}` (known: {})", known.join(", ")))
        })?;
        (kind.build)(json).map_err(D::Error::custom)
    }
}

#[cfg(feature = "compute")]
/// The tapes a forward pass runs on: none (inference) or dfdx's owned tape (gradients).
/// Layers are stored behind `dyn`, which cannot take a generic method, so each tape picks
/// its own entry point.
pub trait LayerTape: Tape<f32, Dev> + Merge<Self> + Sized {
    /// `layer`'s forward pass on this tape.
    fn forward(layer: &LayerSpec, h: Matrix<Self>, pass: &Pass<'_>) -> Matrix<Self>;
}

#[cfg(feature = "compute")]
impl LayerTape for NoneTape {
    fn forward(layer: &LayerSpec, h: Matrix<Self>, pass: &Pass<'_>) -> Matrix<Self> {
        layer.0.forward_untaped(h, pass)
    }
}

#[cfg(feature = "compute")]
impl LayerTape for OwnedTape<f32, Dev> {
    fn forward(layer: &LayerSpec, h: Matrix<Self>, pass: &Pass<'_>) -> Matrix<Self> {
        layer.0.forward_taped(h, pass)
    }
}

/// [`Layer`] behind `dyn`: every layer has it.
trait AnyLayer: Debug + Send + Sync {
    fn name(&self) -> &'static str;
    fn tagged_json(&self) -> String;
    fn as_any(&self) -> &dyn Any;
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String>;
    fn weight_shape(&self, input: &[usize]) -> Result<Option<(usize, usize)>, String>;
    fn columns_per_output(&self) -> usize;
    fn torch_weight_shape(&self, input: &[usize]) -> Option<Vec<usize>>;
    fn max_norm_applies(&self) -> bool;
    #[cfg(feature = "compute")]
    fn forward_untaped(&self, h: Matrix<NoneTape>, pass: &Pass<'_>) -> Matrix<NoneTape>;
    #[cfg(feature = "compute")]
    fn forward_taped(&self, h: Matrix<OwnedTape<f32, Dev>>, pass: &Pass<'_>) -> Matrix<OwnedTape<f32, Dev>>;
}

/// The serde form: the name first, then the fields in declaration order.
#[derive(Serialize)]
struct Tagged<'a, L: Serialize> {
    layer: &'static str,
    #[serde(flatten)]
    fields: &'a L,
}

impl<L: Layer> AnyLayer for L {
    fn name(&self) -> &'static str {
        L::NAME
    }
    fn tagged_json(&self) -> String {
        serde_json::to_string(&Tagged {
            layer: L::NAME,
            fields: self,
        })
        .expect("layer parameters serialize")
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        Layer::output_shape(self, input)
    }
    fn weight_shape(&self, input: &[usize]) -> Result<Option<(usize, usize)>, String> {
        Layer::weight_shape(self, input)
    }
    fn columns_per_output(&self) -> usize {
        Layer::columns_per_output(self)
    }
    fn torch_weight_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        Layer::torch_weight_shape(self, input)
    }
    fn max_norm_applies(&self) -> bool {
        Layer::max_norm_applies(self)
    }
    #[cfg(feature = "compute")]
    fn forward_untaped(&self, h: Matrix<NoneTape>, pass: &Pass<'_>) -> Matrix<NoneTape> {
        Layer::forward(self, h, pass)
    }
    #[cfg(feature = "compute")]
    fn forward_taped(&self, h: Matrix<OwnedTape<f32, Dev>>, pass: &Pass<'_>) -> Matrix<OwnedTape<f32, Dev>> {
        Layer::forward(self, h, pass)
    }
}

/// The input as one flat dimension, or why `what` cannot take it.
pub fn flat_input(input: &[usize], what: &str) -> Result<usize, String> {
    match input {
        [n] => Ok(*n),
        _ => Err(format!(
            "{what} needs a flat input, found {}; add `flatten` before it",
            show_shape(input)
        )),
    }
}

/// The weights of a dense layer with `columns` outputs on a flat `input`: `(in, columns)`.
pub fn dense_weights(input: &[usize], columns: Option<usize>, what: &str) -> Result<Option<(usize, usize)>, String> {
    let overflow = || format!("the weights of a {what} layer on {} overflow", show_shape(input));
    let columns = columns.ok_or_else(overflow)?;
    let rows = input.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(overflow)?;
    rows.checked_mul(columns).ok_or_else(overflow)?;
    Ok(Some((rows, columns)))
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
    /// sigmoid outputs, one ending in `rbf` RBF memberships (unless its `output` is
    /// "softmax"), any other a softmax.
    pub fn top(&self) -> super::Top {
        match self.layers.last() {
            Some(l) if l.is::<sigmoid_top::SigmoidTop>() => super::Top::Sigmoid,
            Some(l) if l.get::<rbf::Rbf>().is_some_and(|r| r.output == rbf::Output::Membership) => super::Top::Rbf,
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

#[cfg(all(test, feature = "compute"))]
pub(crate) mod testing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_flow_through_the_stack() {
        let net = NetSpec {
            input: vec![1, 28, 28],
            layers: vec![flatten::Flatten {}.into(), linear::Linear { units: 10 }.into()],
        };
        assert_eq!(net.output_shape().unwrap(), vec![10]);
        let bad = NetSpec {
            input: vec![1, 28, 28],
            layers: vec![linear::Linear { units: 10 }.into()],
        };
        assert_eq!(bad.output_shape().unwrap_err().0, 0);
    }

    #[test]
    fn serde_form_is_tagged_with_fields_in_declaration_order() {
        let text = r#"{"layer":"maxout","units":240,"pieces":5}"#;
        let l: LayerSpec = serde_json::from_str(text).unwrap();
        assert_eq!(l, maxout::Maxout { units: 240, pieces: 5 }.into());
        assert_eq!(serde_json::to_string(&l).unwrap(), text);
        let pool: LayerSpec = serde_json::from_str(r#"{"layer":"max_pool","size":2}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&pool).unwrap(),
            r#"{"layer":"max_pool","size":2,"stride":null}"#
        );
        assert_eq!(
            serde_json::to_string(&LayerSpec::from(flatten::Flatten {})).unwrap(),
            r#"{"layer":"flatten"}"#
        );
        let e = serde_json::from_str::<LayerSpec>(r#"{"layer":"convolution"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown layer `convolution`"), "{e}");
    }

    #[test]
    fn every_layer_round_trips_through_its_registry_entry() {
        for kind in LAYERS {
            let defaults: serde_json::Map<String, serde_json::Value> = kind
                .params
                .iter()
                .map(|p| (p.name.to_string(), p.default_json().unwrap_or(serde_json::json!(2))))
                .collect();
            let layer = (kind.build)(serde_json::Value::Object(defaults)).unwrap();
            assert_eq!(layer.name(), kind.name);
            let back: LayerSpec = serde_json::from_str(&serde_json::to_string(&layer).unwrap()).unwrap();
            assert_eq!(back, layer, "{}", kind.name);
        }
    }
}
