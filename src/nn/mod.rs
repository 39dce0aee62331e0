//! Networks on dfdx: layer specs and shape inference ([`layers`]), models with their
//! forward pass and checkpoints ([`model`]), and training ([`train`]).
//!
//! dfdx's own `nn` modules are sized at compile time; ours are sized when the pipeline is
//! read, so this module owns the parameter tensors and composes dfdx's differentiable ops.
//! A CUDA build changes the `Dev` alias in `model.rs` and nothing else.

#[cfg(feature = "compute")]
pub mod affine;
pub mod checkpoint;
#[cfg(feature = "compute")]
pub mod classifier;
pub mod combine;
pub mod conv;
#[cfg(all(feature = "compute", not(feature = "cuda")))]
pub mod fused;
#[cfg(all(feature = "compute", not(feature = "cuda")))]
pub mod fused_conv;
#[cfg(all(feature = "compute", not(feature = "cuda")))]
pub mod fusion;
pub mod layers;
#[cfg(feature = "compute")]
pub mod model;
pub mod top;

#[cfg(feature = "compute")]
pub use classifier::Classifier;
pub use combine::Combine;
pub use layers::{LayerSpec, NetSpec};
#[cfg(feature = "compute")]
pub use model::{Dev, Model};
pub use top::Top;
