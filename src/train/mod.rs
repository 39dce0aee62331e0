//! Training (`fit`): minibatch SGD with momentum (or Adam) on the softmax cross-entropy,
//! with the knobs of the paper's maxout recipe (pylearn2's `mnist_pi.yaml`).
//!
//! The optimizers are ours, not dfdx's: dfdx's need compile-time shapes. Each step traces
//! the parameters on a fresh tape, takes the gradients and updates in place. Per epoch:
//! momentum ramps linearly from `momentum` to `momentum_end` by epoch `momentum_epochs`;
//! after every update the learning rate is *divided* by `lr_decay` down to `lr_min`; after
//! every update each weight column (one unit's incoming weights) is rescaled to norm at
//! most `max_norm`. With a validation set, the validation error is recorded every epoch and
//! training stops when it has not improved for `patience` epochs; the result is then the
//! best epoch's parameters, or (`after_stop: "refit"`) a fresh run on train + valid for
//! the best epoch count, or (`after_stop: "continue"`, the paper's toolkit) more training
//! of the best model on train + valid until the objective on the validation examples falls
//! to the best epoch's training objective.
//!
//! Everything random (initial weights, the order of examples, dropout masks) comes from
//! the node's seed, so a seed fixes the result bit for bit on one machine.

#[cfg(feature = "compute")]
pub mod resume;
mod schema;
#[cfg(feature = "compute")]
mod stages;
#[cfg(feature = "compute")]
mod step;

pub use schema::*;
#[cfg(feature = "compute")]
pub use stages::{fit, fit_resumable, Checkpoints};
#[cfg(feature = "compute")]
pub use step::{clip_column_norms, Trainer};

#[cfg(all(test, feature = "compute"))]
mod tests;
