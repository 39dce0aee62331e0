//! Networks on dfdx: layer specs and shape inference ([`layers`]), models with their
//! forward pass and checkpoints ([`model`]), and training ([`train`]).
//!
//! dfdx's own `nn` modules are sized at compile time; ours are sized when the pipeline is
//! read, so this module owns the parameter tensors and composes dfdx's differentiable ops.
//! A CUDA build changes the `Dev` alias in `model.rs` and nothing else.

pub mod classifier;
pub mod conv;
#[cfg(not(feature = "cuda"))]
pub mod fused;
pub mod layers;
pub mod model;
pub mod top;

pub use classifier::Classifier;
pub use layers::{LayerSpec, NetSpec};
pub use model::{Dev, Model};
pub use top::Top;
